"""Follow-ups: rewritten into a standalone request from the thread, arguments carried over, the
rewrite visible in the tool_start event and stored in the thread (scripted fake model)."""

from __future__ import annotations

import json

import pytest
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage

from taller.agent import followup, router
from taller.agent.session import Agent
from taller.llm import FakeChatModel
from taller.tools import get_tool


def call_message(tool, args):
    return AIMessage(content="", tool_calls=[{"name": tool, "args": args, "id": "call_1"}])


def test_context_takes_the_last_call_and_the_standalone_forms():
    messages = [
        HumanMessage(content="how many invoices were billed to Canada?"),
        call_message("query_database", {"question": "how many invoices were billed to Canada?"}),
        ToolMessage(content="{}", tool_call_id="call_1"),
        AIMessage(content="There are 56."),
        HumanMessage(content="and to France?", additional_kwargs={"standalone": "how many invoices were billed to France?"}),
        call_message("query_database", {"question": "how many invoices were billed to France?"}),
    ]
    context = followup.context_from_messages(messages)
    assert context.turns == ("how many invoices were billed to Canada?", "how many invoices were billed to France?")
    assert context.last_call == {"tool": "query_database", "args": {"question": "how many invoices were billed to France?"}}
    assert context.last_request == "how many invoices were billed to France?"


@pytest.mark.parametrize("text,expected", [
    ("and to France?", True), ("¿y de jazz?", True), ("and her age?", True), ("give me 10 steps instead", True),
    ("what about Spain?", True), ("¿y qué dice de la economía?", True), ("now with a beam of 5", True),
    ("make that 10 steps", True), ("mejor 6", True), ("luna.png?", True),
    ("train the autoencoder for 3 epochs", False), ("how many customers are in Brazil?", False),
    ("ok cool, now 2013", True),  # two acknowledgements before the cue
    ("hola", False),
    # Spanish object pronouns attached to an imperative point back; the article "el" does not.
    ("ordénalas por duración", True), ("repítelo en modo greedy", True), ("break that down by city", True),
    ("¿cuántas canciones hay en el catálogo?", False), ("qué ventaja tiene el beam search", False),
    # A value named by the registry's words ("greedy") or a bare video id is a changed value.
    ("now greedy", True), ("this one too: bW9sK3nQe5D", True),
])
def test_followup_cues(text, expected):
    context = followup.ThreadContext(turns=("first request",), last_call={"tool": "translate", "args": {"text": "x"}})
    assert followup.looks_like_followup(text, context) is expected
    assert followup.looks_like_followup(text, followup.ThreadContext()) is False  # no thread, no follow-up


def test_a_rewrite_that_rambles_or_fails_keeps_the_turn():
    context = followup.ThreadContext(turns=("translate 'hi'",), last_call={"tool": "translate", "args": {"text": "hi"}},
                                     last_request="translate 'hi'")
    assert followup.rewrite(FakeChatModel(responses=["not json at all"]), "and 'bye'?", context) == "and 'bye'?"
    assert followup.rewrite(FakeChatModel(responses=[{"request": "x " * 200}]), "and 'bye'?", context) == "and 'bye'?"
    assert followup.rewrite(FakeChatModel(responses=[{"request": "translate 'bye'"}]), "and 'bye'?", context) == "translate 'bye'"


def test_database_follow_up_gets_the_standalone_question_and_shows_it(monkeypatch):
    asked = []
    monkeypatch.setattr(get_tool("query_database"), "func",
                        lambda question, database=None: asked.append(question) or {"summary": f"answer to {question}"})
    model = FakeChatModel(responses=[
        {"tool": "query_database"}, "56 invoices.",
        {"request": "How many invoices were billed to France?"},  # the rewrite
        {"tool": "query_database"}, "77 invoices.",
    ])
    agent = Agent(chat_model=model)
    list(agent.run("How many invoices were billed to Canada?", "t-db"))
    events = list(agent.run("who are those customers?", "t-db"))
    assert asked == ["How many invoices were billed to Canada?", "How many invoices were billed to France?"]
    start = next(e for e in events if e["type"] == "tool_start")
    assert start["request"] == "How many invoices were billed to France?"
    # The rewrite prompt saw the previous request and the call it made.
    rewrite_prompt = model.calls[2][-1].content
    assert "Canada" in rewrite_prompt and "query_database" in rewrite_prompt and "who are those customers?" in rewrite_prompt
    # The thread keeps what the user typed and its standalone form.
    human = [m for m in agent.graph.get_state({"configurable": {"thread_id": "t-db"}}).values["messages"] if m.type == "human"]
    assert human[-1].content == "who are those customers?"
    assert human[-1].additional_kwargs["standalone"] == "How many invoices were billed to France?"


def test_image_path_carries_over_when_the_rewrite_leaves_it_out(monkeypatch):
    seen = []
    monkeypatch.setattr(get_tool("analyze_face"), "func", lambda image_path: seen.append(image_path) or {"summary": "ok"})
    model = FakeChatModel(responses=[
        {"tool": "analyze_face"}, "She looks happy.",
        {"request": "how old does she look?"},  # a weak rewrite: no file in it
        {"tool": "analyze_face"}, "About 30.",
    ])
    agent = Agent(chat_model=model)
    list(agent.run("what emotion does the face in me.jpg show?", "t-face"))
    events = list(agent.run("and her age?", "t-face"))
    assert seen == ["me.jpg", "me.jpg"]
    assert [e for e in events if e["type"] == "tool_start"][0]["args"] == {"image_path": "me.jpg"}
    # route + answer, then rewrite + route + answer: the photo came from the thread, so the model
    # was never asked to fill it in (that would be a sixth call, and the script has none left).
    assert len(model.calls) == 5


def test_no_carry_over_to_another_tool():
    context = followup.ThreadContext(turns=("is rex.jpg a cat?",), last_call={"tool": "classify_pet", "args": {"image_path": "rex.jpg"}})
    decision = {"tool": "analyze_face", "args": {}, "error": "which file?"}
    assert followup.carry_over(decision, context, ["image_path"]) == decision
    same = followup.carry_over({"tool": "classify_pet", "args": {}, "error": "which file?"}, context, ["image_path"])
    assert same["args"] == {"image_path": "rex.jpg"} and "error" not in same and same["carried_over"] == ["image_path"]


def test_a_standalone_turn_is_not_rewritten():
    model = FakeChatModel(responses=[{"tool": "translate"}])
    context = followup.ThreadContext(turns=("translate 'hi'",), last_call={"tool": "translate", "args": {"text": "hi"}})
    decision = router.plan("please translate this sentence: good night", lambda: model, use_semantic=False,
                           context=context)
    assert decision["tool"] == "translate" and decision["args"] == {"text": "good night"}
    assert "standalone" not in decision and len(model.calls) == 1


def test_a_continuation_routing_cannot_place_reuses_the_last_tool():
    context = followup.ThreadContext(turns=("¿qué dice la charla sobre Keynes?",),
                                     last_call={"tool": "ask_video", "args": {"question": "¿qué dice la charla sobre Keynes?"}},
                                     last_request="¿qué dice la charla sobre Keynes?")
    model = FakeChatModel(responses=[{"request": "¿y qué opina de Marx?"}, {"tool": "none"}])  # rewrite and routing both fail
    decision = router.plan("¿y qué opina de Marx?", lambda: model, use_semantic=False, context=context)
    assert decision["tool"] == "ask_video" and decision["source"] == "follow-up"
    assert "Keynes" in decision["args"]["question"] and "Marx" in decision["args"]["question"]
    # A quoted text after a translation: the same tool, the new text.
    context = followup.ThreadContext(turns=("translate 'good morning'",), last_call={"tool": "translate", "args": {"text": "good morning"}},
                                     last_request="translate 'good morning'")
    model = FakeChatModel(responses=[{"request": "and 'see you tomorrow'?"}, {"tool": "none"}])
    decision = router.plan("and 'see you tomorrow'?", lambda: model, use_semantic=False, context=context)
    assert decision["tool"] == "translate" and decision["args"] == {"text": "see you tomorrow"}
    # Not a continuation ("thanks", and "that" is the subject, pointing at nothing): no tool.
    model = FakeChatModel(responses=[{"tool": "none"}])
    assert router.plan("thanks, that helps", lambda: model, use_semantic=False, context=context)["tool"] is None


def test_a_rewrite_that_drops_a_stated_number_keeps_the_turn_beside_it():
    context = followup.ThreadContext(turns=("translate 'I have two brothers'",),
                                     last_call={"tool": "translate", "args": {"text": "I have two brothers"}},
                                     last_request="translate 'I have two brothers'")
    dropped = FakeChatModel(responses=[{"request": "translate 'I have two brothers'"}])
    assert followup.rewrite(dropped, "now with beam 5", context) == "translate 'I have two brothers' now with beam 5"
    kept = FakeChatModel(responses=[{"request": "translate 'I have two brothers' with beam 5"}])
    assert followup.rewrite(kept, "now with beam 5", context) == "translate 'I have two brothers' with beam 5"


def test_a_rewrite_that_shortens_a_path_keeps_the_turn_beside_it():
    context = followup.ThreadContext(turns=("generate 4 pix2pix images",),
                                     last_call={"tool": "generate_images", "args": {"model": "pix2pix", "count": 4}},
                                     last_request="generate 4 pix2pix images")
    shortened = FakeChatModel(responses=[{"request": "generate 4 pix2pix images from house_02.png"}])
    standalone = followup.rewrite(shortened, "now run it on labels/house_02.png", context)
    assert standalone.endswith("now run it on labels/house_02.png")
    # A bare YouTube id dropped by the rewrite counts the same as a file.
    dropped_id = FakeChatModel(responses=[{"request": "summarize the video"}])
    assert followup.rewrite(dropped_id, "add this one too: bW9sK3nQe5D", context).endswith("bW9sK3nQe5D")


def test_a_rewrite_that_copies_an_earlier_request_is_not_this_turn():
    context = followup.ThreadContext(turns=("¿y imgs/mascota2.jpg?",),
                                     last_call={"tool": "classify_pet", "args": {"image_path": "imgs/mascota2.jpg"}},
                                     last_request="¿y imgs/mascota2.jpg?")
    copied = FakeChatModel(responses=[{"request": "¿y imgs/mascota2.jpg?"}])
    turn = "enséñame las métricas de ese clasificador"
    assert followup.rewrite(copied, turn, context) == turn
    # "do it again" is the earlier request: copying it is the rewrite.
    again = FakeChatModel(responses=[{"request": "¿y imgs/mascota2.jpg?"}])
    assert followup.rewrite(again, "hazlo otra vez", context) == "¿y imgs/mascota2.jpg?"


def test_the_video_just_added_is_the_subject_of_the_next_question():
    context = followup.ThreadContext(turns=("add https://youtu.be/aircAruvnKk",),
                                     last_call={"tool": "add_video", "args": {"url_or_path": "https://youtu.be/aircAruvnKk"}})
    assert followup.sticky("ask_video", context, {"question": "does it mention dropout?"}) == \
        {"video": "https://youtu.be/aircAruvnKk"}


SERIES = [10, 12, 11, 13, 12, 14, 13, 15, 14, 16, 15, 17]


