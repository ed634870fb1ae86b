"""What the C draws at random, from its own seeds and generator (``engine.sample.c_random``):

* ``-misset random``: one random rotation from ``-misset_seed`` (``random_misset_umat``);
* mosaic domains: one rotation per domain from ``-mosaic_seed`` (``mosaic_umats``);
* ``-noisefile``: one Poisson deviate per pixel from ``-seed`` (``poisson_noise``).

The public functions take the **command-line value** of a seed (7, 12345678); see
``engine.sample.c_random`` for how the C stores it and for the float32 arithmetic.
"""
from __future__ import annotations

import math
from typing import Optional

import numpy as np
import torch

from engine.sample.c_random import DEFAULT_MOSAIC_SEED, CRandom, powf, to_f32

#: ``1/3`` as the C's float constant (the exponent of the capped rotation angle).
ONE_THIRD_F32 = to_f32(1.0 / 3.0)


# ---------------------------------------------------------------------------------------------
# Rotations
# ---------------------------------------------------------------------------------------------
def _cap_rotation(cap: float, rng: CRandom) -> list[float]:
    """One random rotation (row-major 3×3) about a random axis, by at most ``cap`` radians.

    The axis is uniform on the sphere; the angle is cap·(1 − r²)^(1/3) for r uniform on [−1, 1],
    computed in float32 with powf because the C passes the cap as a float.
    """
    r1 = 2.0 * rng.ran1() - 1.0
    r2 = 2.0 * rng.ran1() - 1.0
    r3 = 2.0 * rng.ran1() - 1.0
    xyrad = math.sqrt(1.0 - r2 * r2)
    angle = to_f32(to_f32(cap) * powf(to_f32(1.0 - r3 * r3), ONE_THIRD_F32))
    ax = xyrad * math.sin(math.pi * r1)
    ay = xyrad * math.cos(math.pi * r1)
    az = r2
    # Rodrigues' formula, grouped as the C groups it so that the last bits agree.
    c = math.cos(angle)
    omc = 1.0 - c
    s = math.sin(angle)
    omc_ax = omc * ax
    xy = omc_ax * ay
    xz = omc_ax * az
    yz = omc * ay * az
    return [c + omc * (ax * ax), xy - s * az, xz + s * ay,
            xy + s * az, c + omc * (ay * ay), yz - s * ax,
            xz - s * ay, yz + s * ax, c + omc * (az * az)]


def _as_tensor(rows: list[list[float]], dtype: torch.dtype, device) -> torch.Tensor:
    return torch.tensor(rows, dtype=torch.float64).to(device=device, dtype=dtype)


def mosaic_umats(spread_rad: float, n_domains: int, seed: int = DEFAULT_MOSAIC_SEED, *,
                 rng: Optional[CRandom] = None, dtype: torch.dtype = torch.float64,
                 device: torch.device | str | None = None) -> torch.Tensor:
    """The C's mosaic domain orientations, (n_domains, 3, 3); a domain maps v to U @ v.

    seed: the ``-mosaic_seed`` command-line value (the C stores its negative; default 12345678).
    Domain 0 still consumes its three draws but is then replaced by the identity, as in the C.
    rng: continue on an existing generator's shuffle table (see ``CRandom.reseed``) instead of a
    fresh one; only matters for a negative command-line seed.
    """
    if n_domains < 1:
        raise ValueError(f"n_domains must be >= 1, got {n_domains}")
    if rng is None:
        rng = CRandom.from_cli(seed)
    else:
        rng.reseed(-int(seed))
    mats = []
    for i in range(n_domains):
        m = _cap_rotation(spread_rad, rng)
        if i == 0:
            m = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
        mats.append([m[0:3], m[3:6], m[6:9]])
    return _as_tensor(mats, dtype, device)


#: The C asks its mosaic generator for a "full sphere" with a cap of 90 that the generator reads as
#: radians, not degrees, so the random misset is not uniform over rotations (c-parity only).
C_MISSET_CAP = 90.0


def random_misset_umat(seed: int, *, rng: Optional[CRandom] = None,
                       dtype: torch.dtype = torch.float64,
                       device: torch.device | str | None = None) -> torch.Tensor:
    """The C's ``-misset random`` rotation (3, 3), from the ``-misset_seed`` command-line value.

    Reproduces the C exactly, including its defect: the rotation angle is up to 90 *radians*.
    The C then applies the angles from ``umat_to_misset``, not this matrix.
    """
    if rng is None:
        rng = CRandom.from_cli(seed)
    else:
        rng.reseed(-int(seed))
    m = _cap_rotation(C_MISSET_CAP, rng)
    return _as_tensor([m[0:3], m[3:6], m[6:9]], dtype, device)


def _norm3(v: list[float]) -> float:
    return math.sqrt(v[0] * v[0] + v[1] * v[1] + v[2] * v[2])


def _unit_or_same(v: list[float], m: float) -> list[float]:
    return [v[0] / m, v[1] / m, v[2] / m] if m > 0 else v


def _cross(a: list[float], b: list[float]) -> list[float]:
    return [a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]]


