"""Lattice (crystal-shape) factors F_latt: pure tensor functions of fractional Miller indices.

All functions broadcast over any leading shape and keep the dtype/device of their inputs. They are
written so that autograd gives finite gradients away from the removable singularities (the
``x == 0`` branches use a safe denominator instead of dividing by zero).
"""
from __future__ import annotations

import math

import torch

from engine.config.c_numbers import c_sqrt
#: Sphere/cube volume correction of the ROUND shape: makes its spot integral match SQUARE's.
ROUND_VOLUME_FACTOR = 0.723601254558268
#: GAUSS width constant (rad² is divided by it) and TOPHAT radius² cut-off.
GAUSS_WIDTH = 0.63
TOPHAT_CUTOFF = 0.3969


def sincg(x: torch.Tensor, n: float | torch.Tensor) -> torch.Tensor:
    """Grating interference function sin(N·x)/sin(x), with its limit N at x == 0 exactly."""
    zero = x == 0
    safe = torch.where(zero, torch.ones_like(x), x)
    value = torch.sin(safe * n) / torch.sin(safe)
    return torch.where(zero, torch.as_tensor(n, dtype=x.dtype, device=x.device).expand_as(x), value)


def sinc3(x: torch.Tensor) -> torch.Tensor:
    """Sphere transform 3·(sin x/x − cos x)/x², with its limit 1 at x == 0 exactly."""
    zero = x == 0
    safe = torch.where(zero, torch.ones_like(x), x)
    value = 3.0 * (torch.sin(safe) / safe - torch.cos(safe)) / (safe * safe)
    return torch.where(zero, torch.ones_like(x), value)


def square_factors(h: torch.Tensor, k: torch.Tensor, l: torch.Tensor,
                   Na: float, Nb: float, Nc: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-axis parallelepiped factors. An axis with N <= 1 contributes exactly 1 (the C skips it)."""
    def axis(v: torch.Tensor, n: float) -> torch.Tensor:
        if n > 1:
            return sincg(math.pi * v, n)
        return torch.ones_like(v)

    return axis(h, Na), axis(k, Nb), axis(l, Nc)


def square(h: torch.Tensor, k: torch.Tensor, l: torch.Tensor, Na: float, Nb: float, Nc: float) -> torch.Tensor:
    fa, fb, fc = square_factors(h, k, l, Na, Nb, Nc)
    return fa * fb * fc


def _sincg_into(v: torch.Tensor, n: float, out: torch.Tensor, zero: torch.Tensor) -> torch.Tensor:
    """sincg(π·v, n) into ``out``, overwriting v; ``zero`` is bool scratch of the same shape.

    The same operations as ``sincg`` (so the same bits), without autograd or temporaries."""
    x = v.mul_(math.pi)
    torch.mul(x, n, out=out)
    out.sin_()
    # One allocation-free pass to see whether any x is ±0 (NaN counts as non-zero, as x == 0 is
    # false for it); the mask is built only then.
    has_zero = int(torch.count_nonzero(x)) < x.numel()
    if has_zero:
        torch.eq(x, 0, out=zero)
    out.div_(x.sin_())
    return out.masked_fill_(zero, n) if has_zero else out


def square_inplace(h: torch.Tensor, k: torch.Tensor, l: torch.Tensor, Na: float, Nb: float, Nc: float,
                   out: torch.Tensor | None = None, zero: torch.Tensor | None = None) -> torch.Tensor:
    """``square`` without autograd or temporaries: h, k, l are overwritten (scratch), the result
    goes to ``out`` and ``zero`` is bool scratch (both allocated when not given)."""
    out = torch.empty_like(h) if out is None else out
    zero = torch.empty(h.shape, dtype=torch.bool, device=h.device) if zero is None else zero
    done, spare = False, None
    for v, n in ((h, Na), (k, Nb), (l, Nc)):
        if n > 1:
            if not done:
                _sincg_into(v, n, out, zero)
            else:
                out.mul_(_sincg_into(v, n, spare, zero))
            done = True
        spare = v                       # scratch from here on
    return out if done else out.fill_(1.0)


def _offsets(h, k, l):
    # Distance to the nearest node; halves go down, as the C rounds with ceil(x - 0.5).
    return h - torch.ceil(h - 0.5), k - torch.ceil(k - 0.5), l - torch.ceil(l - 0.5)


def round_(h: torch.Tensor, k: torch.Tensor, l: torch.Tensor, Na: float, Nb: float, Nc: float,
           fudge: float = 1.0) -> torch.Tensor:
    """Ellipsoidal crystal: sinc3 of the radius in hkl space scaled by N per axis."""
    dh, dk, dl = _offsets(h, k, l)
    hrad_sqr = dh * dh * (Na * Na) + dk * dk * (Nb * Nb) + dl * dl * (Nc * Nc)
    return (Na * Nb * Nc * ROUND_VOLUME_FACTOR) * sinc3(math.pi * c_sqrt(hrad_sqr * fudge))


def reciprocal_radius_sqr(h: torch.Tensor, k: torch.Tensor, l: torch.Tensor,
                          a_star: torch.Tensor, b_star: torch.Tensor, c_star: torch.Tensor,
                          Na: float, Nb: float, Nc: float) -> torch.Tensor:
    """|Δh·a* + Δk·b* + Δl·c*|² · Na²Nb²Nc², with the static reciprocal vectors (Å⁻¹), as the C uses."""
    dh, dk, dl = _offsets(h, k, l)
    # Component by component: the same products and left-to-right sums as a (..., 3) vector and
    # sum(-1), without the slow size-3 inner axis.
    delta = [dh * a_star[i] + dk * b_star[i] + dl * c_star[i] for i in range(3)]
    return (delta[0] * delta[0] + delta[1] * delta[1] + delta[2] * delta[2]) * (Na * Na * Nb * Nb * Nc * Nc)


def gauss(rad_star_sqr: torch.Tensor, Na: float, Nb: float, Nc: float, fudge: float = 1.0) -> torch.Tensor:
    return (Na * Nb * Nc) * torch.exp(-(rad_star_sqr / GAUSS_WIDTH * fudge))


def tophat(rad_star_sqr: torch.Tensor, Na: float, Nb: float, Nc: float, fudge: float = 1.0) -> torch.Tensor:
    return (Na * Nb * Nc) * (rad_star_sqr * fudge < TOPHAT_CUTOFF).to(rad_star_sqr.dtype)
