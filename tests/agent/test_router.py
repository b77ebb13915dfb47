"""Routing rules (arguments read off the request) and the MiniLM semantic pre-router."""

from __future__ import annotations

import pytest

from taller.agent import router
from taller.llm import FakeChatModel


@pytest.mark.parametrize("tool,text,expected", [
    ("train_model", "train the autoencoder for 3 epochs", {"model": "autoencoder", "epochs": 3}),
    ("train_model", "entrena el clasificador de gatos y perros 5 épocas", {"model": "dense_classifier", "epochs": 5}),
    ("train_model", "entrena la red bidireccional", {"model": "birnn"}),
    ("train_model", "train something nice", None),
    ("classify_pet", "is ~/pics/Rex.JPG a dog?", {"image_path": "~/pics/Rex.JPG"}),
    ("analyze_face", "¿qué emoción tiene la cara en fotos/ana.png?", {"image_path": "fotos/ana.png"}),
    ("analyze_face", "analyze my face", None),
    ("forecast", "forecast the next 3 values of 1, 2.5, 4, 5.5", {"values": [1, 2.5, 4, 5.5], "steps": 3}),
    ("forecast", "pronostica ventas.csv", {"values": "ventas.csv"}),
    ("translate", "traduce al español: the house is big", {"text": "the house is big"}),
    ("translate", "translate «buenos días»", {"text": "buenos días"}),
    ("punctuate", "puntúa hola como estas", {"text": "hola como estas"}),
    ("add_video", "add https://youtu.be/dQw4w9WgXcQ please", {"url_or_path": "https://youtu.be/dQw4w9WgXcQ"}),
    ("add_video", "index talks/keynote.vtt", {"url_or_path": "talks/keynote.vtt"}),
    ("add_video", "mete la carpeta transcripciones/curso_pytorch/", {"url_or_path": "transcripciones/curso_pytorch/"}),
    ("add_video", "what is 3/4?", None),
    ("generate_images", "genera 8 muestras con el vae", {"model": "vae", "count": 8}),
    ("list_models", "what have I trained", {}),
])
def test_extract_args(tool, text, expected):
    assert router.extract_args(tool, text) == expected


@pytest.fixture
def semantic(monkeypatch):
    monkeypatch.setenv("TALLER_SEMANTIC_ROUTER", "1")
    from taller.config import get_settings

    get_settings(reload=True)


def _no_llm():
    raise AssertionError("the LLM should not be needed")


@pytest.mark.parametrize("text,tool,args", [
    ("train the autoencoder for 3 epochs", "train_model", {"model": "autoencoder", "epochs": 3}),
    ("hola", None, {}),
    ("what is dropout", None, {}),
    ("summarize this video", "summarize_video", {}),
])
def test_semantic_router_answers_confident_requests_without_the_llm(semantic, text, tool, args):
    decision = router.plan(text, _no_llm)
    assert decision["tool"] == tool and decision["args"] == args and decision["source"] == "semantic"


@pytest.mark.parametrize("text,tool,args", [
    # Not among the examples: asking to *see* a lesson goes to show_lesson (the LLM names the
    # model, kept because the request's words, the model's or its lesson topic's, name it); asking
    # what a thing is stays a direct answer.
    ("can you demonstrate the beta trade-off of the VAE", "show_lesson", {"model": "vae"}),
    ("I want to see the overfitting experiment", "show_lesson", {"model": "dense_classifier"}),
    ("muéstrame la lección del cuello de botella", "show_lesson", {"model": "autoencoder"}),
    ("why do gradients vanish in a plain RNN? just explain it", None, {}),
])
def test_lesson_requests_are_told_from_questions(semantic, text, tool, args):
    model = FakeChatModel(responses=[{"model": (args or {}).get("model", "rnn")}])
    decision = router.plan(text, lambda: model)
    assert decision["tool"] == tool and decision["args"] == args


def test_a_lesson_model_the_request_does_not_name_is_not_kept(semantic):
    model = FakeChatModel(responses=[{"model": "vae"}] * 4)
    decision = router.plan("show me a lesson please", lambda: model)
    assert decision["tool"] == "show_lesson" and "model" not in decision["args"] and decision["error"]
    # A lesson the request names by its topic replaces the model's guess.
    model = FakeChatModel(responses=[{"model": "vae"}] * 4)
    decision = router.plan("show me the lesson about beam search", lambda: model)
    assert decision["tool"] == "show_lesson" and decision["args"] == {"model": "seq2seq"}


