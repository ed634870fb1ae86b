"""build_setup against the recorded C runs: every traced golden case's set-up must match.

For each case with a traced pixel we run build_setup on its argv (cwd = the golden directory)
and compare with what the C printed: each TRACE_C:key=value set-up line (in order, labels
exactly, numbers within 1e-6 + 1e-9·|C|), the traced pixel's pix0/fdet/sdet/close distance,
the static reciprocal vectors, λ, fluence, steps, the oversampling choice and the pixel counts.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch

from engine.config.options import UsageError
from engine.config.setup import build_setup
from tests.checks import close, first_values, setup_records, trace_problems
from tests.conftest import recording_names


def _assert_numbers(what: str, py, c) -> None:
    py, c = [float(x) for x in py], [float(x) for x in c]
    assert len(py) == len(c), f"{what}: {len(py)} values vs the C's {len(c)}"
    assert close(c, py), f"{what}: engine {py} vs C {c}"


def _c_pixel_value(stdout: str, key: str) -> list[float]:
    """The first occurrence (layer 0, subpixel (0,0)), read by the harness's trace parser."""
    return [float(x) for x in first_values(stdout, key, "C")]


@pytest.fixture(scope="module")
def _setups(golden_dir):
    cache: dict[str, object] = {}
    return cache


def _setup_for(name: str, golden_dir: Path, cache: dict, monkeypatch):
    if name not in cache:
        case = json.loads((golden_dir / "cases" / name / "case.json").read_text())
        monkeypatch.chdir(golden_dir)
        # Every recorded argv is supported: a NotImplementedError is a failure, not a skip.
        cache[name] = (case, build_setup(case["argv"], mode="c-parity", c_threads=case.get("omp_num_threads", 1)))
    case, setup = cache[name]
    stdout = (golden_dir / "cases" / name / "c_stdout.log").read_text(encoding="utf-8")
    return case, setup, stdout


CASES = recording_names(traced_only=True)


@pytest.mark.parametrize("name", CASES)
def test_setup_trace_lines_match_c(name, golden_dir, _setups, monkeypatch):
    case, setup, stdout = _setup_for(name, golden_dir, _setups, monkeypatch)
    problems = trace_problems(setup_records(stdout, "C"), setup_records("\n".join(setup.setup_trace), "PY"))
    assert not problems, "\n".join(problems[:10])


@pytest.mark.parametrize("name", CASES)
def test_setup_values_match_c_pixel_trace(name, golden_dir, _setups, monkeypatch):
    case, setup, stdout = _setup_for(name, golden_dir, _setups, monkeypatch)
    det, xtal, beam = setup.detector, setup.crystal, setup.beam
    _assert_numbers("pix0_vector_meters", det.pix0.tolist(), _c_pixel_value(stdout, "pix0_vector_meters"))
    _assert_numbers("fdet_vec", det.fdet.tolist(), _c_pixel_value(stdout, "fdet_vec"))
    _assert_numbers("sdet_vec", det.sdet.tolist(), _c_pixel_value(stdout, "sdet_vec"))
    _assert_numbers("close_distance_meters", [det.close_distance], _c_pixel_value(stdout, "close_distance_meters"))
    for axis in "abc":
        _assert_numbers(f"rot_{axis}_star_A_inv", getattr(xtal, f"{axis}_star").tolist(),
                        _c_pixel_value(stdout, f"rot_{axis}_star_A_inv"))
    _assert_numbers("lambda_meters", [float(beam.wavelengths[0])], _c_pixel_value(stdout, "lambda_meters"))
    _assert_numbers("fluence", [beam.fluence], _c_pixel_value(stdout, "fluence_photons_per_m2"))
    assert setup.steps == int(_c_pixel_value(stdout, "steps")[0])
    m = re.search(r"auto-selected (\d+)-fold oversampling", stdout)
    if m:
        assert det.oversample == int(m.group(1))
        assert f"auto-selected {det.oversample}-fold oversampling" in setup.console
    assert [det.spixels, det.fpixels] == case["detpixels"]
    assert setup.trace_pixel == tuple(case["trace_pixel"])


