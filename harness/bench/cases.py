"""What the bench runs and judges: a registry case (or a bare recording) with its image bars.

The bars come from harness.registry.profiles, per dtype: the same profile `run` and `gate` judge
by (float32 bars are derived from the measured float32 error; a dtype without a profile is timed
but not judged).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Optional, Sequence

import numpy as np

from harness.compare.images import ImageThreshold
from harness.model.errors import UsageError
from harness.references import recordings
from harness.registry import profiles
from harness.registry.cases import Case, Registry, data_root, strip_output_flags
from harness.runners import inputs


@dataclass(frozen=True)
class BenchCase:
    """What to run and what to compare against: argv without outputs, inputs, the bar."""

    name: str
    source: str                     # "registry" (cases/*.toml) or "recording" (case.json only)
    mode: str
    argv: tuple[str, ...]
    inputs: tuple[str, ...]
    data_root: Path
    bars: Mapping[str, ImageThreshold]   # dtype -> image bar (harness.registry.profiles)
    c_threads: int
    recording: recordings.Recording

    @property
    def threshold(self) -> ImageThreshold:
        """The float64 bar (what a C run is held to)."""
        return self.bars[profiles.BASE_DTYPE]

    def bar(self, dtype: str) -> Optional[ImageThreshold]:
        """The engine's bar in ``dtype``; None when the case has no profile for it."""
        return self.bars.get(dtype)

    @property
    def c_runtime_s(self) -> Optional[float]:
        v = self.recording.manifest.get("runtime_s")
        return float(v) if isinstance(v, (int, float)) else None

    def reference_image(self) -> np.ndarray:
        return recordings.read_image(self.recording)


def _recording_inputs(argv: Sequence[str], name: str) -> tuple[str, ...]:
    """The files a recording's argv reads (the engine's option table says which flags take files)."""
    return tuple(inputs.argv_reads(argv, f"recording {name}"))


def image_bars(case: Case) -> dict[str, ImageThreshold]:
    """The case's image bar in every dtype it has a profile for."""
    out = {profiles.BASE_DTYPE: profiles.for_dtype(case, profiles.BASE_DTYPE).image}
    out.update({dtype: profiles.for_dtype(case, dtype).image for dtype in case.profiles})
    return out


def resolve_case(name: str, cases_dir: Path, golden: Path) -> BenchCase:
    """The registry entry when there is one (its reference recording verified), else the recording."""
    registry = Registry(cases_dir)
    if (cases_dir / f"{name}.toml").is_file():
        case: Case = registry.get(name)
        ref = case.reference_for(case.mode)
        if ref.recording is None:
            raise UsageError(f"case {name!r} has no recording for its mode {case.mode!r}: the bench needs one "
                             "to judge parity")
        rec = recordings.load(golden, ref.recording)
        recordings.verify(rec, case, ref, tuple(case.trace_pixels[0]))
        return BenchCase(name=name, source="registry", mode=case.mode, argv=tuple(case.argv),
                         inputs=tuple(case.inputs), data_root=data_root(case, cases_dir, golden),
                         bars=image_bars(case), c_threads=case.c_threads, recording=rec)
    if not (golden / "cases" / name / "case.json").is_file():
        raise UsageError(f"no case {name!r}: neither {cases_dir / (name + '.toml')} nor "
                         f"{golden / 'cases' / name / 'case.json'} exists")
    rec = recordings.load(golden, name)
    if rec.kind != "instrumented-c":
        raise UsageError(f"recording {name!r} is a {rec.kind} image: without a case file the bench "
                         "only uses instrumented-C recordings (mode c-parity)")
    argv = strip_output_flags(rec.argv)
    return BenchCase(name=name, source="recording", mode="c-parity", argv=tuple(argv),
                     inputs=_recording_inputs(argv, name), data_root=golden,
                     bars={profiles.BASE_DTYPE: ImageThreshold()},
                     c_threads=int(rec.manifest.get("omp_num_threads", 1)), recording=rec)