class _UnsureClassifier:
    """An intent classifier that leans to "none" without being sure of it."""

    def __init__(self, ranked):
        self.ranked = ranked

    def scores(self, text):
        return list(self.ranked)


def test_a_sure_classifier_leaves_the_llm_only_the_arguments_and_invented_paths_are_refused(semantic, monkeypatch):
    # "what emotion does the face in my photo show" is clearly analyze_face but names no file: the
    # LLM is not asked to choose (one candidate), only to fill the arguments; a path the user never
    # wrote is refused.
    seen = []
    real = router.choice_schema
    monkeypatch.setattr(router, "choice_schema", lambda candidates: seen.append(list(candidates)) or real(candidates))
    model = FakeChatModel(responses=[{"image_path": "me.jpg"}])
    decision = router.plan("what emotion does the face in my photo show", lambda: model)
    assert seen == [] and len(model.calls) == 1
    assert decision["tool"] == "analyze_face" and "which file?" in decision["error"]
    model = FakeChatModel(responses=[{"image_path": "~/Pictures/ME.JPG"}])
    decision = router.plan("what emotion does the face in my photo show? ~/Pictures/ME.JPG", lambda: model)
    assert decision["args"] == {"image_path": "~/Pictures/ME.JPG"} and "error" not in decision


def test_an_unsure_classifier_narrows_the_llm_choice_to_its_best_candidates(semantic, monkeypatch):
    unsure = _UnsureClassifier([("query_database", 0.35), ("forecast", 0.3), ("none", 0.2), ("list_models", 0.15)])
    monkeypatch.setattr(router, "semantic_router", lambda: unsure)
    seen = []
    real = router.choice_schema
    monkeypatch.setattr(router, "choice_schema", lambda candidates: seen.append(list(candidates)) or real(candidates))
    model = FakeChatModel(responses=[{"tool": "query_database"}])
    decision = router.plan("¿qué país compró más en 2022?", lambda: model)
    # A year is no series: forecast is not a candidate (see test_a_forecast_needs_a_series).
    assert seen == [["query_database", "none", "list_models"]]
    assert decision["tool"] == "query_database" and decision["args"] == {"question": "¿qué país compró más en 2022?"}


def test_semantic_scores_rank_every_tool(semantic):
    ranked = router.semantic_router().scores("¿cuántos clientes hay en Brasil?")
    assert ranked[0][0] == "query_database"
    assert {name for name, _ in ranked} == set(router.prompts.ROUTER_EXAMPLES)


def test_semantic_veto_turns_a_guessed_tool_into_a_direct_answer(semantic, monkeypatch):
    # A small model picks a tool for a general question; the request reads more like chit-chat
    # and holds nothing the tool needs, so the agent answers without it.
    unsure = _UnsureClassifier([("none", 0.45), ("list_models", 0.35), ("ask_video", 0.2)])
    monkeypatch.setattr(router, "semantic_router", lambda: unsure)
    model = FakeChatModel(responses=[{"tool": "list_models"}])
    decision = router.plan("¿qué diferencia hay entre una LSTM y una GRU?", lambda: model)
    assert decision["tool"] is None and decision["vetoed"] == "list_models"
    # The veto never overrides a request that carries what the tool needs.
    unsure.ranked = [("none", 0.45), ("ask_video", 0.35), ("list_models", 0.2)]
    model = FakeChatModel(responses=[{"tool": "ask_video"}])
    decision = router.plan("en la charla, ¿quién es el ponente?", lambda: model)
    assert decision["tool"] == "ask_video"


def test_the_intent_classifier_reads_spanish_and_masks_what_a_request_carries(semantic):
    classifier = router.semantic_router()
    # A quoted text is masked: "train" inside it says nothing about training.
    assert classifier.scores("translate 'the train to the model village leaves at six'")[0][0] == "translate"
    assert classifier.scores("agrega los subtítulos de clase_final.srt")[0][0] == "add_video"
    assert classifier.scores("¿ya terminó de entrenar el vae?")[0][0] == "list_models"
    ranked = classifier.scores("¿qué es una red convolucional?")
    assert ranked[0][0] == "none" and abs(sum(p for _, p in ranked) - 1) < 1e-6


