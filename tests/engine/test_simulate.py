"""Kernel pieces and the renderer's evaluation-order model, against the recorded C.

Each physics function is fed the C's own traced inputs and must give the C's traced output;
the evaluation-order model (stale φ rotation, thread blocks, chunking) must reproduce the
recorded images exactly where it matters.
"""
from __future__ import annotations

import dataclasses
import hashlib

import numpy as np
import pytest
import torch

from engine.config.model import Mode
from engine.io.floatimage import read_floatimage, write_floatimage
from engine.config.setup import build_setup
from engine.render.eval_order import phi_rotation_plan, thread_row_blocks
from engine.render.frame import render
from engine.render.pixel_physics import (R_E_SQR, capture_fraction, polarization_factor, rotate_about_axis,
                                         solid_angle)
from harness.compare.images import ImageThreshold
from tests.checks import close, image_problem, pixel_records
from tests.engine.test_golden_parity import _in_dir, case_json, golden_image, golden_stdout


def t(*v: float) -> torch.Tensor:
    return torch.tensor(v, dtype=torch.float64)


def _first(records, key):
    return next(r.values for r in records if r.kind == "pixel" and r.key == key)


def _all(records, key):
    return [r.values for r in records if r.kind == "pixel" and r.key == key]


def _setup(name: str, mode: str = "c-parity", **kw):
    case = case_json(name)
    from tests.conftest import golden_root
    with _in_dir(golden_root()):
        return build_setup(case["argv"], mode=mode, c_threads=case.get("omp_num_threads", 1), **kw)


# --- pure per-pixel physics fed with the C's traced inputs ----------------------------------

@pytest.mark.parametrize("name", ["simple_cubic", "cubic_tilted_detector", "point_pixel", "extreme_long_distance"])
def test_solid_angle(golden_dir, name):
    rec = pixel_records(golden_stdout(name), "C")
    R = _first(rec, "R_distance_meters")[0]
    setup = _setup(name)
    omega = solid_angle(t(R), setup.detector.pixel_size, setup.detector.close_distance,
                        setup.detector.point_pixel).item()
    assert omega == pytest.approx(_first(rec, "omega_pixel")[0], rel=1e-12)


@pytest.mark.parametrize("name", ["polarization_kahn", "simple_cubic", "custom_vectors_pix0"])
def test_polarization_factor(golden_dir, name):
    rec = pixel_records(golden_stdout(name), "C")
    setup = _setup(name)
    d, i = t(*_first(rec, "diffracted_vec")), t(*_first(rec, "incident_vec"))
    p = polarization_factor(setup.beam.kahn_factor, i, d, setup.beam.polarization_axis).item()
    assert p == pytest.approx(_first(rec, "polar")[0], rel=1e-12)


def test_nopolar_keeps_one(golden_dir):
    rec = pixel_records(golden_stdout("nopolar"), "C")
    assert _first(rec, "polar") == (1.0,)
    engine = pixel_records("\n".join(render(_setup("nopolar")).trace), "PY")
    assert _first(engine, "polar") == (1.0,)


def test_capture_fraction_of_last_layer(golden_dir):
    """absorption_thickness: the C applies the last layer's fraction at its first sub-pixel."""
    rec = pixel_records(golden_stdout("absorption_thickness"), "C")
    setup = _setup("absorption_thickness")
    det = setup.detector
    blocks = _all(rec, "diffracted_vec")
    per_layer = len(blocks) // det.thicksteps
    d_last = t(*blocks[(det.thicksteps - 1) * per_layer])
    cap = capture_fraction(d_last, det.odet, det.thicksteps - 1, det.thickstep, det.mu).item()
    assert cap == pytest.approx(_first(rec, "capture_fraction")[0], rel=1e-9)


def test_rotation_about_spindle_matches_c(golden_dir):
    """phi_rotation_9steps: the cell at φ step 0 is the stale φ = 80° rotation (c-parity)."""
    rec = pixel_records(golden_stdout("phi_rotation_9steps"), "C")
    setup = _setup("phi_rotation_9steps")
    cr = setup.crystal
    phi_last = cr.phi0 + (cr.phisteps - 1) * cr.phistep
    rot_a = rotate_about_axis(cr.a0, cr.spindle_axis, phi_last) * 1e10
    assert close(_first(rec, "rot_a_angstroms"), rot_a.tolist())


