"""Detector geometry: conventions, pivots, rotations, pix0, against the recorded C runs."""
from __future__ import annotations

import json
import math
import re

import pytest
import torch

from engine.geometry.conventions import BeamCentreInput, resolve
from engine.geometry.detector import clean_basis, detector_geometry, pixel_counts, thickness_layers
from engine.geometry.rotations import rotate_about_axis, rotation_matrices
from engine.config.setup import build_setup
from tests.conftest import recording_names

DEG = math.pi / 180
SMALL = ["-cell", "100", "100", "100", "90", "90", "90", "-default_F", "100", "-N", "5", "-lambda", "1.0",
         "-distance", "100", "-detpixels", "64", "-pixel", "0.1"]


def _lg(stdout: str, pattern: str) -> list[float]:
    m = re.search(pattern, stdout, flags=re.M)
    assert m, f"{pattern!r} not in the C's stdout"
    return [float(x) for x in m.groups()]


def _near(py, c, rel=1e-5):
    # The C prints these summary lines with %lg (6 significant digits).
    return all(abs(p - q) <= rel * abs(q) + 1e-12 for p, q in zip(py, c))


@pytest.mark.parametrize("name", recording_names())
def test_detector_summary_matches_c_console(name, golden_dir, monkeypatch):
    """Every recorded case, traced or not: the C's summary of the resolved detector."""
    case = json.loads((golden_dir / "cases" / name / "case.json").read_text())
    out = (golden_dir / "cases" / name / "c_stdout.log").read_text(encoding="utf-8")
    monkeypatch.chdir(golden_dir)
    s = build_setup(case["argv"], mode="c-parity")
    det = s.detector
    f, sp = _lg(out, r"\((\d+)x(\d+) pixels\)")
    assert (det.fpixels, det.spixels) == (f, sp)
    assert _near([det.distance], _lg(out, r"^  distance=(\S+) detsize"))
    if "DETECTOR_PIX0_VECTOR" in out:   # the fixed-C (__cfixed) runs do not print it
        assert _near(det.pix0.tolist(), _lg(out, r"^DETECTOR_PIX0_VECTOR (\S+) (\S+) (\S+)"), rel=1e-12)
    assert _near([det.Xbeam, det.Ybeam], _lg(out, r"^  Xbeam=(\S+) Ybeam=(\S+)"))
    assert _near([det.Fbeam, det.Sbeam], _lg(out, r"^  Fbeam=(\S+) Sbeam=(\S+)"))
    thick, layers, mu = _lg(out, r"^  sensor is (\S+) m thick in (\d+) layers with mu= (\S+)")
    assert (det.thickness, det.thicksteps) == (pytest.approx(thick), layers) and _near([det.mu], [mu])
    x0, x1, y0, y1 = _lg(out, r"^  roi: (-?\d+) < x < (-?\d+) && (-?\d+) < y < (-?\d+)")
    assert det.roi == (x0, min(x1, det.fpixels - 1), y0, min(y1, det.spixels - 1))
    assert det.oversample == _lg(out, r"^  (\d+)x\d+ pixel oversample steps")[0]
    conv = re.search(r"^(\w+) convention selected\.", out, flags=re.M).group(1)
    assert det.convention.lower() == conv
    pivot = "SAMPLE" if "pivoting detector around sample" in out else "BEAM"
    assert det.pivot == pivot
    assert s.steps == _lg(out, r"^  (\d+) sources")[0] * _lg(out, r"^  (\d+) mosaic domains over")[0] \
        * _lg(out, r"^  (\d+) phi steps")[0] * det.oversample ** 2


# Values recorded from the instrumented C (OMP_NUM_THREADS=1) with argv SMALL + the flags shown;
# these flag combinations are not among the golden cases.
C_RECORDED = [
    (["-twotheta_axis", "5", "0", "0"], "SAMPLE", "CUSTOM",
     [0.109132724579811, 0.00458231491785612, -0.00179333114993106]),
    (["-adxv"], "BEAM", "ADXV", [-0.00325, 0.00325, 0.1]),
    (["-denzo"], "BEAM", "DENZO", [0.1, 0.00325, -0.00325]),
]


@pytest.mark.parametrize("extra, pivot, convention, pix0", C_RECORDED, ids=["twotheta_axis", "adxv", "denzo"])
def test_flag_quirks_match_recorded_c(extra, pivot, convention, pix0):
    s = build_setup(SMALL + extra, mode="c-parity")
    assert (s.detector.pivot, s.detector.convention) == (pivot, convention)
    assert s.detector.pix0.tolist() == pytest.approx(pix0, abs=1e-15)


def test_twotheta_axis_quirk_is_not_unitized():
    s = build_setup(SMALL + ["-twotheta_axis", "0", "2", "0", "-twotheta", "10"], mode="c-parity")
    assert any(l == "TRACE_PY:twotheta_axis=0 2 0" for l in s.setup_trace)
    assert abs(float(s.detector.fdet.norm()) - 1.0) > 1e-3   # a non-unit axis distorts the basis


@pytest.mark.parametrize("flags, pivot", [
    (["-pivot", "sample"], "BEAM"), (["-twotheta", "5"], "BEAM"), (["-close_distance", "90"], "BEAM"),
    (["-ORGX", "10"], "BEAM"), (["-xds", "-pivot", "beam"], "SAMPLE"), (["-dials"], "SAMPLE"),
    (["-spindle_axis", "0", "0", "1", "-pivot", "sample"], "SAMPLE"),
    (["-spindle_axis", "0", "0", "1", "-twotheta", "5", "-distance", "90"], "BEAM"),
])
def test_conventions_force_the_pivot_except_custom(flags, pivot):
    assert build_setup(SMALL + flags, mode="c-parity").detector.pivot == pivot


