"""Crystal set-up: unit cell or A matrix → oriented real and reciprocal vectors, N, φ sampling.

Vectors are (3,) tensors in Å (real) and Å^-1 (reciprocal) unless a name says metres. The cell
functions are pure torch, so gradients flow from a0/b0/c0 back to the six cell parameters and
the misset angles.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Sequence, Union

import torch

from engine.config.c_flags import RTD
from engine.config.c_numbers import c_ceil_int, c_cos, c_div, c_sin, c_sqrt
from engine.geometry.rotations import as_tensor, cross, magnitude, rotate_xyz

Scalar = Union[float, torch.Tensor]


def complete_cell(cell: Sequence[float]) -> tuple[float, float, float, float, float, float]:
    """The C's defaults for a partial -cell: b and c default to a, angles to 90°."""
    a, b, c, al, be, ga = (list(cell) + [0.0] * 6)[:6]
    b = a if b <= 0.0 else b
    c = a if c <= 0.0 else c
    al, be, ga = (math.pi / 2 if x <= 0.0 else x for x in (al, be, ga))
    return a, b, c, al, be, ga


def cell_volume(a: Scalar, b: Scalar, c: Scalar, alpha: Scalar, beta: Scalar, gamma: Scalar) -> torch.Tensor:
    """Cell volume (Å^3) from lengths and angles, by the half-sum-of-angles identity the C uses."""
    a, b, c, al, be, ga = torch.broadcast_tensors(*(as_tensor(x) if not isinstance(x, torch.Tensor) else x
                                                    for x in (a, b, c, alpha, beta, gamma)))
    half = (al + be + ga) / 2
    skew = (c_sin(half) * c_sin(half - al) * c_sin(half - be) * c_sin(half - ga)).abs()
    return 2.0 * a * b * c * c_sqrt(skew)


def _clamp_cos(x: torch.Tensor) -> torch.Tensor:
    # The C replaces any |cos| > 1 by +1 (not by the nearer bound); kept for parity.
    return torch.where(x * x > 1.0, torch.ones_like(x), x)


