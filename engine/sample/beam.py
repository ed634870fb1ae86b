"""Beam set-up: fluence, the default single source, polarization, water background."""
from __future__ import annotations

import torch

#: Classical electron radius squared (m^2) and Avogadro's number, as the C uses them.
R_E_SQR = 7.94079248018965e-30
AVOGADRO = 6.02214179e23
WATER_F = 2.57          # forward-scattering F of one water molecule
WATER_MW = 18.0         # g/mol
SOURCE_DISTANCE = 10.0  # m, where generated sources sit


def resolve_fluence(fluence: float, flux: float, exposure: float, beamsize: float) -> float:
    """photons/m^2: -flux (photons/s) × -exposure (s) over a square -beamsize (m) beats -fluence."""
    if flux != 0.0 and exposure > 0.0 and beamsize >= 0:
        return flux * exposure / beamsize / beamsize
    return fluence


def clip_sample_to_beam(sample_y: float, sample_z: float, beamsize: float) -> tuple[float, float, list[str]]:
    """A beam narrower than the crystal illuminates only a beam-sized part of it."""
    lines = []
    if beamsize >= 0:
        if beamsize < sample_y:
            lines.append(f"note: crystal height {sample_y:g} m clipped to the beam size {beamsize:g} m")
            sample_y = beamsize
        if beamsize < sample_z:
            lines.append(f"note: crystal width {sample_z:g} m clipped to the beam size {beamsize:g} m")
            sample_z = beamsize
    return sample_y, sample_z, lines


def default_source(beam: torch.Tensor, lambda0: float,
                   source_distance: float = SOURCE_DISTANCE) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One source upstream on the beam axis: (positions (1,3) m, wavelengths (1,), weights (1,))."""
    pos = (-source_distance * beam).reshape(1, 3)
    return pos, torch.full((1,), lambda0, dtype=beam.dtype, device=beam.device), \
        torch.ones(1, dtype=beam.dtype, device=beam.device)


def water_background(water_size: float, fluence: float) -> float:
    """I_bg as the C computes it for a water cube of edge ``water_size`` (m), already × r_e²·fluence."""
    return WATER_F * WATER_F * R_E_SQR * fluence * water_size ** 3 * 1e6 * AVOGADRO / WATER_MW