def umat_to_misset(umat: torch.Tensor | np.ndarray | list) -> tuple[float, float, float]:
    """Misset angles (rx, ry, rz) in radians with umat = Rz·Ry·Rx, recovered as the C recovers them.

    The rows are normalised (twice, as the C does, which can move the last bit), a zero row is
    rebuilt from the cross product of the other two, and the gimbal-lock case (|U_zx| = 1) gets the
    C's fixed answer (π, π/2, atan2(U_xy, −U_yy)).
    """
    u = np.asarray(umat.detach().cpu() if isinstance(umat, torch.Tensor) else umat,
                   dtype=np.float64).reshape(3, 3)
    rows = [[float(x) for x in u[i]] for i in range(3)]
    mags = [_norm3(r) for r in rows]
    rows = [_unit_or_same(r, m) for r, m in zip(rows, mags)]
    zero = [m <= 0 for m in mags]
    units = ([1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0])
    # With two (or three) empty rows the C first puts unit rows in their place.
    for i in range(3):
        others = [j for j in range(3) if j != i]
        if all(zero[j] for j in others):
            for j in others:
                rows[j] = list(units[j])
    for _ in range(2):
        crosses = []
        for i in range(3):
            c = _cross(rows[(i + 1) % 3], rows[(i + 2) % 3])
            crosses.append(_unit_or_same(c, _norm3(c)))
        for i in range(3):
            if zero[i]:
                rows[i] = crosses[i]
    rows = [_unit_or_same(r, _norm3(r)) for r in rows]
    (uxx, uxy, _), (uyx, uyy, _), (uzx, uzy, uzz) = rows
    if uzx * uzx < 1.0:
        return (math.atan2(uzy, uzz), math.atan2(-uzx, math.sqrt(uzy * uzy + uzz * uzz)),
                math.atan2(uyx, uxx))
    quarter = math.atan2(1, 1)
    return (quarter * 4, quarter * 2, math.atan2(uxy, -uyy))


def random_misset_angles(seed: int) -> tuple[float, float, float]:
    """The misset angles (rad) the C prints and applies for ``-misset random -misset_seed seed``."""
    return umat_to_misset(random_misset_umat(seed))


def uniform_random_rotation(seed: int, *, dtype: torch.dtype = torch.float64,
                            device: torch.device | str | None = None) -> torch.Tensor:
    """A rotation drawn uniformly over SO(3) (spec mode's ``-misset random``), (3, 3).

    Shoemake's method: a uniformly random unit quaternion from three uniforms of the same C
    generator, so one seed still names one orientation.
    """
    rng = CRandom.from_cli(seed)
    u1, u2, u3 = rng.ran1(), rng.ran1(), rng.ran1()
    a, b = math.sqrt(1.0 - u1), math.sqrt(u1)
    x, y = a * math.sin(2 * math.pi * u2), a * math.cos(2 * math.pi * u2)
    z, w = b * math.sin(2 * math.pi * u3), b * math.cos(2 * math.pi * u3)
    rows = [[1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]]
    return _as_tensor(rows, dtype, device)


# ---------------------------------------------------------------------------------------------
# Noise
# ---------------------------------------------------------------------------------------------
def poisson_noise(image: torch.Tensor | np.ndarray, seed: int, *,
                  roi: Optional[tuple[int, int, int, int]] = None,
                  rng: Optional[CRandom] = None) -> torch.Tensor:
    """Poisson deviates of a float image, drawn as the C draws its ``-noisefile`` image.

    image: (spixels, fpixels); the values are first stored as float32, as the C's float image is.
    seed: the ``-seed`` command-line value (the C stores its negative).
    roi: (fmin, fmax, smin, smax) inclusive; only these pixels draw, in row-major order. Pixels
    outside get 0 here (the C leaves the int image's value there: see ``io.smv_write.noise_int_image``).
    Returns float32 deviates (the C's poidev values), same shape, on the image's device.

    Sequential by nature: a few seconds per million pixels.
    """
    device = image.device if isinstance(image, torch.Tensor) else None
    arr = (image.detach().cpu().numpy() if isinstance(image, torch.Tensor) else np.asarray(image))
    arr = np.asarray(arr, dtype=np.float64).astype(np.float32)
    if arr.ndim != 2:
        raise ValueError(f"image must be 2-D (spixels, fpixels), got shape {arr.shape}")
    spixels, fpixels = arr.shape
    fmin, fmax, smin, smax = roi if roi is not None else (0, fpixels - 1, 0, spixels - 1)
    fmin, smin = max(fmin, 0), max(smin, 0)
    fmax, smax = min(fmax, fpixels - 1), min(smax, spixels - 1)
    if rng is None:
        rng = CRandom.from_cli(seed)
    else:
        rng.reseed(-int(seed))
    out = np.zeros_like(arr)
    if fmax >= fmin and smax >= smin:
        block = arr[smin:smax + 1, fmin:fmax + 1]
        poidev = rng.poidev
        drawn = [poidev(v) for v in block.ravel().tolist()]
        out[smin:smax + 1, fmin:fmax + 1] = np.asarray(drawn, dtype=np.float32).reshape(block.shape)
    return torch.from_numpy(out).to(device) if device is not None else torch.from_numpy(out)
