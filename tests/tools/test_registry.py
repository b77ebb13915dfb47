"""One registry per concept: every list about tools and models equals its registry.

``taller.tools.registry.TOOLS`` (a ToolSpec per tool) and ``taller.trainers.MODELS`` (a ModelSpec
per trainable model) are the sources. Lists derived once at import (the constants of
``taller.tools`` and ``taller.agent.prompts``, the LangChain tools, the model ``Literal`` types,
``TRAINERS``) are compared with the registries; for what is computed at call time, an entry
added at run time must show up.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import importlib.util
import inspect
import string
import sys
import typing

import pytest

from taller import cli, trainers
from taller.agent import prompts
from taller.tools import COSTLY_TOOLS, TOOL_MODULES, TOOL_NAMES, ToolError, get_tool, get_tools, registry, run_tool
from taller.tools.registry import TOOLS, ToolSpec
from taller.trainers import MODELS, Generation, ModelSpec


def _train_choices() -> list[str]:
    parser = cli.build_parser()
    commands = next(action for action in parser._actions if isinstance(action, argparse._SubParsersAction))
    train = commands.choices["train"]
    return list(next(action for action in train._actions if action.dest == "model").choices)


def _enum(tool: str, field: str) -> list[str]:
    return get_tool(tool).args_schema.model_json_schema()["properties"][field]["enum"]


def test_the_tool_lists_are_the_registry():
    assert TOOL_NAMES == tuple(TOOLS)
    assert COSTLY_TOOLS == {name for name, spec in TOOLS.items() if spec.costly} == {"train_model", "show_lesson"}
    assert TOOL_MODULES == {name: spec.module for name, spec in TOOLS.items()}
    assert [tool.name for tool in get_tools()] == list(TOOLS)


@pytest.mark.parametrize("name", list(TOOLS))
def test_each_langchain_tool_is_described_by_its_entry(name):
    spec, tool = TOOLS[name], get_tool(name)
    assert tool.name == name
    assert tool.description == spec.llm_description and tool.description.startswith(spec.description + ".")
    assert tool.func.__module__ == spec.module and spec.function is tool.func
    assert spec.args_schema is tool.args_schema
    assert len(spec.examples_en) >= 3 and spec.examples_es, f"{name} needs English and Spanish examples"


def test_the_router_catalog_is_derived_from_descriptions_and_schemas():
    assert prompts.TOOL_CATALOG == registry.tool_catalog()
    assert list(prompts.TOOL_CATALOG) == list(TOOLS)
    for name, line in prompts.TOOL_CATALOG.items():
        assert line.startswith(TOOLS[name].description + ". args: {"), line
        for field in TOOLS[name].args_schema.model_fields:
            assert f'"{field}": ' in line, (name, field)
    assert prompts.TOOL_CATALOG["train_model"] == (
        'train a model. args: {"model": one of ' + "|".join(MODELS) + ', "epochs": optional int}')
    assert prompts.TOOL_CATALOG["generate_images"].startswith(
        "generate images with " + "|".join(trainers.model_names(generative=True)) + ".")
    assert prompts.TOOL_CATALOG["list_models"].endswith("args: {}")


def test_the_router_examples_are_the_entries_examples_and_the_no_tool_list():
    assert prompts.ROUTER_EXAMPLES == registry.router_examples()
    assert list(prompts.ROUTER_EXAMPLES) == [*TOOLS, "none"]
    for name, spec in TOOLS.items():
        assert prompts.ROUTER_EXAMPLES[name] == [*spec.examples_en, *spec.examples_es]
    assert prompts.ROUTER_EXAMPLES["none"] == list(registry.NO_TOOL_EXAMPLES)
    sentences = [sentence for examples in prompts.ROUTER_EXAMPLES.values() for sentence in examples]
    assert len(sentences) == len(set(sentences)), "an example teaches two tools"


def _plain(text):
    import re
    import unicodedata

    text = unicodedata.normalize("NFKD", text.lower())
    return re.sub(r"[^a-z0-9]+", " ", "".join(ch for ch in text if not unicodedata.combining(ch))).strip()


def test_the_router_never_learns_a_benchmark_request():
    # The benchmark measures requests the router never saw: an example copied from bench/data
    # (either half) would make its figures lie.
    import json
    from pathlib import Path

    data = Path(__file__).resolve().parents[2] / "bench" / "data"
    # (routing_requests_dev.jsonl, a tuning set written blind later, shares a few everyday phrasings
    # with the examples, "list my models", "what is dropout": its report says so.)
    judged = {_plain(json.loads(line)["text"]) for line in (data / "routing_requests.jsonl").open(encoding="utf-8")}
    # (So does routing_dialogues_dev5.jsonl: three of its 118 turns, "¿cómo va el entrenamiento?",
    # "¿qué modelos tengo entrenados?", "¿cuántos clientes hay en Brasil?", equal examples written
    # long before it; docs/benchmarks.md says so.)
    for path in sorted(set(data.glob("routing_dialogues*.jsonl")) - {data / "routing_dialogues_dev5.jsonl"}):
        for line in path.open(encoding="utf-8"):
            if line.strip():
                judged |= {_plain(turn["text"]) for turn in json.loads(line)["turns"]}
    assert len(judged) > 400
    # Greetings of one or two words ("hola", "thanks!") are what anyone writes; longer ones are not.
    copied = [sentence for examples in prompts.ROUTER_EXAMPLES.values() for sentence in examples
              if _plain(sentence) in judged and len(_plain(sentence).split()) > 2]
    assert not copied, f"router examples copied from bench/data: {copied}"


def test_confirmations_come_from_the_costly_entries_in_both_languages():
    from taller.agent.graph import confirmation_text

    assert prompts.CONFIRM_MESSAGE == registry.confirmation_templates("en")
    assert registry.confirmation_templates("es")["train_model"].startswith("¿Entrenar {model}")
    for name, spec in TOOLS.items():
        assert bool(spec.confirmation) == spec.costly, f"{name}: a confirmation belongs to a costly tool"
        if spec.costly:
            assert set(spec.confirmation) == set(registry.LANGUAGES)
            fields = set(spec.args_schema.model_fields)
            for text in spec.confirmation.values():
                placeholders = {field for _, field, _, _ in string.Formatter().parse(text) if field}
                assert placeholders <= fields, (name, placeholders - fields)
    assert confirmation_text("train_model", {"model": "vae", "epochs": 3}) == (
        "Train vae for 3 epochs? This runs in the background and can take a while.")
    with pytest.raises(ValueError, match="'fr'"):
        registry.confirmation_templates("fr")


def test_the_model_lists_are_the_model_registry():
    generative = [name for name, spec in MODELS.items() if spec.generation is not None]
    assert generative == list(trainers.model_names(generative=True)) == ["autoencoder", "vae", "pix2pix"]
    assert trainers.TRAINERS == {name: spec.module for name, spec in MODELS.items()}
    assert _train_choices() == list(MODELS)
    assert _enum("train_model", "model") == list(MODELS)
    assert _enum("generate_images", "model") == generative
    training = importlib.import_module("taller.tools.training")
    assert typing.get_args(training.ModelName) == tuple(MODELS)
    assert typing.get_args(training.GenerativeModelName) == tuple(generative)
    # show_lesson takes the models with a lesson; its words are the model's and the lesson topic's.
    with_lesson = [name for name, spec in MODELS.items() if spec.lesson is not None]
    assert with_lesson == list(trainers.lesson_names()) == _enum("show_lesson", "model")
    assert typing.get_args(training.LessonModelName) == tuple(with_lesson)
    assert TOOLS["show_lesson"].synonyms["model"] == {
        name: MODELS[name].words + MODELS[name].lesson.words for name in with_lesson}
    for name in with_lesson:
        module = importlib.import_module(MODELS[name].module)
        assert "lesson" in {field.name for field in dataclasses.fields(module.Config)}, f"{name}: no --lesson"
        assert callable(getattr(module, "teach", None)), f"{name}: no teach()"
    for name, spec in MODELS.items():
        assert spec.name == name and spec.description and spec.words_en and spec.words_es
        assert name not in spec.words, f"{name}: its words are what people call it besides its name"
        assert importlib.util.find_spec(spec.module) is not None, spec.module
    with pytest.raises(ToolError, match="choose autoencoder, vae or pix2pix"):
        get_tool("generate_images").func(model="rnn")


@pytest.mark.parametrize("name", trainers.model_names(generative=True))
def test_generate_is_called_the_way_the_model_spec_says(name):
    spec = MODELS[name]
    generate = importlib.import_module(spec.module).generate
    parameters = list(inspect.signature(generate).parameters)
    assert parameters[0] == "count"
    takes_image = len(parameters) > 1 and parameters[1] == "image_path"
    assert takes_image == (spec.generation.from_image is not None), parameters
    assert inspect.signature(generate).parameters["count"].default == spec.default_count


def test_argument_words_and_follow_up_fields_name_real_arguments():
    for name, spec in TOOLS.items():
        fields = spec.args_schema.model_fields
        assert spec.free_text_fields <= set(fields) and spec.carry_over_fields <= set(fields), name
        assert set(spec.argument_hints) <= set(fields), name
        for field, words in spec.synonyms.items():
            choices = typing.get_args(fields[field].annotation)
            if choices:  # an enum: the words name its values
                assert set(words) <= {str(choice) for choice in choices}, (name, field)
            else:  # a number: the words name values its schema accepts ("greedy": a beam of 1)
                schema = spec.args_schema.model_json_schema()["properties"][field]
                assert all(schema["minimum"] <= int(value) <= schema["maximum"] for value in words), (name, field)
    assert TOOLS["train_model"].synonyms["model"] == {name: spec.words for name, spec in MODELS.items()}
    assert set(TOOLS["generate_images"].synonyms["model"]) == set(trainers.model_names(generative=True))
    assert registry.model_words() == {name: [name, *spec.words] for name, spec in MODELS.items()}
    assert registry.carry_over_fields() == {"image_path", "values", "model", "database", "video", "text", "url_or_path"}


def test_the_agent_can_read_the_registry_words():
    """The follow-up and grounding rules of the agent accept every entry as it is."""
    from taller.agent import followup, grounding

    assert registry.carry_over_fields() == set(followup.CARRY_OVER)
    for spec in TOOLS.values():
        rules = grounding.field_rules_from_schema(spec.args_schema, spec.free_text_fields, spec.synonyms)
        assert {field for field, rule in rules.items() if rule.kind == "free_text"} == spec.free_text_fields
    rule = grounding.field_rules_from_schema(TOOLS["train_model"].args_schema, (), TOOLS["train_model"].synonyms)["model"]
    assert grounding.grounded_enum("seq2seq", rule.synonyms["seq2seq"], ["entrena el traductor"])
    assert grounding.grounded_enum("pix2pix", rule.synonyms["pix2pix"], ["train the GAN on facades"])
    assert not grounding.grounded_enum("vae", rule.synonyms["vae"], ["train the translator"])


def test_adding_a_model_is_one_entry(monkeypatch, tmp_path):
    """Computed at call time: the names, the words, the CLI's choices, generate_images' dispatch.

    The argument ``Literal`` types, ``TRAINERS`` and the LangChain tools' descriptions are
    computed at import, so a model added at run time is not in the schemas (calling the tool's
    function directly shows the dispatch).
    """
    (tmp_path / "toy_generator.py").write_text(
        "def generate(count=2):\n"
        "    return {'images': ['/tmp/toy.png'] * count, 'count': count, 'loss': 0.25}\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    toy = ModelSpec("toy_gan", "toy_generator", "toy GAN", words_en=("toy",), words_es=("juguete",),
                    generation=Generation(2, "{count} toys", note=" (loss {loss})"))
    monkeypatch.setitem(MODELS, "toy_gan", toy)
    from taller.trainers import engine

    monkeypatch.setattr(engine, "latest_checkpoint", lambda model, *names: tmp_path / "best.pt")
    try:
        assert trainers.model_names()[-1] == "toy_gan" and trainers.model_names(generative=True)[-1] == "toy_gan"
        assert registry.model_words()["toy_gan"] == ["toy_gan", "toy", "juguete"]
        assert _train_choices()[-1] == "toy_gan"
        out = get_tool("generate_images").func(model="toy_gan")
        assert out["summary"] == "Saved the 2 toys (loss 0.25) to /tmp/toy.png."
        out = get_tool("generate_images").func(model="toy_gan", count=3, image_path=str(_photo(tmp_path)))
        assert out["count"] == 3 and "does not take an input image" in out["summary"]
    finally:
        sys.modules.pop("toy_generator", None)


def _photo(folder):
    from PIL import Image

    path = folder / "input.png"
    Image.new("RGB", (8, 8)).save(path)
    return path


def test_adding_a_tool_is_one_entry(monkeypatch, tmp_path):
    (tmp_path / "toy_tools.py").write_text(
        "from pydantic import BaseModel, Field\n"
        "from taller.tools.registry import langchain_tool\n\n"
        "class EchoArgs(BaseModel):\n"
        "    text: str = Field(description='Text to say back.')\n"
        "    times: int = Field(default=1, ge=1)\n\n"
        "@langchain_tool('echo', EchoArgs)\n"
        "def echo(text: str, times: int = 1) -> dict:\n"
        "    return {'summary': ' '.join([text] * times)}\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(TOOLS, "echo", ToolSpec("echo", "toy_tools", "say a text back",
                                                examples_en=("say it back",), examples_es=("repítelo",)))
    try:
        assert run_tool("echo", {"text": "hi", "times": 2}) == {"summary": "hi hi"}
        assert "times: Input should be greater than or equal to 1" in run_tool("echo", {"text": "hi", "times": 0})["error"]
        assert get_tool("echo").description == "say a text back."
        assert registry.tool_catalog()["echo"] == 'say a text back. args: {"text": str, "times": optional int}'
        examples = registry.router_examples()
        assert examples["echo"] == ["say it back", "repítelo"] and list(examples)[-1] == "none"
    finally:
        sys.modules.pop("toy_tools", None)


def test_a_tool_outside_the_registry_or_in_another_module_is_refused(monkeypatch):
    from pydantic import BaseModel

    class NoArgs(BaseModel):
        pass

    with pytest.raises(KeyError, match="'nameless' has no entry in TOOLS"):
        registry.langchain_tool("nameless", NoArgs)
    monkeypatch.setitem(TOOLS, "misplaced", ToolSpec("misplaced", "taller.tools.elsewhere", "do nothing"))
    with pytest.raises(ValueError, match="TOOLS\\['misplaced'\\].module is taller.tools.elsewhere"):
        registry.langchain_tool("misplaced", NoArgs)(lambda: {})


def test_the_catalog_refuses_an_argument_it_cannot_describe(monkeypatch):
    from pydantic import BaseModel

    class OddArgs(BaseModel):
        options: dict[str, int]

    spec = ToolSpec("odd", "taller.tools.elsewhere", "do something odd")
    monkeypatch.setattr(ToolSpec, "args_schema", property(lambda self: OddArgs))
    with pytest.raises(TypeError, match="odd.options: the catalog cannot describe"):
        spec.catalog_line()
    hinted = ToolSpec("odd", "taller.tools.elsewhere", "do something odd", argument_hints={"options": "{name: int}"})
    assert hinted.catalog_line() == 'do something odd. args: {"options": {name: int}}'


def test_the_router_reads_model_names_with_the_registry_words():
    from taller.agent import router

    names = list(MODELS)
    for name, words in registry.model_words().items():
        for word in words:
            said = word.rstrip("*") + ("ion" if word.endswith("*") else "")
            assert router._model_name(f"please train the {said} now", names) == name, (name, word)
    # Overlapping words: the longest match wins.
    assert router._model_name("train the variational autoencoder", names) == "vae"
    assert router._model_name("entrena la bi-lstm", names) == "birnn"


def test_the_prompts_list_the_registry_tools_models_and_examples():
    router_prompt = prompts.ROUTER_SYSTEM.format(catalog="")
    for line in registry.prompt_examples().splitlines():
        assert line in router_prompt
    named = [line.rsplit(" -> ", 1)[1] for line in registry.prompt_examples().splitlines()]
    assert named[:len(TOOLS)] == list(TOOLS) and set(named[len(TOOLS):]) == {"none"}
    for name, spec in MODELS.items():
        assert f"{name} ({spec.description})" in prompts.CHAT_SYSTEM
    for spec in TOOLS.values():
        assert spec.description in prompts.CHAT_SYSTEM


def test_sticky_fields_are_optional_carry_over_fields_of_their_tool():
    sticky = {name: spec.sticky_fields for name, spec in TOOLS.items() if spec.sticky_fields}
    assert sticky == {"ask_video": {"video"}, "summarize_video": {"video"},
                      "query_database": {"database"}, "describe_database": {"database"}}
    for name, fields in sticky.items():
        schema = TOOLS[name].args_schema.model_fields
        assert fields <= TOOLS[name].carry_over_fields
        assert all(not schema[field].is_required() for field in fields)
