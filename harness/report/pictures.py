"""PNG pictures of one run for people: the C image, the torch image, a log-scale |Δ| heat map
and the radial profile of both images about the beam. The worst pixel, the traced pixel and the
autotraced pixels are marked, and a legend under each map names every marker with its pixel.

matplotlib is imported lazily (Agg backend) so the rest of the harness works without it.
Every writer returns where its markers landed in PNG pixel coordinates (row from the top,
column from the left): tests and the HTML report can check the picture, not just the file.
"""
from __future__ import annotations

import math
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Optional, Sequence

import numpy as np

from harness.report.markers import AUTO_COLOR, TRACED_COLOR, WORST_COLOR, Mark, draw, legend, legend_rows, marks  # noqa: F401 - colours re-exported

#: |Δ| map colours outside inferno: exact zeros (not missing data) and NaN in one image only.
ZERO_COLOR = (0.70, 0.84, 0.96)    # pale blue
NAN_COLOR = (0.55, 0.55, 0.55)     # grey
DPI = 100
DISPLAY_PX = 600   # larger images are shown as the max of k×k blocks
FILES = ("c_image.png", "torch_image.png", "abs_diff.png", "radial_profile.png")


@dataclass
class Picture:
    path: Path
    size: tuple[int, int]                       # (height, width) in PNG pixels
    markers: dict[str, tuple[float, float]] = field(default_factory=dict)  # name → (row, col)
    legend: list[str] = field(default_factory=list)  # the legend's entries, top to bottom


def _pyplot():
    import matplotlib  # noqa: PLC0415 - optional dependency, lazy on purpose

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt  # noqa: PLC0415

    return plt


def _figsize(shape: tuple[int, int], base: float = 7.0) -> tuple[float, float]:
    h, w = shape
    aspect = h / w if w else 1.0
    return (base, max(3.0, min(base * aspect * 0.85, 14.0)) + 0.6)


def _log_norm(values: np.ndarray, span: float = 1e6):
    """LogNorm over the positive values, at most ``span`` decades deep so that 1e-17 background
    does not flatten the Bragg spots into one colour."""
    from matplotlib.colors import LogNorm  # noqa: PLC0415

    pos = values[np.isfinite(values) & (values > 0)]
    if pos.size == 0:
        return None
    vmax = float(pos.max())
    vmin = max(float(pos.min()), vmax / span)
    if vmin >= vmax:
        vmin = vmax / 10.0
    return LogNorm(vmin=vmin, vmax=vmax, clip=True)


