"""Rotations and small vector helpers of the lab frame, shared by the detector and the crystal.

All are pure torch functions, so gradients flow through the angles and the vectors.
"""
from __future__ import annotations

from typing import Union

import torch

from engine.config.c_numbers import c_cos, c_sin, c_sqrt

Scalar = Union[float, torch.Tensor]


def as_tensor(x, dtype=torch.float64, device="cpu") -> torch.Tensor:
    """A tensor for ``x``; an existing tensor is only cast/moved (its graph is kept)."""
    if isinstance(x, torch.Tensor):
        return x.to(dtype=dtype, device=device)
    return torch.tensor(x, dtype=dtype, device=device)


def magnitude(v: torch.Tensor) -> torch.Tensor:
    """|v| over the last axis, summed x² + y² + z² in the C's order.

    ``torch.linalg.vector_norm`` can differ from this by an ulp, which is enough to move the
    C's ceil(sample size / |a|) by a whole unit cell.
    """
    x, y, z = v[..., 0], v[..., 1], v[..., 2]
    return c_sqrt(x * x + y * y + z * z)


def dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """a · b over the last axis, added left to right as the C's dot_product() does.

    ``(a * b).sum()`` starts from +0, so three −0 terms give +0 where the C gives −0, and the
    sign shows in the SMV header (ADXV_CENTER_X=-0)."""
    return a[..., 0] * b[..., 0] + a[..., 1] * b[..., 1] + a[..., 2] * b[..., 2]


def cross(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """a × b over the last axis, each component as the C's cross_product() writes it
    (``torch.linalg.cross`` rounds some components differently)."""
    a0, a1, a2 = a[..., 0], a[..., 1], a[..., 2]
    b0, b1, b2 = b[..., 0], b[..., 1], b[..., 2]
    return torch.stack(torch.broadcast_tensors(a1 * b2 - a2 * b1, a2 * b0 - a0 * b2, a0 * b1 - a1 * b0), dim=-1)


def unitize(v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(unit vector, original magnitude); a zero vector stays zero, as in the C."""
    mag = magnitude(v)
    safe = torch.where(mag != 0, mag, torch.ones_like(mag))
    return torch.where(mag != 0, v / safe, torch.zeros_like(v)), mag


def rotation_matrices(rotx: Scalar, roty: Scalar, rotz: Scalar, *, dtype=torch.float64, device="cpu"):
    """(Rx, Ry, Rz, R) with R = Rz·Ry·Rx: the detector rotations are applied about x, then y, then z."""
    x, y, z = (as_tensor(a, dtype, device) for a in (rotx, roty, rotz))
    one, zero = torch.ones_like(x), torch.zeros_like(x)
    cx, sx, cy, sy, cz, sz = c_cos(x), c_sin(x), c_cos(y), c_sin(y), c_cos(z), c_sin(z)
    Rx = torch.stack([torch.stack([one, zero, zero]), torch.stack([zero, cx, -sx]), torch.stack([zero, sx, cx])])
    Ry = torch.stack([torch.stack([cy, zero, sy]), torch.stack([zero, one, zero]), torch.stack([-sy, zero, cy])])
    Rz = torch.stack([torch.stack([cz, -sz, zero]), torch.stack([sz, cz, zero]), torch.stack([zero, zero, one])])
    return Rx, Ry, Rz, Rz @ (Ry @ Rx)


def _rotates(angle: torch.Tensor) -> bool:
    # The C skips a rotation whose angle is exactly 0; a tensor that needs a gradient is kept.
    return angle.requires_grad or angle.numel() != 1 or float(angle) != 0.0


def rotate_xyz(v: torch.Tensor, rotx: Scalar, roty: Scalar, rotz: Scalar) -> torch.Tensor:
    """Rotate ``v`` (..., 3) about x, then y, then z (angles in rad), one axis at a time with
    the C's products and sums (rotate() in nanoBragg.c), so the rounding is the C's."""
    x, y, z = v[..., 0], v[..., 1], v[..., 2]
    ax, ay, az = (as_tensor(a, v.dtype, v.device) for a in (rotx, roty, rotz))
    if _rotates(ax):
        c, s = c_cos(ax), c_sin(ax)
        y, z = y * c + z * -s, y * s + z * c
    if _rotates(ay):
        c, s = c_cos(ay), c_sin(ay)
        x, z = x * c + y * 0.0 + z * s, x * -s + y * 0.0 + z * c
    if _rotates(az):
        c, s = c_cos(az), c_sin(az)
        x, y = x * c + y * -s, x * s + y * c
    return torch.stack(torch.broadcast_tensors(x, y, z), dim=-1)


def rotate_about_axis(v: torch.Tensor, axis: torch.Tensor, angle: Scalar) -> torch.Tensor:
    """Rodrigues rotation of ``v`` (..., 3) by ``angle`` about ``axis``.

    ``axis`` is used as given, not normalized: the C never unitizes the two-theta axis, and a
    non-unit axis really does give a non-orthonormal detector there.
    """
    angle = as_tensor(angle, v.dtype, v.device)
    c, s = c_cos(angle), c_sin(angle)
    along = ((axis[..., 0] * v[..., 0] + axis[..., 1] * v[..., 1] + axis[..., 2] * v[..., 2])
             * (1.0 - c))[..., None]
    return axis * along + v * c + cross(axis, v) * s