@pytest.mark.parametrize("text,tool", [
    ("in the lecture, what is said about learning rates?", "ask_video"),
    ("¿qué ejemplo da el ponente sobre las redes convolucionales?", "ask_video"),
    ("summarize the talk please", None),           # summaries are not questions for ask_video
    ("add https://youtu.be/aircAruvnKk to my videos?", None),  # an URL means adding, not asking
    ("what is a neural network?", None),            # no video word: not a video question
    ("top 3 genres by number of tracks", "query_database"),
    ("¿cuál es el álbum con más canciones?", "query_database"),
    ("what is a music genre?", None),               # a subject word, but no request for data
    ("which tables hold the sales?", None),         # about the schema: describe_database's job
])
def test_keyword_plan_for_video_and_database_questions(text, tool):
    decision = router.keyword_plan(text)
    assert (decision or {}).get("tool") == tool


# --- grounded arguments: the LLM fills the whole schema, only what the text supports is kept -----

def _plan(text, *responses):
    model = FakeChatModel(responses=list(responses))
    return router.plan(text, lambda: model, use_semantic=False), model


def test_a_stated_optional_count_is_kept():
    decision, model = _plan("use the VAE to draw 9 of them",
                            {"tool": "generate_images"}, {"model": "vae", "count": 9, "image_path": None})
    assert decision["tool"] == "generate_images" and decision["args"] == {"model": "vae", "count": 9}
    assert len(model.calls) == 2  # the choice, then one fill of the whole schema


def test_a_spanish_number_word_grounds_the_count():
    decision, _ = _plan("genera nueve imágenes con el VAE", {"tool": "generate_images"}, {"model": "vae", "count": 9})
    assert decision["args"] == {"model": "vae", "count": 9}


def test_an_invented_number_is_dropped():
    decision, _ = _plan("train the vae for a while, my laptop has 2 cores",
                        {"tool": "train_model"}, {"model": "vae", "epochs": 10})
    assert decision["tool"] == "train_model" and decision["args"] == {"model": "vae"}


def test_a_beam_size_and_quoted_text_with_an_apostrophe():
    decision, _ = _plan('translate "I don\'t like it." with a beam of 3',
                        {"tool": "translate"}, {"text": "I don", "beam_size": 3})
    assert decision["args"] == {"text": "I don't like it.", "beam_size": 3}


def test_a_database_named_in_the_sentence_is_kept_and_an_invented_one_dropped():
    question = "in the payroll database, how many employees earn more than 5000?"
    decision, _ = _plan(question, {"tool": "query_database"}, {"question": question, "database": "payroll"})
    assert decision["args"] == {"question": question, "database": "payroll"}
    # A fill that invents a database the user never named: the grounding drops it.
    plain = "how many employees earn more than 5000?"
    model = FakeChatModel(responses=[{"question": plain, "database": "hr"}])
    assert router._grounded_fill(model, "query_database", plain, {"question": plain}, [plain]) == {"question": plain}
    assert len(model.calls) == 1  # the fill was really asked


def test_an_argument_reply_is_bounded_by_what_it_could_keep():
    # A fill can keep only values its sources state, so its reply needs about their length: a
    # small model that starts counting a series is stopped there, not 200 tokens later.
    budgets = []

    class Counting:
        def invoke_json(self, messages, schema, max_tokens=256):
            budgets.append(max_tokens)
            return {"values": list(range(24, 90))}

    request = "¿y cuántas facturas hubo en 2013?"
    assert router._grounded_fill(Counting(), "forecast", request, {}, [request]) == {}
    assert budgets == [router.reply_budget(request)] and budgets[0] < router.ARGS_TOKENS
    assert router.reply_budget("5, 7, 6, 8, 7, 9, 8, 10, 9, 11, 10, 12") >= 32 + 18  # the whole series fits
    assert router.reply_budget("x" * 2000) == router.ARGS_TOKENS


def test_no_fill_call_when_the_request_states_nothing_more():
    decision, model = _plan("describe the database", {"tool": "describe_database"})
    assert decision == {"tool": "describe_database", "args": {}, "source": "llm"} and len(model.calls) == 1