def test_a_changed_value_edits_the_previous_call_and_only_stated_values_win():
    context = followup.ThreadContext(turns=("forecast " + ", ".join(map(str, SERIES)) + " for 2 steps",),
                                     last_call={"tool": "forecast", "args": {"values": SERIES, "steps": 2}},
                                     last_request="forecast the series for 2 steps")
    # The rewrite garbles the turn (the 2 comes back as steps); the edit of the previous call is
    # shown the call and "mejor 6", and its 6 is grounded in the turn, so it wins. Its invented
    # beam of values (not in the turn) is not taken: the series stays the previous one.
    model = FakeChatModel(responses=[
        {"request": "forecast " + ", ".join(map(str, SERIES)) + " 2 steps for the next 6 values"},
        {"tool": "forecast"},
        {"values": [1, 2, 3], "steps": 6},  # the edit of the previous call
    ])
    decision = router.plan("mejor 6", lambda: model, use_semantic=False, context=context)
    assert decision["tool"] == "forecast"
    assert decision["args"] == {"values": [float(v) for v in SERIES], "steps": 6}
    assert decision["edited"] == ["steps"]


def test_an_edit_that_states_nothing_new_changes_nothing():
    context = followup.ThreadContext(turns=("translate 'she has a sister'",),
                                     last_call={"tool": "translate", "args": {"text": "she has a sister"}},
                                     last_request="translate 'she has a sister'")
    # The turn's beam 5 is stated; an invented text is not (it is not in the turn): only the beam changes.
    model = FakeChatModel(responses=[
        {"request": "translate 'she has a sister'"},
        {"tool": "translate"},
        {"text": "she has two sisters", "beam_size": 5},
    ])
    decision = router.plan("ahora con beam 5", lambda: model, use_semantic=False, context=context)
    assert decision["tool"] == "translate" and decision["args"] == {"text": "she has a sister", "beam_size": 5}


def test_a_name_keeps_the_users_spelling_when_a_rewrite_recases_it():
    context = followup.ThreadContext(turns=("describe the hr database",),
                                     last_call={"tool": "describe_database", "args": {"database": "hr"}},
                                     last_request="describe the hr database")
    model = FakeChatModel(responses=[
        {"request": "How many employees are in the HR database?"},
        {"tool": "query_database"},
        {"database": "HR"},
    ])
    decision = router.plan("how many employees are in it?", lambda: model, use_semantic=False, context=context)
    assert decision["tool"] == "query_database" and decision["args"]["database"] == "hr"
    assert decision["standalone"] == "How many employees are in the HR database?"


class _Classifier:
    def __init__(self, ranked):
        self.ranked = ranked

    def scores(self, text):
        return list(self.ranked)


def test_a_bare_follow_up_favours_the_last_tool_and_a_clear_switch_still_wins(monkeypatch):
    monkeypatch.setattr(router, "semantic_router", lambda: _Classifier(
        [("analyze_face", 0.75), ("classify_pet", 0.2), ("generate_images", 0.05)]))
    context = followup.ThreadContext(turns=("is coco.jpg a cat or a dog?",),
                                     last_call={"tool": "classify_pet", "args": {"image_path": "coco.jpg"}},
                                     last_request="is coco.jpg a cat or a dog?")

    def no_llm():
        raise AssertionError("the LLM is not needed")

    decision = router.plan("and bruno.png?", no_llm, context=context)
    assert decision["tool"] == "classify_pet" and decision["args"] == {"image_path": "bruno.png"}
    # Without a thread the same scores mean the face tool.
    assert router.plan("and bruno.png?", no_llm)["tool"] == "analyze_face"
    # A turn that plainly asks for another tool is not pulled back to the last one.
    monkeypatch.setattr(router, "semantic_router", lambda: _Classifier(
        [("analyze_face", 0.97), ("classify_pet", 0.02), ("none", 0.01)]))
    decision = router.plan("now how old does the man in bruno_owner.jpg look?", no_llm, context=context)
    assert decision["tool"] == "analyze_face"


def test_the_conversations_video_and_database_stick_across_tools():
    after_summary = followup.ThreadContext(turns=("resume el vídeo kCc8FmEb1nY",),
                                           last_call={"tool": "summarize_video", "args": {"video": "kCc8FmEb1nY"}})
    decision = followup.carry_over({"tool": "ask_video", "args": {"question": "¿qué dice sobre BERT?"}},
                                   after_summary, ["question"])
    assert decision["args"] == {"question": "¿qué dice sobre BERT?", "video": "kCc8FmEb1nY"}
    assert decision["carried_over"] == ["video"]
    # A video the request names itself wins; a tool without a video argument gets none.
    named = {"tool": "ask_video", "args": {"question": "q", "video": "Ilg3gGewQ5U"}}
    assert followup.carry_over(named, after_summary, ["question"]) == named
    assert followup.carry_over({"tool": "translate", "args": {"text": "x"}}, after_summary, ["text"])["args"] == {"text": "x"}
    after_describe = followup.ThreadContext(turns=("describe the hr database",),
                                            last_call={"tool": "describe_database", "args": {"database": "hr"}})
    decision = followup.carry_over({"tool": "query_database", "args": {"question": "how many employees are there?"},
                                    "error": "unrelated"}, after_describe, ["question"])
    assert decision["args"]["database"] == "hr" and decision["error"] == "unrelated"


def test_the_last_tool_prior_is_strong_for_follow_ups_and_mild_for_other_turns(monkeypatch):
    monkeypatch.setattr(router, "semantic_router", lambda: _Classifier(
        [("none", 0.5), ("query_database", 0.3), ("ask_video", 0.2)]))
    plain = dict(router._scores("x"))
    mild = dict(router._scores("x", ("query_database", router.THREAD_PRIOR)))
    strong = dict(router._scores("x", ("query_database", router.FOLLOWUP_PRIOR)))
    assert plain["none"] > plain["query_database"]
    assert plain["query_database"] < mild["query_database"] < strong["query_database"]
    assert abs(sum(mild.values()) - 1) < 1e-9 and abs(sum(strong.values()) - 1) < 1e-9
    # A turn the classifier is sure of keeps its tool even under the strong prior.
    monkeypatch.setattr(router, "semantic_router", lambda: _Classifier([("none", 0.99), ("query_database", 0.01)]))
    assert router._scores("what is a GAN?", ("query_database", router.FOLLOWUP_PRIOR))[0][0] == "none"


def test_a_value_named_in_words_survives_a_rewrite_that_drops_it():
    context = followup.ThreadContext(turns=("translate 'she has a sister'",),
                                     last_call={"tool": "translate", "args": {"text": "she has a sister"}},
                                     last_request="translate 'she has a sister'")
    model = FakeChatModel(responses=[{"request": "translate 'she has a sister'"}, {"tool": "translate"}])
    decision = router.plan("now greedy", lambda: model, use_semantic=False, context=context)
    assert decision["tool"] == "translate" and decision["args"] == {"text": "she has a sister", "beam_size": 1}


def test_a_rewrite_that_copies_a_tool_call_is_not_used():
    context = followup.ThreadContext(turns=("is pics/luna.jpg a cat?",),
                                     last_call={"tool": "classify_pet", "args": {"image_path": "pics/luna.jpg"}},
                                     last_request="is pics/luna.jpg a cat?")
    copied = FakeChatModel(responses=[{"request": "classify_pet({'image_path': 'pics/luna.jpg'})"}])
    assert followup.rewrite(copied, "how old does she look?", context) == "how old does she look?"


def test_a_turn_that_points_back_inherits_the_photo_of_another_tool():
    context = followup.ThreadContext(turns=("is pics/luna.jpg a cat?",),
                                     last_call={"tool": "classify_pet", "args": {"image_path": "pics/luna.jpg"}})
    asked = {"tool": "analyze_face", "args": {}, "error": "which file?"}
    assert followup.carry_over(asked, context, ["image_path"]) == asked  # no pointing back: ask
    decision = followup.carry_over(asked, context, ["image_path"], refers=True)
    assert decision["args"] == {"image_path": "pics/luna.jpg"} and "error" not in decision


def test_only_and_a_payload_that_points_back():
    context = followup.ThreadContext(turns=("how many invoices are there?",),
                                     last_call={"tool": "query_database", "args": {"question": "how many invoices are there?"}})
    assert followup.looks_like_followup("only the ones billed to Brazil", context)
    assert followup.looks_like_followup("solo los de 2012", context)
    assert router.extract_args("translate", "translate that last one into Spanish") is None
    assert router.extract_args("translate", "traduce eso") is None
    assert router.extract_args("translate", "translate this: it is raining") == {"text": "it is raining"}


def test_a_sure_tool_for_the_turn_survives_a_rewrite_that_drifts(monkeypatch):
    monkeypatch.setattr(router, "semantic_router", lambda: _Classifier(
        [("generate_images", 0.9), ("train_model", 0.05), ("none", 0.05)]))
    context = followup.ThreadContext(turns=("train the vae for 15 epochs",),
                                     last_call={"tool": "train_model", "args": {"model": "vae", "epochs": 15}},
                                     last_request="train the vae for 15 epochs")
    # The small model's rewrite turns the request into training again (and drops the 12, so it is
    # not used); the classifier was sure the turn asks for images. The LLM's invented model is
    # not grounded in the turn, so the model comes from the call the turn points back to.
    model = FakeChatModel(responses=[{"request": "train the vae for 15 epochs and then sample"},
                                     {"model": "autoencoder", "count": 12}, {}, {}])
    decision = router.plan("ok, sample 12 digits from it", lambda: model, context=context)
    assert decision["tool"] == "generate_images"
    assert decision["args"] == {"model": "vae", "count": 12}


def test_a_question_in_a_thread_with_a_photo_runs_the_tool_on_it(monkeypatch):
    monkeypatch.setattr(router, "semantic_router", lambda: _Classifier(
        [("analyze_face", 0.45), ("none", 0.4), ("classify_pet", 0.02)]))
    context = followup.ThreadContext(turns=("is pics/luna.jpg a cat?",),
                                     last_call={"tool": "classify_pet", "args": {"image_path": "pics/luna.jpg"}},
                                     last_request="is pics/luna.jpg a cat?")
    model = FakeChatModel(responses=[{"request": "How old does your sister look in the last picture?"},
                                     {"tool": "analyze_face"}, {}, {}])
    decision = router.plan("my sister is in that last picture too, how old does she look?", lambda: model,
                           context=context)
    assert decision["tool"] == "analyze_face" and decision["args"] == {"image_path": "pics/luna.jpg"}


def test_a_required_model_the_user_never_named_is_not_invented():
    context = followup.ThreadContext(turns=("traduce 'hola'",),
                                     last_call={"tool": "translate", "args": {"text": "hola"}},
                                     last_request="traduce 'hola'")
    model = FakeChatModel(responses=[{"tool": "train_model"}, {"model": "autoencoder"}, {"model": "autoencoder"}])
    decision = router.plan("please start a training run now", lambda: model, use_semantic=False, context=context)
    assert decision["tool"] == "train_model" and "model" not in decision["args"] and decision.get("error")


@pytest.mark.parametrize("text,expected", [
    ("and lecture_08.srt?", True), ("y esta: fotos/pelusa.jpeg", True), ("¿y en 2012?", True),
    ("what about 'see you soon'?", True), ("and bruno.png?", True),
    ("and her age?", False), ("and to France?", False), ("summarize lecture_08.srt", False),
    ("hmm give me 16 instead", False),
])
def test_a_bare_ellipsis_is_only_a_new_value(text, expected):
    assert followup.bare_ellipsis(text) is expected


def test_a_bare_ellipsis_leans_to_the_last_tool_alone(monkeypatch):
    # After a question about one transcript, "and lecture_08.srt?" asks the same of another: a
    # transcript also fits adding it, but a bare new value says nothing of the tool.
    monkeypatch.setattr(router, "semantic_router", lambda: _Classifier(
        [("add_video", 0.9), ("ask_video", 0.05), ("none", 0.05)]))
    assert router._scores("and lecture_08.srt?", router._followup_prior("and lecture_08.srt?", "ask_video"))[0][0] == "ask_video"
    # A turn that says more keeps the subject's tools in the lean: adding is one of them.
    prior = router._followup_prior("also add lecture_08.srt to my videos", "ask_video")
    assert router._scores("also add lecture_08.srt to my videos", prior)[0][0] == "add_video"