def test_intensity_scaling(golden_dir):
    """I_pixel_final = r_e²·fluence·I/steps·capture·polar·ω with the C's printed factors."""
    rec = pixel_records(golden_stdout("divergence_dispersion"), "C")
    v = {k: _first(rec, k)[0] for k in ("I_before_scaling", "r_e_sqr", "fluence_photons_per_m2", "steps",
                                        "capture_fraction", "polar", "omega_pixel", "I_pixel_final")}
    assert v["r_e_sqr"] == R_E_SQR
    final = (R_E_SQR * v["fluence_photons_per_m2"] * v["I_before_scaling"] / v["steps"]
             * v["capture_fraction"] * v["polar"] * v["omega_pixel"])
    assert final == pytest.approx(v["I_pixel_final"], rel=1e-12)


# --- evaluation order -----------------------------------------------------------------------

def test_phi_plan_spec_uses_own_angle():
    assert phi_rotation_plan([0.0, 0.1, 0.2], stale_zero=False) == ([0, 1, 2], [0, 1, 2])


def test_phi_plan_c_zero_first_step():
    normal, first = phi_rotation_plan([0.0, 0.1, 0.2], stale_zero=True)
    assert normal == [2, 1, 2]      # step 0 keeps the previous sweep's last rotation
    assert first == [-1, 1, 2]      # except in a thread's first sweep: unrotated


def test_phi_plan_c_zero_mid_sweep():
    normal, first = phi_rotation_plan([-0.1, 0.0, 0.1], stale_zero=True)
    assert normal == first == [0, 0, 2]


def test_phi_plan_c_all_zero():
    assert phi_rotation_plan([0.0], stale_zero=True) == ([-1], [-1])


def test_thread_row_blocks():
    assert thread_row_blocks(256, 1) == [(0, 256)]
    assert thread_row_blocks(256, 2) == [(0, 128), (128, 256)]
    assert thread_row_blocks(5, 2) == [(0, 3), (3, 5)]


def test_two_threads_restart_unrotated_at_their_first_pixel(golden_dir):
    """threads2_phi_rotation differs from the 1-thread run exactly at the pixels the C reports."""
    result = render(_setup("threads2_phi_rotation"))
    assert result.thread_first_pixels == [(0, 0), (128, 0)]
    single = golden_image("phi_rotation_9steps")
    differs = np.argwhere(result.float_image.numpy() != single).tolist()
    # the C's own 2-thread recording against its 1-thread one (any recording set, not only one
    # whose manifest carries the diff_vs_single_thread analysis)
    assert differs == np.argwhere(golden_image("threads2_phi_rotation") != single).tolist() == [[128, 0]]


@pytest.mark.parametrize("chunk_pixels", [1, 64 * 3, 64 * 64])
def test_chunking_does_not_change_the_image(golden_dir, chunk_pixels):
    """phi_carryover (stale φ state across chunks) is exact with 1-row, 3-row and 1-chunk batches."""
    result = render(_setup("phi_carryover"), chunk_pixels=chunk_pixels)
    assert np.array_equal(result.float_image.numpy(), golden_image("phi_carryover"))


def test_memory_budget_sets_chunk(golden_dir):
    result = render(_setup("dmin"), memory_budget_bytes=1)      # one row at a time
    assert image_problem(golden_image("dmin"), result.float_image.numpy()) is None


def test_roi_and_mask_leave_zeros(golden_dir):
    for name in ("roi", "mask_input"):
        result = render(_setup(name))
        ref = golden_image(name)
        assert not bool(result.float_image[~result.rendered].any())
        assert np.array_equal(result.rendered.numpy() | (ref != 0), result.rendered.numpy())


def test_trace_pixel_outside_roi_prints_nothing(golden_dir):
    setup = dataclasses.replace(_setup("roi"), trace_pixel=(0, 0))
    assert render(setup).trace == []


