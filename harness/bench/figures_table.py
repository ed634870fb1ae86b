"""The bench's per-case table: harness overhead, render and whole-process time against the C,
and the render as a multiple of the floor (harness.bench.analysis.case_figures), plus the
worst cases by render / C."""
from __future__ import annotations

from typing import Any, Optional

from rich.table import Table
from rich.text import Text

from harness.bench.analysis import TARGET_OVERHEAD_S, TARGET_RATIO
from harness.bench.measurement import HARNESS, PROBE

#: Runners whose rows belong to this table, not to the wall-time table.
FIGURE_RUNNERS = (PROBE, HARNESS)


def _x(v: Optional[float], limit: Optional[float] = None) -> Text:
    if v is None:
        return Text("—", style="dim")
    style = "" if limit is None else ("green" if v <= limit else "red")
    return Text(f"{v:.2f}", style=style)


def _floor(figures: dict[str, Any], dtype: str, threads: int) -> Optional[float]:
    hit = next((f for f in figures["floor"] if f["dtype"] == dtype and f["threads"] == threads
                and f["device"] == "cpu"), None)
    return hit["multiple"] if hit else None


def figures_table(doc: dict[str, Any]) -> Optional[Table]:
    """None when the bench measured no per-case figures (no probe, no overhead)."""
    cases = [c for c in doc["cases"] if c.get("figures")]
    if not cases:
        return None
    threads = doc["settings"]["threads"]
    dtypes = doc["settings"]["dtypes"]
    t = Table(title="per case: harness overhead of `nbparity run` (s: run wall − engine wall − engine load − "
                    "reference wall; the engine's load, torch included, beside it); float64 engine render / C and "
                    "whole process / C (medians); render / floor (× the least arithmetic, same evaluations)",
              title_justify="left")
    t.add_column("case")
    t.add_column("overhead s", justify="right")
    t.add_column("engine load s", justify="right")
    for n in threads:
        t.add_column(f"render/C {n}t", justify="right")
        t.add_column(f"process/C {n}t", justify="right")
    for d in dtypes:
        for n in threads:
            t.add_column(f"floor× {d} {n}t", justify="right")
    for c in cases:
        f = c["figures"]
        cells: list[Any] = [c["name"], _x(f["overhead_s"], TARGET_OVERHEAD_S), _x(f.get("engine_load_s"))]
        by_t = {r["threads"]: r for r in f["vs_c"]}
        for n in threads:
            r = by_t.get(n) or {}
            cells += [_x(r.get("render_ratio")), _x(r.get("process_ratio"), TARGET_RATIO)]
        cells += [_x(_floor(f, d, n)) for d in dtypes for n in threads]
        t.add_row(*cells)
    return t


def worst_lines(doc: dict[str, Any]) -> list[str]:
    worst = doc.get("worst_render_ratio") or []
    if not worst:
        return []
    return ["worst render / C (float64): " + ", ".join(f"{w['case']} {w['render_ratio']:.2f} ({w['threads']}t)"
                                                       for w in worst)]