def _block_max(img: np.ndarray, max_side: int = DISPLAY_PX) -> tuple[np.ndarray, int]:
    """Shrink an image for display by the max of k×k blocks (k ≥ 1), so a one-pixel Bragg spot
    or a one-pixel |Δ| survives on a large detector where plain subsampling would drop it."""
    h, w = img.shape
    k = max(1, math.ceil(max(h, w) / max_side))
    if k == 1:
        return img, 1
    hp, wp = math.ceil(h / k) * k, math.ceil(w / k) * k
    padded = np.full((hp, wp), np.nan)
    padded[:h, :w] = img
    blocks = padded.reshape(hp // k, k, wp // k, k)
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN blocks stay NaN
        return np.nanmax(blocks, axis=(1, 3)), k


def _show(ax, img: np.ndarray, **kw):
    """imshow in detector pixel coordinates, whatever the display reduction."""
    shown, k = _block_max(img)
    h, w = shown.shape
    im = ax.imshow(shown, interpolation="nearest", origin="upper",
                   extent=(-0.5, w * k - 0.5, h * k - 0.5, -0.5), **kw)
    ax.set_xlim(-0.5, img.shape[1] - 0.5)
    ax.set_ylim(img.shape[0] - 0.5, -0.5)
    return im, k


def _save(fig, ax, path: Path, points: dict[str, tuple[float, float]], meta: dict[str, str],
          labels: Sequence[str] = ()) -> Picture:
    """Render once and write those pixels (savefig would render a second time: seconds on a
    full detector), with the markers' PNG coordinates taken from that same rendering."""
    from PIL import Image, PngImagePlugin  # noqa: PLC0415 - pillow comes with matplotlib

    fig.canvas.draw()
    width, height = fig.canvas.get_width_height()
    markers = {}
    for name, (x, y) in points.items():
        px, py = ax.transData.transform((x, y))
        markers[name] = (float(height - py), float(px))  # display origin is bottom-left
    info = PngImagePlugin.PngInfo()
    for key, value in {"Software": "nbparity", **meta}.items():
        info.add_text(key, value)
    rgb = np.asarray(fig.canvas.buffer_rgba())[..., :3]
    Image.fromarray(np.ascontiguousarray(rgb)).save(path, pnginfo=info)
    import matplotlib.pyplot as plt  # noqa: PLC0415

    plt.close(fig)
    return Picture(path=path, size=(height, width), markers=markers, legend=list(labels))


_AXIS_IN = 0.6      # inches under the axes for the fast-pixel ticks and label
_LEGEND_ROW_IN = 0.2


def _figure(plt, shape: tuple[int, int], legend_rows: int):
    """A figure for one detector map, taller by the legend rows under it (a fixed layout:
    constrained layout costs seconds per picture on a full detector)."""
    w, h = _figsize(shape)
    legend_in = _LEGEND_ROW_IN * legend_rows + (0.1 if legend_rows else 0.0)
    total = h + legend_in
    fig, ax = plt.subplots(figsize=(w, total), dpi=DPI)
    fig.subplots_adjust(bottom=(legend_in + _AXIS_IN) / total, top=1.0 - 0.45 / total)
    return fig, ax


def _marked(fig, ax, items: list[Mark], patches=()) -> tuple[dict[str, tuple[float, float]], list[str]]:
    return draw(ax, items), legend(fig, items, patches)


def write_image(path: Path, image: np.ndarray, title: str, *, traced: Iterable[Sequence[int]] = (),
                worst: Optional[Sequence[int]] = None, autotraced: Iterable[Sequence] = ()) -> Picture:
    """One detector image on a log colour scale, slow axis down, fast axis across."""
    plt = _pyplot()
    img = np.asarray(image, dtype=np.float64)
    items = marks(worst, traced, autotraced)
    fig, ax = _figure(plt, img.shape, legend_rows(items))
    norm = _log_norm(img)
    shown = np.where(np.isfinite(img) & (img > 0), img, np.nan) if norm is not None else img
    im, k = _show(ax, shown, cmap="gray_r" if norm is not None else "gray", norm=norm)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="photons (log)" if norm else "photons")
    ax.set_xlabel("fast pixel")
    ax.set_ylabel("slow pixel")
    ax.set_title(title + (f" (max of {k}×{k} blocks)" if k > 1 else ""))
    pts, labels = _marked(fig, ax, items)
    return _save(fig, ax, path, pts, {"Title": title}, labels)


def _worst_pixel(diff: np.ndarray) -> Optional[tuple[int, ...]]:
    """argmax |Δ|, a NaN in one image counting as the worst of all."""
    if not diff.size:
        return None
    score = np.where(np.isnan(diff), np.inf, diff)
    return tuple(int(i) for i in np.unravel_index(int(np.argmax(score)), diff.shape))


def _worst_or_none(diff: np.ndarray, worst: Optional[Sequence[int]], nonzero: int) -> Optional[Sequence[int]]:
    """The pixel to mark as worst; none when the images are identical (nothing is worst)."""
    if nonzero == 0 and not np.isnan(diff).any():
        return None
    return worst if worst is not None else _worst_pixel(diff)


def abs_diff(c_image: np.ndarray, torch_image: np.ndarray) -> np.ndarray:
    """|torch − C| in float64; NaN where exactly one image is NaN, 0 where both are."""
    c = np.asarray(c_image, dtype=np.float64)
    t = np.asarray(torch_image, dtype=np.float64)
    if c.shape != t.shape:
        raise ValueError(f"images differ in shape: C {c.shape} vs torch {t.shape}")
    return np.where(np.isnan(c) & np.isnan(t), 0.0, np.abs(t - c))


def _diff_display(diff: np.ndarray):
    """(values to show, norm, any NaN): exact zeros go below the colour scale (ZERO_COLOR) and
    NaNs above it (NAN_COLOR), so the block-max reduction keeps a lone NaN or |Δ| visible and
    an exact zero never looks like missing data."""
    from matplotlib.colors import LogNorm  # noqa: PLC0415

    norm = _log_norm(diff, span=1e8)
    lo, hi = (norm.vmin, norm.vmax) if norm is not None else (1.0, 10.0)
    norm = LogNorm(vmin=lo, vmax=hi, clip=False)
    nan = np.isnan(diff)
    # A |Δ| below the scale's span is still a difference: shown at the bottom colour, never as zero.
    shown = np.where(diff > 0, np.maximum(diff, lo), lo * 1e-3)
    shown = np.where(nan, hi * 1e3, shown)
    return shown, norm, bool(nan.any())


