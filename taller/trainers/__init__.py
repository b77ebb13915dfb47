"""The workshop's trainers: one readable file per model, on a small shared engine, and their registry.

Each trainer module defines a ``Config`` dataclass and ``train(config, ...) -> dict`` of metrics,
and runs as a script: ``python -m taller.trainers.<name> --epochs N --dry-run``.

:data:`MODELS` is the one list of trainable models: one :class:`ModelSpec` per model. Everything
else that names models is derived from it: :data:`TRAINERS` below, the ``train_model`` and
``generate_images`` argument types and how ``generate_images`` calls a model
(``taller.tools.training``), the ``show_lesson`` argument type (the models with a :class:`LessonSpec`), the tools' descriptions, the router's model words
(``taller.tools.registry.model_words``) and the CLI's ``taller train`` choices. It lives here, in
the domain layer, because the tools and the interfaces read it and this layer imports neither.
Adding a model is its trainer module plus one entry in :data:`MODELS`.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Generation:
    """How a generative model's ``generate`` is called and how its result is described.

    ``generate(count)`` (or ``generate(count, image_path)`` when the model takes an input image)
    returns ``{"images": [...], "count": n, ...}``; the texts below are formatted with that result.
    """

    default_count: int  # how many images when the user does not say
    samples: str  # what generate(count) saved: "reconstructions of {count} test digits"
    from_image: str | None = None  # what generate(count, image_path) saved; None: it takes no input image
    note: str = ""  # appended to the summary: " (reconstruction MSE {mse:.4f})"


@dataclass(frozen=True)
class LessonSpec:
    """The model's lesson (:mod:`taller.trainers.lessons`): what it shows and how people ask for it.

    ``words_en`` / ``words_es`` are what people say when they ask about the lesson's topic
    ("beam search", "sobreajuste"), matched like :attr:`ModelSpec.words`; with the model's own
    words they lead the ``show_lesson`` tool to this model.
    """

    topic_en: str  # "why LSTMs and GRUs remember longer than a plain RNN"
    topic_es: str
    words_en: tuple[str, ...] = ()
    words_es: tuple[str, ...] = ()

    @property
    def words(self) -> tuple[str, ...]:
        return self.words_en + self.words_es


@dataclass(frozen=True)
class ModelSpec:
    """One trainable model: what the tools, the router and the CLI need to know about it.

    ``words_en`` / ``words_es`` are what people call the model, besides its name. Each is a word or
    phrase matched whole, without regard to case or accents; spaces, hyphens and underscores are
    interchangeable, and a final ``*`` matches a word prefix ("traduc*": traductor, traducción).
    Words may overlap between models ("lstm" in "bi-lstm", "autoencoder" in "variational
    autoencoder"): a matcher that must pick one model prefers the longest match.
    """

    name: str  # the ``train_model`` argument and the run folder's prefix
    module: str  # the trainer module: Config, train(), and generate() for a generative model
    description: str  # a few words for messages: "MNIST variational autoencoder"
    metric: str | None = None  # the headline metric of a finished run; None: its first numeric metric
    words_en: tuple[str, ...] = ()
    words_es: tuple[str, ...] = ()
    generation: Generation | None = None  # set for the models that ``generate_images`` can use
    lesson: LessonSpec | None = None  # set for the models whose trainer has a ``--lesson``

    @property
    def generative(self) -> bool:
        return self.generation is not None

    @property
    def default_count(self) -> int | None:
        return self.generation.default_count if self.generation else None

    @property
    def words(self) -> tuple[str, ...]:
        return self.words_en + self.words_es


# The order is the order the LLM sees the names in (train_model's schema and the router's
# catalog), and the order of the CLI's choices.
MODELS: dict[str, ModelSpec] = {spec.name: spec for spec in (
    ModelSpec(
        "dense_classifier", "taller.trainers.dense_classifier", "cats-vs-dogs MLP on CIFAR-10",
        metric="test_accuracy",
        words_en=("dense", "dense classifier", "mlp", "classifier", "pet", "pets", "cats vs dogs",
                  "cats vs. dogs", "cat vs dog", "cats versus dogs", "cats and dogs", "cat or dog",
                  "dogs vs cats", "dogs and cats", "dog or cat"),
        words_es=("clasificador", "gatos y perros", "gatos vs perros", "gato o perro", "gatos o perros",
                  "perros y gatos", "perro o gato", "perros o gatos"),
        lesson=LessonSpec(
            "how dropout and early stopping keep an MLP from over-fitting",
            "cómo el dropout y la parada temprana evitan que un MLP se sobreajuste",
            words_en=("overfitting", "over-fitting", "overfit*", "over-fit*", "dropout", "early stopping",
                      "regularization", "regularisation"),
            words_es=("sobreajuste", "sobreajust*", "sobre-ajuste", "parada temprana", "regularización"),
        ),
    ),
    ModelSpec(
        "autoencoder", "taller.trainers.autoencoder", "MNIST stacked autoencoder",
        metric="test_mse",
        words_en=("auto-encoder", "stacked autoencoder"),
        words_es=("autocodificador",),
        generation=Generation(8, "reconstructions of {count} test digits", "reconstruction of your image",
                              note=" (reconstruction MSE {mse:.4f})"),
        lesson=LessonSpec(
            "how the size of the bottleneck changes the reconstruction",
            "cómo el tamaño del cuello de botella cambia la reconstrucción",
            words_en=("bottleneck", "bottleneck size", "code size", "latent size", "compression"),
            words_es=("cuello de botella", "tamaño del código", "compresión"),
        ),
    ),
    ModelSpec(
        "rnn", "taller.trainers.rnn", "RNN/LSTM/GRU memory and forecasting",
        words_en=("lstm", "gru", "recurrent", "recurrent network", "forecaster"),
        words_es=("recurrente", "red recurrente"),
        lesson=LessonSpec(
            "why LSTMs and GRUs remember longer than a plain RNN",
            "por qué las LSTM y las GRU recuerdan más que una RNN simple",
            words_en=("remember longer", "long-term memory", "long term memory", "vanishing gradient*",
                      "rnn vs lstm", "plain rnn", "vanilla rnn", "gated cells"),
            words_es=("recuerdan más", "memoria a largo plazo", "desvanecimiento del gradiente",
                      "gradiente que se desvanece", "rnn simple"),
        ),
    ),
    ModelSpec(
        "birnn", "taller.trainers.birnn", "bidirectional LSTM punctuation restorer",
        words_en=("bidirectional", "bidirectional lstm", "bilstm", "bi-lstm", "punctuat*"),
        words_es=("bidireccional", "red bidireccional", "puntua*"),
        lesson=LessonSpec(
            "what reading the sentence in both directions adds",
            "qué aporta leer la frase en los dos sentidos",
            words_en=("both directions", "bidirectional gain", "backwards", "forward-only", "one direction"),
            words_es=("ambos sentidos", "dos sentidos", "hacia atrás", "un solo sentido"),
        ),
    ),
    ModelSpec(
        "seq2seq", "taller.trainers.seq2seq", "English-to-Spanish translator",
        words_en=("translator", "translat*", "attention model", "attention"),
        # The English side names the attention model; Spanish speakers say the same.
        words_es=("traductor", "traduc*", "modelo de atención", "atención"),
        lesson=LessonSpec(
            "what beam search adds over greedy decoding",
            "qué aporta la búsqueda en haz frente a la decodificación voraz",
            words_en=("beam search", "beam", "greedy", "greedy decoding", "decoding"),
            words_es=("búsqueda en haz", "haz", "voraz", "decodificación voraz", "decodificación"),
        ),
    ),
    ModelSpec(
        "vae", "taller.trainers.vae", "MNIST variational autoencoder",
        metric="test_elbo",
        words_en=("variational", "variational autoencoder"),
        words_es=("variacional", "autocodificador variacional", "autoencoder variacional"),
        generation=Generation(16, "{count} new samples from the VAE"),
        lesson=LessonSpec(
            "the β trade-off between reconstruction and the KL term",
            "el compromiso de β entre reconstrucción y el término KL",
            words_en=("beta", "β", "trade-off", "tradeoff", "kl", "kl term", "beta-vae"),
            words_es=("beta", "β", "compromiso", "término kl", "kl"),
        ),
    ),
    ModelSpec(
        "pix2pix", "taller.trainers.pix2pix", "pix2pix image-to-image GAN",
        metric="val_l1",
        words_en=("gan", "image-to-image", "facade", "facades"),
        words_es=("fachada", "fachadas"),
        generation=Generation(4, "translations of {count} validation inputs", "translation of your label map"),
    ),
)}

# model name (the ``train_model`` tool's argument) -> trainer module. Derived once, at import:
# background runs (``runs.py``), ``taller train`` and ``/train`` read it.
TRAINERS: dict[str, str] = {name: spec.module for name, spec in MODELS.items()}


def model_names(generative: bool | None = None) -> tuple[str, ...]:
    """The models' names in :data:`MODELS` order; only the generative ones (or only the others)."""
    return tuple(name for name, spec in MODELS.items() if generative is None or spec.generative == generative)


def lesson_names() -> tuple[str, ...]:
    """The models that have a lesson, in :data:`MODELS` order (the ``show_lesson`` argument)."""
    return tuple(name for name, spec in MODELS.items() if spec.lesson is not None)
