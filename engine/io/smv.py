"""SMV (ADSC) images: reading -mask/-img inputs (the C's outputs are written by ``engine.io.smv_write``).

An SMV file is a text header that starts with ``{\\nHEADER_BYTES=`` and is padded to HEADER_BYTES
(512 for everything nanoBragg writes), followed by unsigned 16-bit pixels, fast index first.

What the C does, and this module reproduces:

* Header keys are found by plain substring search and the *last* occurrence wins, so ``DISTANCE``
  also matches inside a later ``CLOSE_DISTANCE=``; the value is whatever number follows the next
  ``=`` (``value_of``).
* A -mask header's BEAM_CENTER_Y is flipped (detector height − value); an -img header's is not.
"""
from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Mapping, Optional

import numpy as np
import torch

from engine.io.errors import InputFileError

__all__ = ["SMVHeader", "read_header", "read_image", "value_of", "header_geometry", "SMV_MAGIC"]

#: The first 12 bytes the C insists on before it believes a file is SMV.
SMV_MAGIC = b"{\nHEADER_BYT"
_RTD = 180.0 / math.pi
_ENTRY = re.compile(r"([A-Za-z0-9_]+)\s*=\s*([^;\n]*)")
# The longest number prefix C's atof accepts (decimal, hex, inf and nan forms).
_ATOF = re.compile(r"\s*([+-]?(?:0[xX](?:[0-9a-fA-F]+\.?[0-9a-fA-F]*|\.[0-9a-fA-F]+)"
                   r"(?:[pP][+-]?\d+)?|(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?"
                   r"|inf(?:inity)?|nan))", re.IGNORECASE)


class SMVHeader(dict):
    """Header keys → raw value strings, in file order; ``text`` keeps the raw header (up to its
    first NUL byte), which the C's substring look-ups search."""

    def __init__(self, entries: Mapping[str, str], text: str, header_bytes: int) -> None:
        super().__init__(entries)
        self.text = text
        self.header_bytes = header_bytes


def _atof(s: str) -> float:
    m = _ATOF.match(s)
    if not m:
        return 0.0
    token = m.group(1)
    if token.lower().lstrip("+-").startswith("0x"):
        sign = -1.0 if token.startswith("-") else 1.0
        body = token.lstrip("+-")
        if "p" not in body.lower():
            body += "p0"
        return sign * float.fromhex(body)
    return float(token)


def value_of(text: str, keyword: str) -> float:
    """The C's header look-up: NaN if ``keyword`` never occurs; else the number after the first
    ``=`` that follows its last occurrence (0.0 if no ``=`` follows)."""
    if not keyword:
        return math.nan
    # Non-overlapping scan from the start, keeping the last hit, as the C's strstr loop does.
    end, at = 0, -1
    while (hit := text.find(keyword, end)) >= 0:
        at, end = hit, hit + len(keyword)
    if at < 0:
        return math.nan
    eq = text.find("=", end)
    if eq < 0:
        return 0.0
    return _atof(text[eq + 1:])