def test_flags_that_switch_to_custom_change_the_beam_centre_meaning():
    # c-behaviour.md: with -pix0_vector on an 8-pixel detector Fbeam moves from 0.5 mm to 0.4 mm.
    base = ["-cell", "100", "-default_F", "1", "-detpixels", "8", "-pixel", "0.1"]
    mos = build_setup(base, mode="c-parity")
    cus = build_setup(base + ["-pix0_vector", "0", "0", "0"], mode="c-parity")
    assert [l for l in mos.setup_trace if "Fbeam_m" in l] == ["TRACE_PY:Fbeam_m=0.0005"]
    assert [l for l in cus.setup_trace if "Fbeam_m" in l] == ["TRACE_PY:Fbeam_m=0.0004"]


def test_pixel_counts_round_sizes_and_counts_win():
    assert pixel_counts(1e-4, 0, 0, 5.04e-3, 5.06e-3)[:2] == (50, 51)
    assert pixel_counts(1e-4, 30, 0, 5e-3, 7e-3) == (30, 70, pytest.approx(3e-3), 7e-3)


def test_thickness_rules_match_recorded_c():
    # C: "-detector_thick 100 -thicksteps 1" → 2 layers, 0..100 µm, mu 1e4;
    #    "-detector_thick 90 -thicksteps 4 -detector_abs 200" → 4 layers 30 µm apart, mu 5000.
    thick, step, n, mu, _ = thickness_layers(100e-6, -1.0, 1, -1.0)
    assert (n, step, mu) == (2, pytest.approx(100e-6), pytest.approx(1e4))
    thick, step, n, mu, _ = thickness_layers(90e-6, -1.0, 4, 5000.0)
    assert (n, step, mu) == (4, pytest.approx(30e-6), 5000.0)
    assert thickness_layers(0.0, -1.0, -1, -1.0)[:3] == (0.0, 0.0, 1)


def test_rotations_compose_x_then_y_then_z():
    Rx, Ry, Rz, R = rotation_matrices(0.3, -0.2, 0.5)
    v = torch.tensor([0.2, -0.4, 0.9], dtype=torch.float64)
    assert torch.allclose(R @ v, Rz @ (Ry @ (Rx @ v)))
    assert torch.allclose(R @ R.T, torch.eye(3, dtype=torch.float64))
    axis = torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64)
    assert torch.allclose(rotate_about_axis(v, axis, 0.5), Rz @ v)


def _tilted_inputs(**kw):
    """cubic_tilted_detector's geometry, built from the pure functions with tensor parameters."""
    bc = BeamCentreInput(Xbeam=kw["Xbeam"], Ybeam=kw["Ybeam"], Xclose=0.0512, Yclose=0.0512, Fclose=0.0512,
                         Sclose=0.0512, detsize_f=0.1024, detsize_s=0.1024, pixel_size=1e-4)
    frame = resolve("MOSFLM", bc)
    return detector_geometry(frame, clean_basis(frame), pivot=frame.pivot, rotx=kw["rotx"], roty=kw["roty"],
                             rotz=kw["rotz"], twotheta=kw["twotheta"], distance=kw["distance"],
                             close_distance=None, pixel_size=1e-4, Xclose=0.0512, Yclose=0.0512)


def test_pure_geometry_reproduces_c_and_is_differentiable(golden_dir):
    out = (golden_dir / "cases" / "cubic_tilted_detector" / "c_stdout.log").read_text(encoding="utf-8")
    c_pix0 = _lg(out, r"^DETECTOR_PIX0_VECTOR (\S+) (\S+) (\S+)")
    params = {k: torch.tensor(v, dtype=torch.float64, requires_grad=True) for k, v in
              dict(Xbeam=0.0612, Ybeam=0.0612, rotx=5 * DEG, roty=3 * DEG, rotz=2 * DEG, twotheta=15 * DEG,
                   distance=0.1).items()}
    geom = _tilted_inputs(**params)
    assert geom.pix0.tolist() == pytest.approx(c_pix0, abs=1e-15)
    (geom.pix0.sum() + geom.fdet.sum() + geom.sdet.sum()).backward()
    for k, p in params.items():
        assert p.grad is not None and torch.isfinite(p.grad) and p.grad != 0, k


def test_geometry_gradients_are_correct():
    names = ("Xbeam", "Ybeam", "rotx", "roty", "rotz", "twotheta", "distance")
    x0 = torch.tensor([0.0612, 0.0612, 5 * DEG, 3 * DEG, 2 * DEG, 15 * DEG, 0.1], dtype=torch.float64,
                      requires_grad=True)

    def f(x):
        g = _tilted_inputs(**dict(zip(names, x.unbind())))
        return torch.cat([g.pix0, g.fdet, g.sdet, g.close_distance.reshape(1)])

    assert torch.autograd.gradcheck(f, (x0,))


def test_sample_pivot_keeps_the_near_point():
    s = build_setup(SMALL + ["-xds", "-ORGX", "20.5", "-ORGY", "30.5", "-twotheta", "10"], mode="c-parity")
    det = s.detector
    Fclose = float(-(det.pix0 * det.fdet).sum())
    Sclose = float(-(det.pix0 * det.sdet).sum())
    assert (Fclose, Sclose) == (pytest.approx(20 * 1e-4), pytest.approx(30 * 1e-4))
    assert det.close_distance == pytest.approx(0.1)
