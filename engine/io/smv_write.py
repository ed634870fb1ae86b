"""Writing the C's SMV outputs: the -intfile image and the -noisefile image, with its header.

* Int image: floor(v·scale + adc + ½) clipped to [0, 65535], the +½ sum rounded to float before
  the floor; scale ≤ 0 means 55000/max. Pixels outside the ROI stay 0; pixels inside the ROI that
  were not rendered (masked) hold 0.0 and so become ``adc``, not 0.
* Noise image: (int)(poisson deviate + adc), clipped to 65535; the C reuses the int image's buffer,
  so pixels outside the ROI keep their int-image values.

The file layout (header padded to HEADER_BYTES, then 16-bit pixels) is described in
``engine.io.smv``, which reads it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from engine.io.pixels import as_float32, roi_mask, row_blocks

_RTD = 180.0 / math.pi

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
    values = as_float32(float_image)
    inside = None if _covers(values.shape, roi) else roi_mask(values.shape, roi)
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
    out = np.empty(values.shape, dtype=np.uint16)
    for sl in row_blocks(values.shape):
        test = values[sl].astype(np.float64)
        with np.errstate(invalid="ignore"):  # inf·0 (an inf pixel makes the scale 0) is NaN, sent to 0 below
            test *= scale
        test += adc
        np.fmax(test, 0.0, out=test)
        np.minimum(test, 65535.0, out=test)
        test += 0.5
        out[sl] = test.astype(np.float32).astype(np.uint16)
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
    dev = as_float32(noise).astype(np.float64)
    inside = roi_mask(dev.shape, roi)
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
