"""The packaged emotion model: PyEmotion's ``NetworkV2`` (MIT), run in numpy.

A small CNN trained on FER-2013-style 48x48 grayscale faces with seven classes. Its weights
ship inside the ``PyEmotion`` package (installed ``--no-deps`` by scripts/bootstrap).
"""

from __future__ import annotations

import contextlib
import importlib.util
from pathlib import Path
from typing import Sequence

import numpy as np

from taller.vision.face_models.base import Detection, FaceModelError, _as_distribution, _face_crop, _LazyModel

# FER-2013 order, which PyEmotion's output layer follows.
PYEMOTION_LABELS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")


def _pyemotion_root() -> Path:
    spec = importlib.util.find_spec("PyEmotion")
    if spec is None or not spec.submodule_search_locations:
        raise FaceModelError(
            "the PyEmotion package is not installed; run scripts/bootstrap or "
            "`pip install --no-deps PyEmotion==1.0.0`"
        )
    return Path(list(spec.submodule_search_locations)[0])


def _conv_block(x: np.ndarray, layer: dict[str, np.ndarray], stride: int) -> np.ndarray:
    """ReflectionPad2d(1) -> Conv2d(3x3, stride) -> BatchNorm2d (eval) -> ReLU.

    Activations stay channels-last (N, H, W, C) so the im2col copy reads memory in order and
    the matmul result is already the next layer's input, with no transpose.
    """
    from numpy.lib.stride_tricks import sliding_window_view

    padded = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)), mode="reflect")
    windows = sliding_window_view(padded, (3, 3), axis=(1, 2))[:, ::stride, ::stride]  # N, Ho, Wo, C, 3, 3
    batch, out_h, out_w = windows.shape[:3]
    columns = windows.reshape(batch * out_h * out_w, -1)  # rows ordered (C, kh, kw) like torch's weight
    out = columns @ layer["weight"]
    out += layer["shift"]
    np.maximum(out, 0, out=out)
    return out.reshape(batch, out_h, out_w, -1)


