"""The comparison primitive, alignment, first divergence and image metrics."""
from __future__ import annotations

import math

import numpy as np
import pytest

from harness.compare import keys
from harness.compare import traces
from harness.compare.images import ImageThreshold, image_metrics
from harness.compare.primitive import Tolerance, ToleranceTable, align, compare, first_divergence, narrow


# ---- the primitive

@pytest.mark.parametrize("ref,other,tol,ok", [
    (1.0, 1.0 + 0.9e-6, Tolerance(1e-6, 0), True),
    (1.0, 1.0 + 1.1e-6, Tolerance(1e-6, 0), False),
    (1e6, 1e6 + 0.5, Tolerance(1e-6, 0), False),
    (1e6, 1e6 + 0.5, Tolerance(1e-6, 1e-6), True),        # rtol scales with |C|
    (-1e6, -1e6 - 0.5, Tolerance(0, 1e-6), True),
    (0.0, 1e-7, Tolerance(0, 1e-3), False),               # rtol alone gives nothing at 0
    (math.nan, math.nan, Tolerance(), True),
    (math.nan, 1.0, Tolerance(), False),
    (1.0, math.nan, Tolerance(), False),
    (math.inf, math.inf, Tolerance(), True),
    (math.inf, -math.inf, Tolerance(), False),
])
def test_compare_scalar(ref, other, tol, ok):
    assert compare(ref, other, tol).ok is ok


def test_compare_reports_worst_component_and_counts():
    res = compare([1.0, 2.0, 3.0], [1.0, 2.5, 3.1], Tolerance(1e-6, 0))
    assert not res.ok and res.n_failed == 2 and res.worst == 1
    assert res.max_abs_diff == pytest.approx(0.5)
    assert compare([1.0], [1.0], Tolerance()).worst == 0


def test_compare_relative_term_uses_the_reference():
    # |Δ| = 1, rtol·|C| = 1 when C = 10 (passes) but 0.9 when C = 9 (fails)
    assert compare(10.0, 11.0, Tolerance(0, 0.1)).ok
    assert not compare(9.0, 10.0, Tolerance(0, 0.1)).ok


def test_tolerance_table_overrides():
    t = ToleranceTable(Tolerance(1e-6, 0), {"F_cell": Tolerance(1e-3, 0)})
    assert t.for_key("F_cell").atol == 1e-3
    assert t.for_key("F_latt").atol == 1e-6


# ---- alignment

C_TEXT = """\
TRACE_C:detector_convention=MOSFLM
TRACE_C: pix0_vector_meters 0.1 0.2 0.3
TRACE_C: rot_b_angstroms 1 2 3
TRACE_C: hkl_frac 1.5 -0.25 3
TRACE_C_PHI phi_tic=0 phi_deg=0 k_frac=-0.25 F_latt_b=1 F_latt=2
TRACE_C_PHI phi_tic=1 phi_deg=0.1 k_frac=-0.3 F_latt_b=1 F_latt=2
TRACE_C: F_cell 100
TRACE_C: I_pixel_final 5
TRACE_C: floatimage_accumulated 5
"""


def rows_for(c_text, py_text, table=None):
    return align(traces.parse(c_text, "C"), traces.parse(py_text, "PY"), table or ToleranceTable())


def py(text):
    return traces.to_engine_prefix(text)


def test_identical_traces_have_no_divergence():
    rows = rows_for(C_TEXT, py(C_TEXT))
    assert rows and all(r.ok for r in rows)
    assert not first_divergence(rows).found


def test_perturbing_one_value_is_the_first_divergence_and_downstream_follows():
    bad = py(C_TEXT).replace("rot_b_angstroms 1 2 3", "rot_b_angstroms 1 2.001 3") \
                    .replace("hkl_frac 1.5 -0.25 3", "hkl_frac 1.5 -0.26 3") \
                    .replace("I_pixel_final 5", "I_pixel_final 6")
    div = first_divergence(rows_for(C_TEXT, bad))
    assert div.first.key == "rot_b_angstroms"
    assert div.first.components[div.first.worst_component] == "y"
    assert div.first.max_abs_diff == pytest.approx(0.001)
    assert [r.key for r in div.downstream] == ["hkl_frac", "I_pixel_final"]


def test_first_divergence_follows_dataflow_not_print_order():
    # The engine may print in another order; F_cell printed first must not come first.
    reordered = py("\n".join(reversed(C_TEXT.splitlines())) + "\n").replace("F_cell 100", "F_cell 101") \
        .replace("pix0_vector_meters 0.1 0.2 0.3", "pix0_vector_meters 0.1 0.2 0.4")
    div = first_divergence(rows_for(C_TEXT, reordered))
    assert div.first.key == "pix0_vector_meters"


