"""X-ray sources: the C's divergence × dispersion grid, and user source files.

A source is a point at ``source_distance`` (10 m) upstream of the sample plus a wavelength. The
incident direction the kernel uses is −unit(position). Positions are returned as the C prints them
(not yet normalised), so callers can both print and normalise them.

Units: angles in radians, wavelengths and distances in metres, dispersion as a fraction (the C
divides the ``-dispersion`` percentage by 100 before any of this).
"""
from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Sequence

import torch

from engine.io.errors import InputFileError
from engine.geometry.rotations import magnitude
from engine.sample.c_text import read_rows

__all__ = ["resolve_steps", "generate_sources", "read_sourcefile", "source_lines",
           "divergence_lines", "incident_directions", "UNSET_RANGE", "UNSET_STEP", "UNSET_STEPS",
           "DEFAULT_DISPERSION"]

#: The C's "not given" values for -hdivrange/-vdivrange, the step sizes and the step counts.
UNSET_RANGE = -1.0
UNSET_STEP = -1.0
UNSET_STEPS = -1
#: Unlike the divergence ranges, the dispersion starts at 0.0 (not "unset"), so -dispsteps alone
#: never auto-selects a range: it resolves to a single wavelength.
DEFAULT_DISPERSION = 0.0

Vector = Sequence[float] | torch.Tensor


def resolve_steps(range_: float, step: float, steps: int) -> tuple[float, float, int]:
    """Complete (range, step size, step count) the way the C does for hdiv, vdiv and dispersion.

    Pass the C's defaults for what the user did not give (range −1, step −1, steps −1; dispersion's
    range defaults to 0.0). The rules, by what was given:

    * nothing: one step, range 0;
    * step only: range = step, 2 steps;
    * range only: step = range, 2 steps;
    * range and step: ceil(range/step) steps;
    * steps only: range 1.0 (radians, or a fraction for dispersion), step = 1/steps;
    * steps and step: range = step, 2 steps (the count is overridden);
    * steps and range: step = range/(steps−1), with at least 2 steps;
    * all three: as given.

    Finally anything with a non-positive range, step or count collapses to (0, 0, 1).
    """
    if steps <= 0:
        if range_ < 0.0:
            if step <= 0.0:
                steps, range_, step = 1, 0.0, 0.0
            else:
                range_, steps = step, 2
        elif step <= 0.0:
            step, steps = range_, 2
        else:
            steps = int(math.ceil(range_ / step))
    elif range_ < 0.0:
        if step <= 0.0:
            range_ = 1.0
            step = range_ / steps
        else:
            range_, steps = step, 2
    elif step <= 0.0:
        if steps <= 1:
            steps = 2
        step = range_ / (steps - 1)
    if range_ <= 0.0 or step <= 0.0 or steps <= 0:
        return 0.0, 0.0, 1
    return float(range_), float(step), int(steps)


def _floats(v: Vector) -> tuple[float, float, float]:
    if isinstance(v, torch.Tensor):
        v = v.detach().cpu().to(torch.float64).tolist()
    x, y, z = (float(c) for c in v)
    return x, y, z


def _rotate_about(v: tuple[float, float, float], axis: tuple[float, float, float],
                  phi: float) -> tuple[float, float, float]:
    """Rotate v about a unit axis by phi (Rodrigues), grouped as the C groups it (sign of zeros
    included, since the C prints these positions)."""
    s, c = math.sin(phi), math.cos(phi)
    ax, ay, az = axis
    x, y, z = v
    along = (ax * x + ay * y + az * z) * (1.0 - c)
    return (ax * along + x * c + (-az * y + ay * z) * s,
            ay * along + y * c + (+az * x - ax * z) * s,
            az * along + z * c + (-ay * x + ax * y) * s)


def _unit(v: tuple[float, float, float]) -> tuple[float, float, float]:
    mag = math.sqrt(v[0] * v[0] + v[1] * v[1] + v[2] * v[2])
    if mag == 0.0:
        return 0.0, 0.0, 0.0
    return v[0] / mag, v[1] / mag, v[2] / mag