def test_the_forecast_series_is_the_longest_run_of_numbers():
    # "10-step" is the step count (by the registry's words for ``steps``), not part of the series.
    assert router.extract_args("forecast", "give me a 10-step forecast of 5 7 6 8 7 9 8 10 9 11 10 12") == {
        "values": [5, 7, 6, 8, 7, 9, 8, 10, 9, 11, 10, 12], "steps": 10}
    decision, _ = _plan("predict 2 more after 0, 10, 0, 10, 0, 10, 0, 10, 0, 10, 0, 10",
                        {"tool": "forecast"}, {"values": [0, 10, 0, 10, 0, 10, 0, 10, 0, 10, 0, 10], "steps": 2})
    assert decision["args"] == {"values": [0, 10, 0, 10, 0, 10, 0, 10, 0, 10, 0, 10], "steps": 2}


def test_a_video_named_by_id_or_file_is_the_video_argument():
    assert router.extract_args("summarize_video", "resumen del video Ilg3gGewQ5U") == {"video": "Ilg3gGewQ5U"}
    assert router.extract_args("summarize_video", "summarize the autoencoder lecture") == {}  # a word, not an id
    assert router.extract_args("ask_video", "what does talks/intro.srt say about loss?")["video"] == "talks/intro.srt"


def test_a_file_narrows_the_choice_to_the_tools_that_take_it(monkeypatch):
    seen = []
    real = router.choice_schema
    monkeypatch.setattr(router, "choice_schema", lambda candidates: seen.append(list(candidates)) or real(candidates))
    decision, _ = _plan("agrega los subtítulos de clase2.srt", {"tool": "add_video"})
    assert sorted(seen[0]) == ["add_video", "ask_video", "summarize_video"]  # a transcript: no "none", no image tool
    assert decision["args"] == {"url_or_path": "clase2.srt"}


def test_a_question_about_a_tool_that_names_no_file_runs_nothing():
    decision, _ = _plan("¿cómo sabe el clasificador si una foto es de un perro o un gato?",
                        {"tool": "classify_pet"}, {}, {})
    assert decision["tool"] is None and decision["question_about"] == "classify_pet"
    decision, _ = _plan("is my dog a cat or a dog?", {"tool": "classify_pet"}, {}, {})
    assert decision["tool"] == "classify_pet" and decision["error"]  # their own photo: ask for it


def test_the_fill_schema_has_no_length_limits_a_grammar_would_unroll():
    # llama.cpp turns maxLength 2000 into 2000 nested grammar rules and refuses the grammar.
    import json

    for tool in ("query_database", "ask_video", "translate", "forecast", "punctuate"):
        text = json.dumps(router._args_schema(tool, optional_too=True))
        assert "maxLength" not in text and "maxItems" not in text
    assert "maxLength" in json.dumps(router._args_schema("query_database"))  # only the fill drops them


def test_a_number_stated_twice_but_used_once_is_still_unexplained():
    args = {"values": [8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30]}
    assert router._unexplained("forecast", "a 10-step forecast of 8 10 12 14 16 18 20 22 24 26 28 30", args)
    assert not router._unexplained("forecast", "forecast 8 10 12 14 16 18 20 22 24 26 28 30", args)


@pytest.mark.parametrize("text,expected", [
    ("train the vae for twelve epochs", {"model": "vae", "epochs": 12}),
    ("entrena el autoencoder con cinco épocas", {"model": "autoencoder", "epochs": 5}),
    ("train the gan for 10epochs", {"model": "pix2pix", "epochs": 10}),
    ("train the lstm for a few epochs", {"model": "rnn"}),
])
def test_epochs_written_as_digits_or_words(text, expected):
    assert router.extract_args("train_model", text) == expected


def test_a_sample_count_in_words():
    assert router.extract_args("generate_images", "genera veinte muestras con el vae") == {"model": "vae", "count": 20}


def test_greedy_means_a_beam_of_one_by_the_registry_words():
    assert router.extract_args("translate", "translate 'good night', greedy") == {"text": "good night", "beam_size": 1}
    assert router.extract_args("translate", "traduce 'hasta luego' sin beam search") == {"text": "hasta luego", "beam_size": 1}
    rules = router._field_rules("translate")
    from taller.agent import grounding

    assert grounding.ground_arguments({"beam_size": 1}, rules, ["now greedy"]).kept == {"beam_size": 1}
    assert grounding.ground_arguments({"beam_size": 1}, rules, ["now a wider beam"]).kept == {}