def test_phi_lines_align_by_tic_not_position():
    swapped = C_TEXT.replace("TRACE_C_PHI phi_tic=0 phi_deg=0 k_frac=-0.25 F_latt_b=1 F_latt=2\n", "")
    swapped = swapped.replace("TRACE_C: F_cell", "TRACE_C_PHI phi_tic=0 phi_deg=0 k_frac=-0.25 F_latt_b=1 F_latt=2\nTRACE_C: F_cell")
    rows = rows_for(C_TEXT, py(swapped))
    assert all(r.ok for r in rows)
    shifted = py(C_TEXT).replace("phi_tic=1", "phi_tic=2")
    bad = [r for r in rows_for(C_TEXT, shifted) if not r.ok]
    assert {(r.phi_tic, r.verdict) for r in bad} >= {(1, "C only"), (2, "torch only")}


def test_one_sided_keys_are_reported():
    rows = rows_for(C_TEXT, py(C_TEXT).replace("TRACE_PY: F_cell 100\n", "") + "TRACE_PY: extra_key 1\n")
    verdicts = {r.key: r.verdict for r in rows if not r.ok}
    assert verdicts == {"F_cell": "C only", "extra_key": "torch only"}
    assert rows[-1].key == "extra_key"  # unknown keys sort last


def test_text_values_compare_as_strings():
    rows = rows_for(C_TEXT, py(C_TEXT).replace("MOSFLM", "XDS"))
    assert first_divergence(rows).first.verdict == "text differs"


def test_per_key_tolerance_applies():
    bad = py(C_TEXT).replace("F_cell 100", "F_cell 100.01")
    assert not first_divergence(rows_for(C_TEXT, bad)).first is None
    loose = ToleranceTable(per_key={"F_cell": Tolerance(0.1, 0)})
    assert first_divergence(rows_for(C_TEXT, bad, loose)).first is None


def test_narrow_by_alias_and_component():
    bad = py(C_TEXT).replace("hkl_frac 1.5 -0.25 3", "hkl_frac 1.6 -0.25 3")
    rows = rows_for(C_TEXT, bad)
    only_k = narrow(rows, keys.resolve_all(["k_frac"]))
    assert {r.label for r in only_k} == {"hkl_frac.k", "phi[0].k_frac", "phi[1].k_frac"}
    assert all(r.ok for r in only_k)   # h changed, k did not
    only_h = narrow(rows, keys.resolve_all(["hkl_frac.h"]))
    assert [r.ok for r in only_h] == [False]
    assert narrow(rows, keys.resolve_all(["pix0", "rot_b"]))[0].key == "pix0_vector_meters"


# ---- images

def test_image_metrics_identical():
    c = np.arange(12, dtype=np.float32).reshape(3, 4)
    m = image_metrics(c, c.copy())
    assert m.ok and m.max_abs_diff == 0 and m.frac_equal_f32 == 1.0 and m.sum_ratio == 1.0
    assert m.correlation == pytest.approx(1.0)


def test_image_metrics_worst_pixel_and_threshold():
    c = np.ones((4, 5), dtype=np.float32) * 100
    py_img = c.astype(np.float64).copy()
    py_img[2, 3] += 1e-3           # 1e-5 of max|C|: over the default 1e-6 bar
    py_img[0, 0] += 1e-5           # 1e-7 of max: under it
    m = image_metrics(c, py_img)
    assert not m.ok and m.worst_pixel == (2, 3) and m.n_failed == 1
    assert m.rel_to_max == pytest.approx(1e-5, rel=1e-3)
    assert m.allowed == pytest.approx(1e-4)
    assert image_metrics(c, py_img, ImageThreshold(rtol_of_max=1e-4)).ok


def test_image_metrics_shape_mismatch_and_nan():
    c = np.zeros((2, 2), dtype=np.float32)
    assert not image_metrics(c, np.zeros((2, 3))).ok
    bad = np.zeros((2, 2)); bad[1, 1] = np.nan
    m = image_metrics(c, bad)
    assert not m.ok and m.nan_py == 1 and m.worst_pixel == (1, 1)


def test_image_min_correlation():
    rng = np.random.default_rng(0)
    c = rng.random((10, 10)).astype(np.float32)
    noisy = c + rng.normal(0, 0.3, c.shape)
    assert not image_metrics(c, noisy, ImageThreshold(rtol_of_max=10, min_correlation=0.999)).ok
    assert image_metrics(c, noisy, ImageThreshold(rtol_of_max=10)).ok
