"""Bidirectional LSTM punctuation on real spa-eng sentences, tiny: tags, merge modes, uni vs bi."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from taller.progress import CancelledError
from taller.trainers import birnn, engine
from taller.trainers.text import Vocab

TINY = dict(max_sentences=1500, epochs=3, batch_size=64, lr=1e-2, embedding_dim=32, hidden_size=32, patience=0)


def test_tags_cover_spanish_opening_marks_and_case():
    words, before, after, case = birnn.tag_sentence("¿Dónde está Tom? ¡Corre, NASA!")
    assert words == ["dónde", "está", "tom", "corre", "nasa"]
    assert [birnn.BEFORE[b] for b in before] == ["¿", "", "", "¡", ""]
    assert [birnn.AFTER[a] for a in after] == ["", "", "?", ",", "!"]
    assert [birnn.CASE[c] for c in case] == ["capital", "lower", "capital", "capital", "upper"]
    assert birnn.apply_tags(words, before, after, case) == "¿Dónde está Tom? ¡Corre, NASA!"


def test_strip_text_keeps_words_of_any_script():
    assert birnn.strip_text("Hola, ¿qué tal?") == ["hola", "qué", "tal"]
    assert birnn.strip_text("東京 は 大きい") == ["東京", "は", "大きい"]
    assert birnn.strip_text("?!… ¿¡") == []


@pytest.mark.parametrize("merge_mode,features", [("concat", 16), ("sum", 8), ("mul", 8), ("ave", 8)])
def test_merge_modes_shape_the_features(merge_mode, features):
    model = birnn.Tagger(30, 8, 8, bidirectional=True, merge_mode=merge_mode)
    assert model.heads["after"].in_features == features
    logits = model(torch.randint(4, 30, (3, 6)), torch.tensor([6, 4, 1]))
    assert logits["before"].shape == (3, 6, 3) and logits["after"].shape == (3, 6, 5) and logits["case"].shape == (3, 6, 3)
    with pytest.raises(ValueError, match="merge_mode"):
        birnn.Tagger(30, 8, 8, merge_mode="max")


def test_only_the_bidirectional_model_sees_the_end_of_the_sentence():
    torch.manual_seed(0)
    words = torch.tensor([[5, 6, 7, 8]])
    changed = torch.tensor([[5, 6, 7, 9]])  # only the last word differs
    lengths = torch.tensor([4])
    for bidirectional, expect_change in ((True, True), (False, False)):
        model = birnn.Tagger(12, 8, 8, bidirectional=bidirectional).eval()
        first = model(words, lengths)["before"][0, 0]
        second = model(changed, lengths)["before"][0, 0]
        assert (not torch.allclose(first, second)) is expect_change


@pytest.fixture(scope="module")
def compared(tmp_path_factory, spa_eng_data):
    """Bi and uni taggers trained on 1,500 real sentences (a few seconds)."""
    data = spa_eng_data
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TALLER_HOME", str(tmp_path_factory.mktemp("birnn_home")))
        patch.setenv("TALLER_DATA_DIR", str(data))
        patch.setenv("TALLER_OFFLINE", "1")
        from taller.config import get_settings

        get_settings(reload=True)
        metrics = birnn.train(birnn.Config(compare=True, **TINY))
    get_settings(reload=True)
    return metrics


def test_training_learns_and_compares_uni_with_bi(compared):
    assert compared["last_loss"] < compared["first_loss"]
    comparison = compared["comparison"]
    assert set(comparison["bidirectional_f1"]) == {label for _, label in birnn.REPORTED}
    assert set(comparison["unidirectional_f1"]) == set(comparison["bidirectional_f1"])
    for label, gap in comparison["gap"].items():
        assert gap == pytest.approx(comparison["bidirectional_f1"][label] - comparison["unidirectional_f1"][label], abs=1e-3)
    # Even this tiny model learns where a sentence ends (the final "." dominates the data).
    assert comparison["bidirectional_f1"]["."] > 0.5
    run_dir = Path(compared["run_dir"])
    assert (run_dir / "best.pt").is_file()
    held_out = json.loads((run_dir / "split.json").read_text(encoding="utf-8"))["test"]
    assert len(held_out) == compared["sentences"]["test"]


def test_checkpoint_round_trip_gives_identical_output(tmp_path):
    torch.manual_seed(1)
    vocab = Vocab(["<pad>", "<unk>", "<s>", "</s>", "qué", "hora", "es", "what", "time", "is", "it"])
    config = birnn.Config(embedding_dim=8, hidden_size=8, merge_mode="ave")
    model = birnn.build_model(config, len(vocab), vocab.pad_id).eval()
    run = engine.Run.create("birnn", config)
    path = run.save_checkpoint(engine.cpu_state(model), None, 1, 0.5, extra={"vocab": vocab.tokens}, name="best.pt")
    loaded, loaded_vocab, loaded_config = birnn.load(path)
    assert loaded_vocab.tokens == vocab.tokens and loaded_config.merge_mode == "ave"
    ids, lengths = torch.tensor([[4, 5, 6, 1]]), torch.tensor([4])
    with torch.no_grad():
        for head in birnn.HEADS:
            assert torch.equal(model(ids, lengths)[head], loaded(ids, lengths)[head])
    assert birnn.restore(model, vocab, "qué hora es")[0] == birnn.restore(loaded, loaded_vocab, "qué hora es")[0]


def test_restore_truncates_long_text_and_handles_empty():
    vocab = Vocab(["<pad>", "<unk>", "<s>", "</s>", "hola"])
    model = birnn.Tagger(len(vocab), 8, 8)
    text, truncated = birnn.restore(model, vocab, "hola " * 300, max_words=50)
    assert truncated and len(text.split()) == 50
    assert birnn.restore(model, vocab, "  ...  ") == ("", False)


def test_cancelled_run_stops_with_a_checkpoint(data_dir):
    event = __import__("threading").Event()
    event.set()
    with pytest.raises(CancelledError):
        birnn.train(birnn.Config(dry_run=True, embedding_dim=16, hidden_size=16), cancel_event=event)
    run = engine.list_runs("birnn")[0]
    assert run["state"] == "cancelled" and "last.pt" in run["checkpoints"]
    resumed = birnn.train(birnn.Config(dry_run=True, embedding_dim=16, hidden_size=16, resume=True))
    assert resumed["run_id"] == run["run_id"] and (Path(resumed["run_dir"]) / "best.pt").is_file()


def test_bad_settings_are_clear_errors():
    with pytest.raises(ValueError, match="epochs"):
        birnn.train(birnn.Config(epochs=0))
    with pytest.raises(ValueError, match="merge_mode"):
        birnn.train(birnn.Config(merge_mode="concatenate"))


def test_lesson_dry_run_writes_its_record_and_no_checkpoint(data_dir):
    metrics = birnn.train(birnn.Config(lesson=True, dry_run=True))
    assert metrics["lesson"] == "The bidirectional gain" and "." in metrics["claim"]
    assert isinstance(metrics["claim_held"], bool)
    figures = metrics["figures"]
    labels = {label for _, label in birnn.REPORTED}
    assert set(figures["bidirectional_f1"]) == set(figures["forward_f1"]) == labels
    assert figures["gap"]["."] == pytest.approx(figures["bidirectional_f1"]["."] - figures["forward_f1"]["."], abs=1e-3)
    assert metrics["reading"] and metrics["reading_es"]
    (image,) = metrics["images"]
    assert Path(image).read_bytes().startswith(b"\x89PNG")
    run_dir = Path(metrics["run_dir"])
    record = json.loads((run_dir / "lesson.json").read_text(encoding="utf-8"))
    assert record["state"] == "finished" and set(record["experiments"]) == {"bidirectional", "forward-only"}
    assert not (run_dir / "best.pt").exists() and not (run_dir / "last.pt").exists()


def test_lesson_claim_needs_the_gap_on_every_final_mark():
    labels = [label for _, label in birnn.REPORTED]
    forward = dict.fromkeys(labels, 0.5)
    holds = {"bidirectional_f1": {**forward, ".": 0.95, "?": 0.75}, "forward_f1": forward}
    assert birnn.lesson_claim_holds(holds)
    # A large gain on "." alone is not the claim: "?" must gain as much.
    fails = {"bidirectional_f1": {**forward, ".": 0.95, "?": 0.6}, "forward_f1": forward}
    assert not birnn.lesson_claim_holds(fails)
    reading = birnn.lesson_reading({**fails, "gap": birnn.lesson_gaps(fails)}, held=False)
    assert "0.95" in reading["en"] and "0.60" in reading["es"]
