"""Tools over the video knowledge base: add a video, ask it questions, summarise it.

Thin wrappers around :mod:`taller.knowledge.videos`; chromadb and sentence-transformers are
imported only when a tool runs, and the chat model that answers and summarises is the agent's,
passed in explicitly. Results carry ``summary`` plus ``citations`` (``video``, ``start``,
``time``, ``url``, ``text``) so every interface can show clickable timestamps. Asking about or
summarising a video that is not added yet adds it first, in the same call (the result then has
``added``): users mean "summarise <URL>" as one request. ``add_video`` also takes a YouTube
playlist or channel URL or a folder of transcripts, and adds each video in it
(:func:`taller.knowledge.videos.ingest.add_many`: resumable, with progress per video).
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from taller.tools.registry import langchain_tool


class AddVideoArgs(BaseModel):
    url_or_path: str = Field(min_length=1, description=(
        "YouTube video URL or id, a transcript file (.vtt, .srt, .json), a YouTube playlist or channel URL, "
        "or a folder of transcript files."))


# What the LLM reads about `video`: a URL or file not added yet is fine, the tool adds it first,
# so "summarise <URL>" needs no separate add_video step.
_VIDEO_NOT_ADDED = ("A YouTube URL or id, or a .vtt/.srt/.json transcript file path, that is not added "
                    "yet is added first.")


class AskVideoArgs(BaseModel):
    question: str = Field(min_length=1, description="The question about the video(s).")
    video: str | None = Field(default=None, description=(
        "The video to ask about: an added video's id, title words or file name. "
        + _VIDEO_NOT_ADDED + " Default: all added videos."))


class SummarizeVideoArgs(BaseModel):
    video: str | None = Field(default=None, description=(
        "The video to summarise: an added video's id, title words or file name. "
        + _VIDEO_NOT_ADDED + " Default: the video added last."))


@langchain_tool("add_video", AddVideoArgs)
def add_video(url_or_path: str) -> dict:
    from taller.knowledge.videos.ingest import add_many, is_collection

    # A playlist (youtube.com/playlist?list=…), a channel (/@name, /channel/…, /c/…, /user/…) or a
    # folder adds every video in it, resumably; a watch URL with &list= is that one video.
    if is_collection(url_or_path):
        return add_many(url_or_path)
    from taller.knowledge.videos import add_video as add

    return add(url_or_path)


@langchain_tool("ask_video", AskVideoArgs)
def ask_video(question: str, video: str | None = None) -> dict:
    from taller.knowledge.videos import ask
    from taller.llm import get_chat_model

    return ask(question, video=video, model=get_chat_model())


@langchain_tool("summarize_video", SummarizeVideoArgs)
def summarize_video(video: str | None = None) -> dict:
    from taller.knowledge.videos import summarize
    from taller.llm import get_chat_model

    return summarize(video, model=get_chat_model())
