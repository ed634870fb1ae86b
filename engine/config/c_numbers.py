"""The C's arithmetic where Python's or torch's differs: casts of doubles to int, division by
zero, and libm's sqrt/sin/cos bits.

c-parity must follow nanoBragg through nonsense inputs (a zero distance, a NaN cell), where
Python raises instead of producing inf, NaN or INT_MIN as the compiled C does on x86-64; and
through ceil() edges and cancellations, where one ulp of torch's CPU sqrt/sin/cos (not libm's)
moves a cell count or blows up past the trace tolerance.
"""
from __future__ import annotations

import math

import numpy as np
import torch

INT_MIN = -2 ** 31


def c_int(x: float) -> int:
    """The C's (int) cast of a double on x86-64: truncation toward zero, and INT_MIN (the
    "integer indefinite" of cvttsd2si) for NaN, ±inf and anything outside the int range."""
    if math.isnan(x) or not -2.0 ** 31 <= x < 2.0 ** 31:
        return INT_MIN
    return int(x)


def c_ceil_int(x: float) -> int:
    """(int) ceil(x), as the C writes it."""
    return c_int(math.ceil(x)) if math.isfinite(x) else INT_MIN


def c_div(x: float, y: float) -> float:
    """x / y with the IEEE results (±inf, NaN) where Python raises ZeroDivisionError."""
    if y != 0.0:
        return x / y
    if x == 0.0 or math.isnan(x):
        return math.nan
    return math.copysign(math.inf, x) * math.copysign(1.0, y)


def _as_libm(torch_fn, numpy_fn, x: torch.Tensor) -> torch.Tensor:
    """numpy's value on CPU (the C's libm result), torch's gradient; torch's own elsewhere."""
    if x.device.type != "cpu":
        return torch_fn(x)
    exact = torch.from_numpy(np.asarray(numpy_fn(x.detach().numpy())))
    if not x.requires_grad:
        return exact
    y = torch_fn(x)
    return y + (exact - y.detach())


def c_sqrt(x: torch.Tensor) -> torch.Tensor:
    """√x correctly rounded, as the C's sqrt().

    torch's CPU sqrt is off by one ulp for about 1% of doubles (this build; numpy's is exact),
    and a cancellation downstream (d − i ≈ 0 in the scattering vector) can blow that ulp up past
    the trace tolerance.
    """
    return _as_libm(torch.sqrt, np.sqrt, x)


def c_sin(x: torch.Tensor) -> torch.Tensor:
    """sin(x) as the C's libm gives it (torch's CPU sin differs in the last bit for ~0.15%)."""
    return _as_libm(torch.sin, np.sin, x)


def c_cos(x: torch.Tensor) -> torch.Tensor:
    """cos(x) as the C's libm gives it (torch's CPU cos differs in the last bit for ~0.13%)."""
    return _as_libm(torch.cos, np.cos, x)
