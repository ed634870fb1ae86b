"""Rotations and small vector helpers of the lab frame, shared by the detector and the crystal.

All are pure torch functions, so gradients flow through the angles and the vectors.
"""
from __future__ import annotations

from typing import Union

import torch

Scalar = Union[float, torch.Tensor]


def as_tensor(x, dtype=torch.float64, device="cpu") -> torch.Tensor:
    """A tensor for ``x``; an existing tensor is only cast/moved (its graph is kept)."""
    if isinstance(x, torch.Tensor):
        return x.to(dtype=dtype, device=device)
    return torch.tensor(x, dtype=dtype, device=device)


def unitize(v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(unit vector, original magnitude); a zero vector stays zero, as in the C."""
    mag = torch.linalg.vector_norm(v)
    safe = torch.where(mag != 0, mag, torch.ones_like(mag))
    return torch.where(mag != 0, v / safe, torch.zeros_like(v)), mag


def rotation_matrices(rotx: Scalar, roty: Scalar, rotz: Scalar, *, dtype=torch.float64, device="cpu"):
    """(Rx, Ry, Rz, R) with R = Rz·Ry·Rx: the detector rotations are applied about x, then y, then z."""
    x, y, z = (as_tensor(a, dtype, device) for a in (rotx, roty, rotz))
    one, zero = torch.ones_like(x), torch.zeros_like(x)
    cx, sx, cy, sy, cz, sz = torch.cos(x), torch.sin(x), torch.cos(y), torch.sin(y), torch.cos(z), torch.sin(z)
    Rx = torch.stack([torch.stack([one, zero, zero]), torch.stack([zero, cx, -sx]), torch.stack([zero, sx, cx])])
    Ry = torch.stack([torch.stack([cy, zero, sy]), torch.stack([zero, one, zero]), torch.stack([-sy, zero, cy])])
    Rz = torch.stack([torch.stack([cz, -sz, zero]), torch.stack([sz, cz, zero]), torch.stack([zero, zero, one])])
    return Rx, Ry, Rz, Rz @ (Ry @ Rx)


def rotate_xyz(v: torch.Tensor, rotx: Scalar, roty: Scalar, rotz: Scalar) -> torch.Tensor:
    """Rotate ``v`` (..., 3) about x, then y, then z (angles in rad)."""
    R = rotation_matrices(rotx, roty, rotz, dtype=v.dtype, device=v.device)[3]
    return v @ R.T


def rotate_about_axis(v: torch.Tensor, axis: torch.Tensor, angle: Scalar) -> torch.Tensor:
    """Rodrigues rotation of ``v`` (..., 3) by ``angle`` about ``axis``.

    ``axis`` is used as given, not normalized: the C never unitizes the two-theta axis, and a
    non-unit axis really does give a non-orthonormal detector there.
    """
    angle = as_tensor(angle, v.dtype, v.device)
    c, s = torch.cos(angle), torch.sin(angle)
    along = (v * axis).sum(-1, keepdim=True) * (1.0 - c)
    return axis * along + v * c + torch.linalg.cross(axis.expand_as(v), v) * s
