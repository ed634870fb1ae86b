"""Automatic pixel choice: the picks on real recordings, and tracing them (engine-only and live)."""
from __future__ import annotations

import numpy as np
import pytest

from harness import autotrace
from harness.compare import autopixel
from harness.compare.autopixel import BACKGROUND, EDGE, PEAK, WORST, choose_pixels
from harness.pipeline import Context, RunOptions, run_case
from tests.harness.conftest import recorded_image


@pytest.fixture(scope="module")
def triclinic(golden_dir):
    return recorded_image(golden_dir, "triclinic_P1")


def by_reason(picks):
    return {p.reason: p for p in picks}


def test_worst_pixel_of_a_perturbed_engine_is_chosen(triclinic):
    c = triclinic
    t = c * (1 + 1e-7)                       # a little round-off everywhere
    t[300, 17] += 0.5                        # and one pixel that is plainly wrong
    picks = by_reason(choose_pixels(c, t))
    assert picks[WORST].pixel == (300, 17)
    assert picks[WORST].abs_diff == pytest.approx(0.5, rel=1e-5)


def test_each_category_meets_its_definition(triclinic):
    c = triclinic.astype(np.float64)
    cmax = float(c.max())
    t = c.copy()
    peaks = np.argwhere(c >= 0.1 * cmax)
    ps, pf = (int(v) for v in peaks[len(peaks) // 2])
    t[ps, pf] *= 1.02                        # 2 % off on a Bragg peak: the worst relative there
    t[5, 250] += 3.0                         # the worst absolute, off-peak
    t[511, 100] += 1e-3                      # an edge pixel that differs
    picks = choose_pixels(c, t, exclude=[(368, 262)])
    got = by_reason(picks)
    assert [p.reason for p in picks] == [WORST, PEAK, EDGE, BACKGROUND]
    assert len({p.pixel for p in picks}) == 4, "picks must be distinct pixels"
    assert got[WORST].pixel == (5, 250)
    assert got[PEAK].pixel == (ps, pf) and got[PEAK].rel_diff == pytest.approx(0.02, rel=1e-6)
    assert got[EDGE].pixel == (511, 100)
    bg = got[BACKGROUND]
    assert 0 < bg.c_value <= 1e-3 * cmax
    assert (368, 262) not in {p.pixel for p in picks}


def test_excluded_worst_pixel_gives_the_next_one(triclinic):
    c = triclinic
    t = c.copy()
    t[100, 100] += 2.0
    t[200, 200] += 1.0
    assert by_reason(choose_pixels(c, t, exclude=[(100, 100)]))[WORST].pixel == (200, 200)


def test_identical_images_give_no_delta_picks_and_avoid_masked_pixels(golden_dir):
    c = recorded_image(golden_dir, "mask_input")    # slow 40..103, fast 150..229 masked to 0
    picks = choose_pixels(c, c.copy())
    assert [p.reason for p in picks] == [EDGE, BACKGROUND]
    for p in picks:
        assert c[p.slow, p.fast] != 0, f"{p.reason} pick {p.pixel} is a masked pixel"


def test_one_sided_nan_is_the_worst(triclinic):
    t = triclinic.copy()
    t[7, 9] = np.nan
    t[10, 10] += 100.0
    assert by_reason(choose_pixels(triclinic, t))[WORST].pixel == (7, 9)


def test_shape_mismatch_is_a_clear_error(triclinic):
    with pytest.raises(ValueError, match="one shape"):
        choose_pixels(triclinic, triclinic[:10])


# ------------------------------------------------------------ through the workflow


def _ctx(tmp_path, golden_dir):
    from harness.model.paths import REPO_ROOT
    return Context(golden_dir=golden_dir, results_dir=tmp_path / "res", cases_dir=REPO_ROOT / "cases")


def _bump(img):
    img[40, 3] += 0.25        # the engine is deliberately wrong at one pixel off the traced one
    return img


def test_divergent_image_with_agreeing_trace_picks_and_traces_the_worst_pixel(
        tmp_path, golden_dir, fake_engine, repo_case):
    fake_engine("phi_carryover", image_edit=_bump)
    case = repo_case("phi_carryover")
    ctx = _ctx(tmp_path, golden_dir)
    res = run_case(case, RunOptions(source="recorded"), ctx)
    assert res.status == "divergence" and res.first_divergence is None
    assert autopixel.should_autotrace(res)
    c = recorded_image(golden_dir, "phi_carryover")
    picks = choose_pixels(c, _bump(c.copy()), exclude=[res.pixel])
    assert picks[0].pixel == tuple(res.image["worst_pixel"]) == (40, 3)

    traced = autotrace.trace_chosen(case, picks, RunOptions(source="recorded"), ctx, run_case, live=False)
    assert [t.chosen for t in traced] == picks
    assert all(t.status == "engine-only" and not t.compared for t in traced)
    # The fake engine replays the C trace of pixel (10, 12): its final value is that pixel's.
    assert traced[0].engine_final == pytest.approx(float(c[10, 12]), rel=1e-6)
    assert "no live C binary" in traced[0].note


def test_with_a_live_c_each_pick_gets_its_first_divergence(tmp_path, golden_dir, fake_engine, fake_c, repo_case):
    from tests.harness.conftest import perturb_line

    fake_engine("phi_carryover", edit=lambda s: perturb_line(s, "TRACE_PY: rot_b_angstroms", 1, 2e-6))
    case = repo_case("phi_carryover")
    binary = fake_c("phi_carryover")
    assert autotrace.live_c_available(case, "c-parity", str(binary))
    picks = [autopixel.ChosenPixel(40, 3, WORST), autopixel.ChosenPixel(0, 20, EDGE)]
    traced = autotrace.trace_chosen(case, picks, RunOptions(c_bin=str(binary)), _ctx(tmp_path, golden_dir),
                                    run_case)
    assert [t.compared for t in traced] == [True, True]
    assert {t.first_key for t in traced} == {"rot_b_angstroms"}
    assert traced[0].first_delta == pytest.approx(2e-6, rel=1e-3)
    for t in traced:
        assert t.evidence_dir and (tmp_path / "res" / "phi_carryover").exists()
    assert not autopixel.should_autotrace(type("R", (), {"image": {"ok": True}, "trace_compared": True,
                                                          "first_divergence": None})())
