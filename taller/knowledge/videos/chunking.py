"""Cutting a transcript into time windows: the unit that is embedded, retrieved and cited.

Each chunk keeps its start and end, so a retrieved chunk becomes a timestamp; consecutive chunks
overlap so that a sentence cut by one window is whole in the next.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from taller.config import get_settings
from taller.errors import ToolError
from taller.knowledge.transcripts import Cue, Transcript


@dataclass
class Chunk:
    """A time window of a transcript, the unit that is embedded and retrieved."""

    index: int
    start: float
    end: float
    text: str


def chunk_cues(cues: Sequence[Cue], seconds: float, overlap: float) -> list[Chunk]:
    """Group cues into windows of ``seconds`` that start every ``seconds - overlap`` seconds.

    A window holds every cue that starts inside it (a cue is never cut, so a chunk may end a
    little after the window); the next window starts at the first cue at or after
    ``window start + step``, so consecutive chunks share about ``overlap`` seconds of speech.
    """
    import bisect

    if seconds <= 0:
        raise ToolError(f"chunk_seconds must be positive, got {seconds}")
    if overlap < 0 or overlap >= seconds:
        raise ToolError(f"chunk_overlap_seconds must be between 0 and chunk_seconds ({seconds}), got {overlap}")
    cues = sorted(cues, key=lambda cue: cue.start)
    starts = [cue.start for cue in cues]
    step = seconds - overlap
    chunks: list[Chunk] = []
    i = 0
    while i < len(cues):
        window_start = cues[i].start
        j = bisect.bisect_left(starts, window_start + seconds, lo=i + 1)
        members = cues[i:j]
        chunks.append(Chunk(len(chunks), members[0].start, max(cue.end for cue in members),
                            " ".join(cue.text for cue in members)))
        if j >= len(cues):
            break
        i = max(i + 1, bisect.bisect_left(starts, window_start + step, lo=i))
    return chunks


def chunk_transcript(transcript: Transcript, seconds: float | None = None,
                     overlap: float | None = None) -> list[Chunk]:
    """:func:`chunk_cues` with the configured ``chunk_seconds`` and ``chunk_overlap_seconds``."""
    settings = get_settings()
    return chunk_cues(transcript.cues, settings.chunk_seconds if seconds is None else seconds,
                      settings.chunk_overlap_seconds if overlap is None else overlap)