def test_the_prior_covers_the_tools_of_the_same_subject(monkeypatch):
    assert router._related_tools("summarize_video") == {"summarize_video", "ask_video"}
    assert router._related_tools("query_database") == {"query_database", "describe_database"}
    assert router._related_tools("translate") == {"translate"}
    monkeypatch.setattr(router, "semantic_router", lambda: _Classifier([("none", 0.79), ("ask_video", 0.21)]))
    assert router._scores("what does it say about gradient descent?", ("summarize_video", 10.0))[0][0] == "ask_video"


def test_the_file_a_follow_up_names_wins_over_the_one_a_rewrite_carried():
    context = followup.ThreadContext(turns=("is coco.jpg a cat or a dog?",),
                                     last_call={"tool": "classify_pet", "args": {"image_path": "coco.jpg"}},
                                     last_request="is coco.jpg a cat or a dog?")
    model = FakeChatModel(responses=[{"request": "is coco.jpg a cat or a dog?"}, {"tool": "classify_pet"}])
    decision = router.plan("and bruno.png?", lambda: model, use_semantic=False, context=context)
    assert decision["tool"] == "classify_pet" and decision["args"] == {"image_path": "bruno.png"}



def test_a_turn_that_points_back_takes_the_model_an_earlier_request_named():
    # "it" is the autoencoder asked about before; the last call (list_models) carried no model.
    context = followup.ThreadContext(turns=("do I have a trained autoencoder?",),
                                     last_call={"tool": "list_models", "args": {}},
                                     last_request="do I have a trained autoencoder?")
    failed = {"tool": "generate_images", "args": {}, "error": "bad arguments for generate_images: model: Field required"}
    decision = router._model_from_thread(failed, "great, reconstruct my_digit.png with it", context)
    assert decision["args"] == {"model": "autoencoder", "image_path": "my_digit.png"} and "error" not in decision
    # A turn that does not point back gets nothing from the thread.
    assert router._model_from_thread(failed, "reconstruct my_digit.png", context) == failed
    # Only a model the tool takes: the translation model cannot generate images.
    context = followup.ThreadContext(turns=("train the translation model",), last_call={"tool": "train_model", "args": {}})
    assert router._model_from_thread(failed, "now sample from it", context) == failed


@pytest.mark.parametrize("text, expected", [
    ("no wait, I meant the GRU", True),
    ("hmm, sorry: the bidirectional one", True),
    ("perdón, quería decir de Perú", True),
    ("no, el otro modelo", True),
    ("no sé qué es una GRU", False),   # a plain "no" that starts a sentence corrects nothing
    ("No thanks", False),
    ("Nothing else for now", False),
])
def test_corrections_are_read_as_pointing_back(text, expected):
    assert followup.corrects(text) is expected
    if expected:
        assert followup.refers_back(text)


def test_a_correction_keeps_the_other_values_of_the_last_call():
    context = followup.ThreadContext(turns=("train the vae for 7 epochs",),
                                     last_call={"tool": "train_model", "args": {"model": "vae", "epochs": 7}})
    decision = {"tool": "train_model", "args": {"model": "autoencoder"}}
    kept = followup.carry_over(decision, context, ["model"], True, "no wait, I meant the autoencoder")
    assert kept["args"] == {"model": "autoencoder", "epochs": 7}
    # Without the correction, a new training request keeps nothing of the last one.
    plain = followup.carry_over(decision, context, ["model"], False, "train the autoencoder")
    assert plain["args"] == {"model": "autoencoder"}
    # A correction that moves to another tool keeps nothing either.
    other = followup.carry_over({"tool": "generate_images", "args": {"model": "autoencoder"}}, context,
                                ["model"], True, "no wait, I meant samples from the autoencoder")
    assert other["args"] == {"model": "autoencoder"}


def test_the_same_number_comes_from_the_newest_call_that_has_it():
    context = followup.ThreadContext(
        turns=("generate 5 vae samples", "how is it going?"),
        last_call={"tool": "list_models", "args": {}},
        calls=({"tool": "generate_images", "args": {"model": "vae", "count": 5}}, {"tool": "list_models", "args": {}}))
    decision = {"tool": "generate_images", "args": {"model": "pix2pix"}}
    assert followup.carry_over(decision, context, ["model"], False,
                               "la misma cantidad con pix2pix")["args"] == {"model": "pix2pix", "count": 5}
    # A number the turn states wins over the kept one.
    stated = {"tool": "generate_images", "args": {"model": "pix2pix", "count": 2}}
    assert followup.carry_over(stated, context, ["model"], False, "as many as before, no, 2")["args"]["count"] == 2


def test_the_same_call_on_another_file_keeps_its_values():
    context = followup.ThreadContext(turns=("forecast data/a.csv 9 steps",),
                                     last_call={"tool": "forecast", "args": {"values": "data/a.csv", "steps": 9}})
    decision = {"tool": "forecast", "args": {"values": "data/b.csv"}}
    out = followup.carry_over(decision, context, ["values"], True, "and the same for data/b.csv")
    assert out["args"] == {"values": "data/b.csv", "steps": 9} and out["carried_over"] == ["steps"]


def test_a_rewrite_that_takes_nothing_from_the_thread_is_not_used():
    context = followup.ThreadContext(turns=("¿cuántas facturas hubo en Perú en 2011?",),
                                     last_call={"tool": "query_database", "args": {"question": "x"}},
                                     last_request="¿cuántas facturas hubo en Perú en 2011?")
    model = FakeChatModel(responses=[{"request": "¿Cuánto sumaron en total?"}])
    assert followup.rewrite(model, "¿y cuánto sumaron en total?", context) == "¿y cuánto sumaron en total?"
    model = FakeChatModel(responses=[{"request": "¿Cuánto sumaron las facturas de Perú en 2011?"}])
    assert followup.rewrite(model, "¿y cuánto sumaron en total?", context) == "¿Cuánto sumaron las facturas de Perú en 2011?"


def test_an_edit_keeps_the_last_calls_text_when_the_rewrite_garbles_it():
    # dialogues-dev4: the rewrite translated the sentence into the user's language; the edit is
    # rebuilt from the last call, so only the beam the turn states changes.
    context = followup.ThreadContext(turns=("y esta: 'we are going to the beach tomorrow'",),
                                     last_call={"tool": "translate", "args": {"text": "we are going to the beach tomorrow"}},
                                     last_request="y esta: 'we are going to the beach tomorrow'")
    model = FakeChatModel(responses=[
        {"request": "Traduce 'Vamos a la playa mañana' con un haz de 6"},
        {"tool": "translate", "text": "Vamos a la playa mañana", "beam_size": 6},
    ], default={"beam_size": 6})
    decision = router.plan("ahora con un haz de 6", lambda: model, use_semantic=False, context=context)
    assert decision["tool"] == "translate"
    assert decision["args"] == {"text": "we are going to the beach tomorrow", "beam_size": 6}


def test_a_quoted_text_in_the_follow_up_replaces_the_last_one():
    context = followup.ThreadContext(turns=("translate 'the train leaves at nine' into Spanish",),
                                     last_call={"tool": "translate", "args": {"text": "the train leaves at nine"}},
                                     last_request="translate 'the train leaves at nine' into Spanish")
    model = FakeChatModel(responses=[
        {"request": "translate 'the train leaves at nine' and 'I don't know where she lives'"},
        {"tool": "translate", "text": "the train leaves at nine"},
    ], default={})
    decision = router.plan("and this one: 'I don't know where she lives'", lambda: model, use_semantic=False,
                           context=context)
    assert decision["tool"] == "translate" and decision["args"] == {"text": "I don't know where she lives"}


def test_a_number_of_an_earlier_request_does_not_become_this_calls_number():
    # "train the autoencoder for 3 epochs" → "show me its reconstruction of digit7.png": the 3
    # epochs are not 3 images.
    context = followup.ThreadContext(turns=("please train the autoencoder for 3 epochs",),
                                     last_call={"tool": "train_model", "args": {"model": "autoencoder", "epochs": 3}},
                                     last_request="please train the autoencoder for 3 epochs")
    args = router._numbers_from_the_turn("generate_images", "show me its reconstruction of digit7.png",
                                         {"model": "autoencoder", "count": 3, "image_path": "digit7.png"}, context)
    assert args == {"model": "autoencoder", "image_path": "digit7.png"}
    # Stated in the turn, or the same tool's last value: kept.
    assert router._numbers_from_the_turn("generate_images", "now 3 of them", {"count": 3}, context) == {"count": 3}
    same = followup.ThreadContext(turns=("x",), last_call={"tool": "generate_images", "args": {"model": "vae", "count": 9}})
    assert router._numbers_from_the_turn("generate_images", "with the autoencoder", {"count": 9}, same) == {"count": 9}


def test_a_number_is_not_a_file_and_a_file_after_an_inverted_question_mark_is_read():
    from taller.agent import grounding

    assert not grounding.grounded_path("20", ["mkae it 20"])
    assert router._turn_files("classify_pet", "mientras tanto, ¿gato_negro.jpg es un gato o un perro?") == \
        {"image_path": "gato_negro.jpg"}


@pytest.mark.parametrize("text,after,expected", [
    ("how's it doing?", "train_model", "list_models"), ("¿cómo va el training?", "train_model", "list_models"),
    ("hows it goign?", "train_model", "list_models"),
    # Not after a training, or not a progress question: routed as usual.
    ("how's it doing?", "translate", None), ("¿cómo va a predecir eso?", "train_model", None),
])
def test_a_progress_question_right_after_a_training_asks_for_its_status(text, after, expected):
    context = followup.ThreadContext(turns=("train the vae",), last_call={"tool": after, "args": {"model": "vae"}})
    decision = router.plan(text, lambda: FakeChatModel(responses=[], default={"tool": "none"}), use_semantic=False,
                           context=context)
    assert (decision.get("tool") == "list_models") is (expected == "list_models")


def test_the_choice_a_follow_up_names_replaces_the_last_calls():
    context = followup.ThreadContext(turns=("enséñame la lección de sobreajuste",),
                                     last_call={"tool": "show_lesson", "args": {"model": "dense_classifier"}},
                                     last_request="enséñame la lección de sobreajuste")
    model = FakeChatModel(responses=[], default={"tool": "show_lesson", "model": "dense_classifier",
                                                 "request": "enséñame la lección del traductor"})
    decision = router.plan("¿y la del traductor?", lambda: model, use_semantic=False, context=context)
    assert decision["tool"] == "show_lesson" and decision["args"] == {"model": "seq2seq"}
    assert followup.continues("one more pls: do you want tea or coffee")


@pytest.mark.parametrize("turn,previous,expected", [
    ("mejor 12", {"values": "ventas.csv", "steps": 7}, {"values": "ventas.csv", "steps": 12}),
    ("sorry, I meant 6, not 8", {"values": "ventas.csv", "steps": 8}, {"values": "ventas.csv", "steps": 6}),
])
def test_one_new_number_goes_to_the_tools_one_number_field(turn, previous, expected):
    context = followup.ThreadContext(turns=("forecast ventas.csv",), last_call={"tool": "forecast", "args": previous},
                                     last_request="forecast ventas.csv")
    # The rewrite and the edit prompt both get it wrong; the rule does not ask them.
    model = FakeChatModel(responses=[], default={"request": "forecast the next 7 values of ventas.csv",
                                                 "tool": "forecast", "values": "ventas.csv", "steps": 7})
    decision = router.plan(turn, lambda: model, use_semantic=False, context=context)
    assert decision["tool"] == "forecast" and decision["args"] == expected


