"""Tools over the image trainers: train a model, list runs, classify a pet, generate images."""

from __future__ import annotations

from typing import Literal

from langchain_core.tools import tool
from pydantic import BaseModel, Field

from taller.tools.base import not_available

ModelName = Literal["dense_classifier", "autoencoder", "rnn", "birnn", "seq2seq", "vae", "pix2pix"]


class TrainModelArgs(BaseModel):
    model: ModelName = Field(description="Which workshop model to train.")
    epochs: int | None = Field(default=None, ge=1, le=1000, description="Number of epochs; default: the model's own.")


class ListModelsArgs(BaseModel):
    pass


class ClassifyPetArgs(BaseModel):
    image_path: str = Field(min_length=1, description="Path of an image file (any size).")


class GenerateImagesArgs(BaseModel):
    model: Literal["autoencoder", "vae", "pix2pix"] = Field(description="Generative model to use.")
    count: int | None = Field(default=None, ge=1, le=64, description="How many images.")
    image_path: str | None = Field(default=None, description="Optional input image (autoencoder, pix2pix).")


@tool("train_model", args_schema=TrainModelArgs)
def train_model(model: str, epochs: int | None = None) -> dict:
    """Train one of the workshop models in the background and return its run id.

    Models: dense_classifier (cats vs dogs MLP on CIFAR-10), autoencoder (MNIST), rnn
    (RNN/LSTM/GRU memory and forecasting), birnn (bidirectional LSTM punctuation), seq2seq
    (English to Spanish translation), vae (variational autoencoder), pix2pix (image-to-image GAN).
    """
    return not_available("train_model", "the trainers are being built")


@tool("list_models", args_schema=ListModelsArgs)
def list_models() -> dict:
    """List training runs (running and finished) with their metrics and checkpoints."""
    return not_available("list_models", "the trainers are being built")


@tool("classify_pet", args_schema=ClassifyPetArgs)
def classify_pet(image_path: str) -> dict:
    """Say whether the photo shows a cat or a dog, with the probability (trained MLP)."""
    return not_available("classify_pet", "the cats-vs-dogs classifier is being built")


@tool("generate_images", args_schema=GenerateImagesArgs)
def generate_images(model: str, count: int | None = None, image_path: str | None = None) -> dict:
    """Generate images: autoencoder reconstructions, VAE samples, or pix2pix translations."""
    return not_available("generate_images", "the generative models are being built")
