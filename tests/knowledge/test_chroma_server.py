"""Chroma as a server: the video and SQL knowledge kept on a real ``chroma run`` server
(``chroma_url``) give exactly what the embedded store gives, and a server that cannot be reached
is a clear error naming its URL, after which the process goes on serving.

The server is CI's (``TALLER_TEST_CHROMA_URL``, started by ``.ci/run``) or one the tests start
(``tests/services.py``). Each test works in a database of its own on that server
(``chroma_url = http://host:port/?database=NAME``), deleted afterwards, so tests never see each
other's collections. Each scenario runs twice in one test, in two fresh Taller homes: once on
the embedded store, once on the server; the ids, their order and the answers must be the same.
"""

from __future__ import annotations

import re
import socket
import sqlite3
import shutil
import uuid

import pytest

from taller.config import get_settings
from taller.llm import FakeChatModel, use_chat_model
from taller.knowledge import fulltext, retrieval, store, videos
from taller.knowledge import sql as sqlmod
from taller.knowledge.transcripts import cues_from_text
from test_videos_rag import human_text, remembered_embeddings, speech_text, write_transcript  # noqa: F401

import services


def admin_client(url: str):
    import chromadb
    from chromadb.config import Settings

    address = store.server_address(url)
    return chromadb.AdminClient(Settings(
        anonymized_telemetry=False, chroma_api_impl="chromadb.api.fastapi.FastAPI",
        chroma_server_host=address["host"], chroma_server_http_port=address["port"]))


@pytest.fixture
def chroma_database(chroma_server):
    """``chroma_url`` of a fresh database on the server, deleted after the test."""
    name = f"taller_test_{uuid.uuid4().hex[:12]}"
    yield f"{chroma_server}/?database={name}"
    store._clients.clear()
    try:
        admin_client(chroma_server).delete_database(name)
    except Exception:  # never created (the test failed before) or the server is gone
        pass


@pytest.fixture
def switch_store(monkeypatch, tmp_path_factory):
    """Point Taller at the embedded store (None) or a server URL, in a fresh home each time:
    the transcript catalog and the full-text index live in the home, as on a new machine."""

    def switch(url: str | None):
        monkeypatch.setenv("TALLER_HOME", str(tmp_path_factory.mktemp("home")))
        if url:
            monkeypatch.setenv("TALLER_CHROMA_URL", url)
        else:
            monkeypatch.delenv("TALLER_CHROMA_URL", raising=False)
        get_settings(reload=True)
        fulltext.close()
        store._clients.clear()

    yield switch
    fulltext.close()
    store._clients.clear()


QUERIES = ["Which robot was assembled out of recycled bottle caps?",
           "What did the president say about the economy and jobs?",
           "space exploration and the moon",
           "¿Qué dijo sobre la salud?"]


@pytest.fixture(scope="module")
def transcripts(tmp_path_factory):
    """Two transcript files, the same for both stores (a file's video key comes from its path)."""
    folder = tmp_path_factory.mktemp("transcripts")
    planted = write_transcript(folder, "State of the Union 2014 [Obama2014ab].en.vtt",
                               cues_from_text(speech_text("2014-Obama-1", 700, plant=True)))
    other = write_transcript(folder, "kennedy-1962.srt", cues_from_text(speech_text("1962-Kennedy-1", 400)))
    return planted, other


def video_scenario(planted, other) -> dict:
    """Add two transcripts, search and ask; everything that depends on the store."""
    from taller.embeddings import embed

    added = [videos.add_video(str(planted)), videos.add_video(str(other))]
    collection = videos.get_video_collection()
    out = {"chunks": [a["chunks"] for a in added], "ids": sorted(collection.get(include=[])["ids"]),
           "dense": {}, "hybrid": {}, "answers": []}
    for query in QUERIES:
        vector = embed([query])[0]
        nearest = collection.query(query_embeddings=[vector.tolist()], n_results=10, include=["distances"])
        out["dense"][query] = (nearest["ids"][0], nearest["distances"][0])
        out["hybrid"][query] = [hit.id for hit in retrieval.search(collection, query, vector, k=5)]
    prompts = []

    def reply(messages):
        prompts.append(human_text(messages))
        return {"excerpt": 1, "answer": "It was built from 1,200 recycled bottle caps."}

    with use_chat_model(FakeChatModel(default=reply)):
        for question, video in [(QUERIES[0], None), (QUERIES[1], "kennedy-1962.srt")]:
            answer = videos.ask(question, video=video)
            out["answers"].append((answer["answered"], answer["summary"],
                                   [(c["video"], c["start"]) for c in answer["citations"]]))
    out["prompts"] = prompts
    return out