@pytest.mark.parametrize("planned_steps", [6, 8])
def test_the_number_a_correction_takes_back_is_not_the_new_value(planned_steps):
    """"sorry, I meant 6, not 8" after an 8-step forecast: whether the plan read 6 (the real
    model did) or 8, the call gets 6; 8 is the value taken back, not a second new number."""
    from taller.text import negated_numbers

    series = [12, 15, 14, 18, 21, 20, 24, 27, 26, 30, 33, 32]
    context = followup.ThreadContext(turns=("forecast the next values of 12, 15, 14, 18, 21, 20, 24, 27, 26, 30, 33, 32",
                                            "give me 8 steps instead"),
                                     last_call={"tool": "forecast", "args": {"values": series, "steps": 8}},
                                     last_request="give me 8 steps instead")
    decision = {"tool": "forecast", "args": {"values": series, "steps": planned_steps}, "source": "semantic"}
    edited = router._edited_call(lambda: FakeChatModel(responses=[], default={"steps": 8}),
                                 "sorry, I meant 6, not 8", decision, context)
    assert edited["args"]["steps"] == 6
    assert negated_numbers("sorry, I meant 6, not 8") == [8]
    assert negated_numbers("mejor 12 en vez de diez") == [10]
    assert negated_numbers("I meant 30, not twenty five") == [25]
    assert negated_numbers("I do not know 7 things") == [] and negated_numbers("make it 20") == []


def test_a_why_question_that_names_nothing_to_run_is_answered_without_a_tool():
    context = followup.ThreadContext(turns=("pronostica 7 valores de ventas.csv",),
                                     last_call={"tool": "forecast", "args": {"values": "ventas.csv", "steps": 7}})
    model = FakeChatModel(responses=[], default={"request": "¿Por qué se usa una GRU para pronosticar ventas.csv?",
                                                 "tool": "forecast", "values": "ventas.csv"})
    decision = router.plan("¿por qué se usa una GRU y no una red densa para esto?", lambda: model,
                           use_semantic=False, context=context)
    assert decision["tool"] is None and decision["question_about"] == "forecast"
    # A why-question that names a file still runs on it.
    assert router._asks_why("why is rex.jpg a dog?") is False


def test_adding_a_video_shares_the_video_tools_subject():
    # "add <URL>" → "what does it say about interest rates?": the follow-up leans to asking it.
    assert router._related_tools("add_video") == {"add_video", "ask_video", "summarize_video"}
    assert router._related_tools("query_database") == {"query_database", "describe_database"}


@pytest.mark.parametrize("tool,text,expected", [
    ("forecast", "what about 10 steps?", {"steps": 10}),
    ("forecast", "forecast the next 5 values of 10 12 15 19 24", {"steps": 5}),
    ("forecast", "a 10-step forecast of 1 2 3", {"steps": 10}),
    ("forecast", "dame doce pasos", {"steps": 12}),
    ("translate", "can you try it with a beam of 3", {"beam_size": 3}),
    ("translate", "con un haz de tres", {"beam_size": 3}),
    ("train_model", "mejor veinte épocas", {"epochs": 20}),
    ("generate_images", "make nine pictures with it", {"count": 9}),
    # A number away from the argument's word states nothing about it.
    ("forecast", "forecast 1, 2, 3, 4 please", {}),
    ("translate", "translate 'I have 3 cats'", {}),
    ("forecast", "whats next after 100, 90, 81, 73?", {}),  # the number must come right after "next"
    ("forecast", "pronostica doce pasos de 5.5, 6.1, 6.8, 7.2", {"steps": 12}),
    ("forecast", "what comes next? give me seven more", {"steps": 7}),
])
def test_a_number_goes_to_the_argument_its_word_names(tool, text, expected):
    assert followup.numbers_by_units(tool, text) == expected


def test_a_changed_number_that_the_series_also_holds_is_still_the_new_value():
    """"what about 10 steps?" after a forecast of 10, 12, 15, …: 10 is in the series, and still
    the new number of steps (the word "steps" says which argument it is)."""
    series = [10, 12, 15, 19, 24]
    context = followup.ThreadContext(turns=("forecast the next values of 10 12 15 19 24",),
                                     last_call={"tool": "forecast", "args": {"values": series}},
                                     last_request="forecast the next values of 10 12 15 19 24")
    model = FakeChatModel(responses=[], default={"request": "forecast 10 12 15 19 24 for the next 10 steps",
                                                 "tool": "forecast", "values": series})
    decision = router.plan("what about 10 steps?", lambda: model, use_semantic=False, context=context)
    assert decision["tool"] == "forecast" and decision["args"] == {"values": series, "steps": 10}


def test_a_correction_swaps_the_number_inside_the_series():
    series = [10.0, 12.0, 15.0, 19.0, 24.0]
    assert router._number_replaced("wait the last number should be 25 not 24", {"values": series, "steps": 10}) \
        == {"values": [10.0, 12.0, 15.0, 19.0, 25.0]}
    assert router._number_replaced("sorry, I meant 6, not 8", {"model": "vae", "epochs": 8}) == {"epochs": 6}
    # Two places hold the number taken back: no guess.
    assert router._number_replaced("25 not 10", {"values": [10.0, 12.0], "steps": 10}) == {}


def test_a_stated_default_stays_in_the_call():
    context = followup.ThreadContext(turns=("translate 'The weather is nice today.'",),
                                     last_call={"tool": "translate", "args": {"text": "The weather is nice today."}},
                                     last_request="translate 'The weather is nice today.'")
    model = FakeChatModel(responses=[], default={"request": "translate 'The weather is nice today.' with beam 4",
                                                 "tool": "translate", "text": "The weather is nice today."})
    decision = router.plan("now with beam 4", lambda: model, use_semantic=False, context=context)
    assert decision["args"] == {"text": "The weather is nice today.", "beam_size": 4}  # 4 is the default


@pytest.mark.parametrize("rewrite", [
    "forecast(6 steps, data/sales_2023.csv, 2013)",
    "translate('Don't forget to take your medicine.', beam=3)}",
    "what columns does the query_database function return for the given question?",
])
def test_a_rewrite_that_reads_like_code_is_not_used(rewrite):
    context = followup.ThreadContext(turns=("haz una previsión con data/sales_2023.csv",),
                                     last_call={"tool": "forecast", "args": {"values": "data/sales_2023.csv"}},
                                     last_request="haz una previsión con data/sales_2023.csv")
    turn = "¿y cuántas facturas hubo en 2013 en la base de datos?"
    assert followup.rewrite(FakeChatModel(responses=[{"request": rewrite}]), turn, context) == turn


@pytest.mark.parametrize("text,expected", [
    ("the bidirectional one", []), ("that one", []), ("which one?", []), ("the first one", []),
    ("train for one epoch", [1.0]), ("only one", [1.0]), ("one", [1.0]), ("one more", [1.0]),
])
def test_one_that_names_a_thing_is_not_a_number(text, expected):
    from taller.text import number_mentions

    assert number_mentions(text) == expected


def test_a_misspelt_model_name_is_still_the_model():
    assert router.extract_args("train_model", "entrena la lstm bidireccinal por 3 epocas") == {"model": "birnn", "epochs": 3}
    assert router.extract_args("train_model", "train the autoencodr") == {"model": "autoencoder"}
    from taller.text import respelled

    vocabulary = frozenset({"classifier", "bidireccional", "bidirectional"})
    assert respelled("the model classifies", vocabulary) == "the model classifies"  # an ending, not a typo
    assert respelled("bidirecitonal", vocabulary) == "bidirectional"  # two letters swapped: one edit


@pytest.mark.parametrize("text,expected", [
    ("¿qué edad le sale a la novia?", True), ("¿qué emoción les ves?", True),  # someone already in the thread
    ("¿cuántas canciones tiene el álbum?", False),
])
def test_spanish_indirect_object_pronouns_point_back(text, expected):
    assert followup.refers_back(text) is expected


def test_a_rewrite_that_drops_the_turns_file_and_words_is_another_request():
    context = followup.ThreadContext(turns=("entrena el autoencoder", "¿Cómo va el entrenamiento?"),
                                     last_call={"tool": "list_models", "args": {}},
                                     last_request="¿Cómo va el entrenamiento?")
    turn = "enséñame cómo reconstruye cero.png"
    model = FakeChatModel(responses=[{"request": "¿Cómo va el entrenamiento del autoencoder?"}])
    assert followup.rewrite(model, turn, context) == turn


def test_a_playlist_or_folder_added_is_not_the_video_asked():
    for added in ("https://www.youtube.com/playlist?list=PLZHQObOWTQDNU6R1_67000Dx_ZCJB-3pi", "talks/2024/"):
        context = followup.ThreadContext(turns=(f"add {added}",), last_call={"tool": "add_video", "args": {"url_or_path": added}})
        assert followup.sticky("ask_video", context, {"question": "which talk mentions transformers?"}) == {}
    one = "https://youtu.be/kCc8FmEb1nY"
    context = followup.ThreadContext(turns=(f"add {one}",), last_call={"tool": "add_video", "args": {"url_or_path": one}})
    assert followup.sticky("ask_video", context, {"question": "what does it say about attention?"}) == {"video": one}


@pytest.mark.parametrize("turn,expected", [
    ("go back to the dog pic and run it again, I think you got it wrong", {"image_path": "pics/buddy.jpg"}),
    ("vuelve a mirar la primera foto, porfa", {"image_path": "pics/buddy.jpg"}),
])
def test_a_turn_that_goes_back_gets_the_earlier_call(turn, expected):
    calls = ({"tool": "classify_pet", "args": {"image_path": "pics/buddy.jpg"}},
             {"tool": "analyze_face", "args": {"image_path": "~/Pictures/me.png"}},
             {"tool": "analyze_face", "args": {"image_path": "~/Pictures/me.png"}})
    context = followup.ThreadContext(turns=("is pics/buddy.jpg a cat or a dog?", "how old do I look in ~/Pictures/me.png?",
                                            "and what emotion?"), last_call=calls[-1], calls=calls)
    decision = router.plan(turn, lambda: FakeChatModel(responses=[]), use_semantic=False, context=context)
    assert decision["tool"] == "classify_pet" and decision["args"] == expected


def test_going_back_to_a_series_takes_the_turns_new_number():
    series = [100.0, 98.0, 103.0, 107.0]
    calls = ({"tool": "forecast", "args": {"values": series, "steps": 3}},
             {"tool": "translate", "args": {"text": "hello"}})
    context = followup.ThreadContext(turns=("forecast 100, 98, 103, 107", "translate 'hello'"),
                                     last_call=calls[-1], calls=calls)
    decision = router.plan("volviendo a la serie de antes, dame 10 pasos", lambda: FakeChatModel(responses=[]),
                           use_semantic=False, context=context)
    assert decision["tool"] == "forecast" and decision["args"] == {"values": series, "steps": 10}


def test_an_input_image_is_not_carried_to_a_model_that_takes_none():
    decision = {"tool": "generate_images", "args": {"model": "vae", "count": 12, "image_path": "digit7.png"}}
    assert router._without_unused_image(decision, "now the vae, 12 samples")["args"] == {"model": "vae", "count": 12}
    kept = {"tool": "generate_images", "args": {"model": "autoencoder", "image_path": "digit7.png"}}
    assert router._without_unused_image(kept, "and with the autoencoder")["args"] == kept["args"]
    assert router.extract_args("show_lesson", "mientras tanto enséñame la lección de la atención") == {"model": "seq2seq"}


