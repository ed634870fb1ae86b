"""The C nanoBragg's uniform generator (``CRandom``) and its float32 arithmetic, bit for bit.

What the engine draws with it lives in ``engine.sample.rng``.

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
followed by ``to_f32`` reproduces the C's float arithmetic bit for bit. ``powf`` is taken from the
C library itself where it can be loaded, because its last bit is not the correctly rounded one.

All generators are inherently sequential, so this module is plain Python, not tensor code.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import math
import struct
from typing import Optional

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


def to_f32(x: float) -> float:
    """Round a Python float to the nearest float32 (ties to even), as a C float assignment does."""
    return _F32.unpack(_F32.pack(x))[0]


_RNMX_F32 = to_f32(_RNMX)


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


def powf(x: float, y: float) -> float:
    if _LIBM_POWF is not None:
        return float(_LIBM_POWF(x, y))
    # Without a loadable libm: the correctly rounded value, which differs from glibc's in rare ulps.
    return to_f32(math.pow(x, y)) if x > 0.0 else to_f32(0.0 if x == 0.0 else math.nan)


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
        temp = to_f32(_AM * self._iy)
        return _RNMX_F32 if temp > _RNMX else temp

    # -- derived deviates --------------------------------------------------------------------
    def gaussdev(self) -> float:
        """Unit normal deviate (polar Box–Muller, float32); every second call uses the spare."""
        if self._gauss_spare is not None:
            spare, self._gauss_spare = self._gauss_spare, None
            return spare
        while True:
            v1 = to_f32(2.0 * self.ran1() - 1.0)
            v2 = to_f32(2.0 * self.ran1() - 1.0)
            rsq = to_f32(to_f32(v1 * v1) + to_f32(v2 * v2))
            if 0.0 < rsq < 1.0:
                break
        fac = to_f32(math.sqrt(-2.0 * math.log(rsq) / rsq))
        self._gauss_spare = to_f32(v1 * fac)
        return to_f32(v2 * fac)

    def expdev(self) -> float:
        """Unit exponential deviate (float32). The C defines it but nanoBragg never calls it."""
        while True:
            u = self.ran1()
            if u != 0.0:
                return to_f32(-math.log(u))

    def poidev(self, xm: float) -> float:
        """Poisson deviate of mean ``xm`` (a float32 value), as a float32 value.

        Three regimes, as in the C: above 1e6 a Gaussian approximation; below 12 the product of
        uniforms compared with exp(−xm); otherwise rejection from a Lorentzian envelope.
        """
        xm = to_f32(xm)
        if xm > 1.0e6:
            return to_f32(xm + math.sqrt(xm) * self.gaussdev())
        if xm < 12.0:
            g = to_f32(math.exp(-xm))
            em = -1.0
            t = 1.0
            while True:
                em += 1.0
                t = to_f32(t * self.ran1())
                if not t > g:
                    return em
        sq = to_f32(math.sqrt(2.0 * xm))
        alxm = to_f32(math.log(xm))
        g = to_f32(to_f32(xm * alxm) - _gammln(xm + 1.0))
        while True:
            while True:
                y = to_f32(math.tan(math.pi * self.ran1()))
                em = to_f32(to_f32(sq * y) + xm)
                if not em < 0.0:
                    break
            em = float(math.floor(em))
            exponent = to_f32(to_f32(to_f32(em * alxm) - _gammln(em + 1.0)) - g)
            t = to_f32(0.9 * (1.0 + to_f32(y * y)) * math.exp(exponent))
            if not self.ran1() > t:
                return em


_GAMMLN_COEFFS = (76.18009172947146, -86.50532032941677, 24.01409824083091,
                  -1.231739572450155, 0.1208650973866179e-2, -0.5395239384953e-5)


def _gammln(xx: float) -> float:
    """ln Γ(xx) by Lanczos' series (double inside, float argument and result as in the C)."""
    x = y = to_f32(xx)
    tmp = x + 5.5
    tmp -= (x + 0.5) * math.log(tmp)
    ser = 1.000000000190015
    for c in _GAMMLN_COEFFS:
        y += 1.0
        ser += c / y
    return to_f32(-tmp + math.log(2.5066282746310005 * ser / x))
