"""English→Spanish seq2seq on real spa-eng pairs, tiny: decoding, scores, checkpoints, split."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from taller.trainers import engine, seq2seq
from taller.trainers.text import Vocab, detokenize, recurrent_threads, tokenize

TINY = dict(max_pairs=1500, max_length=8, epochs=2, batch_size=64, lr=5e-3, embedding_dim=32, hidden_size=48,
            test_sources=40, val_sources=30, beam_eval_sentences=8, patience=0)


@pytest.fixture(autouse=True)
def one_thread():
    """Small recurrent models run faster on one CPU thread (see text.recurrent_threads)."""
    with recurrent_threads("cpu"):
        yield


def tiny_model(cell="gru", attention="luong", seed=0):
    torch.manual_seed(seed)
    config = seq2seq.Config(cell=cell, attention=attention, embedding_dim=16, hidden_size=24, dropout=0.0)
    return seq2seq.Seq2Seq(30, 40, config).eval(), config


def test_tokenize_and_detokenize_spanish():
    tokens = tokenize("¿Qué hora es, Tom?", lower=True)
    assert tokens == ["¿", "qué", "hora", "es", ",", "tom", "?"]
    assert detokenize(tokens) == "¿Qué hora es, tom?"
    assert detokenize(["i", "don't", "know", "."]) == "I don't know."


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_luong_whole_sequence_equals_step_by_step(cell):
    model, _ = tiny_model(cell, "luong")
    src, src_len = torch.randint(4, 30, (3, 7)), torch.tensor([7, 5, 2])
    tgt_in = torch.randint(4, 40, (3, 6))
    with torch.no_grad():
        fast = model(src, src_len, tgt_in, teacher_forcing=1.0)
        values, keys, mask, state = model.encode(src, src_len)
        slow = []
        for t in range(tgt_in.shape[1]):
            logits, state, _ = model.decoder.step(tgt_in[:, t], state, values, keys, mask)
            slow.append(logits)
    assert torch.allclose(fast, torch.stack(slow, dim=1), atol=1e-5)


@pytest.mark.parametrize("cell,attention", [("gru", "luong"), ("gru", "bahdanau"), ("lstm", "bahdanau")])
def test_beam_of_one_is_greedy(cell, attention):
    model, _ = tiny_model(cell, attention, seed=3)
    for seed in range(4):
        generator = torch.Generator().manual_seed(seed)
        length = 3 + seed
        src = torch.randint(4, 30, (1, length), generator=generator)
        src_len = torch.tensor([length])
        greedy, _ = seq2seq.greedy_decode(model, src, src_len, bos=2, eos=3)
        beam, weights = seq2seq.beam_search(model, src, src_len, bos=2, eos=3, beam_size=1)
        assert beam == greedy[0]
        assert weights.shape[1] == length
        wide, _ = seq2seq.beam_search(model, src, src_len, bos=2, eos=3, beam_size=4)
        assert all(0 <= token < 40 and token not in (0, 2) for token in wide)


@pytest.mark.parametrize("cell,attention", [("lstm", "luong"), ("gru", "bahdanau")])
def test_loss_decreases_on_a_fixed_batch(cell, attention):
    model, config = tiny_model(cell, attention)
    model.train()
    src, src_len = torch.randint(4, 30, (8, 6)), torch.full((8,), 6)
    tgt = torch.randint(4, 40, (8, 6))
    tgt_in = torch.cat([torch.full((8, 1), 2), tgt[:, :-1]], dim=1)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    criterion = torch.nn.CrossEntropyLoss(ignore_index=0, label_smoothing=0.1)
    losses = []
    for _ in range(15):
        loss = criterion(model(src, src_len, tgt_in, teacher_forcing=0.5).reshape(-1, 40), tgt.reshape(-1))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] * 0.8


def test_scores_use_every_reference():
    refs = [["Tengo mucha hambre esta noche.", "Estoy muy hambriento esta noche."], ["¿Dónde está el gato negro?"]]
    perfect = seq2seq.score(["Estoy muy hambriento esta noche.", "¿Dónde está el gato negro?"], refs)
    assert perfect["bleu"] == pytest.approx(100.0) and perfect["chrf"] == pytest.approx(100.0)
    worse = seq2seq.score(["Estoy cansado esta mañana.", "¿Dónde está mi perro?"], refs)
    assert worse["bleu"] < 50 and worse["chrf"] < perfect["chrf"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory, spa_eng_data):
    """A tiny translator trained on 1,500 real short pairs (seconds), with its run folder."""
    data = spa_eng_data
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TALLER_HOME", str(tmp_path_factory.mktemp("seq2seq_home")))
        patch.setenv("TALLER_DATA_DIR", str(data))
        patch.setenv("TALLER_OFFLINE", "1")
        from taller.config import get_settings

        get_settings(reload=True)
        metrics = seq2seq.train(seq2seq.Config(**TINY))
    get_settings(reload=True)
    return metrics


def test_training_scores_and_saves_everything(trained):
    assert trained["last_loss"] < trained["first_loss"]
    for key in ("test_bleu_greedy", "test_chrf_greedy", "test_bleu_beam4", "test_chrf_beam4"):
        assert 0.0 <= trained[key] <= 100.0
    run_dir = Path(trained["run_dir"])
    assert (run_dir / "best.pt").is_file() and (run_dir / "attention.png").stat().st_size > 1000
    assert trained["images"] == [str(run_dir / "attention.png")]
    split = json.loads((run_dir / "split.json").read_text(encoding="utf-8"))
    assert len(split["test"]["sources"]) == trained["test_sentences"] == 40
    assert all(len(refs) >= 1 for refs in split["test"]["references"])


def test_held_out_sources_never_appear_in_training(data_dir):
    data = seq2seq.prepare(seq2seq.Config(**TINY))
    keys = data["split_sources"]
    assert not set(keys["test"]) & set(keys["train"])
    assert not set(keys["val"]) & set(keys["train"])
    # Every source of the test split keeps all of its Tatoeba translations as references.
    assert sum(len(r) for r in data["test"].references) >= len(data["test"].sources)


def test_checkpoint_round_trip_translates_identically(trained):
    translator = seq2seq.load(Path(trained["run_dir"]) / "best.pt")
    again = seq2seq.load(Path(trained["run_dir"]) / "best.pt")
    for sentence in ("I am hungry.", "Tom is here.", "Where is the cat?"):
        assert translator.translate(sentence, beam_size=1) == again.translate(sentence, beam_size=1)
        tokens = translator.source_tokens(sentence)
        greedy, _ = translator.translate_tokens(tokens, beam_size=1)
        src, src_len = translator._tensors(tokens)
        beam, _ = seq2seq.beam_search(translator.model, src, src_len, translator.tgt_vocab.bos_id,
                                      translator.tgt_vocab.eos_id, beam_size=1)
        assert translator.tgt_vocab.decode(beam) == greedy
    state = engine.load_checkpoint(Path(trained["run_dir"]) / "best.pt")
    assert Vocab(state["extra"]["tgt_vocab"]).tokens == translator.tgt_vocab.tokens
    assert state["config"]["hidden_size"] == 48


def test_bad_settings_are_clear_errors():
    with pytest.raises(ValueError, match="epochs"):
        seq2seq.train(seq2seq.Config(epochs=0))
    with pytest.raises(ValueError, match="attention"):
        seq2seq.train(seq2seq.Config(attention="dot-product"))


def test_log_probability_of_an_output_is_the_sum_of_its_decoding_steps():
    model, _ = tiny_model("gru", "bahdanau", seed=2)
    src, src_len = torch.randint(4, 30, (1, 5)), torch.tensor([5])
    greedy, _ = seq2seq.greedy_decode(model, src, src_len, bos=2, eos=3, max_len=6)
    output = greedy[0][:4]
    expected, previous = 0.0, torch.tensor([2])
    with torch.no_grad():
        values, keys, mask, state = model.encode(src, src_len)
        for t, token in enumerate([*output, 3]):
            logits, state, _ = model.decoder.step(previous, state, values, keys, mask)
            logits = logits.float()
            logits[:, 0] = logits[:, 2] = float("-inf")
            if t == 0:
                logits[:, 3] = float("-inf")
            expected += float(torch.log_softmax(logits, -1)[0, token])
            previous = torch.tensor([token])
    scored = seq2seq.sequence_log_probabilities(model, src, src_len, [output], bos=2, eos=3)
    assert scored.shape == (1,) and float(scored[0]) == pytest.approx(expected, abs=1e-4)


def test_lesson_dry_run_writes_its_record_and_no_checkpoint(data_dir):
    metrics = seq2seq.train(seq2seq.Config(lesson=True, dry_run=True))
    assert metrics["lesson"] == "Beam search against greedy decoding" and "BLEU" in metrics["claim"]
    assert isinstance(metrics["claim_held"], bool)
    figures = metrics["figures"]
    assert figures["beam_sizes"] == [1, 2, 4, 8]
    for key in ("bleu", "chrf", "mean_log_probability", "mean_length", "changed_from_greedy"):
        assert len(figures[key]) == 4
    assert figures["changed_from_greedy"][0] == 0.0 and all(value <= 0 for value in figures["mean_log_probability"])
    assert metrics["reading"] and metrics["reading_es"]
    (image,) = metrics["images"]
    assert Path(image).read_bytes().startswith(b"\x89PNG")
    run_dir = Path(metrics["run_dir"])
    record = json.loads((run_dir / "lesson.json").read_text(encoding="utf-8"))
    assert record["state"] == "finished" and list(record["experiments"]) == ["train and decode"]
    assert not (run_dir / "best.pt").exists() and not (run_dir / "last.pt").exists()


def test_lesson_claim_compares_beam_four_with_greedy():
    figures = {"beam_sizes": [1, 2, 4, 8], "bleu": [18.4, 20.3, 20.8, 20.9], "chrf": [39.0, 40.5, 40.4, 40.3],
               "mean_log_probability": [-3.9, -3.6, -3.5, -3.45], "changed_from_greedy": [0.0, 0.29, 0.35, 0.37],
               "sentences": 600}
    assert seq2seq.lesson_claim_holds(figures)
    # Only beam 4 counts: a gain at beam 8 alone is not the claim.
    small_gain = {**figures, "bleu": [18.4, 18.9, 19.0, 20.0]}
    assert not seq2seq.lesson_claim_holds(small_gain)
    reading = seq2seq.lesson_reading(small_gain, held=False)
    assert "19.0" in reading["en"] and "18.4" in reading["es"] and "did not hold" in reading["en"]
