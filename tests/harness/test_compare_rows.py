"""The batched comparison (compare_rows, align's compare_many) judges each row as compare()
judges it alone, and the cached trace parse hands out independent lists."""
from __future__ import annotations

import math

import numpy as np
import pytest

from harness.compare import traces
from harness.compare.images import image_metrics
from harness.compare.primitive import Tolerance, ToleranceTable, align, compare, compare_records, compare_rows

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


def test_all_finite_rows_are_judged_as_rows_with_nan_beside_them():
    """A batch of finite values takes a shorter path (no NaN/inf masks); one NaN anywhere in the
    batch sends it down the general one: both judge every finite row the same."""
    rng = np.random.default_rng(7)
    ref = rng.normal(size=(6, 50)) * 10.0 ** rng.integers(-3, 4, size=(6, 1))
    oth = ref + rng.normal(size=ref.shape) * 1e-6
    oth[1, 7] += 1.0                      # one miss
    oth[2, :5] -= 0.5                     # several: the worst is the largest excess, not |Δ|
    oth[3] = ref[3]                       # exact
    atol = np.array([1e-5, 1e-5, 1e-3, 0.0, 1e-5, 0.0])
    rtol = np.array([0.0, 1e-6, 1e-3, 0.0, 1e-2, 1e-9])
    finite = compare_rows(ref, oth, atol, rtol)
    nan_row = np.full((1, ref.shape[1]), NAN)
    general = compare_rows(np.vstack([ref, nan_row]), np.vstack([oth, nan_row]), np.append(atol, 0.0),
                           np.append(rtol, 0.0))[:-1]
    assert [(c.ok, c.n_failed) for c in finite][:4] == [(True, 0), (False, 1), (False, 5), (True, 0)]
    for i, (a, b) in enumerate(zip(finite, general)):
        assert _same(a, b), (i, a, b)
    # and with no relative part anywhere (the bar is the absolute one, not broadcast per element)
    zero = np.zeros_like(rtol)
    for a, b in zip(compare_rows(ref, oth, atol, zero),
                    compare_rows(np.vstack([ref, nan_row]), np.vstack([oth, nan_row]), np.append(atol, 0.0),
                                 np.append(zero, 0.0))[:-1]):
        assert _same(a, b)


def test_image_metrics_sums_and_max_are_those_of_the_nan_aware_reductions():
    rng = np.random.default_rng(3)
    c = (rng.normal(size=(40, 30)) * 100).astype(np.float32)
    t = c + np.float32(1e-3)
    for img_c, img_t in ((c, t), (np.where(c > 150, np.float32(NAN), c), t)):
        m = image_metrics(img_c, img_t)
        c64, t64 = img_c.astype(np.float64), img_t.astype(np.float64)
        assert repr(m.max_abs_c) == repr(float(np.nanmax(np.abs(c64))))
        assert repr(m.sum_c) == repr(float(np.nansum(c64))) and repr(m.sum_py) == repr(float(np.nansum(t64)))


def _frames(seed: int):
    rng = np.random.default_rng(seed)
    c = (rng.normal(size=(37, 29)) * 100).astype(np.float32)
    t = (c + rng.normal(size=c.shape).astype(np.float32) * np.float32(1e-4)).astype(np.float32)
    yield "passing", c, t
    bad = t.copy()
    bad[3, 4] += 50.0
    c[30, 2] = c[31, 0] = 0.0
    bad[30, 2] = bad[31, 0] = 80.0         # the largest excess, in a later block, and a tie
    yield "failing", c, bad                # after it: the first stays the worst
    flat = np.full((37, 29), 100.0, np.float32)
    bar = 1e-6 * 100.0
    near = flat.astype(np.float64)
    near[2, 3] += 1.5 * bar                # fails by 0.5 bar
    near[25, 1] += 0.9 * bar               # passes with a larger |Δ| than that excess
    yield "barely failing", flat, near
    nan = bad.copy()
    nan[20, 5] = np.nan                    # one-sided NaN: the worst whatever the excesses
    both = c.copy()
    both[1, 1] = nan[1, 1] = np.nan        # NaN on both sides: equal
    both[2, 2] = nan[2, 2] = np.inf
    yield "nan and inf", both, nan
    yield "identical constant", np.full((5, 9), 2.5, np.float32), np.full((5, 9), 2.5, np.float32)
    yield "all NaN", np.full((4, 4), np.nan, np.float32), np.full((4, 4), np.nan, np.float32)


@pytest.mark.parametrize("block", [1, 7, 64, 1000])
@pytest.mark.parametrize("seed", [0, 1])
def test_image_metrics_in_blocks_is_the_whole_frame_comparison(block, seed):
    for what, c, t in _frames(seed):
        whole, blocked = image_metrics(c, t, block=c.size), image_metrics(c, t, block=block)
        a, b = whole.as_dict(), blocked.as_dict()
        for name in ("sum_c", "sum_py", "sum_ratio", "correlation"):
            x, y = a.pop(name), b.pop(name)
            assert (x is None and y is None) or x == pytest.approx(y, rel=1e-12, abs=1e-300), (what, name, x, y)
        assert a == b, what


def test_image_metrics_correlation_is_pearsons():
    _, c, t = next(iter(_frames(4)))
    t = t + np.linspace(0, 30, t.size, dtype=np.float32).reshape(t.shape)
    m = image_metrics(c, t, block=100)
    assert m.correlation == pytest.approx(float(np.corrcoef(c.ravel().astype(np.float64),
                                                            t.ravel().astype(np.float64))[0, 1]), rel=1e-13)
    worst = image_metrics(c, np.where(np.arange(c.size).reshape(c.shape) == 500, np.nan, c), block=64)
    assert worst.worst_pixel == tuple(int(i) for i in np.unravel_index(500, c.shape))
    assert worst.max_abs_diff is not None and np.isnan(worst.max_abs_diff)
