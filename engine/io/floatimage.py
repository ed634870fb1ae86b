"""Raw float images as nanoBragg writes them: little-endian float32, no header, [slow][fast]."""
from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import torch

FLOAT_DTYPE = np.dtype("<f4")


def to_float32(image: torch.Tensor | np.ndarray) -> np.ndarray:
    """The C stores each pixel in a float; round the double values the same way (nearest even)."""
    if isinstance(image, torch.Tensor):
        image = image.detach().to("cpu", torch.float64).numpy()
    return np.ascontiguousarray(image, dtype=np.float64).astype(FLOAT_DTYPE)


def write_floatimage(path: str | Path, image: torch.Tensor | np.ndarray) -> np.ndarray:
    """Write ``image`` (spixels, fpixels) as raw little-endian float32; returns what was written."""
    data = image if isinstance(image, np.ndarray) and image.dtype == FLOAT_DTYPE else to_float32(image)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as fh:
        fh.write(np.ascontiguousarray(data, dtype=FLOAT_DTYPE).tobytes())
    return data


def read_floatimage(path: str | Path, shape: tuple[int, int] | None = None) -> np.ndarray:
    """Read a raw float image (``.gz`` transparently, also when only ``name.gz`` exists). ``shape`` = (spixels, fpixels) reshapes it."""
    path = Path(path)
    if not path.exists() and path.with_name(path.name + ".gz").exists():
        path = path.with_name(path.name + ".gz")
    raw = gzip.open(path, "rb").read() if path.suffix == ".gz" else path.read_bytes()
    data = np.frombuffer(raw, dtype=FLOAT_DTYPE).copy()
    if shape is not None:
        if data.size != shape[0] * shape[1]:
            raise ValueError(f"{path}: {data.size} floats, expected {shape[0]}x{shape[1]}")
        data = data.reshape(shape)
    return data
