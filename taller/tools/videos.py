"""Tools over the video knowledge base: add a video, ask it questions, summarise it."""

from __future__ import annotations

from langchain_core.tools import tool
from pydantic import BaseModel, Field

from taller.tools.base import not_available


class AddVideoArgs(BaseModel):
    url_or_path: str = Field(min_length=1, description="YouTube URL or id, or a transcript file (.vtt, .srt, .json).")


class AskVideoArgs(BaseModel):
    question: str = Field(min_length=1, description="The question about the video(s).")
    video: str | None = Field(default=None, description="Video id or title to restrict to; default all videos.")


class SummarizeVideoArgs(BaseModel):
    video: str | None = Field(default=None, description="Video id or title; default the last added video.")


@tool("add_video", args_schema=AddVideoArgs)
def add_video(url_or_path: str) -> dict:
    """Add a YouTube video (or a local transcript file) to the video knowledge base."""
    return not_available("add_video", "the video knowledge base is being built")


@tool("ask_video", args_schema=AskVideoArgs)
def ask_video(question: str, video: str | None = None) -> dict:
    """Answer a question from the transcripts of added videos, citing timestamps."""
    return not_available("ask_video", "the video knowledge base is being built")


@tool("summarize_video", args_schema=SummarizeVideoArgs)
def summarize_video(video: str | None = None) -> dict:
    """Summarise a whole video section by section, with timestamps."""
    return not_available("summarize_video", "the video knowledge base is being built")
