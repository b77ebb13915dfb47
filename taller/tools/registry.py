"""The tool registry: one :class:`ToolSpec` per tool, and every list about tools derived from it.

A tool is code plus words. The code (a pydantic argument schema and a function calling a
library) lives in its group module, ``taller/tools/<group>.py``, decorated with
:func:`langchain_tool`. The words live here, once: the description the LLM reads, the example
requests the semantic router learns from, whether it must be confirmed and how to ask, the words
people use for an argument's values, and which arguments a follow-up may reword or inherit.

Derived from :data:`TOOLS` (and from :data:`taller.trainers.MODELS` for model names):

* ``taller.tools``: ``TOOL_NAMES``, ``COSTLY_TOOLS``, ``TOOL_MODULES``, ``get_tool``;
* each LangChain tool's description (:func:`langchain_tool`);
* the router's catalog (:func:`tool_catalog`, from the descriptions and the argument schemas),
  its examples (:func:`router_examples`) and the confirmation texts
  (:func:`confirmation_templates`), which ``taller.agent.prompts`` exposes;
* the words for each model (:func:`model_words`), for the router and argument grounding.

Computed at import (a test that adds an entry must patch these too): the constants in
``taller.tools`` and ``taller.agent.prompts``, the LangChain tools, and the model ``Literal``
types in ``taller.tools.training``. Computed at each call: ``get_tool`` and every function here.
``tests/tools/test_registry.py`` checks that each derived list equals the registry.

Adding a tool is its function and schema in a group module plus one entry in :data:`TOOLS`.
"""

from __future__ import annotations

import importlib
import types
import typing
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Literal, Mapping

from taller.tools.examples import EXAMPLES
from taller.trainers import MODELS, lesson_names, model_names

if TYPE_CHECKING:  # pragma: no cover
    from langchain_core.tools import BaseTool
    from pydantic import BaseModel

LANGUAGES = ("en", "es")