def test_an_input_image_the_user_declines_is_dropped():
    carried = {"tool": "generate_images", "args": {"model": "pix2pix", "count": 4, "image_path": "labels/facade_071.png"}}
    for request in ("now just 4 from its validation set, no input image", "otras 4 sin imagen de entrada",
                    "4 more without a photo"):
        assert router._without_unused_image(carried, request)["args"] == {"model": "pix2pix", "count": 4}
    # Naming a file keeps it, and a turn that declines nothing keeps the carried image.
    assert router._without_unused_image(carried, "labels/facade_071.png, no other image")["args"] == carried["args"]
    assert router._without_unused_image(carried, "now 4 of them")["args"] == carried["args"]


def test_going_back_to_an_earlier_video_asks_this_turns_question():
    calls = ({"tool": "ask_video", "args": {"question": "what is a neuron?", "video": "intro.srt"}},
             {"tool": "summarize_video", "args": {"video": "talk2.srt"}})
    context = followup.ThreadContext(turns=("what does intro.srt say about neurons?", "summarize talk2.srt"),
                                     last_call=calls[-1], calls=calls)
    turn = "going back to the first video, what does it say about bias?"
    decision = router.plan(turn, lambda: FakeChatModel(responses=[]), use_semantic=False, context=context)
    assert decision["tool"] == "ask_video" and decision["args"] == {"question": turn, "video": "intro.srt"}


def _no_llm():
    raise AssertionError("the LLM is not needed")


def test_a_bare_new_file_keeps_the_last_tool_whatever_the_file_alone_suggests(monkeypatch):
    # A photo alone reads as a face; after a reconstruction it is the next image to reconstruct.
    monkeypatch.setattr(router, "semantic_router", lambda: _Classifier(
        [("analyze_face", 0.995), ("classify_pet", 0.004), ("generate_images", 0.001)]))
    context = followup.ThreadContext(
        turns=("ahora reconstruye dibujos/siete_mio.png con el autoencoder",),
        last_call={"tool": "generate_images", "args": {"model": "autoencoder", "image_path": "dibujos/siete_mio.png"}},
        last_request="ahora reconstruye dibujos/siete_mio.png con el autoencoder")
    decision = router.plan("¿y dibujos/tres_mio.png?", _no_llm, context=context)
    assert decision["tool"] == "generate_images"
    assert decision["args"] == {"model": "autoencoder", "image_path": "dibujos/tres_mio.png"}
    # A value only a question could hold ("¿y 2012?" after a database question) is not one of the
    # tool's own arguments: that turn is still rewritten.
    database = followup.ThreadContext(turns=("¿cuántas facturas hubo en 2011?",),
                                      last_call={"tool": "query_database", "args": {"question": "¿cuántas facturas hubo en 2011?"}},
                                      last_request="¿cuántas facturas hubo en 2011?")
    assert router._takes_the_bare_value("¿y 2012?", database) is None


@pytest.mark.parametrize("turn, expected", [
    ("con un haz de cinco", {"text": "It's raining, so we'll stay home", "beam_size": 5}),
    ("with a beam of three", {"text": "It's raining, so we'll stay home", "beam_size": 3}),
])
def test_a_number_in_words_by_the_last_tools_words_edits_that_call(monkeypatch, turn, expected):
    # The classifier reads a short Spanish phrase as chat; the unit word ("haz", "beam") says which
    # argument the number is, and only the translation has it.
    monkeypatch.setattr(router, "semantic_router", lambda: _Classifier([("none", 0.97), ("translate", 0.03)]))
    context = followup.ThreadContext(
        turns=("traduce al español: 'It's raining, so we'll stay home'",),
        last_call={"tool": "translate", "args": {"text": "It's raining, so we'll stay home"}},
        last_request="traduce al español: 'It's raining, so we'll stay home'")
    decision = router.plan(turn, _no_llm, context=context)
    assert decision["tool"] == "translate" and decision["args"] == expected
    assert followup.changes_a_value(turn)  # "cinco" is the value, not one of the "four other words"


def test_a_number_by_another_tools_words_does_not_edit_the_last_call():
    context = followup.ThreadContext(turns=("forecast 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12",),
                                     last_call={"tool": "forecast", "args": {"values": [float(n) for n in range(1, 13)]}})
    assert router._takes_the_bare_value("now 5 more images", context) is None
    assert router._takes_the_bare_value("now 5 more", context) == "forecast"


def test_a_database_url_in_the_turn_is_the_database_as_written(monkeypatch):
    url = "postgresql://analyst@db.local/library"
    assert router.extract_args("query_database", "how many tracks in sqlite:///data/shop.db?") == {
        "question": "how many tracks in sqlite:///data/shop.db?", "database": "sqlite:///data/shop.db"}
    assert router.extract_args("describe_database", "describe https://example.com/page") == {}
    # Read by the rules, so no model shortens it to "library"; the next question keeps it.
    monkeypatch.setattr(router, "semantic_router", lambda: _Classifier([("describe_database", 0.99), ("none", 0.01)]))
    decision = router.plan(f"describe the database at {url}", _no_llm)
    assert decision == {"tool": "describe_database", "args": {"database": url}, "source": "semantic", "confidence": 0.99}
    monkeypatch.setattr(router, "semantic_router", lambda: _Classifier([("query_database", 0.99), ("none", 0.01)]))
    context = followup.ThreadContext(turns=(f"describe the database at {url}",), last_call=decision)
    after = router.plan("how many books were borrowed last month?", _no_llm, context=context)
    assert after["args"] == {"question": "how many books were borrowed last month?", "database": url}


def test_naming_the_default_database_drops_the_conversations_other_one():
    decision = {"tool": "query_database", "args": {"question": "¿cuántos clientes hay en Chile?", "database": "inventario"},
                "carried_over": ["database"]}
    back = router._default_database_named(decision, "vuelve a la base sales: ¿cuántos clientes hay en Chile?")
    assert back["args"] == {"question": "¿cuántos clientes hay en Chile?"} and back["carried_over"] == []
    # A turn that names no database keeps the conversation's.
    assert router._default_database_named(decision, "¿y en Perú?") == decision


def test_a_pointing_turn_takes_the_latest_model_mentioned_even_in_a_chat_turn():
    calls = ({"tool": "generate_images", "args": {"model": "vae", "count": 9}},)
    context = followup.ThreadContext(
        turns=("genera nueve imágenes con el VAE", "¿cuánto tardaría en entrenarse el pix2pix en un portátil sin GPU?"),
        last_call=calls[-1], calls=calls)
    # Whatever model the rewrite or the last call brought, "it" is the one just talked about.
    decision = {"tool": "train_model", "args": {"model": "vae", "epochs": 30}}
    assert router._model_from_thread(decision, "vale, entrénalo con treinta épocas", context)["args"] == {
        "model": "pix2pix", "epochs": 30}
    # A turn that names its model keeps it.
    named = {"tool": "train_model", "args": {"model": "vae", "epochs": 30}}
    assert router._model_from_thread(named, "entrena el vae con treinta épocas", context) == named


def test_a_link_or_database_named_in_passing_is_read_as_meant(monkeypatch):
    # The sentence's comma is not part of the link.
    assert router.extract_args("ask_video", "in https://www.youtube.com/watch?v=aircAruvnKk, how many layers?")["video"] == \
        "https://www.youtube.com/watch?v=aircAruvnKk"
    # The sample's other name is a database the configuration knows.
    assert router.extract_args("describe_database", "show me the schema of chinook") == {"database": "chinook"}
    assert router.extract_args("describe_database", "show me the schema of the sales data") == {}
    # "database" misspelt still names the word before it.
    assert router._named_database("in the hr databse, which employees were hired after 2019?") == "hr"
    # A video link is something to work on, whatever the classifier reads in the question around it.
    monkeypatch.setattr(router, "semantic_router", lambda: _Classifier([("none", 0.9), ("ask_video", 0.1)]))
    assert router.semantic_plan("in https://youtu.be/aircAruvnKk, how many layers does the network have?") is None
    assert router.semantic_plan("how many layers does a deep network have?")["tool"] is None


@pytest.mark.parametrize("previous, turn, expected", [
    ("How many invoices were billed to Canada?", "and to France?", "How many invoices were billed to France?"),
    ("¿Cuántas canciones de rock hay?", "¿y de jazz?", "¿Cuántas canciones de jazz hay?"),
    ("how many albums does Iron Maiden have in the store?", "and Led Zeppelin?",
     "how many albums does Led Zeppelin have in the store?"),
    ("which artist has the most albums?", "and the most tracks?", "which artist has the most tracks?"),
    ("list the top 5 customers by total spent", "now the top 10", "list the top 10 customers by total spent"),
    ("how many employees were hired in 2003 in the hr database?", "ok and in 2004?",
     "how many employees were hired in 2004 in the hr database?"),
    ("¿qué dice la conferencia sobre la energía nuclear?", "¿y sobre la energía solar?",
     "¿qué dice la conferencia sobre la energía solar?"),
    ("what does the talk say about inflation?", "and regarding unemployment?", "what does the talk say about unemployment?"),
    # The topic slot takes a new topic however far apart MiniLM places the two.
    ("what does the talk say about GPUs?", "and TPUs?", "what does the talk say about TPUs?"),
    # A year after the month qualifies it: the month alone is replaced.
    ("what was the total gross pay in March 2024?", "and in April?", "what was the total gross pay in April 2024?"),
])
def test_an_elliptical_value_replaces_the_part_of_its_kind(previous, turn, expected):
    assert followup.substituted(turn, previous) == expected


@pytest.mark.parametrize("previous, turn", [
    ("How many invoices were billed to Canada?", "who are those customers?"),  # a question of its own
    ("How many invoices were billed to Canada?", "and what's their total?"),
    ("generate 5 images with the autoencoder", "and now train the vae"),  # a request of its own
    ("what emotion does the face in me.jpg show?", "and her age?"),  # points back: the model rewrites it
    ("translate 'good morning'", "and 'see you tomorrow'?"),  # a quoted text: read as the tool's text
])
def test_a_turn_that_is_not_a_bare_value_is_left_to_the_model(previous, turn):
    assert followup.substituted(turn, previous) is None


def test_an_elliptical_turn_is_resolved_without_the_model():
    context = followup.ThreadContext(turns=("How many invoices were billed to Canada?",),
                                     last_call={"tool": "query_database", "args": {"question": "How many invoices were billed to Canada?"}},
                                     last_request="How many invoices were billed to Canada?")
    assert followup.rewrite(FakeChatModel(responses=[]), "and to France?", context) == "How many invoices were billed to France?"


def test_a_turn_pointing_back_to_the_subject_is_not_vetoed_as_chat(monkeypatch):
    # The classifier leans to chat ("nice, can you…"), the model picks the summary: the turn
    # points back ("it") and the summary shares the thread's subject, the video.
    monkeypatch.setattr(router, "semantic_router", lambda: _Classifier(
        [("none", 0.55), ("list_models", 0.3), ("ask_video", 0.1), ("summarize_video", 0.02), ("add_video", 0.03)]))
    url = "https://www.youtube.com/watch?v=aircAruvnKk"
    context = followup.ThreadContext(
        turns=(f"add this video {url}", "what does the video say about gradient descent?"),
        last_call={"tool": "ask_video", "args": {"question": "what does the video say about gradient descent?", "video": url}},
        last_request="what does the video say about gradient descent?")
    model = FakeChatModel(responses=[{"request": "nice, can you summarize it?"}, {"tool": "summarize_video"}])
    decision = router.plan("nice, can you summarize it?", lambda: model, context=context)
    assert decision["tool"] == "summarize_video" and decision["args"] == {"video": url}
    # Without a thread the same scores and choice are chit-chat about summaries: vetoed.
    model = FakeChatModel(responses=[{"tool": "summarize_video"}])
    assert router.plan("nice, can you summarize it?", lambda: model)["tool"] is None


