"""The tests' judge (tests/checks.py) can fail: NaN, a missing record, a value or a label off."""
from __future__ import annotations

import math

import numpy as np

from tests.checks import close, image_problem, pixel_records, setup_records, trace_problems

C = ("TRACE_C:beam_center_m=X:0.1 Y:0.2 pixel_mm:0.1\n"
     "TRACE_C: hkl_frac 1.5 -0.25 3\nTRACE_C: I_pixel_final 5\n"
     "TRACE_C_PHI phi_tic=0 phi_deg=0 k_frac=-0.25 F_latt_b=1 F_latt=2\n")


def py(text: str = C) -> str:
    return text.replace("TRACE_C", "TRACE_PY")


def test_identical_traces_pass_and_each_fault_fails():
    c = pixel_records(C, "C")
    assert len(c) == 6 and trace_problems(c, pixel_records(py(), "PY")) == []
    within = py().replace("I_pixel_final 5", "I_pixel_final 5.0000001")
    assert trace_problems(c, pixel_records(within, "PY")) == []
    for broken in (py().replace("I_pixel_final 5", "I_pixel_final nan"),
                   py().replace("I_pixel_final 5", "I_pixel_final 5.00001"),
                   py().replace("k_frac=-0.25", "k_frac=-0.2501"),
                   py().replace("TRACE_PY: I_pixel_final 5\n", ""),
                   py().replace("hkl_frac 1.5 -0.25 3", "hkl_frac 1.5 -0.25")):
        assert trace_problems(c, pixel_records(broken, "PY")), broken


def test_setup_labels_are_compared():
    c = setup_records(C, "C")
    assert trace_problems(c, setup_records(py(), "PY")) == []
    assert trace_problems(c, setup_records(py().replace("Y:0.2", "Z:0.2"), "PY"))


def test_close_is_the_harness_tolerance_and_nan_is_never_close():
    assert close(1e6, 1e6 + 1e-3) and not close(1e6, 1e6 + 1e-2)    # 1e-6 + 1e-9·|C|
    assert not close(1.0, math.nan) and not close([1.0, 2.0], [1.0, math.inf])


def test_image_problem_catches_nan_and_an_excess():
    ref = np.linspace(1.0, 2.0, 16, dtype=np.float32).reshape(4, 4)
    assert image_problem(ref, ref.copy()) is None
    nan = ref.copy()
    nan[1, 2] = np.nan
    assert "NaN" in image_problem(ref, nan)
    off = ref.copy()
    off[3, 3] *= 1 + 1e-5
    assert image_problem(ref, off) is not None
    assert image_problem(ref, np.full_like(ref, np.nan)) is not None
