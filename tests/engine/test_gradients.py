"""Gradients flow through the rendering kernel (torch.autograd.gradcheck, float64, 4x4 detector).

The detector is placed on the (0 1 0) spot of a 100 Å cubic cell so that every input moves the
image. Inputs are rescaled to O(1) units (Å, mm) so the finite-difference step is meaningful.
F_cell is the constant default_F, so the only piecewise-constant step (nearest-index rounding)
does not enter.
"""
from __future__ import annotations

import dataclasses

import pytest
import torch
from torch.autograd import gradcheck

from engine.config.model import SimulationSetup
from engine.config.setup import build_setup
from engine.render.frame import render

ARGV = ["-cell", "100", "100", "100", "90", "90", "90", "-default_F", "100", "-N", "5",
        "-lambda", "6.2", "-distance", "100", "-detpixels", "4", "-pixel", "0.1",
        "-Xbeam", "6.3", "-Ybeam", "0.15", "-phi", "0.5", "-osc", "0.4", "-phisteps", "2",
        "-oversample", "1", "-nonoise", "-nopgm", "-noprogress"]


@pytest.fixture(scope="module")
def setup() -> SimulationSetup:
    return build_setup(ARGV, mode="spec", dtype=torch.float64)


def _image(setup: SimulationSetup, *, crystal=None, detector=None) -> torch.Tensor:
    s = setup
    if crystal:
        s = dataclasses.replace(s, crystal=dataclasses.replace(s.crystal, **crystal))
    if detector:
        s = dataclasses.replace(s, detector=dataclasses.replace(s.detector, **detector))
    return render(s).image


def _leaf(t: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
    return (t.detach().clone() / scale).requires_grad_(True)


def test_image_is_not_flat(setup):
    image = _image(setup)
    assert image.shape == (4, 4)
    assert float(image.min()) > 0.0 and float(image.max()) > 1.1 * float(image.min())


def test_gradcheck_cell_vectors(setup):
    cr = setup.crystal
    inputs = tuple(_leaf(v, 1e-10) for v in (cr.a0, cr.b0, cr.c0))   # Å

    def f(a, b, c):
        return _image(setup, crystal=dict(a0=a * 1e-10, b0=b * 1e-10, c0=c * 1e-10))

    # A 1e-6 Å step moves the image by ~1e-10 relative, too close to its rounding noise.
    assert gradcheck(f, inputs, eps=1e-5, atol=1e-6, rtol=1e-4)


def test_gradcheck_pix0_and_detector_axes(setup):
    det = setup.detector
    inputs = (_leaf(det.pix0, 1e-3), _leaf(det.fdet), _leaf(det.sdet), _leaf(det.odet))

    def f(pix0_mm, fdet, sdet, odet):
        return _image(setup, detector=dict(pix0=pix0_mm * 1e-3, fdet=fdet, sdet=sdet, odet=odet))

    assert gradcheck(f, inputs, eps=1e-6, atol=1e-6, rtol=1e-4)


def test_gradcheck_phi0(setup):
    phi0 = torch.tensor(float(setup.crystal.phi0), dtype=torch.float64, requires_grad=True)

    def f(p):
        return _image(setup, crystal=dict(phi0=p))

    assert gradcheck(f, (phi0,), eps=1e-7, atol=1e-6, rtol=1e-4)


def test_gradient_reaches_every_parameter(setup):
    """One backward pass: each parameter gets a finite, nonzero gradient."""
    cr, det = setup.crystal, setup.detector
    a0 = cr.a0.detach().clone().requires_grad_(True)
    pix0 = det.pix0.detach().clone().requires_grad_(True)
    phi0 = torch.tensor(float(cr.phi0), dtype=torch.float64, requires_grad=True)
    image = _image(setup, crystal=dict(a0=a0, phi0=phi0), detector=dict(pix0=pix0))
    image.sum().backward()
    for g in (a0.grad, pix0.grad, phi0.grad):
        assert g is not None and bool(torch.isfinite(g).all()) and float(g.abs().sum()) > 0.0
