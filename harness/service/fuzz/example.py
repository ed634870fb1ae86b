"""One fuzz example: the reference (live C) and an implementation on the same argv and inputs.

The image is compared, and the trace at the example's pixel and at the brightest pixel of the
reference image, with the harness's comparison (harness.compare.verdict.decide); then the
output files the example asks for, byte for byte (harness.service.fuzz.outputs). Where the
reference fails (non-zero exit, crash, timeout, all-NaN image), the implementation must fail
too: the C's fatal errors are part of its behaviour. A C run past ``TIMEOUT_S`` is no verdict:
such examples are slow (an auto-oversample in the hundreds at a 1 mm distance), not hung, and
the implementation is not run on them (``Verdict.slow``; the summary counts them).
"""
from __future__ import annotations

import re
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Optional

import numpy as np

from harness.compare.verdict import Bars, Sides, decide
from harness.model.errors import HarnessError
from harness.model.run import RunOutput
from harness.registry.cases import Case, ImageCheck, Reference, Tolerances
from harness.runners.base import RunRequest, Runner, check_image
from harness.pipeline import check_engine_accepts
from harness.service.fuzz import outputs
from harness.service.fuzz.strategy import Example

#: The bars of a fuzz example: the registry's usual float64 bars (cases/*.toml).
TOLERANCES = Tolerances(atol=1e-6, rtol=1e-9)
IMAGE = ImageCheck(rtol_of_max=1e-6)
MODE = "c-parity"
#: A C run past this is a hang for the fuzzer (examples take well under a second).
TIMEOUT_S = 10.0


@dataclass(frozen=True)
class Verdict:
    """What one example showed: agree (both ran and match, or both refused) or a divergence."""

    divergent: bool
    signature: str = ""          # what diverged: 'image', 'trace:KEY', 'engine-fails', 'c-fails'
    first_key: Optional[str] = None
    detail: str = ""
    both_refused: bool = False
    explained: Optional[str] = None  # a known C defect label that explains it
    slow: bool = False               # the reference ran past TIMEOUT_S: skipped, no verdict


def case_for(ex: Example, name: str = "fuzz") -> Case:
    """The in-memory case of an example (the registry's model; written out only when minimal)."""
    return Case(name=name, argv=list(ex.argv), inputs=sorted(ex.files), trace_pixels=[ex.pixel], mode=MODE,
                timeout_s=TIMEOUT_S, tolerance=TOLERANCES, image=IMAGE,
                references={MODE: Reference(kind="instrumented-c", live=True)})


def _attempt(runner: Runner, req: RunRequest) -> tuple[Optional[RunOutput], Optional[str]]:
    """(output, None) or (None, why it failed); a C trace that lacks keys (the pixel is masked or
    outside the ROI), or an all-NaN image, still gives its image, compared without the trace."""
    try:
        return runner.run(req), None
    except HarnessError as e:
        out = getattr(e, "output", None)
        if out is not None and out.image is not None and out.exit_code == 0:
            if "lacks" in e.message:
                return replace(out, trace_supported=False, notes=("the pixel has no complete trace",)), None
            if check_image(out.image, "C"):
                # An all-NaN image with exit 0 is what the C does for some input it accepts (no
                # source left, a flat cell): the implementation must write the same, not refuse.
                return replace(out, trace_supported=False, notes=("the C wrote an all-NaN image",)), None
        return None, e.message.splitlines()[0] if e.message else type(e).__name__


def _bars(case: Case) -> Bars:
    return Bars(tolerances=TOLERANCES.table(), image=IMAGE.threshold(), argv=case.argv, mode=MODE,
                reference_traced=True, reference_kind="instrumented-c")


#: Trace lines past which an example's trace is not compared (its image still is): many sources ×
#: mosaic domains × φ steps × sub-pixels repeat every key, and aligning millions of rows took
#: minutes and gigabytes for one example.
MAX_TRACE_LINES = 50_000


def _traceable(ref: RunOutput, impl: RunOutput) -> bool:
    return max(ref.stdout.count("\nTRACE_"), impl.stdout.count("\nTRACE_")) <= MAX_TRACE_LINES


def _compare(ref: RunOutput, impl: RunOutput, case: Case, want_image: bool) -> Verdict:
    traced = ref.trace_supported and _traceable(ref, impl)
    if not traced and not want_image:
        return Verdict(False)
    sides = Sides(c_stdout=ref.stdout, torch_stdout=impl.stdout, c_image=ref.image if want_image else None,
                  torch_image=impl.image if want_image else None, trace_supported=traced,
                  want_image=want_image, no_trace_note="; ".join(ref.notes) or None)
    up = decide(sides, _bars(case), (), allow_known_defects=False).update
    if up.get("status") != "divergence":
        return Verdict(False)
    first = up.get("first_divergence")
    key = first.key if first is not None else None
    label = up.get("label") or ""
    detail = f"{first.label}: C {first.c} vs {first.torch}" if first is not None else f"image {up.get('image')}"
    return Verdict(True, f"trace:{key}" if key else "image", key, detail,
                   explained=label if label.startswith("known C defect") else None)