@dataclass(frozen=True)
class ToolSpec:
    """One tool: where its code is, and every text about it.

    ``description`` is the one line the LLM reads about the tool: the router's catalog shows it
    (followed by the arguments, written from the schema) and it opens the LangChain tool's
    description, which ``details`` completes. ``confirmation`` maps a language ("en", "es") to the
    question asked before a costly call, formatted with its arguments. ``synonyms`` maps an
    argument to {value: words people use for it} (see :class:`taller.trainers.ModelSpec` for how
    words match). ``free_text_fields`` may be reworded (a question); ``sticky_fields`` hold the
    conversation's current thing (a database, a video); ``carry_over_fields`` may be
    inherited by a follow-up from the previous call of the same tool. ``argument_hints`` replaces
    the catalog's generated text for an argument whose type says too little.
    """

    name: str
    module: str
    description: str
    details: str = ""
    # Default: the tool's entry in taller/tools/examples.py (what the router learns from).
    examples_en: tuple[str, ...] | None = None
    examples_es: tuple[str, ...] | None = None
    costly: bool = False
    # "module:function" of a predicate on the call's arguments: a costly tool asks first only when
    # it says True (show_lesson asks only when the lesson has not run yet and would start training).
    costly_when: str | None = None
    confirmation: Mapping[str, str] = field(default_factory=dict)
    synonyms: Mapping[str, Mapping[str, tuple[str, ...]]] = field(default_factory=dict)
    free_text_fields: frozenset[str] = frozenset()
    carry_over_fields: frozenset[str] = frozenset()
    # The conversation's current database or video: inherited from the last call of any tool that
    # had it, unless the request names its own ("describe the hr database" → "how many employees?").
    sticky_fields: frozenset[str] = frozenset()
    argument_hints: Mapping[str, str] = field(default_factory=dict)
    # Words that say which number argument a number is: field → (words written after the number,
    # "12 epochs", "6 imágenes"; words written before it, "beam 4", "a beam of 4", "the next 10").
    # A final * is a prefix. A follow-up's "what about 10 steps?" changes ``steps`` by them.
    units: Mapping[str, tuple[tuple[str, ...], tuple[str, ...]]] = field(default_factory=dict)
    # What the user may send next after this tool's result (offered, never run by itself):
    # language → ((button label, message), ...), each formatted with the call's arguments and the
    # result's fields and left out when one is missing (see taller/agent/suggestions.py).
    next_steps: Mapping[str, tuple[tuple[str, str], ...]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        written = EXAMPLES.get(self.name, {})
        if self.examples_en is None:
            object.__setattr__(self, "examples_en", written.get("en", ()))
        if self.examples_es is None:
            object.__setattr__(self, "examples_es", written.get("es", ()))

    @property
    def tool(self) -> "BaseTool":
        """The LangChain tool (imports its module, which is light: heavy imports run in the call)."""
        return getattr(importlib.import_module(self.module), self.name)

    @property
    def function(self) -> Callable[..., dict]:
        return self.tool.func

    @property
    def args_schema(self) -> type["BaseModel"]:
        return self.tool.args_schema

    def costly_call(self, args: Mapping[str, Any] | None = None) -> bool:
        """Whether a call with ``args`` starts the costly work (always, unless ``costly_when`` says not)."""
        if self.costly_when is None or args is None:
            return True
        module, _, function = self.costly_when.partition(":")
        return bool(getattr(importlib.import_module(module), function)(dict(args)))

    @property
    def examples(self) -> tuple[str, ...]:
        return self.examples_en + self.examples_es

    @property
    def llm_description(self) -> str:
        """The LangChain tool's description: the catalog line's text, then the details."""
        return self.description + (". " + self.details if self.details else ".")

    def catalog_line(self) -> str:
        """What the router's prompt says about the tool: ``<description>. args: {...}``."""
        fields = self.args_schema.model_fields
        hints = [f'"{name}": {self.argument_hints.get(name) or _argument_type(self.name, name, info)}'
                 for name, info in fields.items()]
        return f"{self.description}. args: {{{', '.join(hints)}}}"


def _argument_type(tool: str, name: str, info: Any) -> str:
    """``str``, ``optional int``, ``one of a|b|c``: an argument as the router's catalog shows it."""
    annotation = info.annotation
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        members = [member for member in typing.get_args(annotation) if member is not type(None)]
        annotation = members[0] if len(members) == 1 else annotation
    if typing.get_origin(annotation) is Literal:
        text = "one of " + "|".join(str(choice) for choice in typing.get_args(annotation))
    elif annotation in (str, int, float, bool):
        text = annotation.__name__
    else:
        raise TypeError(f"{tool}.{name}: the catalog cannot describe {annotation!r}; "
                        f"give it an argument_hints entry in taller/tools/registry.py")
    return text if info.is_required() else f"optional {text}"


def _generation_details() -> str:
    parts = []
    for name in model_names(generative=True):
        generation = MODELS[name].generation
        text = f"{name}: {generation.samples.format(count='`count`')}"
        if generation.from_image:
            text += f" (given image_path: the {generation.from_image})"
        else:
            text += " (it takes no input image)"
        parts.append(text)
    return "; ".join(parts)


def _model_synonyms(generative: bool | None = None) -> dict[str, tuple[str, ...]]:
    return {name: MODELS[name].words for name in model_names(generative)}


# Arguments of the video tools: a URL, id or file that is not added yet is added first.
_NOT_ADDED_YET = "A `video` given as a YouTube URL/id or transcript file that is not added yet is added first"

TOOLS: dict[str, ToolSpec] = {spec.name: spec for spec in (
    ToolSpec(
        "train_model", "taller.tools.training", "train a model",
        details=("Trains one of the workshop models in the background and returns its run id at once; "
                 "progress is reported while it trains and list_models shows the result. Models: "
                 + ", ".join(f"{name} ({spec.description})" for name, spec in MODELS.items()) + "."),
        costly=True,
        confirmation={"en": "Train {model} for {epochs}? This runs in the background and can take a while.",
                      "es": "¿Entrenar {model} durante {epochs}? Se ejecuta en segundo plano y puede tardar un rato."},
        synonyms={"model": _model_synonyms()},
        carry_over_fields=frozenset({"model"}),
        units={"epochs": (("epoch*", "época*", "epoca*"), ())},
    ),
    ToolSpec(
        "list_models", "taller.tools.training", "list trained models and training runs with their metrics",
        details="Running and finished runs, with their metrics and checkpoints.",
    ),
    ToolSpec(
        "classify_pet", "taller.tools.training", "say if a photo shows a cat or a dog",
        details="Gives the probability, from the trained dense classifier (an MLP that sees 32×32 pixels).",
        carry_over_fields=frozenset({"image_path"}),
        next_steps={"en": (("The classifier's metrics", "list my models"),),
                    "es": (("Métricas del clasificador", "lista mis modelos"),)},
    ),
    ToolSpec(
        "generate_images", "taller.tools.training", "generate images with " + "|".join(model_names(generative=True)),
        details=_generation_details() + ".",
        synonyms={"model": _model_synonyms(generative=True)},
        carry_over_fields=frozenset({"model", "image_path"}),
        units={"count": (("sample*", "image*", "imagen*", "imágenes", "muestra*", "digit*", "dígito*", "picture*",
                          "foto*", "photo*", "ejemplo*", "example*"), ())},
        # The description already lists the models; the catalog has always said "str" here.
        argument_hints={"model": "str"},
        next_steps={"en": (("More samples", "generate {count} more samples with the {model}"),),
                    "es": (("Más muestras", "genera {count} muestras más con el {model}"),)},
    ),
    ToolSpec(
        "forecast", "taller.tools.sequences", "predict the next values of a number series",
        details=("Give the numbers (oldest first, at least 12) or the path of a CSV file. A recurrent (GRU) "
                 "model is fitted on this series in a few seconds; for 30+ values it is also checked on the "
                 "series' last values against simply repeating the last value."),
        carry_over_fields=frozenset({"values"}),
        # A series is often of months or days, and people count the steps ahead in them.
        units={"steps": (("step*", "paso*", "value*", "valor*", "number*", "número*", "point*", "punto*", "more", "más",
                          "month*", "mes", "meses", "week*", "semana*", "day*", "día*", "dia*", "quarter*",
                          "trimestre*", "hour*", "hora*"),
                         ("next", "following", "siguiente*", "próximo*", "proximo*"))},
        argument_hints={"values": "[numbers] or a CSV path"},
        next_steps={"en": (("Forecast further", "forecast the next 10 values"),),
                    "es": (("Pronosticar más", "pronostica los 10 próximos valores"),)},
    ),
    ToolSpec(
        "punctuate", "taller.tools.sequences", "add punctuation and capitals to text",
        details="English or Spanish (including ¿ and ¡), restored by a bidirectional LSTM (the trained birnn model).",
        carry_over_fields=frozenset({"text"}),
    ),
    ToolSpec(
        "translate", "taller.tools.sequences", "translate English text into Spanish",
        details=("With the seq2seq attention model and beam search; also saves a heat map of the attention "
                 "for the first sentence (listed in ``images``)."),
        # A beam of one is greedy decoding, and people say so.
        synonyms={"beam_size": {"1": ("greedy", "greedily", "greedy decoding", "greedy search", "voraz", "búsqueda voraz",
                                      "decodificación voraz", "sin beam search", "without beam search",
                                      "no beam search", "sin búsqueda en haz")}},
        carry_over_fields=frozenset({"text"}),
        units={"beam_size": ((), ("beam", "beam size", "beam width", "beam search", "haz", "tamaño de haz",
                                  "ancho de haz", "búsqueda en haz"))},
        next_steps={"en": (("Greedy decoding", "translate '{source}' with greedy decoding"),),
                    "es": (("Decodificación voraz", "traduce '{source}' con decodificación voraz"),)},
    ),
    ToolSpec(
        "analyze_face", "taller.tools.faces", "emotion and age of the faces in a photo",
        details=("Finds every face and returns one entry per face with its box, emotion label and class "
                 "probabilities, an age estimate with a likely range, and the path of an annotated copy of "
                 "the photo. A photo without faces is a normal answer, not an error."),
        carry_over_fields=frozenset({"image_path"}),
    ),
    ToolSpec(
        "add_video", "taller.tools.videos",
        "add a YouTube video, playlist or channel, or transcript files, to the knowledge base",
        details=("A YouTube URL or id, or a local transcript file (.vtt, .srt, or the JSON of "
                 "youtube-transcript-api), so it can be asked about or summarised. A playlist URL "
                 "(youtube.com/playlist?list=…), a channel URL (youtube.com/@name, /channel/…) or a folder of "
                 "transcript files adds every video in it, reporting each; asked again, it continues where it "
                 "stopped. Adding the same video again changes nothing."),
        carry_over_fields=frozenset({"url_or_path"}),
        next_steps={"en": (("Summarise it", "summarize the video"),),
                    "es": (("Resumirlo", "resume el vídeo"),)},
    ),
    ToolSpec(
        "ask_video", "taller.tools.videos", "answer a question about added videos",
        details=("Answers from the transcripts, citing each claim with a clickable timestamp; says so when "
                 "the transcripts do not contain the answer. " + _NOT_ADDED_YET + "."),
        free_text_fields=frozenset({"question"}),
        carry_over_fields=frozenset({"video"}),
        sticky_fields=frozenset({"video"}),
        next_steps={"en": (("Summarise the video", "summarize the video"),),
                    "es": (("Resumir el vídeo", "resume el vídeo"),)},
    ),
    ToolSpec(
        "summarize_video", "taller.tools.videos", "summarise an added video",
        details=("Section by section, with a timestamp for each section (default: the video added last). "
                 + _NOT_ADDED_YET + ", in the same call."),
        carry_over_fields=frozenset({"video"}),
        sticky_fields=frozenset({"video"}),
    ),
    ToolSpec(
        "query_database", "taller.tools.database",
        "answer a question about data in a database (sales, customers, invoices, tracks, artists)",
        details=("Default: the 'sales' music store (artists, albums, tracks, genres, playlists, customers, "
                 "employees, invoices). Writes and runs one read-only SQL query and returns the SQL, the "
                 "columns, the rows and a one-sentence answer; large results are saved to a CSV file."),
        free_text_fields=frozenset({"question"}),
        carry_over_fields=frozenset({"database"}),
        sticky_fields=frozenset({"database"}),
    ),
    ToolSpec(
        "describe_database", "taller.tools.database", "describe the tables of a database",
        details="Tables, columns, types, keys and row counts (default: the 'sales' music store).",
        carry_over_fields=frozenset({"database"}),
        sticky_fields=frozenset({"database"}),
    ),
    ToolSpec(
        "show_lesson", "taller.tools.training",
        "show a model's lesson: a measured experiment with a plot (" + "; ".join(
            f"{name}: {MODELS[name].lesson.topic_en}" for name in lesson_names()) + ")",
        details=("Shows the plot and what the newest finished lesson of that model measured on this machine. "
                 "When the lesson has not run yet, starts it in the background (a few short trainings, under "
                 "10 minutes on a laptop CPU) and returns its run id."),
        costly=True,
        costly_when="taller.tools.training:lesson_needs_work",
        confirmation={"en": "The {model} lesson has not run on this machine yet. Run it now? It trains a few small "
                            "models in the background (under 10 minutes on a laptop CPU).",
                      "es": "La lección de {model} aún no se ha ejecutado en esta máquina. ¿La ejecuto ahora? Entrena "
                            "unos modelos pequeños en segundo plano (menos de 10 minutos en la CPU de un portátil)."},
        synonyms={"model": {name: MODELS[name].words + MODELS[name].lesson.words for name in lesson_names()}},
        carry_over_fields=frozenset({"model"}),
        argument_hints={"model": "one of " + "|".join(lesson_names())},
        next_steps={"en": (("Train the full model", "train the {model}"),),
                    "es": (("Entrenar el modelo completo", "entrena el {model}"),)},
    ),
)}

# Requests that need no tool (the router's "none"): chit-chat and general deep-learning questions.
# Kept apart from bench/routing.py's test set on purpose, like every example above.
NO_TOOL_EXAMPLES: tuple[str, ...] = EXAMPLES["none"]["en"] + EXAMPLES["none"]["es"]
NO_TOOL = "none"


def langchain_tool(name: str, args_schema: type["BaseModel"]) -> Callable[[Callable[..., dict]], "BaseTool"]:
    """Decorator: the LangChain tool ``name`` over a function, described by its :data:`TOOLS` entry."""
    from langchain_core.tools import StructuredTool

    spec = TOOLS.get(name)
    if spec is None:
        raise KeyError(f"tool {name!r} has no entry in TOOLS (taller/tools/registry.py)")

    def wrap(function: Callable[..., dict]) -> "BaseTool":
        if function.__module__ != spec.module:
            raise ValueError(f"TOOLS[{name!r}].module is {spec.module}, but the tool is defined in {function.__module__}")
        return StructuredTool.from_function(func=function, name=name, description=spec.llm_description,
                                            args_schema=args_schema)

    return wrap


def tool_catalog() -> dict[str, str]:
    """One line per tool for the router's prompts: what it does and its arguments."""
    return {name: spec.catalog_line() for name, spec in TOOLS.items()}


def router_examples() -> dict[str, list[str]]:
    """Example requests per tool, English then Spanish, and ``"none"`` last, for the semantic router."""
    examples = {name: list(spec.examples) for name, spec in TOOLS.items()}
    examples[NO_TOOL] = list(NO_TOOL_EXAMPLES)
    return examples


def prompt_examples() -> str:
    """Lines ``"<request>" -> <tool>`` for the router's prompt: each tool's first example, English and
    Spanish in turn, then a greeting and a general question that need no tool."""
    lines = []
    for index, (name, spec) in enumerate(TOOLS.items()):
        examples = (spec.examples_en, spec.examples_es)[index % 2] or spec.examples
        lines.append(f'"{examples[0]}" -> {name}')
    english, spanish = EXAMPLES[NO_TOOL]["en"], EXAMPLES[NO_TOOL]["es"]
    lines += [f'"{spanish[0]}" -> {NO_TOOL}', f'"{english[4]}" -> {NO_TOOL}']
    return "\n".join(lines)


def abilities() -> str:
    """What the tools do, one clause each, for the chat prompt: "train a model; …"."""
    return "; ".join(spec.description for spec in TOOLS.values())


def model_list() -> str:
    """The trainable models with what each is: "dense_classifier (cats-vs-dogs MLP …), …"."""
    return ", ".join(f"{name} ({spec.description})" for name, spec in MODELS.items())


def confirmation_templates(language: str = "en") -> dict[str, str]:
    """The question asked before each tool that has one, in ``language`` ("en" or "es")."""
    if language not in LANGUAGES:
        raise ValueError(f"no confirmation texts in {language!r}; languages: {', '.join(LANGUAGES)}")
    return {name: spec.confirmation[language] for name, spec in TOOLS.items() if spec.confirmation}


def carry_over_fields() -> frozenset[str]:
    """Every argument that a follow-up may inherit, over all tools."""
    return frozenset().union(*(spec.carry_over_fields for spec in TOOLS.values()))


def model_words() -> dict[str, list[str]]:
    """What people call each trainable model, English and Spanish, its name first.

    Words match as described in :class:`taller.trainers.ModelSpec` (whole, case and accents
    ignored, a final ``*`` for a prefix); prefer the longest match when several models match.
    """
    return {name: [name, *spec.words] for name, spec in MODELS.items()}


def one_of(names: tuple[str, ...]) -> str:
    """``a, b or c``: a list of names for a message."""
    return ", ".join(names[:-1]) + " or " + names[-1] if len(names) > 1 else "".join(names)