def test_video_knowledge_on_the_server_equals_the_embedded_store(chroma_database, switch_store, transcripts):
    switch_store(None)
    embedded = video_scenario(*transcripts)
    switch_store(chroma_database)
    served = video_scenario(*transcripts)

    assert served["chunks"] == embedded["chunks"] and sum(served["chunks"]) >= 8
    assert served["ids"] == embedded["ids"]
    for query in QUERIES:
        assert served["dense"][query][0] == embedded["dense"][query][0], query
        assert served["dense"][query][1] == pytest.approx(embedded["dense"][query][1], abs=1e-5), query
        assert served["hybrid"][query] == embedded["hybrid"][query], query
    assert served["answers"] == embedded["answers"] and served["answers"][0][0]
    assert served["prompts"] == embedded["prompts"]
    # The chunks really are on the server, in this test's database, and nowhere else.
    import chromadb

    address = store.server_address(chroma_database)
    direct = chromadb.HttpClient(host=address["host"], port=address["port"], database=address["database"])
    assert direct.get_collection("videos").count() == len(served["ids"])
    assert not (get_settings().home / "chroma").exists()


WIDE_TABLES = {  # five more tables: 16 in all, so the schema is retrieved from Chroma, not sent whole
    "Supplier": "SupplierId INTEGER PRIMARY KEY, CompanyName NVARCHAR(80), Country NVARCHAR(40)",
    "Warehouse": "WarehouseId INTEGER PRIMARY KEY, City NVARCHAR(40), Capacity INTEGER",
    "Shipment": "ShipmentId INTEGER PRIMARY KEY, InvoiceId INTEGER REFERENCES Invoice(InvoiceId), "
                "WarehouseId INTEGER REFERENCES Warehouse(WarehouseId), ShippedDate DATETIME, Carrier NVARCHAR(40)",
    "Review": "ReviewId INTEGER PRIMARY KEY, TrackId INTEGER REFERENCES Track(TrackId), "
              "CustomerId INTEGER REFERENCES Customer(CustomerId), Stars INTEGER, Comment NVARCHAR(200)",
    "Coupon": "CouponId INTEGER PRIMARY KEY, Code NVARCHAR(20), Discount NUMERIC(4,2), ValidUntil DATETIME",
}
SQL_QUESTIONS = ["Which carrier shipped the most invoices from each warehouse?",
                 "Average review stars per genre",
                 "How many customers per country?",
                 "Which suppliers are in Germany?"]


@pytest.fixture
def wide_database(tmp_path, real_data_dir, monkeypatch):
    """Chinook plus five tables (16 > FULL_SCHEMA_TABLES), configured as database "wide"."""
    path = tmp_path / "wide.sqlite"
    shutil.copyfile(real_data_dir / "Chinook_Sqlite.sqlite", path)
    connection = sqlite3.connect(path)
    for table, columns in WIDE_TABLES.items():
        connection.execute(f"CREATE TABLE {table} ({columns})")
    connection.execute("INSERT INTO Supplier VALUES (1, 'Tonträger GmbH', 'Germany'), (2, 'Discos SA', 'Chile')")
    connection.commit()
    connection.close()
    assert 11 + len(WIDE_TABLES) > sqlmod.FULL_SCHEMA_TABLES
    return path


