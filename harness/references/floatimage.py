"""The C's raw float image: little-endian float32, no header, row-major [slow][fast]."""
from __future__ import annotations

import gzip
import re
from pathlib import Path
from typing import Optional

import numpy as np

_DETPIXELS = re.compile(r"\((\d+)x(\d+) pixels\)")


def detpixels_from_stdout(stdout: str) -> Optional[tuple[int, int]]:
    """(slow, fast) from the C's ``... meters (FASTxSLOW pixels)`` console line."""
    m = _DETPIXELS.search(stdout)
    return (int(m.group(2)), int(m.group(1))) if m else None


def from_bytes(raw: bytes, shape: tuple[int, int]) -> np.ndarray:
    n = shape[0] * shape[1]
    if len(raw) != 4 * n:
        raise ValueError(f"expected {4 * n} bytes for {shape[0]}x{shape[1]} float32 pixels, got {len(raw)}")
    return np.frombuffer(raw, dtype="<f4").reshape(shape).copy()


def read_raw_bytes(path: Path) -> bytes:
    data = path.read_bytes()
    return gzip.decompress(data) if path.suffix == ".gz" else data
