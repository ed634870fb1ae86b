"""Pure per-pixel physics of the rendering kernel: positions, solid angle, absorption, polarization.

Every function broadcasts over leading dimensions and keeps the dtype and device of its tensor
inputs (Python floats never upcast a float32 tensor), so the kernel runs unchanged in float32 or
on CUDA, and stays differentiable.
"""
from __future__ import annotations

import math
from typing import Optional

import torch

#: Classical electron radius squared (m²), the value the C uses.
R_E_SQR = 7.94079248018965e-30
#: Radians → degrees, as the C defines it.
RTD = 180.0 / math.pi


def sum3(x: torch.Tensor) -> torch.Tensor:
    """x[..., 0] + x[..., 1] + x[..., 2], added left to right like the C's dot products.

    A matrix-vector product with ones: torch's reductions over a last axis of length 3 are about
    ten times slower, and multiplying by 1 is exact, so the sum is the same.
    """
    ones = torch.ones(3, dtype=x.dtype, device=x.device)
    return torch.mv(x.reshape(-1, 3), ones).reshape(x.shape[:-1])


def dot3(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Dot products over the last axis (length 3), broadcasting like ``(a * b).sum(-1)``."""
    return sum3(a * b)


def pixel_positions(spix: torch.Tensor, fpix: torch.Tensor, depth: float, *, pix0: torch.Tensor,
                    fdet: torch.Tensor, sdet: torch.Tensor, odet: torch.Tensor, pixel_size: float,
                    oversample: int, curved: bool = False, distance: float = 0.0,
                    beam_vector: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Sample → sub-pixel centre vectors (P, U, 3) in metres, at ``depth`` along the normal.

    U = oversample², slow-major like the C. A sub-pixel's fast coordinate depends only on its
    column and its slow coordinate only on its row, so each is scaled onto its axis for the
    ``oversample`` columns and rows alone; the U centres are then their broadcast sums, added
    in the C's order (fast + slow + depth + pix0).
    """
    dtype, device = pix0.dtype, pix0.device
    o = oversample
    idx = torch.arange(o, device=device)
    sub = pixel_size / o
    Fdet = sub * (fpix[:, None] * o + idx[None, :]).to(dtype) + sub / 2.0          # (P, o)
    Sdet = sub * (spix[:, None] * o + idx[None, :]).to(dtype) + sub / 2.0          # (P, o)
    shift = depth * odet
    # One lab axis at a time (contiguous (P, o, o) planes, then one interleaving copy): several
    # times faster than broadcasting over a trailing axis of 3, and the same operations.
    # The two constant terms are added in place (same order, same bits, two fewer frame-sized
    # temporaries per axis; add_ keeps autograd: its gradient needs neither operand).
    planes = [((Sdet * sdet[c])[:, :, None] + (Fdet * fdet[c])[:, None, :]).add_(shift[c]).add_(pix0[c])
              for c in range(3)]
    pos = torch.stack(planes, -1).reshape(-1, o * o, 3)                            # (P, o, o, 3)
    if curved:
        # Every pixel sits at ``distance`` along the beam, turned about s then f by the flat
        # position's lab y/R and z/R read as angles (only meaningful for a beam along x).
        base = distance * beam_vector
        turned = rotate_about_axis(base, sdet, pos[..., 1] / distance)
        pos = rotate_about_axis(turned, fdet, pos[..., 2] / distance)
    return pos


def rotate_about_axis(v: torch.Tensor, axis: torch.Tensor, phi: torch.Tensor | float) -> torch.Tensor:
    """Rodrigues rotation of v (..., 3) about a unit axis (3,) by phi (broadcast over ...)."""
    phi = torch.as_tensor(phi, dtype=v.dtype, device=v.device)
    sinphi, cosphi = torch.sin(phi)[..., None], torch.cos(phi)[..., None]
    dot = (v * axis).sum(-1, keepdim=True) * (1.0 - cosphi)
    return axis * dot + v * cosphi + torch.linalg.cross(axis.expand_as(v), v, dim=-1) * sinphi


def solid_angle(R: torch.Tensor, pixel_size: float, close_distance: float, point_pixel: bool) -> torch.Tensor:
    """ω of a pixel seen at distance R: pixel²/R² times the obliquity close_distance/R, or 1/R²."""
    if point_pixel:
        return 1.0 / R / R
    return pixel_size * pixel_size / R / R * close_distance / R


def capture_fraction(diffracted: torch.Tensor, odet: torch.Tensor, layer: int, thickstep: float,
                     mu: float) -> torch.Tensor:
    """Fraction absorbed in layer ``layer``: Beer-Lambert between its faces along the ray."""
    parallax = dot3(diffracted, odet)
    return (torch.exp(-layer * thickstep * mu / parallax)
            - torch.exp(-(layer + 1) * thickstep * mu / parallax))


def polarization_factor(kahn: float, incident: torch.Tensor, diffracted: torch.Tensor,
                        axis: torch.Tensor) -> torch.Tensor:
    """Kahn polarization factor for unit incident/diffracted directions (broadcast, last dim 3)."""
    cos2theta = dot3(incident, diffracted)
    cos2theta_sqr = cos2theta * cos2theta
    sin2theta_sqr = 1.0 - cos2theta_sqr
    if kahn == 0.0:
        return 0.5 * (1.0 + cos2theta_sqr)
    incident, diffracted = torch.broadcast_tensors(incident, diffracted)
    b_in = torch.linalg.cross(axis.expand_as(incident), incident, dim=-1)
    b_in = b_in / b_in.norm(dim=-1, keepdim=True)
    e_in = torch.linalg.cross(incident, b_in, dim=-1)
    e_in = e_in / e_in.norm(dim=-1, keepdim=True)
    psi = -torch.atan2(dot3(diffracted, b_in), dot3(diffracted, e_in))
    return 0.5 * (1.0 + cos2theta_sqr - kahn * torch.cos(2.0 * psi) * sin2theta_sqr)


def final_scale(I: torch.Tensor, *, fluence: float, steps: int) -> torch.Tensor:
    """r_e²·fluence·I/steps, evaluated left to right like the C (the factors follow in the kernel)."""
    return R_E_SQR * fluence * I / steps
