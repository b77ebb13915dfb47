"""The video knowledge base: add transcripts, answer questions with cited timestamps, summarise.

* :func:`add_video` — a YouTube URL/id or a ``.vtt``/``.srt``/``.json`` file → transcript →
  time-window chunks (``chunk_seconds`` with ``chunk_overlap_seconds`` of overlap, each keeping
  its start and end) → MiniLM embeddings → the Chroma collection. Chunk ids are
  ``<video>:<n>``, so adding the same video again changes nothing; a changed transcript or chunk
  setting replaces the old chunks. The transcript itself is kept as JSON under
  ``$TALLER_HOME/videos/`` for summaries and for re-indexing with another embedding model.
* :func:`ask` / :func:`summarize` with a ``video`` that is a YouTube URL/id or a transcript
  file not added yet add it first (:func:`resolve_or_add`; same progress, cancel and errors as
  :func:`add_video`), and their result carries ``added``: users mean "summarise <URL>" as one
  request. A video already added is never re-added.
* :func:`ask` — retrieval (dense + full-text BM25, de-duplicated, optionally one video; a
  question in the other language than the transcript is translated for the search) → the chat
  model passed in (the tool passes the agent's) answers in a JSON schema: the excerpt that
  answers and one or two sentences stating the fact in the question's language. The reply is
  checked (citations only, empty, cut off, numbers the excerpts do not say), retried once, else
  replaced by the best passage quoted, or declined when that passage is far from the question.
  The citation (``https://youtu.be/<id>?t=<s>`` or ``mm:ss`` and the file) follows the answer,
  at the passage that says it. Below a similarity threshold the LLM is not even asked; a decline
  always quotes the closest passage.
* :func:`summarize` — map-reduce over the whole transcript: bounded sections → one summary
  each (map), consecutive summaries combined in bounded batches until they fit (hierarchical
  reduce), then an overview; every section's timestamp is where its summary is said. Each LLM
  prompt stays under a character budget derived from the model's context, so multi-hour videos
  never overflow it.

One module per concern: :mod:`.chunking` (time windows), :mod:`.library` (Chroma, the catalog of
saved transcripts, adding, finding a video), :mod:`.answer` (questions and citations) and
:mod:`.summary` (map-reduce). The answering modules take the chat model as a parameter. The
names below are the package's API.
"""

from taller.knowledge.videos.answer import (
    MIN_SCORE,
    TOP_K,
    ask,
    citation,
    cite_text,
    context_budget,
)
from taller.knowledge.videos.chunking import Chunk, chunk_cues, chunk_transcript
from taller.knowledge.videos.library import (
    COLLECTION,
    add_transcript,
    add_video,
    check_cancelled,
    collection_name,
    ensure_indexed,
    get_video_collection,
    list_videos,
    load_saved,
    resolve_or_add,
    resolve_video,
    with_added,
)
from taller.knowledge.videos.summary import split_sections, summarize, summarize_transcript

__all__ = [
    "COLLECTION", "MIN_SCORE", "TOP_K", "Chunk", "add_transcript", "add_video", "ask",
    "check_cancelled", "chunk_cues", "chunk_transcript", "citation", "cite_text", "collection_name",
    "context_budget", "ensure_indexed", "get_video_collection", "list_videos", "load_saved",
    "resolve_or_add", "resolve_video", "split_sections", "summarize", "summarize_transcript", "with_added",
]
