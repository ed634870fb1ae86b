"""Hypothesis strategies for the values that follow a flag, biased toward edges.

Each range is a list of edge values (tried first, the first one being where shrinking ends)
and a continuous range; values are printed with at most 6 significant digits so that the C's
``atof`` and Python's ``float`` read the same double.
"""
from __future__ import annotations

from hypothesis import strategies as st

from harness.service.fuzz.grammar import Flag

#: field -> (edge values, low, high). Units as the C's flag takes them (mm, degrees, Å, ...).
RANGES: dict[str, tuple[tuple[float, ...], float, float]] = {
    "distance": ((100, 1, 1000, 0.5, 5000), 0.5, 2000),
    "close_distance": ((100, 1, 1000), 1, 2000),
    "pixel_size": ((0.1, 0.01, 1, 0.172), 0.01, 2),
    "detector_rotx": ((0, 90, 180, -90, 5), -180, 180),
    "detector_roty": ((0, 90, 180, -90, 5), -180, 180),
    "detector_rotz": ((0, 90, 180, -90, 5), -180, 180),
    "twotheta": ((0, 90, 180, 20, -30), -180, 180),
    "Xbeam": ((5, 0, 1, 12.8), -20, 30), "Ybeam": ((5, 0, 1, 12.8), -20, 30),
    "Xclose": ((5, 0, 1, 12.8), -20, 30), "Yclose": ((5, 0, 1, 12.8), -20, 30),
    "ORGX": ((50, 0, 1, 128), -50, 200), "ORGY": ((50, 0, 1, 128), -50, 200),
    "detector_thick": ((100, 0, 1, 1000), 0, 2000),
    "detector_mu": ((500, 1, 10000), 1, 10000),
    "detector_thicksteps": ((1, 2, 5), 1, 6),
    "oversample": ((1, 2, 3), 1, 4),
    "mosaic_spread": ((0.5, 0, 5, 90), 0, 10),
    "mosaic_domains": ((1, 2, 10), 1, 12),
    "mosaic_seed": ((1, 12345, 0), 0, 10 ** 6),
    "hdivrange": ((0.5, 0, 2), 0, 5), "vdivrange": ((0.5, 0, 2), 0, 5),
    "hdivstep": ((0.1, 0.5), 0.01, 2), "vdivstep": ((0.1, 0.5), 0.01, 2),
    "hdivsteps": ((1, 2, 3), 0, 4), "vdivsteps": ((1, 2, 3), 0, 4),
    "dispersion": ((0.5, 0, 2), 0, 10), "dispsteps": ((1, 2, 3), 1, 4),
    "lambda0": ((1, 0.5, 6.2, 0.1), 0.05, 10),
    "fluence": ((1e24, 1e20), 1e18, 1e30), "flux": ((1e12, 0), 0, 1e14),
    "exposure": ((1, 0.1, 10), 0.01, 100), "beamsize": ((0.1, 0.01, 1), 0.001, 2),
    "polarization": ((0, 1, 0.5, -1), -1, 1),
    "fudge": ((1, 0.5, 2), 0.1, 5),
    "seed": ((1, 0, 12345), 0, 10 ** 6), "misset_seed": ((1, 0, 12345), 0, 10 ** 6),
    "phi0": ((0, 90, 180, 10), -180, 360), "osc": ((0, 1, 90, 180), 0, 180),
    "phistep": ((0.1, 1, 90), 0.01, 90), "phisteps": ((1, 2, 3), 1, 6),
    # A crystal size sets the C's automatic oversampling (~3e4 sub-pixels per mm): kept sub-micron
    # so that an example stays a fraction of a second.
    "sample_x": ((0.0003, 0.0001, 0.0005), 0.0001, 0.0005), "sample_y": ((0.0003, 0.0001, 0.0005), 0.0001, 0.0005),
    "sample_z": ((0.0003, 0.0001, 0.0005), 0.0001, 0.0005),
    "density": ((1, 0.5), 0.1, 3), "molecular_weight": ((18, 100), 1, 1000), "water_size": ((0, 1, 100), 0, 1000),
    "default_F": ((100, 0, 1, 1e4), 0, 1e5), "dmin": ((0, 1, 2, 10), 0, 20),
    "lambda_energy": ((12398.42, 6000, 20000), 1000, 100000),
}
INTS = {"detector_thicksteps", "oversample", "mosaic_domains", "mosaic_seed", "hdivsteps", "vdivsteps", "dispsteps",
        "seed", "misset_seed", "phisteps"}
#: Unit vectors first (axis-aligned edges), then arbitrary directions.
AXES = ("1 0 0", "0 1 0", "0 0 1", "-1 0 0", "0 -1 0", "0 0 -1", "0.7071 0.7071 0", "0 0.7071 -0.7071")


def fmt(x: float) -> str:
    """A number as the C reads it: ints plain, else up to 6 significant digits."""
    if float(x).is_integer() and abs(x) < 1e15:
        return str(int(x))
    return f"{x:.6g}"


def number(field: str) -> st.SearchStrategy[str]:
    edges, lo, hi = RANGES.get(field, ((1, 0), 0, 10))
    if field in INTS:
        inner = st.one_of(st.sampled_from([int(e) for e in edges]), st.integers(int(lo), int(hi)))
    else:
        inner = st.one_of(st.sampled_from(edges), st.floats(lo, hi, allow_nan=False, allow_infinity=False))
    return inner.map(fmt)


def vector(field: str) -> st.SearchStrategy[list[str]]:
    if field == "pix0_vector":
        comp = st.one_of(st.sampled_from((0.0, 0.1, -0.05)), st.floats(-0.2, 0.2)).map(fmt)
        return st.lists(comp, min_size=3, max_size=3)
    if field == "misset":
        comp = st.one_of(st.sampled_from((0, 90, 180, 10)), st.floats(-180, 180)).map(fmt)
        return st.lists(comp, min_size=3, max_size=3)
    free = st.lists(st.floats(-1, 1).map(fmt), min_size=3, max_size=3).filter(
        lambda v: sum(float(x) ** 2 for x in v) > 1e-3)
    return st.one_of(st.sampled_from(AXES).map(str.split), free)


@st.composite
def roi(draw: st.DrawFn, size: tuple[int, int]) -> list[str]:
    f, s = size
    x0 = draw(st.integers(0, f - 1))
    y0 = draw(st.integers(0, s - 1))
    x1 = draw(st.integers(x0, f - 1))
    y1 = draw(st.integers(y0, s - 1))
    return [str(x0), str(x1), str(y0), str(y1)]


def values(flag: Flag, size: tuple[int, int]) -> st.SearchStrategy[list[str]]:
    """The tokens after ``flag`` (no file flags: those come from harness.service.fuzz.inputs)."""
    if flag.nvals == 0:
        return st.just([])
    if flag.name == "-misset":
        # `-misset random` draws from misset_seed, which the C takes from the wall clock unless
        # given (-seed does not set it): unpinned, the C and the implementation a second apart
        # diverge, and a recording never matches a later run.
        return st.one_of(number("misset_seed").map(lambda v: ["random", "-misset_seed", v]), vector("misset"))
    if flag.kind == "vector":
        return vector(flag.field)
    if flag.kind == "choice":
        return st.sampled_from((["beam"], ["sample"]))
    if flag.kind == "ints" and flag.field == "roi":
        return roi(size)
    if flag.kind == "energy":
        return number("lambda_energy").map(lambda v: [v])
    return number(flag.field).map(lambda v: [v])
