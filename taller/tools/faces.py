"""Tool over the pretrained face models: emotion and age of every face in a photo."""

from __future__ import annotations

from langchain_core.tools import tool
from pydantic import BaseModel, Field


class AnalyzeFaceArgs(BaseModel):
    image_path: str = Field(min_length=1, description="Path of a photo with one or more faces.")


@tool("analyze_face", args_schema=AnalyzeFaceArgs)
def analyze_face(image_path: str) -> dict:
    """Find every face in a photo and estimate its emotion (with probabilities) and age.

    Returns one entry per face with its box, emotion label and class probabilities, an age
    estimate with a likely range, and the path of an annotated copy of the photo. A photo
    without faces is a normal answer, not an error.

    Args:
        image_path: Path of the photo (JPEG, PNG, ...) on this computer.
    """
    # Imported here: the vision stack (cv2, dlib, torch, onnxruntime) is heavy and only
    # needed when a face is actually analysed.
    from taller.vision.faces import analyze_faces

    return analyze_faces(image_path)