@pytest.mark.parametrize("name", CASES)
def test_real_space_vectors_match_c_unrotated_cell(name, golden_dir, _setups, monkeypatch):
    case, setup, stdout = _setup_for(name, golden_dir, _setups, monkeypatch)
    xtal = setup.crystal
    if not (xtal.phisteps == 1 and xtal.phi0 == 0.0):
        pytest.skip("the traced cell is φ-rotated")
    for axis in "abc":
        a0 = (getattr(xtal, f"{axis}0") * 1e10).tolist()
        _assert_numbers(f"rot_{axis}_angstroms", a0, _c_pixel_value(stdout, f"rot_{axis}_angstroms"))


def test_interpolation_auto_choice_matches_c(golden_dir, monkeypatch):
    monkeypatch.chdir(golden_dir)
    for name in ("hkl_interpolate", "hkl_nearest_default_F", "simple_cubic", "interpolate_out_of_range"):
        case = json.loads((golden_dir / "cases" / name / "case.json").read_text())
        setup = build_setup(case["argv"], mode="c-parity")
        stdout = (golden_dir / "cases" / name / "c_stdout.log").read_text()
        for line in ("auto-selected tricubic interpolation of structure factors", "auto-selected no interpolation"):
            assert (line in stdout) == (line in setup.console), name


def test_hkl_grid_matches_c_lookup(golden_dir, monkeypatch):
    """hkl_nearest_default_F: the C's traced F_cell at its rounded hkl (default_F off the grid)."""
    from engine.sample.structure_factors import lookup_nearest
    monkeypatch.chdir(golden_dir)
    name = "hkl_nearest_default_F"
    case = json.loads((golden_dir / "cases" / name / "case.json").read_text())
    setup = build_setup(case["argv"], mode="c-parity")
    stdout = (golden_dir / "cases" / name / "c_stdout.log").read_text()
    h, k, l = (torch.tensor(int(v)) for v in _c_pixel_value(stdout, "hkl_rounded"))
    assert float(lookup_nearest(setup.structure_factors, h, k, l)) == _c_pixel_value(stdout, "F_cell")[0]
    sf = setup.structure_factors
    off = lookup_nearest(sf, torch.tensor([0, 50]), torch.tensor([12, 0]), torch.tensor([9, 0]))
    assert off.tolist() == [5.0, 5.0]   # (0,12,9) is off the -10..10 grid, as the README notes


def test_pix0_vector_sets_pix0_in_spec_mode(golden_dir, monkeypatch):
    """Spec mode uses the given pix0 (the C ignores it: defect pix0-vector-ignored)."""
    monkeypatch.chdir(golden_dir)
    case = json.loads((golden_dir / "cases" / "custom_vectors_pix0" / "case.json").read_text())
    spec = build_setup(case["argv"], mode="spec")
    parity = build_setup(case["argv"], mode="c-parity")
    assert spec.detector.pix0.tolist() == pytest.approx([-0.0129, 0.0127, -0.1], abs=1e-15)
    assert parity.detector.pix0.tolist() != pytest.approx([-0.0129, 0.0127, -0.1], abs=1e-6)
    # The derived near point follows the given pix0.
    det = spec.detector
    assert det.close_distance == pytest.approx(float((det.pix0 * det.odet).sum()))


def test_device_dtype_and_long_options(golden_dir, monkeypatch):
    monkeypatch.chdir(golden_dir)
    case = json.loads((golden_dir / "cases" / "simple_cubic_mosflm_beam" / "case.json").read_text())
    s = build_setup(case["argv"] + ["--dtype", "float32", "--mode=c-parity", "--c-threads", "3"])
    assert s.detector.pix0.dtype == torch.float32 and s.crystal.a0.dtype == torch.float32
    assert s.mode.value == "c-parity" and s.c_threads == 3


def test_missing_crystal_or_structure_factors_is_a_usage_error():
    with pytest.raises(UsageError, match="no crystal"):
        build_setup(["-default_F", "1"])
    with pytest.raises(UsageError, match="no structure factors"):
        build_setup(["-cell", "50"])
