"""Tools over the sequence trainers: forecast a series, restore punctuation, translate."""

from __future__ import annotations

from langchain_core.tools import tool
from pydantic import BaseModel, Field

from taller.tools.base import not_available


class ForecastArgs(BaseModel):
    values: list[float] | str = Field(description="The series so far (numbers), or the path of a CSV file.")
    steps: int = Field(default=5, ge=1, le=365, description="How many future values to predict.")


class PunctuateArgs(BaseModel):
    text: str = Field(description="English or Spanish text without punctuation or capitals.")


class TranslateArgs(BaseModel):
    text: str = Field(description="English text to translate into Spanish.")
    beam_size: int = Field(default=4, ge=1, le=16, description="Beam search width (1 = greedy).")


@tool("forecast", args_schema=ForecastArgs)
def forecast(values: list[float] | str, steps: int = 5) -> dict:
    """Predict the next values of a numeric time series with a recurrent (LSTM/GRU) model."""
    return not_available("forecast", "the RNN forecaster is being built")


@tool("punctuate", args_schema=PunctuateArgs)
def punctuate(text: str) -> dict:
    """Restore punctuation and capital letters (including Spanish ¿ and ¡) with a bidirectional LSTM."""
    return not_available("punctuate", "the bidirectional LSTM is being built")


@tool("translate", args_schema=TranslateArgs)
def translate(text: str, beam_size: int = 4) -> dict:
    """Translate English text into Spanish with the seq2seq attention model and beam search."""
    return not_available("translate", "the translation model is being built")