@pytest.mark.parametrize("text,choice,filled", [
    ("can the translator go from Spanish to English too?", "translate", {"text": "¿Puedes traducir del español al inglés?"}),
    ("¿qué formato tiene que tener la serie para predecir valores?", "forecast", {"values": [1, 2, 3, 4, 5]}),
])
def test_a_question_whose_required_value_the_model_had_to_invent_is_answered_without_a_tool(text, choice, filled):
    model = FakeChatModel(responses=[{"tool": choice}, filled])
    decision = router.plan(text, lambda: model, use_semantic=False)
    assert decision["tool"] is None and decision["question_about"] == choice


def test_an_invented_required_value_is_never_passed_to_the_tool():
    # Not a question: the user meant the tool but gave it nothing; ask rather than run on a guess.
    model = FakeChatModel(responses=[{"tool": "forecast"}, {"values": [1, 2, 3, 4, 5]}])
    decision = router.plan("forecast my series for me", lambda: model, use_semantic=False)
    assert decision["tool"] == "forecast" and "values" not in decision["args"]
    assert decision["invented"] == ["values"] and decision["error"].startswith("which values?")
    # A value the request states is kept.
    model = FakeChatModel(responses=[{"tool": "translate"}, {"text": "the cat sleeps"}])
    assert router.plan("how would a Spaniard say the cat sleeps", lambda: model, use_semantic=False)["args"] == {
        "text": "the cat sleeps"}


@pytest.mark.parametrize("texts,calls,ruled_out", [
    # Nothing points at a recording: a concept question is not looked up in a transcript.
    (["¿en qué consiste exactamente el sobreajuste?"], (), {"ask_video", "summarize_video"}),
    (["what does the beam size actually change?"], ({"tool": "translate", "args": {"text": "hi"}},),
     {"ask_video", "summarize_video"}),
    # A word for a recording or its speaker, a link, a transcript, a video id, or speech itself.
    (["¿qué opina el conferenciante sobre la educación?"], (), set()),
    (["what are the main points of the talk I added?"], (), set()),
    (["what does she say about inflation?"], (), set()),
    (["resume clase1.srt"], (), set()),
    (["summarize https://youtu.be/dQw4w9WgXcQ"], (), set()),
    (["summarize youtu.be/Lm8cD2wQx9A"], (), set()),
    (["what happens at minute 12?"], (), set()),
    # A thread about a video keeps the video tools for what follows.
    (["¿y la economía?"], ({"tool": "ask_video", "args": {"question": "¿qué dice de los impuestos?"}},), set()),
])
def test_video_tools_need_something_that_points_at_a_recording(texts, calls, ruled_out):
    from taller.agent import followup

    context = followup.ThreadContext(last_call=calls[-1] if calls else None, calls=calls)
    assert router._ruled_out(texts, context) - {"forecast"} == ruled_out


@pytest.mark.parametrize("texts,calls,ruled_out", [
    (["hmm, and if we only count 2012?"], ({"tool": "query_database", "args": {"question": "q"}},), True),
    (["¿cuántas facturas hubo entre 2009 y 2011?"], (), True),
    (["what comes next: 3, 5, 8, 13"], (), False),
    (["forecast the next 6 steps of sales.csv"], (), False),
    (["pronostica 12 pasos"], (), False),
    (["and 8 steps?"], ({"tool": "forecast", "args": {"values": [1.0] * 12}},), False),
])
def test_a_forecast_needs_a_series(texts, calls, ruled_out):
    from taller.agent import followup

    context = followup.ThreadContext(last_call=calls[-1] if calls else None, calls=calls)
    assert ("forecast" in router._ruled_out(texts, context)) is ruled_out


def test_a_concept_question_is_answered_not_looked_up_in_a_video(semantic):
    # The classifier alone puts both on ask_video (2026-11-30: video questions that never say
    # "video" are worded the same way); nothing in them points at a recording.
    for text in ("¿qué es exactamente el espacio latente?", "what does the beam size actually change, in a sentence or two?"):
        assert router.plan(text, lambda: FakeChatModel([])).get("tool") is None


