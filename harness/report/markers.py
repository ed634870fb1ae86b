"""The pixels a picture marks (worst |Δ|, traced, autotraced) and the legend that names them.

A marker is a ring with a solid centre so that a one-pixel spot is visible at any display
size; each kind has its own colour (one that the colour maps never produce) and shape.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Optional, Sequence

WORST_COLOR = (1.0, 0.0, 1.0)      # magenta
TRACED_COLOR = (0.0, 1.0, 0.0)     # green
AUTO_COLOR = (0.0, 1.0, 1.0)       # cyan: pixels traced because the images diverged

_STYLE = {"worst": (WORST_COLOR, "o"), "traced": (TRACED_COLOR, "o"), "auto": (AUTO_COLOR, "s")}


@dataclass(frozen=True)
class Mark:
    name: str                 # key in Picture.markers: worst, traced0, auto0, …
    kind: str                 # worst | traced | auto
    pixel: tuple[int, int]    # (slow, fast)
    reason: str = ""          # why an autotraced pixel was chosen (worst, peak, edge, background)

    @property
    def color(self) -> tuple[float, float, float]:
        return _STYLE[self.kind][0]

    def label(self) -> str:
        where = f"(slow {self.pixel[0]}, fast {self.pixel[1]})"
        if self.kind == "worst":
            return f"worst |Δ| pixel {where}"
        if self.kind == "traced":
            return f"traced pixel {where}"
        return f"autotraced{' ' + self.reason if self.reason else ''} {where}"


def autotraced_pixels(autopixels: Iterable[Mapping[str, Any]]) -> list[tuple[int, int, str]]:
    """(slow, fast, reason) of each autotraced pixel from ParityResult.autopixels rows."""
    out = []
    for row in autopixels:
        chosen = row.get("chosen") or {}
        if "slow" in chosen and "fast" in chosen:
            out.append((int(chosen["slow"]), int(chosen["fast"]), str(chosen.get("reason") or "")))
    return out


def marks(worst: Optional[Sequence[int]], traced: Iterable[Sequence[int]],
          autotraced: Iterable[Sequence[Any]] = ()) -> list[Mark]:
    """Autotraced first, traced next, worst last, so the worst is drawn on top when they coincide."""
    out = [Mark(f"auto{i}", "auto", (int(p[0]), int(p[1])), str(p[2]) if len(p) > 2 else "")
           for i, p in enumerate(autotraced)]
    out += [Mark(f"traced{i}", "traced", (int(p[0]), int(p[1]))) for i, p in enumerate(traced)]
    if worst is not None:
        out.append(Mark("worst", "worst", (int(worst[0]), int(worst[1]))))
    return out


def draw(ax: Any, items: Sequence[Mark]) -> dict[str, tuple[float, float]]:
    """Draw each mark; return name → (x, y) in data coordinates (fast, slow)."""
    pts = {}
    for m in items:
        color, shape = _STYLE[m.kind]
        s, f = m.pixel
        ax.plot([f], [s], marker=shape, markersize=16, markerfacecolor="none", markeredgecolor=color,
                markeredgewidth=2.0, linestyle="none")
        ax.plot([f], [s], marker=shape, markersize=4, color=color, linestyle="none")
        pts[m.name] = (float(f), float(s))
    return pts


def legend_rows(items: Sequence[Mark], n_patches: int = 0) -> int:
    """How many rows the legend takes: two columns, one when a label is too long for half the
    width of a picture (the figure is made taller by that many rows before drawing)."""
    n = len(items) + n_patches
    return n if _columns(items) == 1 else (n + 1) // 2


def _columns(items: Sequence[Mark]) -> int:
    return 1 if any(len(m.label()) > 46 for m in items) else 2


def legend(fig: Any, items: Sequence[Mark],
           patches: Sequence[tuple[tuple[float, float, float], str]] = ()) -> list[str]:
    """A legend under the axes: one entry per mark (with its pixel), then colour patches such as
    "|Δ| = 0 exactly". Nothing is drawn when there is nothing to name. Returns the labels."""
    from matplotlib.lines import Line2D  # noqa: PLC0415 - matplotlib is optional
    from matplotlib.patches import Patch  # noqa: PLC0415

    handles: list[Any] = [Line2D([], [], marker=_STYLE[m.kind][1], markersize=9, markerfacecolor="none",
                                 markeredgecolor=m.color, markeredgewidth=2.0, linestyle="none", label=m.label())
                          for m in reversed(items)]
    handles += [Patch(facecolor=color, edgecolor="#555555", label=text) for color, text in patches]
    if handles:
        fig.legend(handles=handles, loc="lower center", bbox_to_anchor=(0.5, 0.0),
                   ncol=min(_columns(items), len(handles)), fontsize=8, frameon=False)
    return [h.get_label() for h in handles]
