"""One tolerance profile per (case, dtype): the only place a run, the gate and the bench get
their bars from.

float64 keeps the case's own bars (``tolerance`` and ``image``). Any other dtype uses the bars
stored in the case file under ``[profiles.<dtype>]``, next to the error they were derived from:
the engine in that dtype against the recordings, measured by ``nbparity calibrate`` (see
harness.bench.calibrate) on every reference of the case. :func:`derive` is the rule: each bar is
MARGIN times the measured error, never tighter than the float64 bar. A case with no profile for
the dtype asked for cannot be judged in it (a usage error that says how to measure one), rather
than being judged by float64 bars it can never meet or by a guess.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from harness.compare.images import ImageThreshold
from harness.compare.primitive import ToleranceTable
from harness.model.errors import UsageError
from harness.registry.cases import Case, DtypeProfile, ImageCheck, KeyMeasured, KeyTolerance, MeasuredError, Tolerances

BASE_DTYPE = "float64"
#: Headroom over the measured error: float32 rounding changes with the summation order, which
#: changes with the number of threads (the gate's --jobs) and the row batching.
MARGIN = 4.0
#: A key whose error exceeds this (relative where |C| ≥ 1, absolute where |C| < 1; float32's
#: rounding is ~1e-7) suffers cancellation (e.g. the scattering vector, a difference of two nearly
#: equal unit vectors, at long distances): it gets a bar of its own instead of loosening all keys.
CANCELLATION = 1e-3


def file_note(dtype: str) -> str:
    """The comment line above a case file's ``[profiles.<dtype>]`` (the importer keeps it)."""
    return f"# Bars for {dtype} runs, derived from the measured error (`nbparity calibrate`); do not edit by hand.\n"


@dataclass(frozen=True)
class Profile:
    """The bars one (case, dtype) is judged by, and where they come from."""

    case: str
    dtype: str
    tolerances: ToleranceTable
    image: ImageThreshold
    derived: str
    measured: Optional[MeasuredError] = None


def for_dtype(case: Case, dtype: str) -> Profile:
    """The profile of ``case`` in ``dtype`` (float64: the case's own bars)."""
    if dtype == BASE_DTYPE:
        return Profile(case.name, dtype, case.tolerance.table(), case.image.threshold(),
                       "the case's own bars (tolerance, image)")
    stored = case.profiles.get(dtype)  # type: ignore[call-overload]
    if stored is None:
        raise UsageError(f"case {case.name!r} has no {dtype} tolerance profile; measure one with "
                         f"`nbparity calibrate --dtype {dtype} {case.name}` (it is stored in its case file)")
    return Profile(case.name, dtype, stored.tolerance.table(), stored.image.threshold(), stored.derived,
                   stored.measured)


def _bar(base: float, measured: Optional[float]) -> float:
    return base if measured is None else max(base, MARGIN * measured)


def split_keys(per_key: dict[str, tuple[float, float]]) -> MeasuredError:
    """Measured errors per key -> the case-wide maxima over the rounding keys, and the
    cancelling keys (above CANCELLATION) on their own (image fields left empty)."""
    own = {k: KeyMeasured(abs_small=a, rel=r) for k, (a, r) in sorted(per_key.items())
           if a > CANCELLATION or r > CANCELLATION}
    rest = [v for k, v in per_key.items() if k not in own]
    return MeasuredError(trace_max_abs_small=max((a for a, _ in rest), default=0.0),
                         trace_max_rel=max((r for _, r in rest), default=0.0), keys=own)


def derive(case: Case, dtype: str, measured: MeasuredError) -> DtypeProfile:
    """The bars for ``dtype`` from its measured error (the rule stated in the module docstring)."""
    tol = case.tolerance
    atol, rtol = _bar(tol.atol, measured.trace_max_abs_small), _bar(tol.rtol, measured.trace_max_rel)
    keys = {name: KeyTolerance(atol=None if k.atol is None else max(k.atol, atol),
                               rtol=None if k.rtol is None else max(k.rtol, rtol)) for name, k in tol.keys.items()}
    for name, k in measured.keys.items():  # the cancelling keys: their own bars
        old = keys.get(name, KeyTolerance())
        keys[name] = KeyTolerance(atol=max(old.atol or atol, _bar(atol, k.abs_small)),
                                  rtol=max(old.rtol or rtol, _bar(rtol, k.rel)))
    img = case.image
    corr = img.min_correlation
    if corr is not None and measured.image_correlation is not None:
        corr = min(corr, 1.0 - MARGIN * (1.0 - measured.image_correlation))
    derived = (f"{dtype} engine vs the recordings on {', '.join(measured.runs) or 'no run'}; each bar is "
               f"{MARGIN:g} x the measured error and never below the float64 bar: atol from max |dC| where "
               f"|C| < 1, rtol from max |dC|/|C| where |C| >= 1, image rtol_of_max from max|dC|/max|C|; "
               f"keys with an error above {CANCELLATION:g} (cancellation) have bars of their own")
    return DtypeProfile(derived=derived, measured=measured,
                        tolerance=Tolerances(atol=atol, rtol=rtol, keys=keys),
                        image=ImageCheck(rtol_of_max=_bar(img.rtol_of_max, measured.image_rel_to_max),
                                         atol=img.atol, min_correlation=corr))