def test_a_folder_is_carried_like_a_file_and_only_adding_takes_it():
    from taller.agent.intents import masked

    assert masked("añade la carpeta ~/subs/curso/ ya") == "añade la carpeta transcriptfolder ya"
    assert router._tools_for_files("index the folder talks/2024/") == ("add_video",)
    assert router._tools_for_files("what is 3/4?") == ()


def test_every_tool_that_takes_the_link_is_a_candidate(monkeypatch):
    """The classifier's top few may leave out the tool a link is for: all the tools that take
    it are offered to the model, in the classifier's order."""
    monkeypatch.setattr(router, "semantic_router", lambda: _Ranked(
        [("ask_video", 0.5), ("punctuate", 0.2), ("translate", 0.1), ("summarize_video", 0.08),
         ("none", 0.07), ("add_video", 0.05)]))
    seen = []
    real = router.choice_schema
    monkeypatch.setattr(router, "choice_schema", lambda candidates: seen.append(list(candidates)) or real(candidates))
    model = FakeChatModel(responses=[{"tool": "add_video"}])
    router.plan("me gustaría preguntarte sobre ella luego; te paso el enlace: https://youtu.be/dQw4w9WgXcQ",
                lambda: model)
    assert seen and seen[0] == ["ask_video", "summarize_video", "add_video"]


class _Ranked:
    def __init__(self, ranked):
        self.ranked = ranked

    def scores(self, text):
        return list(self.ranked)


@pytest.mark.parametrize("text,expected", [
    ("¿qué es exactamente el cuello de botella de un autoencoder?", True),
    ("lol ok, whats a foreign key again", True),
    ("how does beam search work?", True),
    # Data, someone's things, a status, a lesson, a file, a number: a tool answers those.
    ("what's the longest track in the store?", False),
    ("what are their email addresses?", False),
    ("what is her age?", False),
    ("what is the status of the training", False),
    ("explain the lstm lesson", False),
    ("what is in notes.vtt", False),
])
def test_a_concept_question_is_told_from_a_question_about_data(text, expected):
    assert router._asks_what_it_is(text) is expected


@pytest.mark.parametrize("text,expected", [
    ("how many epochs does it use by default anyway?", True),
    ("¿y el VAE también puede partir de una imagen mía?", True),
    ("¿el modelo entiende los signos de apertura como ¿ y ¡?", True),
    ("does the tool also guess gender?", True),
    ("can the cats vs dogs classifier also recognize rabbits?", True),  # a model named by its registry words
    # A request to the assistant, a question about what a recording says, or one with something to
    # run on is not a question about the tool.
    ("can you translate this?", False), ("¿puedes entrenar el VAE?", False), ("does it mention dropout?", False),
    ("does he use ReLU?", False), ("can it make 6 samples?", False), ("does it work on cat.png?", False),
    ("¿qué hay en la base de datos por defecto?", False),  # the default database is a thing to look at
    ("¿y qué modelo usa usted para eso por dentro?", True), ("what does it run under the hood?", True),
])
def test_a_question_about_what_a_model_can_do_is_told_from_a_request(text, expected):
    assert router._asks_what_it_can_do(text) is expected


def test_a_question_about_what_a_model_can_do_is_answered_not_run():
    from taller.agent import followup

    context = followup.ThreadContext(turns=("genera 6 muestras con el VAE",),
                                     last_call={"tool": "generate_images", "args": {"model": "vae", "count": 6}},
                                     last_request="genera 6 muestras con el VAE")
    decision = router.plan("¿y el VAE también puede partir de una imagen mía?",
                           lambda: FakeChatModel(responses=[{"request": "¿el VAE puede partir de una imagen mía?"},
                                                            {"tool": "generate_images"}]),
                           use_semantic=False, context=context)
    assert decision["tool"] is None


def test_the_threads_pull_does_not_make_a_concept_question_a_tool_call(semantic):
    from taller.agent import followup

    context = followup.ThreadContext(
        turns=("how many tracks are in the blues genre",),
        last_call={"tool": "query_database", "args": {"question": "how many tracks are in the blues genre"}},
        last_request="how many tracks are in the blues genre")
    decision = router.plan("lol ok, whats a foreign key again", lambda: FakeChatModel([]), context=context)
    assert decision["tool"] is None