def reciprocal_from_cell(a: Scalar, b: Scalar, c: Scalar, alpha: Scalar, beta: Scalar,
                         gamma: Scalar, *, impossible_as_c: bool = False,
                         ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(a*, b*, c*, V_cell) in the standard orientation: a* along x, b* in the xy plane.

    Angles that make no parallelepiped are refused, unless ``impossible_as_c``: then, as the C,
    the volume is the tiniest double and the vectors come out inf/NaN (c-parity; the C's
    cell code at nanoBragg.c 1898-1921 takes |skew| and replaces a volume <= 0 by DBL_MIN).
    """
    a, b, c, al, be, ga = (as_tensor(x) if not isinstance(x, torch.Tensor) else x
                           for x in (a, b, c, alpha, beta, gamma))
    V = cell_volume(a, b, c, al, be, ga)
    if impossible_as_c:
        tiny = torch.finfo(V.dtype).tiny
        V = torch.where(V <= 0, torch.full_like(V, tiny), V)
    else:
        # The C takes |skew|, so an impossible set of angles still gives a "volume"; refuse it
        # instead (the metric determinant must be positive).
        ca, cb, cg = c_cos(al), c_cos(be), c_cos(ga)
        if not bool((1 - ca * ca - cb * cb - cg * cg + 2 * ca * cb * cg > 0).all()):
            raise ValueError("-cell: impossible unit cell angles (no such parallelepiped); check alpha beta gamma")
        if not bool((V > 0).all()):
            raise ValueError("-cell: impossible unit cell (volume <= 0); check the lengths and angles")
    Vs = 1.0 / V
    la, lb, lc = b * c * c_sin(al) * Vs, c * a * c_sin(be) * Vs, a * b * c_sin(ga) * Vs
    if impossible_as_c:
        la, lb, lc = (torch.where(x.abs() <= 0, torch.full_like(x, tiny), x.abs()) for x in (la, lb, lc))
    # Divided one length at a time, in the C's order, so the rounding is the C's.
    sin_gs = torch.clamp(c * Vs / la / lb, -1.0, 1.0)
    cos_as = _clamp_cos((c_cos(be) * c_cos(ga) - c_cos(al)) / (c_sin(be) * c_sin(ga)))
    cos_bs = _clamp_cos((c_cos(ga) * c_cos(al) - c_cos(be)) / (c_sin(ga) * c_sin(al)))
    cos_gs = _clamp_cos((c_cos(al) * c_cos(be) - c_cos(ga)) / (c_sin(al) * c_sin(be)))
    zero = torch.zeros_like(la)
    a_star = torch.stack([la, zero, zero])
    b_star = torch.stack([lb * cos_gs, lb * sin_gs, zero])
    c_star = torch.stack([lc * cos_bs, lc * (cos_as - cos_bs * cos_gs) / sin_gs,
                          lc * V / (a * b * c * sin_gs)])
    return a_star, b_star, c_star, V


def scale_matrix_vectors(a_star: torch.Tensor, b_star: torch.Tensor, c_star: torch.Tensor,
                         lambda0: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A MOSFLM A matrix is in units of 1/λ; divide λ out (λ0 in metres) to get Å^-1."""
    k = 1e-10 / lambda0
    return a_star * k, b_star * k, c_star * k


def misset_rotate(vectors: Sequence[torch.Tensor], angles: Sequence[Scalar]) -> list[torch.Tensor]:
    """Rotate each vector about x, then y, then z by the misset angles (rad)."""
    return [rotate_xyz(v, *angles) for v in vectors]


@dataclass(frozen=True)
class CellVectors:
    a: torch.Tensor        # Å
    b: torch.Tensor
    c: torch.Tensor
    a_star: torch.Tensor   # Å^-1, regenerated from a, b, c
    b_star: torch.Tensor
    c_star: torch.Tensor
    V_cell: torch.Tensor   # Å^3


def real_space(a_star: torch.Tensor, b_star: torch.Tensor, c_star: torch.Tensor, *,
               cell_lengths: Optional[tuple[Scalar, Scalar, Scalar]] = None,
               cell_V: Optional[torch.Tensor] = None) -> CellVectors:
    """Real-space vectors from the reciprocal ones, then the reciprocal ones regenerated.

    With a user cell (``cell_lengths`` and ``cell_V``), the real vectors are given exactly the
    cell's lengths and the volume is the cell's, even when a -mat file replaced the
    orientation (the C keeps -cell's lengths in that case).
    """
    bxc, cxa, axb = cross(b_star, c_star), cross(c_star, a_star), cross(a_star, b_star)
    V_star = (a_star * bxc).sum()
    if cell_lengths is not None:
        # Tensors before dividing: torch computes float / tensor as float * (1/tensor), which
        # rounds differently from the C's division and can move ceil(size/|a|) by one cell.
        la, lb, lc = (as_tensor(x, cell_V.dtype, cell_V.device) for x in cell_lengths)
        bxc = bxc * ((la / cell_V) / magnitude(bxc))
        cxa = cxa * ((lb / cell_V) / magnitude(cxa))
        axb = axb * ((lc / cell_V) / magnitude(axb))
        V_star = 1.0 / cell_V
    V_cell = 1.0 / V_star
    a, b, c = bxc * V_cell, cxa * V_cell, axb * V_cell
    a_star = cross(b, c) * V_star
    b_star = cross(c, a) * V_star
    c_star = cross(a, b) * V_star
    return CellVectors(a, b, c, a_star, b_star, c_star, V_cell)


def cell_counts(N: Sequence[float], sample_size: Sequence[float],
                cell_lengths_m: Sequence[float]) -> tuple[float, float, float]:
    """Na, Nb, Nc: a sample size (m) overrides N with ceil(size/|a|); all clamped to >= 1.

    As in the C (doubles throughout), a NaN cell length gives N = NaN, which the clamp keeps.
    """
    out = []
    for n, size, length in zip(N, sample_size, cell_lengths_m):
        if size > 0:
            ratio = c_div(size, length)
            n = float(math.ceil(ratio)) if math.isfinite(ratio) else ratio
        out.append(1.0 if n <= 1.0 else float(n))
    return out[0], out[1], out[2]


def largest_size(sizes: Sequence[float]) -> float:
    """The C's running maximum (``if (max < s) max = s``): a NaN first size stays, a later one is skipped."""
    out = sizes[0]
    for s in sizes[1:]:
        if out < s:
            out = s
    return out


def recommended_oversample(xtal_max: float, lambda0: float, distance: float, pixel_size: float) -> int:
    """ceil(3 · crystal size / (λ·distance/pixel)): subpixels per axis to resolve a spot's width.

    As in the C, the ceiling is cast to int, so a huge, infinite (distance 0) or NaN ratio turns
    into INT_MIN, and any result <= 0 into 1.
    """
    n = c_ceil_int(c_div(3.0 * xtal_max, c_div(lambda0 * distance, pixel_size)))
    return 1 if n <= 0 else n


def phi_sampling(osc: float, phistep: float, phisteps: int) -> tuple[float, float, int]:
    """The C's φ rules → (osc, phistep, phisteps), all angles in rad.

    Nothing given: one step of 0. -osc alone: 2 steps of osc/2. -osc with -phistep:
    ceil(osc/step) steps. -phisteps N alone: osc = 1°. -phisteps N with -osc: step osc/N.
    -phistep without -osc: osc = step and 2 steps, even when -phisteps was given.
    """
    if phisteps < 0:
        if osc < 0.0:
            if phistep <= 0.0:
                return 0.0, 0.0, 1
            return phistep, phistep, 2
        if phistep <= 0.0:
            return osc, osc / 2.0, 2
        return osc, phistep, int(math.ceil(osc / phistep))
    if phisteps == 0:
        phisteps = 1
    if osc < 0.0:
        if phistep <= 0.0:
            osc = 1.0 / RTD
            return osc, osc / phisteps, phisteps
        return phistep, phistep, 2
    if phistep < 0.0:
        return osc, osc / phisteps, phisteps
    return osc, phistep, phisteps


def mosaic_domain_count(spread: float, domains: int) -> tuple[float, int, list[str]]:
    """The C's mosaic rules → (spread rad, domain count, console lines)."""
    lines: list[str] = []
    if domains <= 0:
        if spread < 0.0:
            return 0.0, 1, lines
        if spread == 0.0:
            return spread, 1, lines
        lines.append("note: mosaic spread given without -mosaic_dom; using 10 domains")
        return spread, 10, lines
    if spread < 0.0:
        lines.append("note: -mosaic_dom given without a spread; using 1 domain")
        return 0.0, 1, lines
    if spread == 0.0:
        lines.append("note: mosaic spread is 0; using 1 domain")
        return spread, 1, lines
    return spread, domains, lines