def _read_bytes(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise InputFileError(f"{path}: cannot read {what} ({exc.strerror or exc}); "
                             f"check the path") from None


def _parse(path: str | Path, what: str = "SMV file") -> tuple[SMVHeader, bytes]:
    path = Path(path)
    raw = _read_bytes(path, what)
    if len(raw) < 512:
        raise InputFileError(f"{path}: {len(raw)} bytes, too short for an SMV file (a 512-byte "
                             f"header is expected); pass an SMV/ADSC image")
    if not raw.startswith(SMV_MAGIC):
        raise InputFileError(f"{path}: does not start with '{{\\nHEADER_BYTES=', so it is not an "
                             f"SMV/ADSC image; pass an SMV file such as nanoBragg's -intfile output")
    first = raw[:512].split(b"\0", 1)[0].decode("latin-1")
    size = value_of(first, "HEADER_BYTES")
    if not (size >= 1) or math.isinf(size):
        raise InputFileError(f"{path}: HEADER_BYTES is not a positive number; fix the header")
    header_bytes = int(size)
    if len(raw) < header_bytes:
        raise InputFileError(f"{path}: HEADER_BYTES={header_bytes} but the file has only "
                             f"{len(raw)} bytes; the file is truncated")
    text = raw[:header_bytes].split(b"\0", 1)[0].decode("latin-1")
    body = text.split("}", 1)[0]
    entries = {m.group(1): m.group(2).strip() for m in _ENTRY.finditer(body)}
    return SMVHeader(entries, text, header_bytes), raw


def read_header(path: str | Path) -> SMVHeader:
    """The header of an SMV file as key → value string (raises ``InputFileError`` if malformed)."""
    return _parse(path)[0]


def _raw_dimensions(text: str) -> tuple[float, float]:
    width, height = value_of(text, "SIZE1"), value_of(text, "SIZE2")
    if width == 0 or math.isnan(width):
        # The C falls back to a square DETECTOR_DIMENSIONS when SIZE1 is 0.
        dim = value_of(text, "DETECTOR_DIMENSIONS")
        if not math.isnan(dim) and dim > 0:
            width = height = dim
    return width, height


def _usable(v: float) -> bool:
    return not (math.isnan(v) or math.isinf(v)) and int(v) > 0


def _dimensions(header: SMVHeader, path: Path) -> tuple[int, int]:
    width, height = _raw_dimensions(header.text)
    for name, v in (("SIZE1", width), ("SIZE2", height)):
        if not _usable(v):
            raise InputFileError(f"{path}: header has no usable {name} (pixel count); add "
                                 f"{name}=<pixels>; to the header")
    return int(width), int(height)


def read_image(path: str | Path, *, c_parity: bool = False) -> torch.Tensor:
    """Pixels of an SMV file as int32 (spixels, fpixels) (slow = SIZE2, fast = SIZE1).

    The data are read in the byte order the header's BYTE_ORDER names; the C never swaps and reads
    them as the machine's (little-endian) order, which ``c_parity=True`` reproduces. Truncated
    data raise ``InputFileError`` (the C silently reads zeros).
    """
    path = Path(path)
    header, raw = _parse(path)
    fpixels, spixels = _dimensions(header, path)
    # The C addresses the data in 2-byte words, so an odd header length rounds down.
    offset = (header.header_bytes // 2) * 2
    need = 2 * fpixels * spixels
    if len(raw) - offset < need:
        raise InputFileError(f"{path}: {fpixels}x{spixels} pixels need {need} data bytes after "
                             f"the {header.header_bytes}-byte header, but only "
                             f"{max(len(raw) - offset, 0)} are there; the file is truncated")
    order = "<"
    if not c_parity:
        at = header.text.rfind("BYTE_ORDER=")
        if at >= 0 and header.text[at + 11:at + 21].startswith("big_endian"):
            order = ">"
    data = np.frombuffer(raw, dtype=np.dtype(order + "u2"), count=fpixels * spixels, offset=offset)
    return torch.from_numpy(data.astype(np.int32).reshape(spixels, fpixels))


def header_geometry(header: Mapping[str, str], *, is_mask: bool = False,
                    pixel_size: float = 1.0e-4) -> dict[str, float | int]:
    """The C's reading of an -img / -mask header: only the keys present, in SI units.

    Returns any of fpixels, spixels (int), pixel_size, distance, close_distance, lambda0, Xbeam,
    Ybeam (m), ORGX, ORGY (pixels), phi0, osc, twotheta (rad). twotheta is returned for
    information: the C reads it into a scratch variable and never uses it.
    is_mask: flip BEAM_CENTER_Y to (pixel_size·spixels − value) as the C does for -mask only.
    pixel_size: the pixel size in effect before this header (m), used for the flip when the header
    has no PIXEL_SIZE.
    """
    text = getattr(header, "text", None)
    if text is None:
        text = "".join(f"{k}={v};\n" for k, v in header.items())
    out: dict[str, float | int] = {}

    def get(key: str) -> Optional[float]:
        v = value_of(text, key)
        return None if math.isnan(v) else v

    width, height = _raw_dimensions(text)
    if _usable(width) and _usable(height):
        out["fpixels"], out["spixels"] = int(width), int(height)
    v = get("PIXEL_SIZE")
    if v is not None:
        pixel_size = v / 1000.0
        out["pixel_size"] = pixel_size
    spixels = out.get("spixels")
    for key, name, scale in (("DISTANCE", "distance", 1000.0),
                             ("CLOSE_DISTANCE", "close_distance", 1000.0),
                             ("WAVELENGTH", "lambda0", 1e10),
                             ("BEAM_CENTER_X", "Xbeam", 1000.0)):
        v = get(key)
        if v is not None:
            out[name] = v / scale
    v = get("BEAM_CENTER_Y")
    if v is not None:
        if is_mask:
            detsize_s = pixel_size * (spixels if spixels is not None else 0)
            out["Ybeam"] = detsize_s - v / 1000.0
        else:
            out["Ybeam"] = v / 1000.0
    for key, name in (("ORGX", "ORGX"), ("ORGY", "ORGY")):
        v = get(key)
        if v is not None:
            out[name] = v
    for key, name in (("PHI", "phi0"), ("OSC_RANGE", "osc"), ("TWOTHETA", "twotheta")):
        v = get(key)
        if v is not None:
            out[name] = v / _RTD
    return out