def sql_scenario(path, monkeypatch) -> dict:
    monkeypatch.setenv("TALLER_DATABASES", '{"wide": "sqlite:///%s"}' % path)
    get_settings(reload=True)
    db = sqlmod.connect("wide")
    out = {"indexed": sqlmod.index_schema(db)}
    sqlmod.remember_example("How many customers are there in each country?",
                            "SELECT Country, COUNT(*) AS customers FROM Customer GROUP BY Country ORDER BY 2 DESC",
                            "wide")
    sqlmod.add_documentation("A shipment leaves one warehouse for one invoice; Carrier is the courier's name.", "wide")
    sqlmod.add_documentation("Review.Stars goes from 1 to 5.", "wide")
    contexts = [sqlmod.retrieve(db, question) for question in SQL_QUESTIONS]
    out["contexts"] = [(c.tables, c.examples, c.documentation) for c in contexts]
    prompts = []

    def reply(messages):
        prompts.append("\n".join(str(m.content) for m in messages))
        return {"sql": "SELECT CompanyName FROM Supplier WHERE Country = 'Germany'"}

    with use_chat_model(FakeChatModel(responses=[reply])):
        answer = sqlmod.ask(SQL_QUESTIONS[3], "wide")
    out["answer"] = answer["rows"]
    out["prompts"] = prompts
    return out


def test_sql_knowledge_on_the_server_equals_the_embedded_store(chroma_database, switch_store, wide_database,
                                                               monkeypatch):
    switch_store(None)
    embedded = sql_scenario(wide_database, monkeypatch)
    switch_store(chroma_database)
    served = sql_scenario(wide_database, monkeypatch)

    assert served["indexed"] == embedded["indexed"] == 16
    assert served["contexts"] == embedded["contexts"]
    tables, examples, docs = served["contexts"][0]
    assert "Shipment" in tables and "Warehouse" in tables and len(tables) < 16  # retrieved, not all
    assert served["contexts"][2][1] == [("How many customers are there in each country?",
                                         served["contexts"][2][1][0][1])]  # the remembered example
    assert any("Carrier" in note for note in docs)
    assert served["answer"] == embedded["answer"] == [["Tonträger GmbH"]]
    assert served["prompts"] == embedded["prompts"]


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]  # nothing listens once the probe is closed


def test_an_unreachable_server_is_a_clear_error_and_serving_goes_on(switch_store, chroma_database, transcripts,
                                                                     caplog):
    from taller.tools import run_tool

    transcript = transcripts[1]
    nowhere = f"http://127.0.0.1:{closed_port()}"
    switch_store(nowhere)
    calls = [("add_video", {"url_or_path": str(transcript)}),
             ("ask_video", {"question": "What did he say about the economy?"}),
             ("summarize_video", {}),
             ("query_database", {"question": "How many albums are there?"})]
    for tool, args in calls:
        with use_chat_model(FakeChatModel(default=lambda messages: {"sql": "SELECT COUNT(*) FROM Album"})):
            out = run_tool(tool, args)
        assert nowhere in out.get("error", ""), (tool, out)
        assert "cannot reach the Chroma server" in out["error"] and "Traceback" not in out["error"], tool
    assert "Traceback" not in caplog.text
    with pytest.raises(store.ChromaUnavailableError, match=re.escape(nowhere)):
        store.server_status()  # what `taller doctor` can show
    # The same process, pointed at a server that answers, works: nothing of the failure stayed.
    switch_store(chroma_database)
    added = run_tool("add_video", {"url_or_path": str(transcript)})
    assert "error" not in added and added["chunks"] > 0
    assert re.search(r"database 'taller_test_\w+': 1 collection$", store.server_status())


def test_a_server_that_goes_away_is_named_in_the_error(switch_store, transcripts):
    from taller.tools import run_tool

    own = services.start("chroma", own=True)
    if own.url is None:
        pytest.skip(own.reason)
    try:
        switch_store(own.url)
        assert run_tool("add_video", {"url_or_path": str(transcripts[1])})["chunks"] > 0
    finally:
        own.stop()
    with use_chat_model(FakeChatModel(default=lambda messages: {"excerpt": 1, "answer": "x"})):
        out = run_tool("ask_video", {"question": "What did he say about the economy?"})
    assert own.url in out.get("error", "") and "cannot reach the Chroma server" in out["error"], out
