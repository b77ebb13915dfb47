"""Tools over the trainers: train a model, list runs, classify a pet, generate images.

Thin wrappers: training goes through the background registry :mod:`taller.trainers.runs`
(``train_model`` returns a run id at once; the agent's confirmation pause happens in the graph,
before the tool runs), and the image tools load the newest trained checkpoint of their model.
With no trained model they say so and offer to train one; they never invent an answer.

What the LLM reads about each tool is its entry in :mod:`taller.tools.registry`; the model
names, descriptions and how ``generate_images`` calls a model come from
:data:`taller.trainers.MODELS`, so adding a model changes nothing here.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

from taller.tools.base import ToolError, check_input_path, result
from taller.tools.registry import langchain_tool, one_of
from taller.trainers import MODELS, lesson_names, model_names

# The models' names as argument types, derived from taller.trainers.MODELS at import: the JSON
# schema's enum (what the LLM may answer) and pydantic's error message list them in that order.
ModelName = Literal[model_names()]
GenerativeModelName = Literal[model_names(generative=True)]
LessonModelName = Literal[lesson_names()]


class TrainModelArgs(BaseModel):
    model: ModelName = Field(description="Which workshop model to train.")
    epochs: int | None = Field(default=None, ge=1, le=1000, description="Number of epochs; default: the model's own.")


class ListModelsArgs(BaseModel):
    pass


class ClassifyPetArgs(BaseModel):
    image_path: str = Field(min_length=1, description="Path of an image file (any size).")


class GenerateImagesArgs(BaseModel):
    model: GenerativeModelName = Field(description="Generative model to use.")
    count: int | None = Field(default=None, ge=1, le=64, description="How many images.")
    image_path: str | None = Field(default=None, description=(
        f"Optional input image ({', '.join(name for name in model_names(generative=True) if MODELS[name].generation.from_image)})."))


class ShowLessonArgs(BaseModel):
    model: LessonModelName = Field(description="Whose lesson to show.")


def _not_trained(model: str, what: str) -> dict[str, Any]:
    return result(
        f"No trained {MODELS[model].description} yet, so I cannot {what}. "
        f"I can train one now with train_model(model='{model}') — it runs in the background.",
        trained=False,
        model=model,
        offer={"tool": "train_model", "args": {"model": model}},
    )


def _headline(row: dict[str, Any]) -> str:
    metrics = row.get("metrics") or {}
    spec = MODELS.get(row.get("model", ""))
    key = spec.metric if spec else None
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


@langchain_tool("train_model", TrainModelArgs)
def train_model(model: str, epochs: int | None = None) -> dict:
    from taller.trainers import runs

    run_id = runs.start(model, epochs)
    state = runs.get(run_id)
    description = MODELS[model].description if model in MODELS else model
    # From a short-lived command (`taller tool`, `taller ask`) the run trains in a detached
    # process of its own that outlives the command (see taller.trainers.runs.detached_runs).
    pid = state.get("pid")
    detached = isinstance(pid, int) and pid != os.getpid()
    log = str(Path(state["path"]) / "train.log") if detached and state.get("path") else None
    where = (f"in a process of its own (pid {pid}) that keeps training after this command ends; its log is {log}"
             if detached else "in the background")
    processes = state.get("world_size") or 1
    if processes > 1:  # the train_processes setting: launched through torchrun, rank 0's pid above
        where = f"with {processes} processes (torchrun, distributed data-parallel) " + where
    return result(
        f"Started training {model} ({description}) for {state['epochs']} epochs {where}; "
        f"run id {run_id}. Ask me to list models to see how it goes.",
        run_id=run_id,
        model=model,
        epochs=state["epochs"],
        status="started",
        path=state.get("path"),
        pid=pid if detached else None,
        log=log,
        processes=processes,
    )


@langchain_tool("list_models", ListModelsArgs)
def list_models() -> dict:
    from taller.trainers import lessons, runs

    problems: list[dict[str, str]] = []
    rows = runs.list_all(problems=problems)
    entries = []
    for row in rows:
        entries.append({
            "run_id": row["run_id"], "model": row["model"], "state": row["state"], "epoch": row.get("epoch"),
            "epochs": row.get("epochs"), "metrics": _compact(row.get("metrics") or {}), "error": row.get("error"),
            "created": row.get("created"), "finished": row.get("finished"), "checkpoints": row.get("checkpoints", []),
            "path": row.get("path"), "processes": row.get("world_size") or 1,
            "lesson": "lesson" in (row.get("metrics") or {}) or lessons.is_lesson_run(row),
        })
    skipped = ""
    if problems:
        # A damaged run folder is named and skipped; it never hides the other runs.
        shown = "; ".join(f"{p['path']} ({p['problem']})" for p in problems[:3])
        more = f" and {len(problems) - 3} more" if len(problems) > 3 else ""
        skipped = (f" Skipped {len(problems)} run folder{'s' if len(problems) != 1 else ''} that could not "
                   f"be read: {shown}{more}.")
    if not entries:
        return result("No models have been trained yet. train_model can train any of: "
                      + ", ".join(MODELS) + "." + skipped, runs=[], running=0, finished=0, bad_runs=problems)
    running = [e for e in entries if e["state"] in ("running", "cancelling")]
    finished = [e for e in entries if e["state"] == "finished"]
    parts = []
    for entry in running:
        on = f" on {entry['processes']} processes" if entry["processes"] > 1 else ""
        what = "lesson running" if entry["lesson"] else "training"
        parts.append(f"{entry['model']} {what}{on} (epoch {entry['epoch']}/{entry['epochs']})")
    latest: dict[str, dict] = {}
    for entry in finished:  # newest first, so the first per model is the latest
        latest.setdefault((entry["model"], entry["lesson"]), entry)
    for (model, lesson), entry in latest.items():
        if lesson:  # a lesson trains side models and keeps none: it says what it showed, not a score
            held = entry["metrics"].get("claim_held")
            parts.append(f"{model} lesson done" + (" (claim held)" if held else " (claim did not hold)" if held is False else ""))
            continue
        headline = _headline(entry)
        parts.append(f"{model} trained" + (f" ({headline})" if headline else ""))
    summary = f"{len(entries)} run(s): {len(running)} running, {len(finished)} finished. " + "; ".join(parts) + "."
    return result(summary + skipped, runs=entries, running=len(running), finished=len(finished), bad_runs=problems)


@langchain_tool("classify_pet", ClassifyPetArgs)
def classify_pet(image_path: str) -> dict:
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


@langchain_tool("generate_images", GenerateImagesArgs)
def generate_images(model: str, count: int | None = None, image_path: str | None = None) -> dict:
    # Every generative model is called the same way; its ModelSpec says whether it takes an
    # input image and how to describe what it saved.
    spec = MODELS.get(model)
    if spec is None or spec.generation is None:
        raise ToolError(f"unknown generative model {model!r}; choose {one_of(model_names(generative=True))}")
    path = check_input_path(image_path, kind="image") if image_path else None
    from taller.trainers.engine import latest_checkpoint

    if latest_checkpoint(model) is None:
        return _not_trained(model, "generate images with it")
    generation = spec.generation
    count = count or generation.default_count
    trainer = importlib.import_module(spec.module)
    try:
        if generation.from_image is None:
            out = trainer.generate(count)
        else:
            out = trainer.generate(count, path)
    except ValueError as exc:
        raise ToolError(str(exc)) from None
    if path and generation.from_image:
        what = generation.from_image.format(**out)
    else:
        what = generation.samples.format(**out)
    note = generation.note.format(**out)
    if path and generation.from_image is None:
        note += f" (the {model} model does not take an input image, so yours was not used)"
    return result(f"Saved the {what}{note} to {out['images'][0]}.", model=model, trained=True, **out)


@langchain_tool("show_lesson", ShowLessonArgs)
def show_lesson(model: str) -> dict:
    from taller.trainers import lessons, runs

    spec = MODELS.get(model)
    if spec is None or spec.lesson is None:
        raise ToolError(f"no lesson for {model!r}; lessons: {one_of(lesson_names())}")
    topic = spec.lesson
    found = lessons.latest_lesson(model)
    if found is not None:
        held_en = "the claim held" if found.get("claim_held") else "the claim did NOT hold in this run"
        held_es = "la afirmación se cumplió" if found.get("claim_held") else "la afirmación NO se cumplió en esta ejecución"
        when = f"{found.get('seconds') or 0:.0f} s on {found.get('device') or 'cpu'}, run {found['run_id']}"
        reading = found.get("reading") or {}
        images = [found["plot"]] if found.get("plot") and Path(found["plot"]).is_file() else []
        return result(
            f"{found.get('title')}: {reading.get('en', '')} (Measured here in {when}; {held_en}: {found.get('claim')}.)",
            summary_es=f"{found.get('title')}: {reading.get('es', '')} (Medido aquí en {when}; {held_es}.)",
            model=model, topic=topic.topic_en, claim=found.get("claim"), claim_held=bool(found.get("claim_held")),
            figures=found.get("figures"), run_id=found["run_id"], seconds=found.get("seconds"), images=images,
            state="finished",
        )
    running = lessons.running_lesson(model)
    if running is not None:
        return result(
            f"The {model} lesson ({topic.topic_en}) is running (run {running['run_id']}); "
            "its plot and reading will be here when it finishes.",
            summary_es=f"La lección de {model} ({topic.topic_es}) se está ejecutando (ejecución {running['run_id']}); "
                       "su gráfica y su lectura estarán aquí cuando termine.",
            model=model, topic=topic.topic_en, run_id=running["run_id"], state="running",
        )
    run_id = runs.start(model, None, lesson=True)
    return result(
        f"The {model} lesson ({topic.topic_en}) has not run on this machine yet, so I started it in the "
        f"background: a few short trainings, under 10 minutes on a laptop CPU; run id {run_id}. "
        "Ask again when it has finished to see its plot and what it shows.",
        summary_es=f"La lección de {model} ({topic.topic_es}) aún no se ha ejecutado en esta máquina, así que la "
                   f"he empezado en segundo plano: unos entrenamientos cortos, menos de 10 minutos en la CPU de un "
                   f"portátil; ejecución {run_id}. Pregúntame otra vez cuando termine para ver su gráfica y lo que muestra.",
        model=model, topic=topic.topic_en, run_id=run_id, state="started",
    )


def lesson_needs_work(args: dict[str, Any]) -> bool:
    """Whether ``show_lesson(**args)`` would start training (no finished or running lesson yet)."""
    from taller.trainers import lessons

    model = str(args.get("model") or "")
    return lessons.latest_lesson(model) is None and lessons.running_lesson(model) is None
