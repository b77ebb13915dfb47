"""The servers some tests run against: PostgreSQL and a Chroma server (``chroma run``).

`.ci/run` starts both with ``scripts/services`` before the suite and exports their URLs
(``TALLER_TEST_POSTGRES_URL``, ``TALLER_TEST_CHROMA_URL``). When a URL is set, the tests that
need that server run against it and fail if it is unusable: CI said it is there. When it is not
set (a developer's machine), the tests start their own with the same script, for the session,
where the programs exist; otherwise they skip, saying what is missing.

A plain module (like ``real_data``), so ``conftest.py`` only holds the fixtures.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "services"
VARIABLES = {"postgres": "TALLER_TEST_POSTGRES_URL", "chroma": "TALLER_TEST_CHROMA_URL"}


@dataclass
class Server:
    """A server's URL, or why there is none; ``folder`` is set when the tests started it."""

    name: str
    url: str | None
    reason: str
    folder: Path | None = None

    def stop(self) -> None:
        """Stop a server these tests started (one CI started is CI's to stop)."""
        if self.folder is None:
            return
        subprocess.run(["bash", str(SCRIPT), "stop", str(self.folder)], capture_output=True, timeout=120)
        shutil.rmtree(self.folder, ignore_errors=True)
        self.folder = None


def read_env(path: Path) -> dict[str, str]:
    """The ``export NAME=value`` lines of the env file ``scripts/services start`` writes."""
    values = {}
    if path.is_file():
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.startswith("export ") and "=" in line:
                name, value = line[len("export "):].split("=", 1)
                values[name.strip()] = value.strip()
    return values


def start(name: str, own: bool = False) -> Server:
    """The server ``name`` ("postgres" or "chroma") from the environment, else started here;
    ``own``: always a new one, which the caller may stop (a test of a server going away)."""
    variable = VARIABLES[name]
    configured = os.environ.get(variable)
    if configured and not own:
        return Server(name, configured, f"{variable} (started by CI)")
    # Under /tmp, not pytest's 0700 folder: PostgreSQL runs as another user when we are root.
    folder = Path(tempfile.mkdtemp(prefix=f"taller-{name}-"))
    try:
        done = subprocess.run(["bash", str(SCRIPT), "start", str(folder), name], capture_output=True,
                              text=True, timeout=180)
    except subprocess.TimeoutExpired:
        done = None
    url = read_env(folder / "env").get(variable)
    if url:
        return Server(name, url, "started by the tests with scripts/services", folder)
    server = Server(name, None, "", folder)
    server.stop()
    said = (done.stderr.strip().splitlines() or ["no reason given"])[-1] if done else "it did not start in 180 s"
    server.reason = (f"{'' if own else variable + ' is not set and '}scripts/services could not start "
                     f"{name}: {said}")
    return server
