"""The C nanoBragg's random generators, re-expressed so that the same seed gives the same numbers.

The C draws random numbers in three places, each from its own seed word but through one uniform
generator (a Park–Miller minimal-standard generator with a 32-entry Bays–Durham shuffle, in the
style of Numerical Recipes' ``ran1``):

* ``-misset random``: one random rotation from ``-misset_seed`` (``random_misset_umat``);
* mosaic domains: one rotation per domain from ``-mosaic_seed`` (``mosaic_umats``);
* ``-noisefile``: one Poisson deviate per pixel from ``-seed`` (``poisson_noise``).

Seed convention. The C stores the negated command-line value (``-seed 7`` is kept as −7; the
mosaic default is −12345678) and a negative seed word makes the generator rebuild its shuffle table.
The public functions here take the **command-line value** (7, 12345678); ``CRandom`` itself takes
the **stored** word, exactly as the C holds it (``CRandom.from_cli`` converts).

Precision. The C's uniform and Poisson deviates are C ``float``s, and the mosaic generator takes its
spread as a ``float`` and calls single-precision ``powf``. Every such step is rounded to float32
here. Rounding an exactly-computed double result of one +, −, ×, ÷ or √ of two float32 values to
float32 gives the float32 result (binary64 has more than 2·24+2 bits), so double arithmetic
followed by ``_f32`` reproduces the C's float arithmetic bit for bit. ``powf`` is taken from the
C library itself where it can be loaded, because its last bit is not the correctly rounded one.

All generators are inherently sequential, so this module is plain Python, not tensor code.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import math
import struct
from typing import Optional

import numpy as np
import torch

__all__ = [
    "CRandom",
    "DEFAULT_MOSAIC_SEED",
    "mosaic_umats",
    "random_misset_umat",
    "random_misset_angles",
    "umat_to_misset",
    "uniform_random_rotation",
    "poisson_noise",
]

#: The command-line value equivalent to the C's built-in mosaic seed word (−12345678).
DEFAULT_MOSAIC_SEED = 12345678

# Park–Miller minimal standard with Schrage's factorisation, 32-entry shuffle table.
_IA = 16807
_IM = 2147483647
_AM = 1.0 / _IM
_IQ = 127773
_IR = 2836
_NTAB = 32
_NDIV = 1 + (_IM - 1) // _NTAB
_RNMX = 1.0 - 1.2e-7          # largest value handed out, kept below 1 (compared in double)

_F32 = struct.Struct("<f")


def _f32(x: float) -> float:
    """Round a Python float to the nearest float32 (ties to even), as a C float assignment does."""
    return _F32.unpack(_F32.pack(x))[0]


_RNMX_F32 = _f32(_RNMX)
_ONE_THIRD_F32 = _f32(1.0 / 3.0)


def _load_powf():
    """The C library's powf, so that mosaic rotation angles carry the same last bit as the C's."""
    for name in (ctypes.util.find_library("m"), "libm.so.6"):
        if not name:
            continue
        try:
            fn = ctypes.CDLL(name).powf
        except (OSError, AttributeError):
            continue
        fn.restype = ctypes.c_float
        fn.argtypes = (ctypes.c_float, ctypes.c_float)
        return fn
    return None


_LIBM_POWF = _load_powf()


def _powf(x: float, y: float) -> float:
    if _LIBM_POWF is not None:
        return float(_LIBM_POWF(x, y))
    # Without a loadable libm: the correctly rounded value, which differs from glibc's in rare ulps.
    return _f32(math.pow(x, y)) if x > 0.0 else _f32(0.0 if x == 0.0 else math.nan)


def _trunc_div(a: int, b: int) -> int:
    """C integer division (truncates toward zero); b > 0."""
    return a // b if a >= 0 else -((-a) // b)


class CRandom:
    """The state the C keeps for its random streams.

    ``seed`` is the stored seed word (the negated command-line value). In the C the shuffle table
    is one static table shared by every stream; a negative (or zero) seed word rebuilds it, which
    is why each normally-seeded stream is independent. ``reseed`` starts another stream on this
    object's table, which reproduces the C also for a positive stored word (a negative
    command-line value), where the C continues on whatever table the previous stream left.
    """

    def __init__(self, seed: int) -> None:
        self.idum = int(seed)
        self._iy = 0
        self._iv = [0] * _NTAB
        self._gauss_spare: Optional[float] = None

    @classmethod
    def from_cli(cls, value: int) -> "CRandom":
        """Seeded as the C seeds it from a command-line value (which it negates)."""
        return cls(-int(value))

    def reseed(self, seed: int) -> None:
        """Switch to another stored seed word, keeping the shuffle table (and spare deviate)."""
        self.idum = int(seed)

    # -- uniform -----------------------------------------------------------------------------
    def _advance(self) -> int:
        idum = self.idum
        k = _trunc_div(idum, _IQ)
        idum = _IA * (idum - k * _IQ) - _IR * k
        if idum < 0:
            idum += _IM
        self.idum = idum
        return idum

    def ran1(self) -> float:
        """Uniform deviate in (0, 1) as a float32 value."""
        if self.idum <= 0 or self._iy == 0:
            # The seed word is made positive (0 and positive words become 1), then the table is
            # filled after 8 warm-up steps.
            self.idum = 1 if -self.idum < 1 else -self.idum
            for j in range(_NTAB + 7, -1, -1):
                value = self._advance()
                if j < _NTAB:
                    self._iv[j] = value
            self._iy = self._iv[0]
        value = self._advance()
        j = self._iy // _NDIV
        self._iy = self._iv[j]
        self._iv[j] = value
        temp = _f32(_AM * self._iy)
        return _RNMX_F32 if temp > _RNMX else temp

    # -- derived deviates --------------------------------------------------------------------
    def gaussdev(self) -> float:
        """Unit normal deviate (polar Box–Muller, float32); every second call uses the spare."""
        if self._gauss_spare is not None:
            spare, self._gauss_spare = self._gauss_spare, None
            return spare
        while True:
            v1 = _f32(2.0 * self.ran1() - 1.0)
            v2 = _f32(2.0 * self.ran1() - 1.0)
            rsq = _f32(_f32(v1 * v1) + _f32(v2 * v2))
            if 0.0 < rsq < 1.0:
                break
        fac = _f32(math.sqrt(-2.0 * math.log(rsq) / rsq))
        self._gauss_spare = _f32(v1 * fac)
        return _f32(v2 * fac)

    def expdev(self) -> float:
        """Unit exponential deviate (float32). The C defines it but nanoBragg never calls it."""
        while True:
            u = self.ran1()
            if u != 0.0:
                return _f32(-math.log(u))

    def poidev(self, xm: float) -> float:
        """Poisson deviate of mean ``xm`` (a float32 value), as a float32 value.

        Three regimes, as in the C: above 1e6 a Gaussian approximation; below 12 the product of
        uniforms compared with exp(−xm); otherwise rejection from a Lorentzian envelope.
        """
        xm = _f32(xm)
        if xm > 1.0e6:
            return _f32(xm + math.sqrt(xm) * self.gaussdev())
        if xm < 12.0:
            g = _f32(math.exp(-xm))
            em = -1.0
            t = 1.0
            while True:
                em += 1.0
                t = _f32(t * self.ran1())
                if not t > g:
                    return em
        sq = _f32(math.sqrt(2.0 * xm))
        alxm = _f32(math.log(xm))
        g = _f32(_f32(xm * alxm) - _gammln(xm + 1.0))
        while True:
            while True:
                y = _f32(math.tan(math.pi * self.ran1()))
                em = _f32(_f32(sq * y) + xm)
                if not em < 0.0:
                    break
            em = float(math.floor(em))
            exponent = _f32(_f32(_f32(em * alxm) - _gammln(em + 1.0)) - g)
            t = _f32(0.9 * (1.0 + _f32(y * y)) * math.exp(exponent))
            if not self.ran1() > t:
                return em


_GAMMLN_COEFFS = (76.18009172947146, -86.50532032941677, 24.01409824083091,
                  -1.231739572450155, 0.1208650973866179e-2, -0.5395239384953e-5)


def _gammln(xx: float) -> float:
    """ln Γ(xx) by Lanczos' series (double inside, float argument and result as in the C)."""
    x = y = _f32(xx)
    tmp = x + 5.5
    tmp -= (x + 0.5) * math.log(tmp)
    ser = 1.000000000190015
    for c in _GAMMLN_COEFFS:
        y += 1.0
        ser += c / y
    return _f32(-tmp + math.log(2.5066282746310005 * ser / x))


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
    angle = _f32(_f32(cap) * _powf(_f32(1.0 - r3 * r3), _ONE_THIRD_F32))
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
    outside get 0 here (the C leaves the int image's value there: see ``io.smv.noise_int_image``).
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
