"""The C's ``TRACE_C:key=value`` set-up lines of the detector geometry, emitted as ``TRACE_PY``.

Kept apart from the geometry so that the physics stays pure tensor code. The lines follow the
C's order and its label quirks: the BEAM branch prints MOSFLM names and initial vectors whatever
the convention and re-prints ``*_after_rotz`` with the final vectors, and both branches divide
the beam centre by 1000 a second time; the values themselves are the physics values.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import torch

from engine.geometry.conventions import ConventionFrame
from engine.geometry.rotations import as_tensor, rotation_matrices
from engine.outputs.trace import TraceRecorder, format_number

#: The fixed text the C prints for its BEAM branch (a label, mirrored verbatim for alignment).
BEAM_MAPPING_TEXT = "Fbeam←Ybeam_mm(+0.5px),Sbeam←Xbeam_mm(+0.5px),beam_vec=[1 0 0]"
_MOSFLM_INITIAL = ((0.0, 0.0, 1.0), (0.0, -1.0, 0.0), (1.0, 0.0, 0.0))
_AXES = ("fdet", "sdet", "odet")


def _vals(v: torch.Tensor) -> list[float]:
    return [float(x) for x in v.detach().reshape(-1).tolist()]


def _num(v) -> str:
    return format_number(float(as_tensor(v).detach()))


def _mat(M: torch.Tensor) -> str:
    rows = [" ".join(format_number(float(x)) for x in row) for row in M.detach().tolist()]
    return "[" + "; ".join(rows) + "]"


@dataclass
class DetectorTrace:
    """Writes the geometry's set-up lines into ``rec``; the geometry calls one method per block."""

    rec: TraceRecorder
    frame: ConventionFrame
    basis: Any                          # engine.geometry.detector.Basis (that module imports this one)
    rot: tuple                          # (rotx, roty, rotz), rad
    twotheta: torch.Tensor
    pixel_size: float

    def _angles(self) -> None:
        v = [*self.rot, self.twotheta]
        self.rec.setup("angles_rad", "rotx:{} roty:{} rotz:{} twotheta:{}".format(*(_num(x) for x in v)))

    def _vectors(self, suffix: str, vectors: Sequence[torch.Tensor]) -> None:
        for name, v in zip(_AXES, vectors):
            self.rec.setup_vec(f"{name}_{suffix}", _vals(v))

    def sample_pivot(self, Xclose: torch.Tensor, Yclose: torch.Tensor, close: torch.Tensor,
                     ratio: torch.Tensor, distance: torch.Tensor, steps: dict) -> None:
        """The SAMPLE branch: the near point, and pix0 before and after the rotations."""
        rec, b = self.rec, self.basis
        rec.setup("detector_convention", self.frame.name)
        self._angles()
        rec.setup("beam_center_m", "Xclose:{} Yclose:{} pixel_mm:{}".format(
            format_number(float(Xclose.detach()) / 1000.0), format_number(float(Yclose.detach()) / 1000.0),
            format_number(self.pixel_size * 1000.0)))
        for name, v in zip(_AXES, (b.fdet, b.sdet, b.odet)):
            rec.setup_vec(f"initial_{name}", _vals(v))
        Fclose, Sclose = steps["Fclose"], steps["Sclose"]
        for key, v in (("Fclose_m", Fclose), ("Sclose_m", Sclose), ("close_distance_m", close),
                       ("ratio", ratio), ("distance_m", distance)):
            rec.setup(key, _num(v))
        rec.setup_vec("term_fast_before_rot", _vals(-Fclose * b.fdet))
        rec.setup_vec("term_slow_before_rot", _vals(-Sclose * b.sdet))
        rec.setup_vec("term_close_before_rot", _vals(close * b.odet))
        for key in ("pix0_before_rotation", "pix0_after_rotz", "pix0_after_twotheta"):
            rec.setup_vec(key, _vals(steps[key]))

    def rotated_axes(self, rotated: Sequence[torch.Tensor], final: Sequence[torch.Tensor]) -> None:
        """Both branches: the axes after the x, y, z rotations and after two-theta."""
        self._vectors("after_rotz", rotated)
        self.rec.setup_vec("twotheta_axis", _vals(self.basis.twotheta_axis))
        self._vectors("after_twotheta", final)

    def beam_pivot(self, final: Sequence[torch.Tensor], Fbeam: torch.Tensor, Sbeam: torch.Tensor,
                   distance: torch.Tensor, pix0: torch.Tensor) -> None:
        """The BEAM branch, with the C's MOSFLM labels and its re-print of the final axes."""
        rec, b = self.rec, self.basis
        f, s, _ = final
        rec.setup("detector_convention", "MOSFLM")
        self._angles()
        rec.setup("beam_center_m", "X:{} Y:{} pixel_mm:{}".format(
            format_number(float(as_tensor(self.frame.Xbeam).detach()) / 1000.0),
            format_number(float(as_tensor(self.frame.Ybeam).detach()) / 1000.0),
            format_number(self.pixel_size * 1000.0)))
        for name, v in zip(_AXES, _MOSFLM_INITIAL):
            rec.setup_vec(f"initial_{name}", v)
        Rx, Ry, Rz, R = rotation_matrices(*self.rot, dtype=f.dtype, device=f.device)
        for key, M in (("Rx", Rx), ("Ry", Ry), ("Rz", Rz), ("R_total", R)):
            rec.setup(key, _mat(M))
        self.rotated_axes(final, final)
        rec.setup("convention_mapping", BEAM_MAPPING_TEXT)
        for key, v in (("Fbeam_m", Fbeam), ("Sbeam_m", Sbeam), ("distance_m", distance)):
            rec.setup(key, _num(v))
        rec.setup_vec("term_fast", _vals(-Fbeam * f))
        rec.setup_vec("term_slow", _vals(-Sbeam * s))
        rec.setup_vec("term_beam", _vals(distance * b.beam))
        rec.setup_vec("pix0_vector", _vals(pix0))
