"""The batched comparison (compare_rows, align's compare_many) judges each row as compare()
judges it alone, and the cached trace parse hands out independent lists."""
from __future__ import annotations

import math

import numpy as np
import pytest

from harness.compare import traces
from harness.compare.primitive import (Tolerance, ToleranceTable, align, compare, compare_records,
                                       compare_rows, image_metrics)

NAN, INF = math.nan, math.inf


def _same(a, b) -> bool:
    return (a.ok, a.worst, a.n_failed, a.n) == (b.ok, b.worst, b.n_failed, b.n) and \
        repr(a.max_abs_diff) == repr(b.max_abs_diff) and repr(a.allowed) == repr(b.allowed)


def test_each_row_is_judged_alone_with_its_own_tolerance():
    ref = np.array([[1.0, 2.0, 3.0], [NAN, 1.0, INF], [0.0, 0.0, 0.0], [1e9, -1e9, 5.0], [NAN, NAN, NAN]])
    oth = np.array([[1.0, 2.5, 3.0], [NAN, 1.0, INF], [1e-7, 3e-6, NAN], [1e9 + 10, -1e9, 5.0], [NAN, 1.0, NAN]])
    atol = np.array([1e-6, 0.0, 1e-6, 0.0, 1e-6])
    rtol = np.array([0.0, 0.0, 0.0, 1e-6, 0.0])
    batched = compare_rows(ref, oth, atol, rtol)
    for i, got in enumerate(batched):
        alone = compare(ref[i], oth[i], Tolerance(atol[i], rtol[i]))
        assert _same(got, alone), (i, got, alone)
    # What each row is, worked out by hand: a 0.5 miss at index 1; NaN/inf equal to themselves;
    # a NaN on one side is the worst excess (index 2); 10 within 1e-6·1e9; one side NaN at index 1.
    assert [(c.ok, c.worst, c.n_failed) for c in batched] == [
        (False, 1, 1), (True, 0, 0), (False, 2, 2), (True, 0, 0), (False, 1, 1)]
    assert batched[0].max_abs_diff == 0.5 and batched[3].max_abs_diff == 10.0


def _rec(who, key, values, occ=0):
    return traces.TraceRecord(who, "pixel", key, tuple(values), occ)


def test_align_matches_one_pair_at_a_time():
    tol = ToleranceTable(Tolerance(1e-6), {"omega_pixel": Tolerance(0.0, 1e-3)})
    c = [_rec("C", "I_pixel_final", [1.0]), _rec("C", "omega_pixel", [2.0]), _rec("C", "fdet_vector", [1, 0, 0]),
         _rec("C", "fdet_vector", [0, 1, 0], 1), _rec("C", "only_c", [3.0]), _rec("C", "txt", ["a"])]
    py = [_rec("PY", "I_pixel_final", [1.1]), _rec("PY", "omega_pixel", [2.001]), _rec("PY", "fdet_vector", [1, 0, 0]),
          _rec("PY", "fdet_vector", [0, 1, 1e-3], 1), _rec("PY", "only_py", [3.0]), _rec("PY", "txt", ["b"])]
    rows = align(c, py, tol)
    by_ident = {(r.key, r.occurrence): r for r in rows}
    c_map = {(r.key, r.occurrence): r for r in c}
    py_map = {(r.key, r.occurrence): r for r in py}
    assert len(rows) == 7
    for k, row in by_ident.items():
        assert row == compare_records(c_map.get(k), py_map.get(k), tol.for_key(k[0]))
    assert by_ident[("fdet_vector", 1)].worst_component == 2 and not by_ident[("fdet_vector", 1)].ok
    assert by_ident[("omega_pixel", 0)].ok and not by_ident[("I_pixel_final", 0)].ok


def test_cached_parse_returns_fresh_lists_and_filters_by_program():
    text = "TRACE_C: I_pixel_final 1.5\nTRACE_PY: I_pixel_final 1.5\nTRACE_C: I_pixel_final 2\n"
    first = traces.parse(text)
    first.clear()
    again = traces.parse(text)
    assert [r.source for r in again] == ["C", "PY", "C"]
    assert [r.occurrence for r in traces.parse(text, "C")] == [0, 1]
    assert [r.values for r in traces.parse(text, "PY")] == [(1.5,)]


def test_an_infinite_reference_does_not_widen_the_bar():
    """r·inf made the bar infinite, so any finite value passed an infinite reference."""
    res = compare(np.array([np.inf, 1.0]), np.array([5.0, 1.0]), Tolerance(atol=1e-6, rtol=1e-3))
    assert not res.ok and res.n_failed == 1 and res.worst == 0 and res.allowed == 1e-6


def test_one_sided_nan_has_no_size_and_the_bar_stays_a_number():
    """An image with one NaN pixel reported max|Δ| 0 (the largest of the other pixels) and, with
    the NaN in the reference, a NaN bar (shown as 'bar None')."""
    c = np.ones((4, 4))
    c[1, 1] = np.nan
    m = image_metrics(c, np.ones((4, 4)))
    assert not m.ok and m.worst_pixel == (1, 1)
    assert math.isnan(m.max_abs_diff) and m.allowed == pytest.approx(1e-6)
    assert "1 NaN on one side only" in m.reason