@pytest.mark.parametrize("text,steps", [
    ("añade 35 y 36 al final de la serie y vuelve a pronosticar siete pasos", 7),
    ("append 40 and 41 to the end and forecast again", 6),
    ("add 40 and 41 to the series, then predict 3", 3),
])
def test_values_added_to_the_end_of_the_series_lengthen_it(text, steps):
    series = [12, 15, 14, 18, 21, 20, 24, 27, 26, 30, 33, 32]
    context = followup.ThreadContext(last_call={"tool": "forecast", "args": {"values": series, "steps": 6}},
                                     calls=({"tool": "forecast", "args": {"values": series, "steps": 6}},))
    decision = router.plan(text, lambda: FakeChatModel([]), use_semantic=False, context=context)
    added = [35.0, 36.0] if "35" in text else [40.0, 41.0]
    assert decision["tool"] == "forecast" and decision["args"] == {"values": [*map(float, series), *added], "steps": steps}


def test_a_new_step_count_does_not_lengthen_the_series():
    series = [12.0, 15.0, 14.0, 18.0, 21.0, 20.0, 24.0, 27.0, 26.0, 30.0, 33.0, 32.0]
    context = followup.ThreadContext(last_call={"tool": "forecast", "args": {"values": series, "steps": 6}})
    assert router._extended_series("now 9 steps", context) is None
    assert router._extended_series("add 3 more steps", context) is None  # no place in the series named


def test_a_why_question_after_what_prompted_it_is_answered_without_a_tool():
    assert router._asks_why("hm, that one's wrong, it's obviously a cat. why does it get confused?")
    assert not router._asks_why("that one's wrong. classify rex.jpg again")
    assert router._asks_why("never mind the lecture — in general, why do transformers use several attention heads?")
    assert router._asks_what_it_is("¿y eso cómo lo calcula? ¿qué es una GRU?")


def test_an_earlier_photo_gone_back_to_by_its_files_name():
    calls = ({"tool": "analyze_face", "args": {"image_path": "photos/graduation_day.jpg"}},
             {"tool": "analyze_face", "args": {"image_path": "photos/grandma_80th.png"}})
    context = followup.ThreadContext(turns=("emotions in photos/graduation_day.jpg", "try photos/grandma_80th.png too"),
                                     last_call=calls[-1], calls=calls)
    decision = router.plan("go back to the graduation one — is anyone crying?", lambda: FakeChatModel(responses=[]),
                           use_semantic=False, context=context)
    assert decision["tool"] == "analyze_face" and decision["args"] == {"image_path": "photos/graduation_day.jpg"}
    # A link's name ("watch") is no word of the user's; two files that match are no answer.
    assert router._calls_on_a_file_named("watch it again", [{"tool": "ask_video", "args": {
        "video": "https://www.youtube.com/watch?v=bN5cE1uR9wF"}}]) == []
    # The file the router could not place is chosen, and the "which file?" error goes with it.
    asked = {"tool": "analyze_face", "args": {}, "error": "which file? Give the path of the image_path in your message"}
    chosen = router._earlier_value(asked, "go back to the graduation photo", context)
    assert chosen["args"] == {"image_path": "photos/graduation_day.jpg"} and "error" not in chosen


def test_a_question_going_back_to_a_summarized_video_asks_it():
    calls = ({"tool": "summarize_video", "args": {"video": "transcripts/lecture3.vtt"}},
             {"tool": "summarize_video", "args": {"video": "https://youtu.be/VMj-3S1tku0"}})
    context = followup.ThreadContext(turns=("summarize transcripts/lecture3.vtt", "summarize https://youtu.be/VMj-3S1tku0 too"),
                                     last_call=calls[-1], calls=calls)
    turn = "going back to the lecture, what did it say about learning rate warmup?"
    decision = router.plan(turn, lambda: FakeChatModel(responses=[]), use_semantic=False, context=context)
    assert decision["tool"] == "ask_video"
    assert decision["args"] == {"question": turn, "video": "transcripts/lecture3.vtt"}
    assert router._question_tool_sharing("summarize_video") == "ask_video"
    assert router._question_tool_sharing("classify_pet") is None


def test_the_default_database_named_as_the_default_one():
    decision = {"tool": "query_database", "args": {"question": "which playlist has the most tracks?",
                                                   "database": "postgresql://analyst@db.local/shop"}}
    for turn in ("and for the default music one, which playlist has the most tracks?",
                 "¿y en la base de datos por defecto?", "vuelve a la de siempre"):
        assert "database" not in router._default_database_named(decision, turn)["args"]


def test_a_question_about_the_speaker_or_the_source_asks_the_recording():
    video = "https://youtu.be/m4Tq7YpX2sB"
    context = followup.ThreadContext(
        turns=("what does the speaker say about vanishing gradients?",),
        last_call={"tool": "ask_video", "args": {"question": "what does the speaker say about vanishing gradients?", "video": video}},
        last_request="what does the speaker say about vanishing gradients?")
    turn = "does he recommend ReLU or something else?"
    decision = router.plan(turn, lambda: FakeChatModel(responses=[{"tool": "none"}]), use_semantic=False, context=context)
    assert decision["tool"] == "ask_video" and decision["args"] == {"question": turn, "video": video}
    added = followup.ThreadContext(turns=("load lectures/week3_attention.vtt",),
                                   last_call={"tool": "add_video", "args": {"url_or_path": "lectures/week3_attention.vtt"}},
                                   last_request="load lectures/week3_attention.vtt")
    turn = "according to it, what's the difference between self-attention and cross-attention?"
    decision = router.plan(turn, lambda: FakeChatModel(responses=[{"request": turn}, {"tool": "none"}]),
                           use_semantic=False, context=added)
    assert decision["tool"] == "ask_video" and decision["args"]["video"] == "lectures/week3_attention.vtt"


def test_a_model_the_correction_takes_back_is_not_the_one_it_names():
    allowed = ["dense_classifier", "autoencoder", "rnn", "birnn", "seq2seq", "vae", "pix2pix"]
    assert router._model_name("uy no, perdón: el de puntuación, no el traductor", allowed) == "birnn"
    assert router._model_name("train the VAE, not the autoencoder", allowed) == "vae"
    assert router._model_name("the autoencoder instead of the VAE", allowed) == "autoencoder"
    assert router._model_name("not the VAE", allowed) is None


@pytest.mark.parametrize("text,expected", [
    ("dQw4w9WgXcQ", True), ("aircAruvnKk", True), ("fine-tuning", False), ("end-to-end", False),
    ("autoencoder", False),
])
def test_a_video_id_is_not_a_hyphenated_word(text, expected):
    assert bool(followup.VIDEO_ID.search(f"what does {text} say")) is expected


def test_going_back_to_earlier_work_named_by_what_it_did():
    """"back to the translation": the newest translate call again, with the turn's beam."""
    calls = ({"tool": "translate", "args": {"text": "don't forget the slides"}},
             {"tool": "punctuate", "args": {"text": "ok see you tomorrow then"}})
    context = followup.ThreadContext(last_call=calls[-1], calls=calls)
    decision = router.plan("back to the translation: redo the last one with beam 2", lambda: FakeChatModel([]),
                           context=context)
    assert decision["tool"] == "translate" and decision["args"] == {"text": "don't forget the slides", "beam_size": 2}
    assert decision.get("returned_to")
    # Words after "back to" that name none of the earlier tools' work: no return.
    assert router._returned_call("back to business: hello there", context) is None


@pytest.mark.parametrize("text,expected", [
    ("n blues?", "and blues?"),
    ("which doctor saw the most of tehm?", "which doctor saw the most of them?"),
    ("waht about Chile?", "what about Chile?"),
    ("¿y q tal en 2010?", "¿y qué tal en 2010?"),
    # Only swaps of a cue word: one changed letter is another word ("name" is not "same").
    ("name the new file", "name the new file"),
    ("and for U2?", "and for U2?"),
])
def test_cue_words_are_read_through_chat_spelling_and_swapped_letters(text, expected):
    assert followup.cue_spelled(text) == expected


def test_a_typed_cue_still_substitutes_the_value():
    assert followup.substituted("n blues?", "how many tracks are in the jazz genre") == \
        "how many tracks are in the blues genre"
    assert followup.refers_back("which doctor saw the most of tehm?")


@pytest.mark.parametrize("text", ["how far along is it?", "¿cuánto le falta?", "what epoch is it on?"])
def test_more_ways_to_ask_how_training_is_going(text):
    assert followup.asks_progress(text)


@pytest.mark.parametrize("turn,previous,expected", [
    ("y de batch norm?", "¿qué dice sobre el dropout?", "¿qué dice sobre batch norm?"),
    ("and async?", "did she talk about type hints?", "did she talk about async?"),
    # A value of the kind of a part after the topic still replaces that part, not the topic.
    ("¿y de Francia?", "¿qué dice sobre la economía de España?", "¿qué dice sobre la economía de Francia?"),
])
def test_a_new_topic_replaces_the_topic_of_the_question(turn, previous, expected):
    assert followup.substituted(turn, previous) == expected


@pytest.mark.parametrize("text,previous,expected", [
    ("¿qué autor fue el más prestado ese año?", "¿cuántos libros se prestaron en 2022?",
     "¿qué autor fue el más prestado en 2022?"),
    ("which customer spent the most that month?", "how many invoices in March 2024?",
     "which customer spent the most in March 2024?"),
    # Two years named: no guess. "This year" is the present, not a reference.
    ("top artist that year", "sales in 2011 vs 2012", "top artist that year"),
    ("top artist this year", "sales in 2011", "top artist this year"),
])
def test_a_time_the_previous_request_named_is_written_out(text, previous, expected):
    assert followup.with_the_time_named(text, previous) == expected


def test_a_sample_count_is_not_carried_into_work_on_a_given_image():
    """Nine VAE samples, then "now reconstruct dibujos/siete.png with the autoencoder": one
    reconstruction, not nine. A count stated with an image, or carried from a call on another
    image, stays."""
    def edited(request, last_args, planned):
        context = followup.ThreadContext(last_call={"tool": "generate_images", "args": last_args})
        decision = {"tool": "generate_images", "args": planned}
        return router._edited_call(lambda: FakeChatModel([], default={}), request, decision, context)["args"]

    assert edited("ahora reconstruye dibujos/siete.png con el autoencoder", {"model": "vae", "count": 9},
                  {"model": "autoencoder", "image_path": "dibujos/siete.png"}) == \
        {"model": "autoencoder", "image_path": "dibujos/siete.png"}
    assert edited("same again but from labels/b.png", {"model": "pix2pix", "count": 6, "image_path": "labels/a.png"},
                  {"model": "pix2pix", "image_path": "labels/b.png"}) == \
        {"model": "pix2pix", "count": 6, "image_path": "labels/b.png"}


@pytest.mark.parametrize("text", ["ok, and batch normalization?", "genial, y ahora el VAE", "hmm and jazz?"])
def test_a_continuation_after_an_acknowledgement_is_still_one(text):
    assert followup.continues(text)


def test_a_trailing_q_is_not_a_question_word():
    assert followup.cue_spelled("y de Oslo q?") == "y de Oslo q?"
    assert followup.substituted("y de Oslo q?", "¿cuántas facturas se enviaron a clientes de Madrid?") is not None