def _kept_divergence(hdivrange: float, hdivstep: float, hdivsteps: int, vdivrange: float,
                     vdivstep: float, vdivsteps: int, round_div: bool) -> list[tuple[float, float]]:
    """(hdiv, vdiv) of every divergence point the C keeps, in its order (h outer, v inner).

    With round_div the grid is trimmed to an ellipse; for an even count the test is shifted by a
    quarter step² so the two middle points of each axis count as centred. A zero range makes the
    test 0/0 = NaN, which never trims.
    """
    kept = []
    for i in range(hdivsteps):
        for j in range(vdivsteps):
            hdiv = hdivstep * i - hdivrange / 2.0
            vdiv = vdivstep * j - vdivrange / 2.0
            if round_div:
                test = _ratio(hdiv * hdiv - hdivstep * hdivstep / 4.0 * (1 - hdivsteps % 2), hdivrange)
                test += _ratio(vdiv * vdiv - vdivstep * vdivstep / 4.0 * (1 - vdivsteps % 2), vdivrange)
                if test * 4.0 > 1.1:
                    continue
            kept.append((hdiv, vdiv))
    return kept


def _ratio(num: float, rng: float) -> float:
    """num/rng/rng with C (IEEE) semantics for a zero range, where Python would raise."""
    if rng == 0.0:
        # Dividing twice by the same signed zero leaves the sign of num; 0/0 is NaN.
        return math.nan if num == 0.0 or math.isnan(num) else math.copysign(math.inf, num)
    return num / rng / rng