class PyEmotionModel(_LazyModel):
    """PyEmotion's ``NetworkV2`` on 48x48 grayscale crops (MIT licence).

    The network ends in a sigmoid per class (not a softmax), and a single crop gives very
    confident, crop-sensitive answers. So each face is scored on six views (three margins
    around the box, each mirrored), each view's scores are normalised to sum to one, and
    the views are averaged: the result is a distribution that admits doubt when the views
    disagree.

    The forward pass runs in numpy on one BLAS thread (four conv blocks and two linear
    layers, batch norm folded into the convolutions; ``tests/vision`` checks it against
    PyEmotion's own torch module). Why: the network is tiny, and a multi-threaded pool
    (torch's or OpenBLAS's) made one face take ~300 ms instead of ~25 ms on a busy 2-core
    machine. torch's thread count is process-wide and shared with training runs, so it is
    not ours to change; OpenBLAS's is limited only for the duration of the call
    (threadpoolctl). torch is used only to read the checkpoint.
    """

    name = "pyemotion"
    labels = PYEMOTION_LABELS
    margins = (0.0, 0.1, 0.2)
    strides = (1, 2, 2, 2)  # conv_1 .. conv_4 of NetworkV2

    def _load(self) -> None:
        import torch

        weights_path = _pyemotion_root() / "model" / "main_model.pkl"
        try:
            checkpoint = torch.load(weights_path, map_location="cpu", weights_only=True)
            state = {key: value.double().numpy() for key, value in checkpoint["network"].items()}
        except Exception as exc:
            raise FaceModelError(f"cannot read PyEmotion's weights {weights_path}: {exc}") from exc
        self._blocks = []
        for index in range(1, 5):
            prefix = f"conv_{index}"
            weight, bias = state[f"{prefix}.1.weight"], state[f"{prefix}.1.bias"]
            gamma, beta = state[f"{prefix}.2.weight"], state[f"{prefix}.2.bias"]
            mean, var = state[f"{prefix}.2.running_mean"], state[f"{prefix}.2.running_var"]
            scale = gamma / np.sqrt(var + 1e-5)  # BatchNorm2d's default eps
            self._blocks.append(
                {
                    "weight": (weight.reshape(weight.shape[0], -1) * scale[:, None]).T.astype(np.float32),
                    "shift": ((bias - mean) * scale + beta).astype(np.float32),
                }
            )
        self._linear = [
            (state[f"linear.{i}.weight"].T.astype(np.float32), state[f"linear.{i}.bias"].astype(np.float32))
            for i in (0, 2)
        ]
        try:
            from threadpoolctl import ThreadpoolController

            self._threadpools = ThreadpoolController()
        except Exception:  # without it inference is still correct, only slower when the CPU is busy
            self._threadpools = None
        if self._linear[-1][1].shape[0] != len(self.labels):
            raise FaceModelError(f"PyEmotion's checkpoint has {self._linear[-1][1].shape[0]} classes, expected 7")

    def scores(self, batch: np.ndarray) -> np.ndarray:
        """NetworkV2's sigmoid outputs for a (N, 1, 48, 48) batch normalised to [-1, 1]."""
        self.ensure_loaded()
        with self._one_blas_thread():
            x = np.ascontiguousarray(batch.astype(np.float32).transpose(0, 2, 3, 1))  # NCHW -> NHWC
            for block, stride in zip(self._blocks, self.strides):
                x = _conv_block(x, block, stride)
            x = x.transpose(0, 3, 1, 2).reshape(x.shape[0], -1)  # torch flattens in (C, H, W) order
            (w1, b1), (w2, b2) = self._linear
            hidden = np.maximum(x @ w1 + b1, 0)
            logits = (hidden @ w2 + b2).astype(np.float64)
        return 1.0 / (1.0 + np.exp(-logits))

    def _one_blas_thread(self):
        if self._threadpools is None:
            return contextlib.nullcontext()
        return self._threadpools.limit(limits=1, user_api="blas")

    def torch_network(self):
        """PyEmotion's own torch module with the same weights (to verify :meth:`scores`)."""
        import torch

        root = _pyemotion_root()
        # PyEmotion/__init__.py imports torchvision and facenet_pytorch (which would pull a
        # CUDA torch); its networks.py needs only torch.nn, so load that file on its own.
        module_spec = importlib.util.spec_from_file_location("_taller_pyemotion_networks", root / "networks.py")
        if module_spec is None or module_spec.loader is None:
            raise FaceModelError(f"cannot load {root / 'networks.py'}")
        networks = importlib.util.module_from_spec(module_spec)
        module_spec.loader.exec_module(networks)
        network = networks.NetworkV2(in_c=1, nl=32, out_f=len(self.labels))
        checkpoint = torch.load(root / "model" / "main_model.pkl", map_location="cpu", weights_only=True)
        network.load_state_dict(checkpoint["network"])
        return network.eval()

    @staticmethod
    def views(gray: np.ndarray, boxes: Sequence[Detection], margins: Sequence[float]) -> np.ndarray:
        """(faces * 2 * margins, 1, 48, 48) crops normalised like PyEmotion (mean 0.5, std 0.5)."""
        import cv2

        crops = []
        for box in boxes:
            for margin in margins:
                crop = cv2.resize(_face_crop(gray, box, margin), (48, 48), interpolation=cv2.INTER_AREA)
                crops.append(crop)
                crops.append(crop[:, ::-1])
        batch = np.stack(crops).astype(np.float32) / 255.0
        return ((batch - 0.5) / 0.5)[:, None]

    def predict(self, rgb: np.ndarray, boxes: Sequence[Detection]) -> list[dict[str, float]]:
        import cv2

        if not boxes:
            return []
        gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
        scores = self.scores(self.views(gray, boxes, self.margins)).clip(1e-6, None)
        per_view = scores / scores.sum(axis=1, keepdims=True)
        per_face = per_view.reshape(len(boxes), 2 * len(self.margins), -1).mean(axis=1)
        return [_as_distribution(self.labels, row) for row in per_face]