@pytest.mark.parametrize("turn,previous,expected", [
    ("mejor dame 7", "¿Cuáles son los tres géneros con más canciones?", "¿Cuáles son los 7 géneros con más canciones?"),
    ("make it 10", "top 5 customers by spending in 2012", "top 10 customers by spending in 2012"),  # a year is no count
    ("dame 7 canciones", "¿Cuáles son los 3 géneros con más canciones?", None),  # more than a number
    ("now the top 10", "the top twenty five customers", None),  # the old number is two words: no guess
])
def test_a_bare_new_number_replaces_the_one_count_of_a_question(turn, previous, expected):
    assert followup.number_substituted(turn, previous) == expected


def test_a_turn_stands_for_the_question_its_call_asked():
    """Without a standalone form, the question the call asked is what the turn meant."""
    messages = [HumanMessage(content="How many albums does Iron Maiden have?"),
                call_message("query_database", {"question": "How many albums does Iron Maiden have?"}),
                HumanMessage(content="sorry, I meant Led Zeppelin"),
                call_message("query_database", {"question": "How many albums does Led Zeppelin have?"})]
    context = followup.context_from_messages(messages)
    assert context.last_request == "How many albums does Led Zeppelin have?"
    assert context.turns[-1] == "How many albums does Led Zeppelin have?"


def test_a_request_asked_again_with_a_new_value_hides_the_older_one_from_the_rewrite():
    context = followup.ThreadContext(
        turns=("How many albums does Iron Maiden have in the store?", "How many albums does Led Zeppelin have in the store?"),
        last_call={"tool": "query_database", "args": {"question": "How many albums does Led Zeppelin have in the store?"}},
        last_request="How many albums does Led Zeppelin have in the store?")
    model = FakeChatModel(responses=[{"request": "How many tracks do Led Zeppelin's albums have?"}])
    followup.rewrite(model, "and how many tracks in total across them?", context)
    shown = str(model.calls[0])
    assert "Iron Maiden" not in shown and "Led Zeppelin" in shown
    assert followup._superseded("How many invoices were billed to Canada?", "How many invoices were billed to France?")
    assert not followup._superseded("describe the hr database", "how many employees were hired in 2015?")
    # A previous request that went on from the older one holds it too.
    assert followup._superseded("How many albums does Iron Maiden have in the store?",
                                "How many albums does Led Zeppelin have in the store? and how many tracks across them?")


@pytest.mark.parametrize("text,expected", [
    ("waht about albums insted of artists", "what about albums instead of artists"),  # a letter left out
    ("and agin?", "and again?"),
    ("and then?", "and then?"), ("than that", "than that"), ("the name", "the name"),  # real words stay
])
def test_cue_words_are_read_through_a_letter_left_out(text, expected):
    assert followup.cue_spelled(text) == expected


@pytest.mark.parametrize("turn,previous,expected", [
    ("waht about albums insted of artists", "Who are the top 10 artists by tracks sold in the USA?",
     "Who are the top 10 albums by tracks sold in the USA?"),
    ("lo mismo con Chile en vez de Argentina", "¿cuántas facturas hay de clientes de Argentina?",
     "¿cuántas facturas hay de clientes de Chile?"),
    ("use the GRU rather than the LSTM", "train the LSTM for 3 epochs", "train the GRU for 3 epochs"),
    ("Peru instead of Chile", "how many invoices went to Brazil?", None),  # what it replaces is not there
    # Said the other way round, or as a correction that names both.
    ("swap rock for jazz", "which five rock albums have the most tracks?", "which five jazz albums have the most tracks?"),
    ("cambia Chile por Perú", "¿cuántos clientes hay en Chile?", "¿cuántos clientes hay en Perú?"),
    ("sorry, I meant 2012, not 2013", "which employee handled the most invoices in 2013?",
     "which employee handled the most invoices in 2012?"),
    ("the GRU, not the LSTM", "train the LSTM for 3 epochs", "train the GRU for 3 epochs"),
    # A question word or a pronoun is no value.
    ("why not 2013?", "which employee handled the most invoices in 2013?", None),
    ("change it to 10 steps", "forecast it for 5 steps", None),
    ("no, not that one", "train the LSTM", None),
])
def test_a_value_said_to_replace_another_replaces_it(turn, previous, expected):
    assert followup.replaced_as_said(turn, previous) == expected


@pytest.mark.parametrize("turn,previous,expected", [
    ("Would you mind doing the same for Metal?", "how much revenue did the Blues genre bring in overall?",
     "how much revenue did the Metal genre bring in overall?"),
    ("Lovely. Now the same yearly breakdown for Latin, if you'd be so kind",
     "how much revenue did the Metal genre bring in each year?", "how much revenue did the Latin genre bring in each year?"),
    ("vale, ahora lo mismo pero de la regularización L2", "¿Qué dice la charla de clase_redes.srt sobre el dropout?",
     "¿Qué dice la charla de clase_redes.srt sobre la regularización L2?"),
])
def test_the_same_for_a_value_inside_a_longer_turn_replaces_the_value(turn, previous, expected):
    assert followup.substituted(turn, previous) == expected


def test_a_ranking_word_replaces_a_ranking_word_and_a_long_value_is_one_value():
    assert followup.substituted("and the least?", "which warehouse holds the most stock?") == "which warehouse holds the least stock?"
    assert (followup.substituted("and what about the weights and biases part", "what does he say about how neurons get activated?")
            == "what does he say about the weights and biases part?")


def test_that_year_is_the_year_of_the_last_turn_that_named_one():
    context = followup.ThreadContext(
        turns=("En la base clinica, ¿cuántos pacientes se atendieron en 2022?", "¿y en 2023?", "descríbeme las tablas de esa base"),
        last_call={"tool": "describe_database", "args": {"database": "clinica"}}, last_request="descríbeme las tablas de esa base")
    turn = "¿Qué médico atendió a más pacientes ese año?"
    assert followup.rewrite(FakeChatModel(responses=[{"request": turn}]), turn, context) == \
        "¿Qué médico atendió a más pacientes en 2023?"


@pytest.mark.parametrize("text,tool,expected", [
    ("which month was the best?", "query_database", True), ("de qué país son", "query_database", True),
    ("cuanto duran en minutos", "query_database", True),
    ("which month was the best?", "classify_pet", False),  # a tool that takes no question
    ("how many artists are in the whole store?", "query_database", False),  # long enough to stand alone
    ("thanks a lot", "query_database", False),
])
def test_a_short_question_after_a_question_may_depend_on_it(text, tool, expected):
    context = followup.ThreadContext(turns=("x",), last_call={"tool": tool, "args": {}}, last_request="x")
    assert followup.short_question_after_one(text, context) is expected


def test_a_short_question_the_rewrite_left_alone_goes_with_the_question_before(monkeypatch):
    previous = "what were the total sales per month in 2024?"
    context = followup.ThreadContext(turns=(previous,), last_call={"tool": "query_database", "args": {"question": previous}},
                                     last_request=previous)
    turn = "which month was the best?"
    monkeypatch.setattr(router, "semantic_router", lambda: _ClassifierByText(
        {"what models are there?": [("list_models", 0.7), ("query_database", 0.3)]},
        [("query_database", 0.55), ("none", 0.45)]))
    model = FakeChatModel(responses=[{"request": turn}])
    decision = router.plan(turn, lambda: model, context=context)
    assert decision["tool"] == "query_database" and decision["args"]["question"] == f"{previous} {turn}"
    # One the classifier reads as another tool is no follow-up: it is not rewritten (the script is empty).
    other = router.plan("what models are there?", lambda: FakeChatModel(responses=[{"tool": "list_models"}]), context=context)
    assert other["tool"] == "list_models" and "standalone" not in other
    # Nor is a question the last result offered as a next step.
    offered = followup.ThreadContext(turns=context.turns, last_call=context.last_call, last_request=previous,
                                     offered=("which month was the best?",))
    assert router.plan(turn, lambda: FakeChatModel(responses=[]), context=offered)["args"]["question"] == turn


def test_the_questions_a_result_offers_are_read_from_the_thread():
    from langchain_core.messages import AIMessage, HumanMessage, ToolMessage

    messages = [HumanMessage(content="best countries?"),
                AIMessage(content="", tool_calls=[{"name": "query_database", "args": {"question": "best countries?"}, "id": "c1"}]),
                ToolMessage(content=json.dumps({"summary": "3 rows.", "suggestions": ["Which genres sell most?"]}),
                            tool_call_id="c1", name="query_database")]
    assert followup.context_from_messages(messages).offered == ("Which genres sell most?",)
    cut = [*messages[:2], ToolMessage(content='{"summary": "3 ro', tool_call_id="c1", name="query_database")]
    assert followup.context_from_messages(cut).offered == ()


@pytest.mark.parametrize("text,expected", [
    ("which one has the most tracks?", True), ("and how many tracks are in the smallest one?", True),
    ("train the one-layer net", False), ("give me one sample", False), ("the one thing I want", False),
])
def test_one_standing_for_a_thing_just_named_points_back(text, expected):
    assert followup.refers_back(text) is expected


@pytest.mark.parametrize("text,expected", [
    ("¿Podría usar un haz de ocho?", True), ("otra vez pero que sean 12", True), ("y con 12 epocas", True),
    ("train the autoencoder for 3 epochs", True),  # the same tool's setting: the last tool decides
    ("the top 10 artists by sales in 2012", False), ("¿Por qué sale distinto con un haz más ancho?", False),
])
def test_a_short_turn_stating_a_setting(text, expected):
    assert followup.states_a_setting(text) is expected


def test_a_setting_said_politely_changes_the_last_call():
    context = followup.ThreadContext(turns=("Traduzca: 'she has been working here for three years'",),
                                     last_call={"tool": "translate", "args": {"text": "she has been working here for three years"}},
                                     last_request="Traduzca: 'she has been working here for three years'")
    decision = router.plan("¿Podría usar un haz de ocho?", lambda: FakeChatModel(responses=[]), use_semantic=False,
                           context=context)
    assert decision["tool"] == "translate"
    assert decision["args"] == {"text": "she has been working here for three years", "beam_size": 8}


def test_one_bare_number_goes_to_the_last_tools_one_number():
    context = followup.ThreadContext(turns=("genera nueve muestras con el VAE",),
                                     last_call={"tool": "generate_images", "args": {"model": "vae", "count": 9}},
                                     last_request="genera nueve muestras con el VAE")
    decision = router.plan("otra vez pero que sean 12", lambda: FakeChatModel(responses=[{"count": 12}]),
                           use_semantic=False, context=context)
    assert decision["tool"] == "generate_images" and decision["args"] == {"model": "vae", "count": 12}
    # A year is no count, nor is a number with a file or a quote beside it.
    assert not router._lone_count("and 2012?") and not router._lone_count("12 of luna.png")
    assert router._lone_count("que sean doce") and not router._lone_count("2.5 then")


def test_a_value_said_to_replace_another_needs_no_model():
    context = followup.ThreadContext(turns=("top 5 artists by tracks sold",),
                                     last_call={"tool": "query_database", "args": {"question": "top 5 artists by tracks sold"}},
                                     last_request="top 5 artists by tracks sold")
    assert followup.rewrite(FakeChatModel(responses=[]), "and albums instead of artists?", context) == "top 5 albums by tracks sold"