def write_diff_map(path: Path, c_image: np.ndarray, torch_image: np.ndarray, *,
                   traced: Iterable[Sequence[int]] = (), worst: Optional[Sequence[int]] = None,
                   autotraced: Iterable[Sequence] = (), title: str = "|torch − C|",
                   diff: Optional[np.ndarray] = None) -> Picture:
    """log10 |Δ| heat map; |Δ| = 0 exactly in ZERO_COLOR, NaN in one image only in NAN_COLOR.
    worst defaults to argmax |Δ|; diff is :func:`abs_diff` of the two images when the caller
    has it already."""
    plt = _pyplot()
    diff = abs_diff(c_image, torch_image) if diff is None else diff
    finite = diff[np.isfinite(diff)]
    max_d = float(finite.max()) if finite.size else math.nan
    nz = int(np.count_nonzero(finite))
    worst = _worst_or_none(diff, worst, nz)
    shown, norm, any_nan = _diff_display(diff)
    items = marks(worst, traced, autotraced)
    patches = [(ZERO_COLOR, f"|Δ| = 0 exactly ({int(np.count_nonzero(diff == 0))} pixels)")]
    if any_nan:
        patches.append((NAN_COLOR, "NaN in one image only"))
    fig, ax = _figure(plt, diff.shape, legend_rows(items, len(patches)))
    cmap = plt.get_cmap("inferno").with_extremes(under=ZERO_COLOR, over=NAN_COLOR, bad=NAN_COLOR)
    im, k = _show(ax, shown, cmap=cmap, norm=norm)
    if nz:
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="|Δ| (log)")
    ax.set_title((f"{title}: max {max_d:.3g}, {nz} pixels differ" if nz else f"{title}: identical")
                 + (f" (max of {k}×{k} blocks)" if k > 1 else ""))
    ax.set_xlabel("fast pixel")
    ax.set_ylabel("slow pixel")
    pts, labels = _marked(fig, ax, items, patches)
    meta = {"Title": title, "Description": f"max_abs_diff={max_d!r} worst_pixel={list(worst) if worst else None} "
                                          f"nonzero={nz}"}
    return _save(fig, ax, path, pts, meta, labels)


def radial_profile(image: np.ndarray, center: tuple[float, float], bin_px: float = 1.0
                   ) -> tuple[np.ndarray, np.ndarray]:
    """(radius, mean value) in rings ``bin_px`` wide about ``center`` = (slow, fast) pixels.

    Rings with no finite pixel are dropped. Pixel (s, f) sits at radius |(s, f) − center|.
    """
    img = np.asarray(image, dtype=np.float64)
    return _ring_means(img, _ring_index(img.shape, center, bin_px), bin_px)


def _ring_index(shape: tuple[int, ...], center: tuple[float, float], bin_px: float) -> np.ndarray:
    """Each pixel's ring number, flattened (computed once for both images of a run)."""
    s = np.arange(shape[0], dtype=np.float64)[:, None] - center[0]
    f = np.arange(shape[1], dtype=np.float64)[None, :] - center[1]
    return np.floor(np.hypot(s, f) / bin_px).astype(np.int64).ravel()


def _ring_means(img: np.ndarray, ring: np.ndarray, bin_px: float) -> tuple[np.ndarray, np.ndarray]:
    v = np.asarray(img, dtype=np.float64).ravel()
    ok = np.isfinite(v)
    idx = ring[ok] if not ok.all() else ring
    sums = np.bincount(idx, weights=v[ok] if not ok.all() else v)
    counts = np.bincount(idx)
    keep = counts > 0
    radius = (np.arange(len(counts)) + 0.5) * bin_px
    return radius[keep], sums[keep] / counts[keep]


