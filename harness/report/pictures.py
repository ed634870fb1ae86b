"""PNG pictures of one run for people: the C image, the torch image, a log-scale |Δ| heat map
(worst pixel and traced pixels marked) and the radial profile of both images about the beam.

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

#: Marker colours: pure colours that the image colour maps never produce.
WORST_COLOR = (1.0, 0.0, 1.0)      # magenta
TRACED_COLOR = (0.0, 1.0, 0.0)     # green
DPI = 100
DISPLAY_PX = 600   # larger images are shown as the max of k×k blocks
FILES = ("c_image.png", "torch_image.png", "abs_diff.png", "radial_profile.png")


@dataclass
class Picture:
    path: Path
    size: tuple[int, int]                       # (height, width) in PNG pixels
    markers: dict[str, tuple[float, float]] = field(default_factory=dict)  # name → (row, col)


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


def _save(fig, ax, path: Path, points: dict[str, tuple[float, float]], meta: dict[str, str]) -> Picture:
    fig.canvas.draw()
    width, height = fig.canvas.get_width_height()
    markers = {}
    for name, (x, y) in points.items():
        px, py = ax.transData.transform((x, y))
        markers[name] = (float(height - py), float(px))  # display origin is bottom-left
    fig.savefig(path, dpi=DPI, metadata={"Software": "nbparity", **meta})
    import matplotlib.pyplot as plt  # noqa: PLC0415

    plt.close(fig)
    return Picture(path=path, size=(height, width), markers=markers)


def _mark(ax, pixels: dict[str, tuple[int, int]]) -> dict[str, tuple[float, float]]:
    """Open circles plus a solid centre dot so a one-pixel spot is visible at any size."""
    pts = {}
    for name, (s, f) in pixels.items():
        color = WORST_COLOR if name == "worst" else TRACED_COLOR
        ax.plot([f], [s], marker="o", markersize=16, markerfacecolor="none", markeredgecolor=color,
                markeredgewidth=2.0, linestyle="none")
        ax.plot([f], [s], marker="o", markersize=4, color=color, linestyle="none")
        pts[name] = (float(f), float(s))
    return pts


def _pixels(worst: Optional[Sequence[int]], traced: Iterable[Sequence[int]]) -> dict[str, tuple[int, int]]:
    out: dict[str, tuple[int, int]] = {}
    for i, p in enumerate(traced):
        out[f"traced{i}"] = (int(p[0]), int(p[1]))
    if worst is not None:
        out["worst"] = (int(worst[0]), int(worst[1]))  # drawn last: on top when they coincide
    return out


def write_image(path: Path, image: np.ndarray, title: str, *, traced: Iterable[Sequence[int]] = (),
                worst: Optional[Sequence[int]] = None) -> Picture:
    """One detector image on a log colour scale, slow axis down, fast axis across."""
    plt = _pyplot()
    img = np.asarray(image, dtype=np.float64)
    fig, ax = plt.subplots(figsize=_figsize(img.shape))
    norm = _log_norm(img)
    shown = np.where(np.isfinite(img) & (img > 0), img, np.nan) if norm is not None else img
    im, k = _show(ax, shown, cmap="gray_r" if norm is not None else "gray", norm=norm)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="photons (log)" if norm else "photons")
    ax.set_xlabel("fast pixel")
    ax.set_ylabel("slow pixel")
    ax.set_title(title + (f" (max of {k}×{k} blocks)" if k > 1 else ""))
    pts = _mark(ax, _pixels(worst, traced))
    return _save(fig, ax, path, pts, {"Title": title})


def write_diff_map(path: Path, c_image: np.ndarray, torch_image: np.ndarray, *,
                   traced: Iterable[Sequence[int]] = (), worst: Optional[Sequence[int]] = None,
                   title: str = "|torch − C|") -> Picture:
    """log10 |Δ| heat map; pixels with Δ = 0 are left white. worst defaults to argmax |Δ|."""
    plt = _pyplot()
    c = np.asarray(c_image, dtype=np.float64)
    t = np.asarray(torch_image, dtype=np.float64)
    if c.shape != t.shape:
        raise ValueError(f"images differ in shape: C {c.shape} vs torch {t.shape}")
    diff = np.abs(t - c)
    diff = np.where(np.isnan(c) & np.isnan(t), 0.0, diff)
    if worst is None and diff.size:
        score = np.where(np.isnan(diff), np.inf, diff)
        worst = tuple(int(i) for i in np.unravel_index(int(np.argmax(score)), diff.shape))
    finite = diff[np.isfinite(diff)]
    max_d = float(finite.max()) if finite.size else math.nan
    fig, ax = plt.subplots(figsize=_figsize(c.shape))
    norm = _log_norm(diff, span=1e8)
    cmap = plt.get_cmap("inferno").with_extremes(bad="white")
    shown = np.where(np.isfinite(diff) & (diff > 0), diff, np.nan)
    im, k = _show(ax, shown, cmap=cmap, norm=norm)
    if norm is not None:
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="|Δ| (log)")
    nz = int(np.count_nonzero(finite))
    ax.set_title((f"{title}: max {max_d:.3g}, {nz} pixels differ" if nz else f"{title}: identical")
                 + (f" (max of {k}×{k} blocks)" if k > 1 else ""))
    ax.set_xlabel("fast pixel")
    ax.set_ylabel("slow pixel")
    pts = _mark(ax, _pixels(worst, traced))
    meta = {"Title": title, "Description": f"max_abs_diff={max_d!r} worst_pixel={list(worst) if worst else None} "
                                          f"nonzero={nz}"}
    return _save(fig, ax, path, pts, meta)


def radial_profile(image: np.ndarray, center: tuple[float, float], bin_px: float = 1.0
                   ) -> tuple[np.ndarray, np.ndarray]:
    """(radius, mean value) in rings ``bin_px`` wide about ``center`` = (slow, fast) pixels.

    Rings with no finite pixel are dropped. Pixel (s, f) sits at radius |(s, f) − center|.
    """
    img = np.asarray(image, dtype=np.float64)
    s, f = np.indices(img.shape)
    r = np.hypot(s - center[0], f - center[1]).ravel()
    v = img.ravel()
    ok = np.isfinite(v)
    idx = np.floor(r[ok] / bin_px).astype(np.int64)
    sums = np.bincount(idx, weights=v[ok])
    counts = np.bincount(idx)
    keep = counts > 0
    radius = (np.arange(len(counts)) + 0.5) * bin_px
    return radius[keep], sums[keep] / counts[keep]


def write_radial_profile(path: Path, c_image: np.ndarray, torch_image: np.ndarray,
                         beam_center: tuple[float, float], *, bin_px: float = 1.0) -> Picture:
    plt = _pyplot()
    rc, pc = radial_profile(c_image, beam_center, bin_px)
    rt, pt = radial_profile(torch_image, beam_center, bin_px)
    fig, (ax, ax2) = plt.subplots(2, 1, figsize=(8, 6), sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    ax.plot(rc, pc, color="black", lw=1.5, label="C")
    ax.plot(rt, pt, color="tab:orange", lw=1.0, ls="--", label="torch")
    if np.any(pc > 0) and np.all(pc[np.isfinite(pc)] >= 0):
        ax.set_yscale("log")
    ax.set_ylabel("mean photons per pixel")
    ax.set_title(f"radial profile about beam centre (slow {beam_center[0]:.1f}, fast {beam_center[1]:.1f})")
    ax.legend()
    n = min(len(pc), len(pt))
    if n and np.array_equal(rc[:n], rt[:n]):
        ax2.plot(rc[:n], pt[:n] - pc[:n], color="tab:red", lw=1.0)
    ax2.axhline(0.0, color="grey", lw=0.5)
    ax2.set_ylabel("torch − C")
    ax2.set_xlabel("radius (pixels)")
    meta = {"Title": "radial profile", "Description": f"beam_center={list(beam_center)} bins={len(rc)}"}
    return _save(fig, ax, path, {}, meta)


def write_run_images(out_dir: Path, c_image: np.ndarray, torch_image: np.ndarray, *,
                     beam_center: Optional[tuple[float, float]] = None,
                     traced: Iterable[Sequence[int]] = (), worst: Optional[Sequence[int]] = None,
                     case: str = "") -> dict[str, Picture]:
    """The four pictures of a run into ``out_dir`` (an evidence directory, staged or final).

    beam_center is (slow, fast) in pixels; without one the profile is taken about the image
    centre and its title says so (see :func:`beam_center_from_stdout`).
    """
    out_dir = Path(out_dir)
    traced = [tuple(p) for p in traced]
    c = np.asarray(c_image)
    t = np.asarray(torch_image)
    center = beam_center if beam_center is not None else ((c.shape[0] - 1) / 2, (c.shape[1] - 1) / 2)
    prefix = f"{case}: " if case else ""
    if worst is None and c.shape == t.shape and c.size:
        score = np.abs(t.astype(np.float64) - c.astype(np.float64))
        score = np.where(np.isnan(c) & np.isnan(t), 0.0, np.where(np.isnan(score), np.inf, score))
        worst = tuple(int(i) for i in np.unravel_index(int(np.argmax(score)), c.shape))
    pics = {
        "c_image.png": write_image(out_dir / "c_image.png", c, prefix + "C image", traced=traced, worst=worst),
        "torch_image.png": write_image(out_dir / "torch_image.png", t, prefix + "torch image",
                                       traced=traced, worst=worst),
    }
    if c.shape == t.shape:
        pics["abs_diff.png"] = write_diff_map(out_dir / "abs_diff.png", c, t, traced=traced, worst=worst,
                                              title=prefix + "|torch − C|")
        pics["radial_profile.png"] = write_radial_profile(out_dir / "radial_profile.png", c, t, center)
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