def generate_sources(beam_vector: Vector, polar_vector: Vector, lambda0: float,
                     hdivrange: float, hdivstep: float, hdivsteps: int,
                     vdivrange: float, vdivstep: float, vdivsteps: int,
                     round_div: bool, dispersion: float, dispstep: float, dispsteps: int,
                     source_distance: float = 10.0,
                     ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The C's generated sources: positions (n, 3) m, wavelengths (n,) m, weights (n,).

    The step parameters must already be resolved (``resolve_steps``). beam_vector and
    polar_vector are the unit vectors after the convention/unitize stage. Each kept divergence
    point starts at −source_distance·beam, is turned by vdiv about the polarization vector and then
    by hdiv about v = unit(beam × polar); every point then gets one source per wavelength
    λ0·(1 + i·dispstep − dispersion/2). Every weight is 1/n.
    """
    beam = _floats(beam_vector)
    polar = _floats(polar_vector)
    bx, by, bz = beam
    px, py, pz = polar
    vert = _unit((by * pz - bz * py, bz * px - bx * pz, bx * py - by * px))
    points = _kept_divergence(hdivrange, hdivstep, hdivsteps, vdivrange, vdivstep, vdivsteps,
                              round_div)
    lambdas = [lambda0 * (1.0 + dispstep * i - dispersion / 2.0) for i in range(dispsteps)]
    n = len(points) * len(lambdas)
    weight = 1.0 / n if n else 0.0
    start = (-source_distance * bx, -source_distance * by, -source_distance * bz)
    positions, wavelengths = [], []
    for hdiv, vdiv in points:
        pos = _rotate_about(_rotate_about(start, polar, vdiv), vert, hdiv)
        for lam in lambdas:
            positions.append(pos)
            wavelengths.append(lam)
    return (torch.tensor(positions, dtype=torch.float64).reshape(-1, 3),
            torch.tensor(wavelengths, dtype=torch.float64),
            torch.full((n,), weight, dtype=torch.float64))


def divergence_lines(hdivrange: float, hdivstep: float, hdivsteps: int, vdivrange: float,
                     vdivstep: float, vdivsteps: int, round_div: bool, lambda0: float,
                     dispersion: float, dispstep: float, dispsteps: int) -> list[str]:
    """The console lines the C prints while generating sources (divergence points, then λ's)."""
    lines = ["divergence deviation: %g %g" % hv for hv in
             _kept_divergence(hdivrange, hdivstep, hdivsteps, vdivrange, vdivstep, vdivsteps,
                              round_div)]
    lines += ["lambda%d = %.15g" % (i, lambda0 * (1.0 + dispstep * i - dispersion / 2.0))
              for i in range(dispsteps)]
    return lines


def source_lines(positions: torch.Tensor, wavelengths: torch.Tensor,
                 weights: torch.Tensor) -> list[str]:
    """The C's source listing: the count line, then 'X Y Z   weight lambda' per source (%g)."""
    lines = ["  created a total of %d sources:" % int(positions.shape[0])]
    for (x, y, z), w, lam in zip(positions.tolist(), weights.tolist(), wavelengths.tolist()):
        lines.append("%g %g %g   %g %g" % (x, y, z, w, lam))
    return lines


# Field separators and the characters a number may contain, as the C's text reader has them.
_SEPARATORS = " \t,;:!"
_SPLIT = re.compile(r"[ \t,;:!]+")
_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


def read_sourcefile(path: str | Path, beam_vector: Vector, lambda0: float,
                    source_distance: float = 10.0, *, c_parity: bool = False,
                    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Sources from a text file: columns X Y Z weight λ (m), separated by any of `` \\t,;:!``.

    Returns positions (n, 3) m as read (the C normalises them afterwards), wavelengths (n,) m and
    weights (n,). Missing trailing columns take the C's defaults: X/Y/Z = −source_distance times
    the beam vector's component, weight 1, λ = lambda0. Columns past the fifth are ignored, as in
    the C. The weight is only carried along: the C never uses it when rendering. Blank lines are
    skipped.

    ``c_parity=True`` reads the file as the C does (``engine.sample.c_text``): a field that is
    not a number reads as atof() makes it (0 for a word, which also zeroes the rest of its row),
    and the missing columns of a last line without its newline read as 0 (so λ = 0). Otherwise
    a field that is not a number raises ``InputFileError`` naming the file and line.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise InputFileError(f"{path}: cannot read source file ({exc.strerror or exc}); "
                             f"check the -sourcefile path") from None
    text = raw.decode("latin-1")
    beam = _floats(beam_vector)
    defaults = [-source_distance * beam[0], -source_distance * beam[1],
                -source_distance * beam[2], 1.0, float(lambda0)]
    if c_parity:
        rows = [[d if math.isnan(v) else v for v, d in zip(row, defaults)] for row in read_rows(text, 5)]
    else:
        rows = _strict_rows(path, text, defaults)
    if not rows:
        raise InputFileError(f"{path}: no sources in the file; give one line 'X Y Z [weight "
                             f"[lambda]]' per source")
    data = torch.tensor(rows, dtype=torch.float64)
    return data[:, 0:3].contiguous(), data[:, 4].contiguous(), data[:, 3].contiguous()


def _strict_rows(path: Path, text: str, defaults: list[float]) -> list[list[float]]:
    """Rows of numbers only (blank lines skipped, missing columns defaulted); anything else is
    an ``InputFileError`` naming the line."""
    rows: list[list[float]] = []
    lines = text.split("\n")
    for number, line in enumerate(lines, start=1):
        last_without_newline = number == len(lines)
        if last_without_newline and line == "":
            break
        stripped = line.strip(_SEPARATORS + "\r")
        if not stripped:
            continue
        fields = [f for f in _SPLIT.split(stripped) if f]
        values = []
        for col, field in enumerate(fields[:5], start=1):
            if not _NUMBER.fullmatch(field):
                raise InputFileError(
                    f"{path}:{number}: column {col} is {field!r}, not a number; each line must be "
                    f"'X Y Z [weight [lambda]]' (positions and lambda in metres)")
            value = float(field)
            if not math.isfinite(value):
                raise InputFileError(f"{path}:{number}: column {col} is {field!r}, too large for a "
                                     f"double")
            values.append(value)
        values += defaults[len(values):]
        rows.append(values)
    return rows


def incident_directions(positions: torch.Tensor) -> torch.Tensor:
    """Unit propagation directions −unit(position), (n, 3); a zero position gives a zero vector
    (the C's unitize leaves it at zero)."""
    mag = magnitude(positions).unsqueeze(-1)
    safe = torch.where(mag == 0, torch.ones_like(mag), mag)
    return torch.where(mag == 0, torch.zeros_like(positions), -(positions / safe))