def brightest(image: np.ndarray) -> Optional[tuple[int, int]]:
    """(slow, fast) of the brightest finite pixel, or None for an image without a positive one."""
    finite = np.where(np.isfinite(image), image, -np.inf)
    if finite.size == 0 or not np.isfinite(finite.max()) or finite.max() <= 0:
        return None
    s, f = np.unravel_index(int(np.argmax(finite)), finite.shape)
    return int(s), int(f)


class EngineAsReference:
    """An in-process runner standing in for the C (where no C can be built): its trace lines are
    relabelled TRACE_C so that the comparison reads them as the reference's."""

    name = "engine-as-c"

    def __init__(self, runner: Runner):
        self.runner = runner

    def run(self, request: RunRequest) -> RunOutput:
        out = self.runner.run(request)
        return replace(out, runner=self.name, stdout=out.stdout.replace("TRACE_PY", "TRACE_C"))


def run_example(ex: Example, reference: Runner, impl: Runner) -> Verdict:
    """Run both sides on ``ex`` in a private data root and judge them."""
    case = case_for(ex)
    with tempfile.TemporaryDirectory(prefix="nbfuzz-") as tmp:
        root = Path(tmp)
        for name, data in ex.files.items():
            (root / name).write_bytes(data)
        req = RunRequest(case=case, mode=MODE, pixel=ex.pixel, data_root=root, reference=case.references[MODE],
                         timeout_s=TIMEOUT_S)
        steps = _steps_per_pixel(req)
        if steps > MAX_STEPS:
            return Verdict(False, detail=f"skipped: {steps} evaluations per pixel > {MAX_STEPS}", slow=True)
        ref, ref_err = _attempt(reference, req)
        if ref is None and ref_err and "timed out" in ref_err:
            return Verdict(False, detail=f"skipped: {ref_err}", slow=True)
        # Not handed the size check's set-up: an implementation may rewrite the argv it is given
        # (a wrapper, a planted bug), and a set-up built from the original would silently win.
        out, impl_err = _attempt(impl, req)
        if ref is None or out is None:
            return _failures(ref_err, impl_err)
        verdict = _compare(ref, out, case, want_image=True)
        bright = brightest(ref.image) if ref.image is not None else None
        if not (verdict.divergent or bright is None or bright == tuple(ex.pixel)):
            verdict = _at_brightest(replace(req, pixel=bright, want_image=False), reference, impl, case)
        if verdict.divergent:
            return verdict
        differs = outputs.difference(ex, reference, impl, root, mode=MODE, timeout_s=TIMEOUT_S)
        return Verdict(True, f"output:{differs[0]}", None, differs[1]) if differs else verdict


#: Evaluations per pixel (sources × mosaic domains × φ steps × sub-pixels²) past which an example is
#: skipped like a C timeout: both programs trace every one of them, and a single such example
#: printed gigabytes of trace (10 GB held, minutes per example) where the others take a second.
MAX_STEPS = 4096


def _steps_per_pixel(req: RunRequest) -> int:
    """The engine's count for the example, from its set-up built as a run builds it (no render); 0
    where the engine refuses or fails on the argv: the runs then judge that."""
    try:
        return check_engine_accepts(req).setup.steps
    except Exception:  # noqa: BLE001 - any refusal or crash is the runs' to judge, not the size check's
        return 0


def _at_brightest(req: RunRequest, reference: Runner, impl: Runner, case: Case) -> Verdict:
    ref, ref_err = _attempt(reference, req)
    out, impl_err = _attempt(impl, req)
    if ref is None or out is None:
        return _failures(ref_err, impl_err)
    return _compare(ref, out, case, want_image=False)


#: Engine exceptions that are a clean refusal (one line, exit 2 from the engine's CLI).
CLEAN_REFUSALS = ("UsageError", "InputFileError", "FloatImageError")
_RAISED = re.compile(r"raised (\w+)")


def _raised(impl_err: str) -> str:
    m = _RAISED.search(impl_err)
    return m.group(1) if m else "failure"


def _failures(ref_err: Optional[str], impl_err: Optional[str]) -> Verdict:
    if ref_err and impl_err:
        kind = _raised(impl_err)
        if kind in CLEAN_REFUSALS or kind == "failure":
            return Verdict(False, both_refused=True, detail=f"C: {ref_err} | impl: {impl_err}")
        return Verdict(True, f"engine-crash:{kind}", None, f"the C failed ({ref_err}); the implementation "
                                                          f"crashed instead of refusing: {impl_err}")
    if ref_err:
        return Verdict(True, "c-fails", None, f"the C failed ({ref_err}) but the implementation ran")
    return Verdict(True, f"engine-fails:{_raised(impl_err or '')}", None,
                   f"the C ran but the implementation failed: {impl_err}")


def timed(ex: Example, reference: Runner, impl: Runner) -> tuple[Verdict, float]:
    t0 = time.monotonic()
    v = run_example(ex, reference, impl)
    return v, time.monotonic() - t0
