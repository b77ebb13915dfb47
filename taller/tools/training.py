"""Tools over the trainers: train a model, list runs, classify a pet, generate images.

Thin wrappers: training goes through the background registry :mod:`taller.trainers.runs`
(``train_model`` returns a run id at once; the agent's confirmation pause happens in the graph,
before the tool runs), and the image tools load the newest trained checkpoint of their model.
With no trained model they say so and offer to train one; they never invent an answer.
"""

from __future__ import annotations

from typing import Any, Literal

from langchain_core.tools import tool
from pydantic import BaseModel, Field

from taller.tools.base import ToolError, check_input_path, result

ModelName = Literal["dense_classifier", "autoencoder", "rnn", "birnn", "seq2seq", "vae", "pix2pix"]

DESCRIPTIONS = {
    "dense_classifier": "cats-vs-dogs MLP on CIFAR-10",
    "autoencoder": "MNIST stacked autoencoder",
    "vae": "MNIST variational autoencoder",
    "pix2pix": "pix2pix image-to-image GAN",
    "rnn": "RNN/LSTM/GRU memory and forecasting",
    "birnn": "bidirectional LSTM punctuation restorer",
    "seq2seq": "English-to-Spanish translator",
}
# The headline metric of each model, for one-line summaries.
HEADLINE = {
    "dense_classifier": "test_accuracy",
    "autoencoder": "test_mse",
    "vae": "test_elbo",
    "pix2pix": "val_l1",
}
DEFAULT_COUNT = {"autoencoder": 8, "vae": 16, "pix2pix": 4}


class TrainModelArgs(BaseModel):
    model: ModelName = Field(description="Which workshop model to train.")
    epochs: int | None = Field(default=None, ge=1, le=1000, description="Number of epochs; default: the model's own.")


class ListModelsArgs(BaseModel):
    pass


class ClassifyPetArgs(BaseModel):
    image_path: str = Field(min_length=1, description="Path of an image file (any size).")


class GenerateImagesArgs(BaseModel):
    model: Literal["autoencoder", "vae", "pix2pix"] = Field(description="Generative model to use.")
    count: int | None = Field(default=None, ge=1, le=64, description="How many images.")
    image_path: str | None = Field(default=None, description="Optional input image (autoencoder, pix2pix).")


def _not_trained(model: str, what: str) -> dict[str, Any]:
    return result(
        f"No trained {DESCRIPTIONS[model]} yet, so I cannot {what}. "
        f"I can train one now with train_model(model='{model}') — it runs in the background.",
        trained=False,
        model=model,
        offer={"tool": "train_model", "args": {"model": model}},
    )


def _headline(row: dict[str, Any]) -> str:
    metrics = row.get("metrics") or {}
    key = HEADLINE.get(row.get("model", ""))
    if key and isinstance(metrics.get(key), (int, float)):
        return f"{key}={metrics[key]:.4g}"
    for name, value in metrics.items():  # other trainers: the first numeric metric
        if name not in ("epoch", "lr") and isinstance(value, (int, float)) and not isinstance(value, bool):
            return f"{name}={value:.4g}"
    return ""


def _compact(metrics: dict[str, Any]) -> dict[str, Any]:
    """Metrics for the LLM: scalars, short lists and image paths; long per-dimension lists dropped."""
    out = {}
    for key, value in (metrics or {}).items():
        if isinstance(value, list) and len(value) > 8 and key != "images":
            continue
        out[key] = value
    return out


@tool("train_model", args_schema=TrainModelArgs)
def train_model(model: str, epochs: int | None = None) -> dict:
    """Train one of the workshop models in the background and return its run id.

    Models: dense_classifier (cats vs dogs MLP on CIFAR-10), autoencoder (MNIST), rnn
    (RNN/LSTM/GRU memory and forecasting), birnn (bidirectional LSTM punctuation), seq2seq
    (English to Spanish translation), vae (variational autoencoder), pix2pix (image-to-image GAN).
    Progress is reported while it trains; list_models shows the result.
    """
    from taller.trainers import runs

    run_id = runs.start(model, epochs)
    state = runs.get(run_id)
    return result(
        f"Started training {model} ({DESCRIPTIONS.get(model, model)}) for {state['epochs']} epochs in the background; "
        f"run id {run_id}. Ask me to list models to see how it goes.",
        run_id=run_id,
        model=model,
        epochs=state["epochs"],
        status="started",
        path=state.get("path"),
    )