def write_radial_profile(path: Path, c_image: np.ndarray, torch_image: np.ndarray,
                         beam_center: tuple[float, float], *, bin_px: float = 1.0,
                         sides: tuple[str, str] = ("C", "torch")) -> Picture:
    """sides: the names of (reference, under test), as in the result's columns."""
    plt = _pyplot()
    ring = _ring_index(np.shape(c_image), beam_center, bin_px)
    rc, pc = _ring_means(c_image, ring, bin_px)
    rt, pt = _ring_means(torch_image, ring, bin_px) if np.shape(torch_image) == np.shape(c_image) else \
        radial_profile(torch_image, beam_center, bin_px)
    fig, (ax, ax2) = plt.subplots(2, 1, figsize=(8, 6), dpi=DPI, sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    ax.plot(rc, pc, color="black", lw=1.5, label=sides[0])
    ax.plot(rt, pt, color="tab:orange", lw=1.0, ls="--", label=sides[1])
    if np.any(pc > 0) and np.all(pc[np.isfinite(pc)] >= 0):
        ax.set_yscale("log")
    ax.set_ylabel("mean photons per pixel")
    ax.set_title(f"radial profile about beam centre (slow {beam_center[0]:.1f}, fast {beam_center[1]:.1f})")
    ax.legend()
    n = min(len(pc), len(pt))
    if n and np.array_equal(rc[:n], rt[:n]):
        ax2.plot(rc[:n], pt[:n] - pc[:n], color="tab:red", lw=1.0)
    ax2.axhline(0.0, color="grey", lw=0.5)
    ax2.set_ylabel(f"{sides[1]} − {sides[0]}")
    ax2.set_xlabel("radius (pixels)")
    meta = {"Title": "radial profile", "Description": f"beam_center={list(beam_center)} bins={len(rc)}"}
    return _save(fig, ax, path, {}, meta)


def write_run_images(out_dir: Path, c_image: np.ndarray, torch_image: np.ndarray, *,
                     beam_center: Optional[tuple[float, float]] = None,
                     traced: Iterable[Sequence[int]] = (), worst: Optional[Sequence[int]] = None,
                     autotraced: Iterable[Sequence] = (), case: str = "",
                     sides: tuple[str, str] = ("C", "torch")) -> dict[str, Picture]:
    """The four pictures of a run into ``out_dir`` (an evidence directory, staged or final).

    beam_center is (slow, fast) in pixels; without one the profile is taken about the image
    centre and its title says so (see :func:`beam_center_from_stdout`). autotraced holds
    (slow, fast[, reason]) of the pixels traced because the images diverged. sides names
    (reference, under test) in the titles (a pair run's implementations); the file names stay.
    """
    out_dir = Path(out_dir)
    traced = [tuple(p) for p in traced]
    autotraced = [tuple(p) for p in autotraced]
    c = np.asarray(c_image)
    t = np.asarray(torch_image)
    center = beam_center if beam_center is not None else ((c.shape[0] - 1) / 2, (c.shape[1] - 1) / 2)
    prefix = f"{case}: " if case else ""
    diff = abs_diff(c, t) if c.shape == t.shape else None
    if diff is not None:
        worst = _worst_or_none(diff, worst, int(np.count_nonzero(diff[np.isfinite(diff)])))
    marked = dict(traced=traced, worst=worst, autotraced=autotraced)
    pics = {
        "c_image.png": write_image(out_dir / "c_image.png", c, prefix + f"{sides[0]} image", **marked),
        "torch_image.png": write_image(out_dir / "torch_image.png", t, prefix + f"{sides[1]} image", **marked),
    }
    if c.shape == t.shape:
        pics["abs_diff.png"] = write_diff_map(out_dir / "abs_diff.png", c, t, title=prefix + f"|{sides[1]} − {sides[0]}|",
                                              diff=diff, **marked)
        pics["radial_profile.png"] = write_radial_profile(out_dir / "radial_profile.png", c, t, center,
                                                          sides=sides)
    return pics


_PIXEL = re.compile(r"\bpixel=([0-9.eE+-]+) meters")
_BEAM = re.compile(r"^\s*Fbeam=([0-9.eE+-]+) Sbeam=([0-9.eE+-]+)", re.M)


def beam_center_from_stdout(stdout: str) -> Optional[tuple[float, float]]:
    """(slow, fast) pixel of the direct beam from the console's ``pixel=… meters`` and
    ``Fbeam=… Sbeam=…`` lines (printed by the C and by the engine); None if absent.

    Fbeam/Sbeam are distances from the detector origin to the beam spot, and pixel (s, f)
    covers [s, s+1)·pixel, so the spot lies at Sbeam/pixel − 0.5 in pixel-centre coordinates.
    """
    mp = _PIXEL.search(stdout)
    mb = _BEAM.search(stdout)
    if not mp or not mb:
        return None
    pixel = float(mp.group(1))
    if pixel <= 0:
        return None
    return (float(mb.group(2)) / pixel - 0.5, float(mb.group(1)) / pixel - 0.5)
