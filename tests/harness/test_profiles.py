"""One tolerance profile per (case, dtype), used by run, gate and bench alike; float32 bars are
derived from the float32 error measured against the recordings and stored with it."""
from __future__ import annotations

import numpy as np
import pytest

from harness.bench import measure as bench
from harness.cli import main as cli
from harness.model.errors import UsageError
from harness.registry import profiles
from harness.registry.cases import MeasuredError, Registry, load_case
from tests.harness.conftest import CASES


def test_float64_profile_is_the_case_bars():
    case = load_case(CASES / "phi_carryover.toml")
    p = profiles.for_dtype(case, "float64")
    assert p.image == case.image.threshold() and p.tolerances.default == case.tolerance.table().default


def test_every_case_has_float32_bars_that_follow_from_its_measured_error():
    cases, errors = Registry(CASES).load_all()
    assert not errors
    for case in cases:
        assert "float32" in case.profiles, f"{case.name}: run `nbparity calibrate {case.name}`"
        stored = case.profiles["float32"]
        assert stored.measured.runs, case.name
        again = profiles.derive(case, "float32", stored.measured)
        assert (again.tolerance, again.image) == (stored.tolerance, stored.image), \
            f"{case.name}: float32 bars edited by hand; re-run `nbparity calibrate {case.name}`"
        # never tighter than float64's, and the measured error sits inside them
        p64, p32 = profiles.for_dtype(case, "float64"), profiles.for_dtype(case, "float32")
        assert p32.image.rtol_of_max >= p64.image.rtol_of_max
        assert p32.tolerances.default.rtol >= stored.measured.trace_max_rel
        assert p32.tolerances.default.atol >= stored.measured.trace_max_abs_small
        assert "measured" in stored.derived
        for key, k in stored.measured.keys.items():  # cancelling keys: their own, wider bars
            own = p32.tolerances.for_key(key)
            assert own.rtol >= k.rel and own.atol >= k.abs_small, (case.name, key)


def test_derive_takes_the_margin_over_the_measured_error():
    case = load_case(CASES / "phi_carryover.toml")
    m = MeasuredError(trace_max_abs_small=1e-5, trace_max_rel=2e-4, image_rel_to_max=0.01, runs=["c-parity: x"])
    d = profiles.derive(case, "float32", m)
    assert d.tolerance.atol == pytest.approx(profiles.MARGIN * 1e-5)
    assert d.tolerance.rtol == pytest.approx(profiles.MARGIN * 2e-4)
    assert d.image.rtol_of_max == pytest.approx(profiles.MARGIN * 0.01)
    tiny = profiles.derive(case, "float32", MeasuredError(trace_max_abs_small=0, trace_max_rel=0, runs=["x"]))
    assert (tiny.tolerance.atol, tiny.image.rtol_of_max) == (case.tolerance.atol, case.image.rtol_of_max)


def test_a_dtype_without_a_profile_is_a_usage_error_before_anything_runs():
    case = load_case(CASES / "phi_carryover.toml").model_copy(update={"profiles": {}})
    with pytest.raises(UsageError, match="no float32 tolerance profile.*nbparity calibrate"):
        profiles.for_dtype(case, "float32")


def _bump(rel_of_max: float):
    def edit(img: np.ndarray) -> np.ndarray:
        img[3, 4] += rel_of_max * float(np.abs(img).max())
        return img
    return edit


def test_run_gate_and_bench_judge_float32_by_the_same_profile(tmp_path, fake_engine, golden_dir, capsys):
    """An image error between the float64 bar and the float32 bar: float64 fails it, float32
    (run and gate alike) passes it, and the bench holds float32 to that same bar."""
    case = load_case(CASES / "phi_carryover.toml")
    f64, f32 = profiles.for_dtype(case, "float64").image, profiles.for_dtype(case, "float32").image
    assert f32.rtol_of_max > 2 * f64.rtol_of_max
    fake_engine("phi_carryover", image_edit=_bump((f64.rtol_of_max + f32.rtol_of_max) / 2))
    res = ["--results-dir", str(tmp_path / "res")]
    run = ["run", "phi_carryover", "--recorded", "--no-pictures", "--mode", "c-parity"]
    assert cli.main([*res, *run, "--dtype", "float64"]) == 1
    assert cli.main([*res, *run, "--dtype", "float32"]) == 0
    gate = ["gate", "--cases", "phi_carryover", "--mode", "c-parity", "--recorded", "--no-pictures",
            "--junit", str(tmp_path / "j.xml"), "--summary", str(tmp_path / "s.md"), "--jobs", "1"]
    assert cli.main([*res, *gate, "--dtype", "float32"]) == 0
    assert cli.main([*res, *gate, "--dtype", "float64"]) == 1
    bc = bench.resolve_case("phi_carryover", CASES, golden_dir)
    assert bc.bar("float32") == f32 and bc.bar("float64") == f64


def test_a_cancelling_key_gets_its_own_bar_and_leaves_the_others_tight():
    """float32 cancellation in one quantity (the scattering vector at a long distance: 90 %)
    must not loosen the bar of every other key."""
    case = load_case(CASES / "phi_carryover.toml")
    m = profiles.split_keys({"hkl_frac": (1e-6, 2e-5), "scattering_vec_A_inv": (1e-6, 0.9)})
    assert set(m.keys) == {"scattering_vec_A_inv"} and m.trace_max_rel == 2e-5
    d = profiles.derive(case, "float32", m.model_copy(update={"runs": ["x"]}))
    table = d.tolerance.table()
    assert table.for_key("hkl_frac").rtol == pytest.approx(profiles.MARGIN * 2e-5)
    assert table.for_key("scattering_vec_A_inv").rtol == pytest.approx(profiles.MARGIN * 0.9)