@tool("list_models", args_schema=ListModelsArgs)
def list_models() -> dict:
    """List training runs (running and finished) with their metrics and checkpoints."""
    from taller.trainers import runs

    rows = runs.list_all()
    entries = []
    for row in rows:
        entries.append({
            "run_id": row["run_id"], "model": row["model"], "state": row["state"], "epoch": row.get("epoch"),
            "epochs": row.get("epochs"), "metrics": _compact(row.get("metrics") or {}), "error": row.get("error"),
            "created": row.get("created"), "finished": row.get("finished"), "checkpoints": row.get("checkpoints", []),
            "path": row.get("path"),
        })
    if not entries:
        return result("No models have been trained yet. train_model can train any of: "
                      + ", ".join(DESCRIPTIONS) + ".", runs=[], running=0, finished=0)
    running = [e for e in entries if e["state"] in ("running", "cancelling")]
    finished = [e for e in entries if e["state"] == "finished"]
    parts = []
    for entry in running:
        parts.append(f"{entry['model']} training (epoch {entry['epoch']}/{entry['epochs']})")
    latest: dict[str, dict] = {}
    for entry in finished:  # newest first, so the first per model is the latest
        latest.setdefault(entry["model"], entry)
    for model, entry in latest.items():
        headline = _headline(entry)
        parts.append(f"{model} trained" + (f" ({headline})" if headline else ""))
    summary = f"{len(entries)} run(s): {len(running)} running, {len(finished)} finished. " + "; ".join(parts) + "."
    return result(summary, runs=entries, running=len(running), finished=len(finished))


@tool("classify_pet", args_schema=ClassifyPetArgs)
def classify_pet(image_path: str) -> dict:
    """Say whether the photo shows a cat or a dog, with the probability (trained MLP)."""
    path = check_input_path(image_path, kind="image")
    from taller.trainers import dense_classifier
    from taller.trainers.engine import latest_checkpoint

    checkpoint = latest_checkpoint("dense_classifier")
    if checkpoint is None:
        return _not_trained("dense_classifier", "tell cats from dogs")
    try:
        model, _ = dense_classifier.load(checkpoint)
        answer = dense_classifier.classify(path, model)
    except ValueError as exc:  # not an image, truncated file, unreadable checkpoint
        raise ToolError(str(exc)) from None
    return result(
        f"It looks like a {answer['label']} (probability {answer['probability']:.0%}, from a dense network that "
        "sees 32×32 pixels, so treat it as a rough guess).",
        label=answer["label"],
        probability=answer["probability"],
        probabilities=answer["probabilities"],
        image_path=str(path),
        checkpoint=str(checkpoint),
        trained=True,
    )


@tool("generate_images", args_schema=GenerateImagesArgs)
def generate_images(model: str, count: int | None = None, image_path: str | None = None) -> dict:
    """Generate images: autoencoder reconstructions, VAE samples, or pix2pix translations.

    autoencoder: reconstructs `count` test digits, or the given image. vae: draws `count` new
    samples. pix2pix: translates the given label-map image, or `count` validation inputs.
    """
    if model not in DEFAULT_COUNT:
        raise ToolError(f"unknown generative model {model!r}; choose autoencoder, vae or pix2pix")
    path = check_input_path(image_path, kind="image") if image_path else None
    from taller.trainers.engine import latest_checkpoint

    if latest_checkpoint(model) is None:
        return _not_trained(model, "generate images with it")
    count = count or DEFAULT_COUNT[model]
    note = ""
    try:
        if model == "autoencoder":
            from taller.trainers import autoencoder

            out = autoencoder.generate(count, path)
            what = "reconstruction of your image" if path else f"reconstructions of {out['count']} test digits"
            note = f" (reconstruction MSE {out['mse']:.4f})"
        elif model == "vae":
            from taller.trainers import vae

            out = vae.generate(count)
            what = f"{count} new samples from the VAE"
            if path:
                note = " (the VAE draws new samples; it does not take an input image, so yours was not used)"
        else:
            from taller.trainers import pix2pix

            out = pix2pix.generate(count, path)
            what = "translation of your label map" if path else f"translations of {out['count']} validation inputs"
    except ValueError as exc:
        raise ToolError(str(exc)) from None
    return result(f"Saved the {what}{note} to {out['images'][0]}.", model=model, trained=True, **out)
