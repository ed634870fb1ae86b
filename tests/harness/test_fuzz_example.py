"""One fuzz example's verdict, and a minimal divergence written out that `nbparity run`
reproduces (from its recording and against the live C)."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

pytest.importorskip("hypothesis")

from engine.sample import lattice  # noqa: E402
from harness.cli.main import main  # noqa: E402
from harness.runners.c import CRunner  # noqa: E402
from harness.runners.choose import binary_problem, find_binary  # noqa: E402
from harness.runners.engine import TorchRunner  # noqa: E402
from harness.service.fuzz.campaign import Found  # noqa: E402
from harness.service.fuzz.example import _failures, brightest, run_example  # noqa: E402
from harness.service.fuzz.strategy import Example  # noqa: E402
from harness.service.fuzz.writeout import write_case  # noqa: E402

BASE = ("-cell", "100", "100", "100", "90", "90", "90", "-N", "3", "-default_F", "100", "-lambda", "1",
        "-distance", "100", "-pixel", "0.1", "-detpixels", "16", "-nonoise", "-nopgm", "-noprogress")


def test_both_refusing_is_agreement_but_a_crash_is_not():
    assert _failures("C exit 1", "torch engine raised UsageError: bad").both_refused
    crash = _failures("C exit 1", "torch engine raised ZeroDivisionError: division by zero")
    assert crash.divergent and crash.signature == "engine-crash:ZeroDivisionError"
    assert _failures("C exit 139", None).signature == "c-fails"
    assert _failures(None, "torch engine raised UsageError: x").signature == "engine-fails:UsageError"


def test_brightest_ignores_nan_and_needs_a_positive_pixel():
    img = np.zeros((3, 4), dtype=np.float32)
    assert brightest(img) is None
    img[2, 1], img[0, 0] = 5.0, np.nan
    assert brightest(img) == (2, 1)


def _live_c():
    binary = find_binary("instrumented-c")
    if binary_problem(binary, "instrumented-c"):
        pytest.skip("no live instrumented C (make c)")
    return binary


def test_written_case_reproduces_the_divergence(tmp_path, monkeypatch):
    binary = _live_c()
    original = lattice.tophat
    monkeypatch.setattr(lattice, "tophat", lambda *a, **k: original(*a, **k) * (1.0 + 1e-4))
    ex = Example(BASE + ("-binary_spots", "-hkl", "fuzz.hkl"), {"fuzz.hkl": b"1 0 0 100\n-1 0 0 50\n"}, (8, 8))
    verdict = run_example(ex, CRunner(binary), TorchRunner())
    assert verdict.divergent, verdict
    cases = tmp_path / "cases"
    path, case = write_case(Found(ex, verdict), cases, binary)
    assert path.parent == cases and "fuzz" in case.tags and "shapes" in case.tags
    assert case.inputs == [f"{case.name}/fuzz.hkl"] and f"{case.name}/fuzz.hkl" in case.argv
    common = ["--cases-dir", str(cases), "--golden-dir", str(cases / "recordings"),
              "--results-dir", str(tmp_path / "results"), "run", case.name, "--no-pictures"]
    assert main(common + ["--recorded"]) == 1
    assert main(common + ["--live"]) == 1
    monkeypatch.setattr(lattice, "tophat", original)
    assert main(common + ["--recorded"]) == 0   # the unperturbed engine agrees with the recording


class _WithoutDivsteps(TorchRunner):
    """The engine run on the argv without -divsteps (a finite image where the C's is all NaN)."""

    def run(self, request):
        argv = list(request.case.argv)
        i = argv.index("-divsteps")
        del argv[i:i + 2]
        return super().run(replace(request, case=request.case.model_copy(update={"argv": argv})))


def test_an_all_nan_c_image_is_compared_not_taken_for_a_failure():
    """`-divsteps 1` leaves the C no source: exit 0 and an all-NaN image, which the
    implementation must reproduce (c-parity), not refuse or replace with numbers."""
    c = CRunner(_live_c())
    ex = Example(BASE + ("-divsteps", "1"), {}, (3, 5))
    assert not run_example(ex, c, TorchRunner()).divergent
    finite = run_example(ex, c, _WithoutDivsteps())
    assert finite.divergent and finite.signature == "image", finite


class _TraceOff(TorchRunner):
    """The engine with one traced value changed (its image untouched)."""

    def run(self, request):
        out = super().run(request)
        return replace(out, stdout=out.stdout.replace("TRACE_PY: F_cell 100", "TRACE_PY: F_cell 101"))


def test_a_trace_past_the_limit_is_not_aligned_but_the_image_still_is(monkeypatch):
    """Aligning millions of repeated rows took minutes and 10 GB for one example: past
    MAX_TRACE_LINES the example is judged by its image."""
    from harness.service.fuzz import example  # noqa: PLC0415 - the module whose limit is patched
    from harness.service.fuzz.example import EngineAsReference  # noqa: PLC0415

    ex = Example(BASE, {}, (3, 5))
    reference = EngineAsReference(TorchRunner())
    assert run_example(ex, reference, _TraceOff()).signature == "trace:F_cell"
    monkeypatch.setattr(example, "MAX_TRACE_LINES", 10)
    assert not run_example(ex, reference, _TraceOff()).divergent
    assert run_example(ex, reference, _ImageOff()).signature == "image"


class _ImageOff(TorchRunner):
    def run(self, request):
        out = super().run(request)
        return replace(out, image=None if out.image is None else out.image * 1.001)
