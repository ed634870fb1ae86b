"""Raw float images as nanoBragg writes them: little-endian float32, no header, [slow][fast].

The one reader and writer of this format in the project (the harness reads recorded and live C
images through it too). A file of the wrong size, or a gzip that does not decompress, is a
one-line :class:`FloatImageError` naming the file, what it holds and what was expected.
torch is imported only to convert a tensor, so reading an image does not pull it in.
"""
from __future__ import annotations

import gzip
import zlib
from pathlib import Path
from typing import TYPE_CHECKING, Optional

import numpy as np

from engine.io.errors import InputFileError

if TYPE_CHECKING:  # pragma: no cover
    import torch

FLOAT_DTYPE = np.dtype("<f4")


class FloatImageError(InputFileError):
    """A float image that is missing, truncated, of the wrong size or not valid gzip."""


def to_float32(image: "torch.Tensor | np.ndarray") -> np.ndarray:
    """The C stores each pixel in a float; round the double values the same way (nearest even)."""
    if hasattr(image, "detach"):  # a torch tensor
        import torch  # noqa: PLC0415 - only needed for tensors

        image = image.detach().to("cpu", torch.float64).numpy()
    return np.ascontiguousarray(image, dtype=np.float64).astype(FLOAT_DTYPE)


def write_floatimage(path: str | Path, image: "torch.Tensor | np.ndarray") -> np.ndarray:
    """Write ``image`` (spixels, fpixels) as raw little-endian float32; returns what was written."""
    data = image if isinstance(image, np.ndarray) and image.dtype == FLOAT_DTYPE else to_float32(image)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as fh:
        fh.write(np.ascontiguousarray(data, dtype=FLOAT_DTYPE).tobytes())
    return data


def read_raw(path: str | Path) -> bytes:
    """The image's raw bytes (``.gz`` decompressed; also when only ``name.gz`` exists)."""
    path = Path(path)
    if not path.exists() and path.with_name(path.name + ".gz").exists():
        path = path.with_name(path.name + ".gz")
    try:
        data = path.read_bytes()
        return gzip.decompress(data) if path.suffix == ".gz" else data
    except OSError as e:
        if isinstance(e, gzip.BadGzipFile):
            raise FloatImageError(f"{path}: not a valid gzip file ({e}); re-write or re-record it") from None
        raise FloatImageError(f"{path}: cannot read the float image ({e.strerror or e})") from None
    except (EOFError, zlib.error) as e:
        raise FloatImageError(f"{path}: truncated gzip ({e}); re-write or re-record it") from None


def from_bytes(raw: bytes, shape: tuple[int, int], where: str | Path = "float image") -> np.ndarray:
    """(slow, fast) float32 pixels from raw bytes; the size must be exactly ``shape``."""
    n = int(shape[0]) * int(shape[1])
    if len(raw) != 4 * n:
        raise FloatImageError(f"{where}: {len(raw)} bytes, expected {4 * n} for {shape[0]}x{shape[1]} "
                              "float32 pixels (a truncated or foreign file)")
    return np.frombuffer(raw, dtype=FLOAT_DTYPE).reshape(int(shape[0]), int(shape[1])).copy()


def read_floatimage(path: str | Path, shape: Optional[tuple[int, int]] = None) -> np.ndarray:
    """Read a raw float image (``.gz`` transparently). ``shape`` = (spixels, fpixels) checks the
    size and reshapes; without it the pixels come back flat."""
    raw = read_raw(path)
    if shape is not None:
        return from_bytes(raw, shape, path)
    if len(raw) % 4:
        raise FloatImageError(f"{path}: {len(raw)} bytes is not a whole number of float32 pixels")
    return np.frombuffer(raw, dtype=FLOAT_DTYPE).copy()