@pytest.mark.parametrize("turn,previous,expected", [
    # "del" is "de" with the article, and "de" after a verb of saying introduces the topic.
    ("¿y del dropout?", "¿qué dice de la regularización L2?", "¿qué dice de dropout?"),
    # A model named in place of the one the request names.
    ("ahora la del VAE", "muéstrame la lección del autoencoder sobre el cuello de botella",
     "muéstrame la lección del VAE sobre el cuello de botella"),
    # "only …" narrows the question: a condition added, left to the rewrite.
    ("y solo las de 2010", "¿cuántas facturas hay de clientes de Chile?", None),
])
def test_more_kinds_of_elliptical_value(turn, previous, expected):
    assert followup.substituted(turn, previous) == expected


def test_a_rewrite_that_puts_the_previous_request_beside_the_turn_is_not_used():
    context = followup.ThreadContext(
        turns=("please add the whole playlist https://www.youtube.com/playlist?list=PLx7Qw2mN4cZ8rT1",),
        last_call={"tool": "add_video", "args": {"url_or_path": "https://www.youtube.com/playlist?list=PLx7Qw2mN4cZ8rT1"}},
        last_request="please add the whole playlist https://www.youtube.com/playlist?list=PLx7Qw2mN4cZ8rT1")
    turn = "across all my videos, what do they say about gradient clipping?"
    joined = {"request": f"Please add the whole playlist https://www.youtube.com/playlist?list=PLx7Qw2mN4cZ8rT1 {turn}"}
    assert followup.rewrite(FakeChatModel(responses=[joined]), turn, context, turn_tool="ask_video") == turn
    # Beside a question of the same tool, or when the turn alone reads as no tool, the previous
    # request may carry the subject the turn leaves out: the rewrite is kept.
    assert followup.rewrite(FakeChatModel(responses=[joined]), turn, context, turn_tool="add_video") == joined["request"]
    assert followup.rewrite(FakeChatModel(responses=[joined]), turn, context) == joined["request"]
    # A short fragment joined to its question is the rewrite it needs.
    assert not followup._joins("How many invoices were billed to Canada, by year?",
                               "How many invoices were billed to Canada?", "by year?")


def test_a_question_about_what_the_speaker_says_is_not_joined_to_the_last_one(monkeypatch):
    monkeypatch.setattr(router, "semantic_router", lambda: _Classifier([("ask_video", 0.99), ("none", 0.01)]))
    video = "https://www.youtube.com/watch?v=Qm7vR2sYw8E"
    context = followup.ThreadContext(
        turns=("what does the speaker say about batch normalization?",),
        last_call={"tool": "ask_video", "args": {"question": "what does the speaker say about batch normalization?",
                                                  "video": video}},
        last_request="what does the speaker say about batch normalization?")
    turn = "does he mention layer norm at all"
    decision = router.plan(turn, lambda: FakeChatModel(responses=[{"request": turn}]), context=context)
    assert decision["tool"] == "ask_video" and decision["args"]["question"] == turn
    assert decision["args"]["video"] == video


@pytest.mark.parametrize("turn,tool,field,expected", [
    ("now translate the first one into spanish", "translate", "text", "hi maria are you coming tonight"),
    ("summarize the first one", "summarize_video", "video", "https://youtu.be/pB4nHc1Tt0U"),
    ("in the second one, where does she talk about warmup?", "ask_video", "video", "https://youtu.be/LmZ9xQ4eR7w"),
    ("go back to the headshot and run the cat-or-dog classifier on it", "classify_pet", "image_path",
     "~/Pictures/interview_headshot.jpg"),
    ("en la de toby sale mi hermana, ¿qué edad le echas?", "analyze_face", "image_path", "fotos/toby.jpg"),
])
def test_an_earlier_thing_named_by_its_place_or_its_files_name(turn, tool, field, expected):
    calls = {"text": ({"tool": "punctuate", "args": {"text": "hi maria are you coming tonight"}},
                      {"tool": "punctuate", "args": {"text": "where did you put the keys"}}),
             "video": ({"tool": "add_video", "args": {"url_or_path": "https://youtu.be/pB4nHc1Tt0U"}},
                       {"tool": "add_video", "args": {"url_or_path": "https://youtu.be/LmZ9xQ4eR7w"}}),
             "image_path": ({"tool": "analyze_face", "args": {"image_path": "~/Pictures/interview_headshot.jpg"}},
                            {"tool": "classify_pet", "args": {"image_path": "fotos/toby.jpg"}},
                            {"tool": "analyze_face", "args": {"image_path": "fotos/nala.png"}})}[field]
    context = followup.ThreadContext(last_call=calls[-1], calls=calls)
    decision = {"tool": tool, "args": {field: calls[-1]["args"].get(field, "x"),
                                       **({"question": turn} if tool == "ask_video" else {})}}
    assert router._earlier_value(decision, turn, context)["args"][field] == expected
    # A turn that writes its own file, or one earlier thing only, is left alone.
    assert router._earlier_value(decision, f"{turn} other.png", context) == decision
    assert router._earlier_value(decision, turn, followup.ThreadContext(last_call=calls[-1], calls=calls[-1:])) == decision
    assert router._earlier_value(decision, "now the first 5 rows", context) == decision


def test_the_default_database_named_as_one_of_several():
    decision = {"tool": "query_database", "args": {"question": "¿cuántos artistas hay?", "database": "inventario"},
                "carried_over": ["database"]}
    for turn in ("gracias!! y en la de sales, ¿cuántos artistas hay?", "ok now back to the sales db: how many?",
                 "and in the sales one?"):
        assert "database" not in router._default_database_named(decision, turn)["args"]
    assert router._default_database_named(decision, "what were total sales in 2023?") == decision


def test_an_earlier_database_named_by_its_short_name():
    url = "sqlite:///home/ana/shop.db"
    calls = ({"tool": "query_database", "args": {"question": "which category sells most?", "database": url}},
             {"tool": "query_database", "args": {"question": "how many playlists are there?"}})
    context = followup.ThreadContext(last_call=calls[-1], calls=calls)
    decision = {"tool": "query_database", "args": {"question": "how many orders were placed in march 2023?"}}
    named = router._thread_database_named(decision, "and in the shop one, how many orders were placed in march 2023?", context)
    assert named["args"]["database"] == url
    assert router._thread_database_named(decision, "and how many orders in march 2023?", context) == decision


class _ClassifierByText:
    """Scores by the text: the turn as typed and its rewrite read differently."""

    def __init__(self, ranked_by_text, otherwise):
        self.ranked_by_text, self.otherwise = ranked_by_text, otherwise

    def scores(self, text):
        return list(self.ranked_by_text.get(text, self.otherwise))


def test_a_turn_counting_in_one_tools_units_keeps_that_tool_when_the_rewrite_drifts(monkeypatch):
    turn = "once it finishes I want 9 samples out of it"
    joined = "please train the variational autoencoder for 15 epochs and then generate 9 samples from it"
    monkeypatch.setattr(router, "semantic_router", lambda: _ClassifierByText(
        {turn: [("generate_images", 0.57), ("none", 0.3), ("show_lesson", 0.13)]},
        [("train_model", 0.9), ("generate_images", 0.1)]))
    context = followup.ThreadContext(
        turns=("please train the variational autoencoder for 15 epochs", "while that runs, show me its lesson"),
        last_call={"tool": "show_lesson", "args": {"model": "vae"}}, last_request="while that runs, show me its lesson",
        calls=({"tool": "train_model", "args": {"model": "vae", "epochs": 15}}, {"tool": "show_lesson", "args": {"model": "vae"}}))
    decision = router.plan(turn, lambda: FakeChatModel(responses=[{"request": joined}]), context=context)
    assert decision["tool"] == "generate_images" and decision["args"] == {"model": "vae", "count": 9}
    assert router._tool_counting("and 2012?") is None and router._tool_counting("make it 10 epochs") == "train_model"


def test_a_turn_sure_of_its_own_tool_with_all_it_needs_is_not_joined_to_the_thread(monkeypatch):
    url = "https://www.youtube.com/watch?v=Tr6bW0xNq4M"
    turn = f"cool, also add his follow-up lecture {url}"
    joined = f"summarize the video on batch normalization and add the follow-up lecture {url}"
    monkeypatch.setattr(router, "semantic_router", lambda: _ClassifierByText(
        {turn: [("add_video", 0.93), ("summarize_video", 0.06), ("ask_video", 0.01)]},
        [("summarize_video", 0.8), ("add_video", 0.2)]))
    video = "https://www.youtube.com/watch?v=Qm7vR2sYw8E"
    context = followup.ThreadContext(
        turns=(f"summarize {video} for me", "does he mention layer norm at all"),
        last_call={"tool": "ask_video", "args": {"question": "does he mention layer norm at all", "video": video}},
        last_request="does he mention layer norm at all")
    decision = router.plan(turn, lambda: FakeChatModel(responses=[{"request": joined}]), context=context)
    assert decision["tool"] == "add_video" and decision["args"] == {"url_or_path": url}
    assert "standalone" not in decision
    # A question "has" its question: only a tool that needs a file, a link or a series qualifies.
    assert router._supplies_what_it_needs("add_video", turn)
    assert not router._supplies_what_it_needs("ask_video", "what does he say about dropout?")
    assert not router._supplies_what_it_needs("classify_pet", "and the other photo?")


@pytest.mark.parametrize("text,expected", [
    ("can you push it out 12 months?", {"steps": 12}),
    ("¿y para los próximos 6 meses?", {"steps": 6}),
    # The weeks the data already holds are not the weeks to forecast.
    ("here are the last fourteen weeks: 41, 38, 45, 47. Can you forecast the next three weeks?", {"steps": 3}),
    ("los últimos 12 meses fueron estos", {}),
])
def test_forecast_steps_counted_in_time_units(text, expected):
    assert followup.numbers_by_units("forecast", text) == expected


def test_value_words_are_not_counted_as_other_words():
    assert followup.changes_a_value("sin beam search, en modo voraz")
    assert not followup.changes_a_value("now greedy please thanks a lot my friend")


def test_a_question_after_a_summary_is_asked_of_the_same_video():
    video = "https://www.youtube.com/watch?v=zR5cW3yBq8d"
    context = followup.ThreadContext(turns=("perfecto, ahora dame un resumen por secciones",),
                                     last_call={"tool": "summarize_video", "args": {"video": video}},
                                     last_request="perfecto, ahora dame un resumen por secciones")
    turn = "¿y qué ejemplo usa para explicar el gradiente?"
    decision = router._same_tool_again(turn, turn, context)
    assert decision["tool"] == "ask_video" and decision["args"]["question"] == turn
    carried = followup.carry_over(decision, context, ["question"], refers=True, request=turn)
    assert carried["args"] == {"question": turn, "video": video}
    # Not a question: the summary again.
    assert router._same_tool_again("y ahora más corto", "y ahora más corto", context)["tool"] == "summarize_video"


@pytest.mark.parametrize("text,expected", [
    ("by department", True), ("por año", True), ("grouped by genre", True), ("per country?", True),
    ("by the way, thanks", False), ("translate this", False), ("how many by department?", False),
])
def test_a_grouping_alone_adds_to_the_last_question(text, expected):
    assert followup.adds_to_the_question(text) is expected


def test_a_grouping_alone_is_rewritten_into_the_question_it_adds_to(monkeypatch):
    monkeypatch.setattr(router, "semantic_router", lambda: _Classifier([("query_database", 0.98), ("none", 0.02)]))
    context = followup.ThreadContext(turns=("in the payroll database, whats the average salary?",),
                                     last_call={"tool": "query_database",
                                                "args": {"question": "whats the average salary?", "database": "payroll"}},
                                     last_request="in the payroll database, whats the average salary?")
    model = FakeChatModel(responses=[{"request": "what is the average salary by department?"}])
    decision = router.plan("by department", lambda: model, context=context)
    assert decision["args"] == {"question": "what is the average salary by department?", "database": "payroll"}