def test_float32_run(golden_dir):
    """Any dtype: a float32 set-up renders in float32 and stays close to the C."""
    setup = _setup("simple_cubic_mosflm_beam").to(dtype=torch.float32)
    result = render(setup)
    assert result.image.dtype == torch.float32
    assert image_problem(golden_image("simple_cubic_mosflm_beam"), result.float_image.numpy(),
                         ImageThreshold(rtol_of_max=1e-2)) is None


def test_solid_angle_console_line(golden_dir):
    from engine.outputs.console import console_after_render
    for name in ("simple_cubic", "oversample_3", "absorption_thickness"):
        setup = _setup(name)
        lines = console_after_render(setup, render(setup), "x")
        want = [ln for ln in golden_stdout(name).splitlines() if ln.startswith("solid angle")]
        assert [ln for ln in lines if ln.startswith("solid angle")] == want


# --- float image file -------------------------------------------------------------------------

def test_floatimage_roundtrip_is_byte_exact(golden_dir, tmp_path):
    case = case_json("conv_xds")
    image = golden_image("conv_xds")
    out = tmp_path / "f.bin"
    write_floatimage(out, torch.from_numpy(image.astype(np.float64)))
    assert hashlib.sha256(out.read_bytes()).hexdigest() == case["floatimage_raw_sha256"]
    assert np.array_equal(read_floatimage(out, image.shape), image)


def test_read_gzipped_floatimage(golden_dir):
    case = case_json("simple_cubic")
    image = golden_image("simple_cubic")
    assert image.shape == tuple(case["detpixels"])
    assert float(image.max()) == pytest.approx(case["floatimage_stats"]["max"])


def test_spec_mode_renders_phi_zero_unrotated(golden_dir):
    setup = _setup("phi_carryover", mode="spec")
    assert setup.mode == Mode.SPEC
    result = render(setup)
    assert result.thread_first_pixels == []
    assert image_problem(golden_image("phi_carryover__cfixed"), result.float_image.numpy()) is None


# --- speed machinery must not change a bit ------------------------------------------------------

def test_threads_do_not_change_the_image(golden_dir):
    """Batches on worker threads (torch threads > 1) give exactly the one-thread image, and the
    caller's thread setting is left as it was."""
    setup = _setup("threads2_phi_rotation")
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = render(setup, chunk_pixels=256 * 7)
        torch.set_num_threads(2)
        two = render(setup, chunk_pixels=256 * 7)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
    assert torch.equal(one.image, two.image)
    assert one.trace == two.trace and one.omega_sum == two.omega_sum


@pytest.mark.parametrize("name", ["phi_carryover", "dmin", "oversample_flags", "hkl_interpolate",
                                  "lattice_gauss", "mask_input"])
def test_fast_path_equals_differentiable_path(golden_dir, name):
    """The in-place no-grad kernel and the autograd kernel compute the same bits."""
    setup = _setup(name)
    fast = render(setup)
    cr = setup.crystal
    graded = dataclasses.replace(setup, crystal=dataclasses.replace(
        cr, a0=cr.a0.detach().clone().requires_grad_(True)))
    slow = render(graded)
    assert slow.image.requires_grad and not fast.image.requires_grad
    assert torch.equal(slow.image.detach(), fast.image)


def test_memory_budget_from_environment(golden_dir, monkeypatch):
    from engine.render.chunking import CPU_BUDGET, memory_budget, parse_bytes, rows_per_chunk

    setup = _setup("dmin")
    assert parse_bytes("64M") == 64 * 1024 ** 2 and parse_bytes("1.5 GiB") == 3 * 1024 ** 3 // 2
    assert parse_bytes("4096") == 4096
    with pytest.raises(ValueError):
        parse_bytes("lots")
    monkeypatch.delenv("NB_ENGINE_MEMORY_BUDGET", raising=False)
    assert 0 < memory_budget("cpu") <= CPU_BUDGET
    monkeypatch.setenv("NB_ENGINE_MEMORY_BUDGET", "1")
    assert rows_per_chunk(setup) == 1
    assert rows_per_chunk(setup, memory_budget_bytes=1 << 30) > 1      # the argument wins
    assert image_problem(golden_image("dmin"), render(setup).float_image.numpy()) is None
