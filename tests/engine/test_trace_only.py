"""``render_trace_only``: the traced pixel alone gives the full render's trace lines and value.

The trace-only path computes only what the traced pixel needs, and reproduces the c-parity
carry-over state it would have in a full render (thread-first pixel of the stale-φ defect, dmin
skips before it, ROI/mask, the interpolation stop). Each case compares it with a full render of
the same set-up, exactly (lines as strings, values bit for bit).
"""
from __future__ import annotations

import dataclasses

import pytest
import torch

from engine.render.frame import render
from engine.render.trace_only import render_trace_only
from tests.checks import pixel_records, trace_problems
from tests.engine.test_golden_parity import golden_stdout
from tests.engine.test_simulate import _setup


@pytest.fixture(scope="module")
def full_renders():
    cache = {}

    def get(name, setup):
        key = (name, setup.trace_pixel, setup.beam.dmin)
        if key not in cache:
            cache[key] = render(setup)
        return cache[key]

    return get


def _check(setup, full):
    fast = render_trace_only(setup)
    ts, tf = setup.trace_pixel
    assert fast.trace_only and not full.trace_only
    assert fast.trace == full.trace
    assert float(fast.image[ts, tf]) == float(full.image[ts, tf])
    assert float(fast.float_image[ts, tf]) == float(full.float_image[ts, tf])
    others = fast.image.clone()
    others[ts, tf] = 0
    assert not bool(others.any()), "trace-only image must be zero except the traced pixel"
    assert ((ts, tf) in fast.thread_first_pixels) == ((ts, tf) in full.thread_first_pixels)
    stop = full.interpolation_stop
    if stop is not None and (stop.spixel, stop.fpixel) <= (ts, tf):
        assert fast.interpolation_stop == stop
    else:
        assert fast.interpolation_stop is None
    assert fast.omega_sum == pytest.approx(full.omega_sum, rel=1e-12)
    return fast


CASES = ["phi_carryover", "threads2_phi_rotation", "interpolate_out_of_range", "dmin", "roi",
         "mask_input", pytest.param("supervisor_brightest_trace", marks=pytest.mark.slow)]


@pytest.mark.parametrize("name", CASES)
def test_recorded_trace_pixel(golden_dir, full_renders, name):
    setup = _setup(name)
    fast = _check(setup, full_renders(name, setup))
    assert fast.trace
    # ... and it is the C's trace too.
    c = pixel_records(golden_stdout(name), "C")
    problems = trace_problems(c, pixel_records("\n".join(fast.trace), "PY"))
    assert not problems, "\n".join(problems[:10])


@pytest.mark.parametrize("name, pixel", [
    ("phi_carryover", (0, 0)),                  # the thread's first pixel: unrotated at φ = 0
    ("phi_carryover", (0, 1)),                  # the one after it: carried rotation
    ("threads2_phi_rotation", (128, 0)),        # first pixel of the second thread's block
    ("threads2_phi_rotation", (127, 255)),      # last pixel of the first block
    ("interpolate_out_of_range", (0, 43)),      # just before the interpolation stop
    ("interpolate_out_of_range", (0, 44)),      # the stop itself (nearest F at the failing term)
    ("interpolate_out_of_range", (0, 45)),      # after it: nearest-neighbour from then on
    ("interpolate_out_of_range", (200, 200)),
    ("mask_input", (0, 0)),                     # masked: no trace, all zeros
])
def test_carry_over_boundaries(golden_dir, full_renders, name, pixel):
    setup = dataclasses.replace(_setup(name), trace_pixel=pixel)
    full = full_renders(name, setup)
    fast = _check(setup, full)
    if not bool(full.rendered[pixel]):
        assert fast.trace == [] and not bool(fast.image.any())


def test_first_pixels_skipped_by_dmin(golden_dir, full_renders):
    """With dmin cutting the detector's first rows, the thread-first pixel (stale-φ variant) is
    the first pixel that passes dmin; trace-only finds it without rendering."""
    base = _setup("phi_carryover")
    det = base.detector
    # dmin just above the resolution at pixel (0, 0): the first pixels are all skipped.
    pos = det.pix0 + 0.5 * det.pixel_size * (det.fdet + det.sdet)
    d = pos / pos.norm()
    stol = 0.5 * float(((d - base.beam.incident[0]) / base.beam.wavelengths[0]).norm())
    setup = dataclasses.replace(base, beam=dataclasses.replace(base.beam, dmin=1.0005 * 0.5 / stol))
    probe = full_renders("phi_carryover/dmin", dataclasses.replace(setup, trace_pixel=(0, 0)))
    (first,) = probe.thread_first_pixels
    assert first != (0, 0)
    for pixel in (first, (first[0], first[1] + 1), (0, 0)):
        traced = dataclasses.replace(setup, trace_pixel=pixel)
        _check(traced, full_renders("phi_carryover/dmin", traced))


def test_trace_only_without_trace_pixel(golden_dir):
    setup = dataclasses.replace(_setup("roi"), trace_pixel=None)
    result = render_trace_only(setup)
    assert result.trace == [] and not bool(result.image.any())


def test_trace_only_float32(golden_dir):
    setup = _setup("phi_carryover").to(dtype=torch.float32)
    fast, full = render_trace_only(setup), render(setup)
    ts, tf = setup.trace_pixel
    assert fast.image.dtype == torch.float32
    assert fast.trace == full.trace
    assert float(fast.image[ts, tf]) == float(full.image[ts, tf])


@pytest.mark.parametrize("name", ["oversample_flags", "oversample_3", "absorption_thickness",
                                  "curved_detector", "point_pixel", "mask_input"])
def test_trace_only_solid_angle_sum(golden_dir, name):
    """The solid-angle console line needs Σ ω over the frame: computed from geometry alone."""
    setup = _setup(name)
    assert render_trace_only(setup).omega_sum == pytest.approx(render(setup).omega_sum, rel=1e-12)
