"""Tool over the pretrained face models: emotion and age of every face in a photo."""

from __future__ import annotations

from pydantic import BaseModel, Field

from taller.tools.registry import langchain_tool


class AnalyzeFaceArgs(BaseModel):
    image_path: str = Field(min_length=1, description="Path of a photo with one or more faces.")


@langchain_tool("analyze_face", AnalyzeFaceArgs)
def analyze_face(image_path: str) -> dict:
    # Imported here: the vision stack (cv2, dlib, torch, onnxruntime) is heavy and only
    # needed when a face is actually analysed.
    from taller.vision.faces import analyze_faces

    return analyze_faces(image_path)
