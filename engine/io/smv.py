"""SMV (ADSC) images: reading -mask/-img inputs and writing the C's -intfile/-noisefile outputs.

An SMV file is a text header that starts with ``{\\nHEADER_BYTES=`` and is padded to HEADER_BYTES
(512 for everything nanoBragg writes), followed by unsigned 16-bit pixels, fast index first.

What the C does, and this module reproduces:

* Header keys are found by plain substring search and the *last* occurrence wins, so ``DISTANCE``
  also matches inside a later ``CLOSE_DISTANCE=``; the value is whatever number follows the next
  ``=`` (``value_of``).
* A -mask header's BEAM_CENTER_Y is flipped (detector height − value); an -img header's is not.
* Int image: floor(v·scale + adc + ½) clipped to [0, 65535], the +½ sum rounded to float before
  the floor; scale ≤ 0 means 55000/max. Pixels outside the ROI stay 0; pixels inside the ROI that
  were not rendered (masked) hold 0.0 and so become ``adc``, not 0.
* Noise image: (int)(poisson deviate + adc), clipped to 65535; the C reuses the int image's buffer,
  so pixels outside the ROI keep their int-image values.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Optional

import numpy as np
import torch

from engine.io.errors import InputFileError

__all__ = ["SMVHeader", "SMVHeaderFields", "read_header", "read_image", "value_of",
           "header_geometry", "int_scale", "int_image", "noise_int_image", "header_text",
           "write_smv", "SMV_MAGIC"]

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


# ---------------------------------------------------------------------------------------------
# Writing
# ---------------------------------------------------------------------------------------------
def _as_float32(image: torch.Tensor | np.ndarray) -> np.ndarray:
    """The image as float32 values (read-only use: a float32 array comes back as it is)."""
    if isinstance(image, np.ndarray) and image.dtype == np.float32:
        return image                     # float32 → float64 → float32 would change nothing
    if isinstance(image, torch.Tensor):
        image = image.detach().cpu().to(torch.float64).numpy()
    return np.asarray(image, dtype=np.float64).astype(np.float32)


def _roi_mask(shape: tuple[int, int], roi: Optional[tuple[int, int, int, int]]) -> np.ndarray:
    inside = np.zeros(shape, dtype=bool)
    if roi is None:
        inside[:] = True
        return inside
    fmin, fmax, smin, smax = roi
    inside[max(smin, 0):smax + 1, max(fmin, 0):fmax + 1] = True
    return inside


def int_scale(scale: float, max_I: float) -> float:
    """The int-image scale the C uses: the given one if positive, else 55000/max_I (1 if max_I ≤ 0)."""
    if scale > 0.0:
        return float(scale)
    return 55000.0 / max_I if max_I > 0.0 else 1.0


def int_image(float_image: torch.Tensor | np.ndarray, scale: float, adc: float = 40.0, *,
              roi: Optional[tuple[int, int, int, int]] = None) -> np.ndarray:
    """The C's -intfile pixels, uint16 (spixels, fpixels).

    float_image: the float image (stored as float32 first, as the C stores it).
    scale: ≤ 0 selects the C's automatic 55000/max (see ``int_scale``).
    roi: (fmin, fmax, smin, smax) inclusive; pixels outside stay 0.
    NaN pixels become 0 (what the C's float-to-integer conversion leaves on x86).
    """
    values = _as_float32(float_image)
    inside = None if _covers(values.shape, roi) else _roi_mask(values.shape, roi)
    if scale <= 0.0:
        # The C's max_I: the running maximum (from 0) over the ROI's pixels; NaN never wins.
        keep = ~np.isnan(values) if inside is None else inside & ~np.isnan(values)
        candidates = values[keep]
        max_I = max(float(candidates.max()), 0.0) if candidates.size else 0.0
        scale = int_scale(scale, max_I)
    # In place on one float64 buffer: v·scale + adc in double, clamped to [0, 65535] (fmax first
    # sends NaN to 0, which is where the C's conversion leaves it), then v + 0.5 rounded to float
    # before flooring, which matters just below a half; the values are ≥ 0.5 by then, so the
    # truncating cast to uint16 is the floor.
    test = values.astype(np.float64)
    test *= scale
    test += adc
    np.fmax(test, 0.0, out=test)
    np.minimum(test, 65535.0, out=test)
    test += 0.5
    out = test.astype(np.float32).astype(np.uint16)
    if inside is not None:
        out[~inside] = 0
    return out


def _covers(shape: tuple[int, int], roi: Optional[tuple[int, int, int, int]]) -> bool:
    """Whether the ROI (fmin, fmax, smin, smax), inclusive, contains every pixel."""
    if roi is None:
        return True
    fmin, fmax, smin, smax = roi
    return fmin <= 0 and smin <= 0 and fmax >= shape[1] - 1 and smax >= shape[0] - 1


def noise_int_image(noise: torch.Tensor | np.ndarray, adc: float = 40.0, *,
                    roi: Optional[tuple[int, int, int, int]] = None,
                    int_pixels: Optional[np.ndarray] = None) -> tuple[np.ndarray, float, int]:
    """The C's -noisefile pixels from Poisson deviates (``engine.sample.rng.poisson_noise``).

    Returns (uint16 pixels, photon sum as the C prints it with %.0f, overload count). Inside the
    ROI: (int)(deviate + adc), capped at 65535 (counted as an overload). Outside the ROI the C leaves
    whatever its shared buffer held: the int image's pixels (``int_pixels``; 0 if not given).
    """
    dev = _as_float32(noise).astype(np.float64)
    inside = _roi_mask(dev.shape, roi)
    test = dev + adc
    over = inside & (test > 65535.0)
    test = np.where(test > 65535.0, 65535.0, test)
    out = np.zeros(dev.shape, dtype=np.uint16) if int_pixels is None else \
        np.array(int_pixels, dtype=np.uint16, copy=True)
    with np.errstate(invalid="ignore"):
        out[inside] = np.trunc(np.where(np.isnan(test), 0.0, test)[inside]).astype(np.uint16)
    drawn = dev[inside]
    # The C adds the deviates one by one in pixel order; cumsum keeps that order.
    photons = float(np.cumsum(drawn)[-1]) if drawn.size else 0.0
    return out, photons, int(over.sum())


@dataclass(frozen=True)
class SMVHeaderFields:
    """What the C writes into an SMV header, in the units it holds them (m, rad).

    dials_origin is in mm (the C computes it in mm). ORGX/ORGY are pixels.
    """

    fpixels: int
    spixels: int
    pixel_size: float
    distance: float
    wavelength: float
    Xbeam: float
    Ybeam: float
    Fbeam: float
    Sbeam: float
    detsize_s: float
    dials_origin: tuple[float, float, float]
    ORGX: float
    ORGY: float
    close_distance: float
    phi0: float = 0.0
    osc: float = 0.0
    twotheta: float = 0.0
    byte_order: str = "little_endian"


def header_text(fields: SMVHeaderFields, kind: str = "int") -> str:
    """The header text up to and including its closing ``}\\f``, formatted as the C formats it.

    kind: "int" or "noise". The two writers in the C differ only in DENZO_X_BEAM/Y_BEAM, written
    as (S/Fbeam − 0·pixel) by one and (S/Fbeam + 0·pixel) by the other, which differs for −0.
    """
    if kind not in ("int", "noise"):
        raise ValueError(f"kind must be 'int' or 'noise', got {kind!r}")
    f = fields
    zero = 0.0 * f.pixel_size
    denzo_x = (f.Sbeam - zero if kind == "int" else f.Sbeam + zero) * 1000.0
    denzo_y = (f.Fbeam - zero if kind == "int" else f.Fbeam + zero) * 1000
    dx, dy, dz = f.dials_origin
    parts = [
        "{\nHEADER_BYTES=512;\nDIM=2;\nBYTE_ORDER=%s;\nTYPE=unsigned_short;\n" % f.byte_order,
        "SIZE1=%d;\nSIZE2=%d;\nPIXEL_SIZE=%g;\nDISTANCE=%g;\n" % (
            f.fpixels, f.spixels, f.pixel_size * 1000.0, f.distance * 1000.0),
        "WAVELENGTH=%g;\n" % (f.wavelength * 1e10),
        "BEAM_CENTER_X=%g;\nBEAM_CENTER_Y=%g;\n" % (f.Xbeam * 1000.0, f.Ybeam * 1000),
        "ADXV_CENTER_X=%g;\nADXV_CENTER_Y=%g;\n" % (f.Fbeam * 1000.0, (f.detsize_s - f.Sbeam) * 1000),
        "MOSFLM_CENTER_X=%g;\nMOSFLM_CENTER_Y=%g;\n" % (
            (f.Sbeam - 0.5 * f.pixel_size) * 1000.0, (f.Fbeam - 0.5 * f.pixel_size) * 1000),
        "DENZO_X_BEAM=%g;\nDENZO_Y_BEAM=%g;\n" % (denzo_x, denzo_y),
        "DIALS_ORIGIN=%g,%g,%g\n" % (dx, dy, dz),
        "XDS_ORGX=%g;\nXDS_ORGY=%g;\n" % (f.ORGX, f.ORGY),
        "CLOSE_DISTANCE=%g;\n" % (f.close_distance * 1000.0),
        "PHI=%g;\nOSC_START=%g;\nOSC_RANGE=%g;\n" % (f.phi0 * _RTD, f.phi0 * _RTD, f.osc * _RTD),
        "TWOTHETA=%g;\n" % (f.twotheta * _RTD),
        "DETECTOR_SN=000;\n",
        "BEAMLINE=fake;\n",
        "}\f",
    ]
    return "".join(parts)


def write_smv(path: str | Path, pixels: np.ndarray | torch.Tensor, fields: SMVHeaderFields, *,
              kind: str = "int", c_overflow: bool = False) -> bytes:
    """Write an SMV file byte for byte as the C's -intfile (kind="int") or -noisefile ("noise").

    pixels: (spixels, fpixels) values 0..65535, written little-endian. Returns the bytes written.
    A header longer than 512 bytes (large detectors with long numbers) is written as the C does
    when ``c_overflow`` (C defect smv-header-overflow: the pixels then start after the text, not
    at the declared 512); otherwise HEADER_BYTES grows to the next multiple of 512, so the file
    stays readable.
    """
    arr = pixels.detach().cpu().numpy() if isinstance(pixels, torch.Tensor) else np.asarray(pixels)
    if arr.shape != (fields.spixels, fields.fpixels):
        raise ValueError(f"pixels have shape {arr.shape}, header says "
                         f"{fields.spixels}x{fields.fpixels} (slow x fast)")
    if arr.dtype != np.uint16:
        if arr.size and (arr.min() < 0 or arr.max() > 65535):
            raise ValueError("SMV pixels must lie in 0..65535")
        arr = arr.astype(np.uint16)
    head = header_text(fields, kind).encode("latin-1")
    size = 512
    if len(head) > size and not c_overflow:
        size = -(-(len(head) + 2) // 512) * 512   # room for the wider HEADER_BYTES value too
        head = head.replace(b"HEADER_BYTES=512;", b"HEADER_BYTES=%d;" % size, 1)
    blob = head + b" " * max(0, size - len(head)) + np.ascontiguousarray(arr, dtype="<u2").tobytes()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(blob)
    return blob
