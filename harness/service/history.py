"""One case's trend over the ledger: a table for the terminal and a PNG plot.

The plotted quantity is the chosen key's max |Δ| (``--key``, any ``--keys`` word), else the
first divergent key's |Δ| and the image's max |Δ|. Verdict changes are marked so a flip is
visible at a glance.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Optional

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pandas loads lazily (see the imports below)
    import pandas as pd
from rich.table import Table
from rich.text import Text

from harness.service import ledger

_VERDICT_STYLE = {"pass": "green", "xfail": "green", "fail": "bold red", "xpass": "bold red", "error": "bold red"}


def history_frame(df: pd.DataFrame, case: str, key: Optional[str] = None, limit: Optional[int] = None
                  ) -> pd.DataFrame:
    """Rows of ``case`` (oldest first) with a ``key_delta`` column when a key is given.

    Raises KeyError (one line) for an unknown key word.
    """
    if key is not None:
        from harness.compare import keys  # noqa: PLC0415

        keys.resolve(key)  # fail before any work on a misspelt key
    h = df[df["case_name"] == case].sort_values("id").copy() if not df.empty else df.copy()
    if limit is not None and limit > 0:
        h = h.tail(limit)
    if key is not None:
        h["key_delta"] = [ledger.selected_delta(rows or [], key) for rows in h["trace_rows"]]
    h["flip"] = _flip_marks(h)
    return h


def _flip_marks(h: pd.DataFrame) -> list[bool]:
    """True where a run's verdict differs from the previous comparable run's (ledger.LIKE)."""
    if h.empty:
        return []
    verdict = h["outcome"].astype(str)
    prev = verdict.groupby([h[c].astype(object).where(h[c].notna(), "") for c in ledger.LIKE]).shift()
    return list(prev.notna() & verdict.ne(prev))


def _g(x, fmt: str = "{:.3g}") -> str:
    import pandas as pd  # noqa: PLC0415 - pandas takes ~0.3 s to load: only ledger reads pay it
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "—"
    try:
        if pd.isna(x):
            return "—"
    except (TypeError, ValueError):
        pass
    return fmt.format(x)


def history_table(h: pd.DataFrame, case: str, key: Optional[str] = None) -> Table:
    t = Table(title=f"history of {case}" + (f" (key {key})" if key else "") + f": {len(h)} runs")
    cols = ["#", "time (UTC)", "commit", "engine", "verdict", "first divergence", "|Δ| first"]
    if key:
        cols.append(f"|Δ| {key}")
    cols += ["image max |Δ|", "wall C / torch (s)"]
    for c in cols:
        t.add_column(c, overflow="fold", justify="right" if c.startswith(("|Δ|", "image", "wall", "#")) else "left")
    for _, r in h.iterrows():
        commit = (r["commit_sha"] or "?")[:10] + ("+dirty" if r["dirty"] is True else "")
        engine = "/".join(str(x) for x in (r["command"], r["mode"], r["device"], r["dtype"]) if isinstance(x, str))
        verdict = Text(("⇄ " if r.get("flip") else "") + f"{r['outcome']} ({r['status']})",
                       style=_VERDICT_STYLE.get(r["outcome"], "yellow"))
        row = [str(r["id"]), r["time_utc"].strftime("%Y-%m-%d %H:%M:%S"), commit, engine, verdict,
               r["first_key"] if isinstance(r["first_key"], str) else "—", _g(r["first_delta"])]
        if key:
            row.append(_g(r["key_delta"]))
        row += [_g(r["image_max_abs_diff"]), f"{_g(r['wall_reference_s'], '{:.2f}')} / {_g(r['wall_engine_s'], '{:.2f}')}"]
        t.add_row(*row)
    return t


def plot_history(h: pd.DataFrame, case: str, out_png: Path, key: Optional[str] = None,
                 tolerance: Optional[float] = None) -> Path:
    """Max |Δ| per run on a log axis (0 is drawn at the axis floor); red dots are divergent runs."""
    import pandas as pd  # noqa: PLC0415 - pandas takes ~0.3 s to load: only ledger reads pay it
    import matplotlib  # noqa: PLC0415 - optional dependency, lazy on purpose

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt  # noqa: PLC0415

    out_png = Path(out_png)
    out_png.parent.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(9, 4.5))
    x = list(range(len(h)))
    series = [(f"|Δ| {key}", "key_delta", "tab:blue")] if key else \
        [("|Δ| first divergent key", "first_delta", "tab:blue"), ("image max |Δ|", "image_max_abs_diff", "tab:purple")]
    values = [v for _, col, _ in series for v in h[col].tolist() if v is not None and not pd.isna(v) and v > 0]
    floor = min(values) / 10 if values else 1e-12
    for label, col, color in series:
        y = [floor if (v is None or pd.isna(v) or v <= 0) else float(v) for v in h[col].tolist()]
        ax.plot(x, y, "-", color=color, lw=1.2, label=label)
        bad = [i for i, o in enumerate(h["outcome"]) if o not in ledger.GREEN_OUTCOMES]
        ax.plot([x[i] for i in bad], [y[i] for i in bad], "o", color="red", ms=6)
        good = [i for i, o in enumerate(h["outcome"]) if o in ledger.GREEN_OUTCOMES]
        ax.plot([x[i] for i in good], [y[i] for i in good], "o", color="green", ms=5)
    if tolerance:
        ax.axhline(tolerance, color="grey", ls=":", lw=1, label=f"tolerance {tolerance:g}")
    ax.set_yscale("log")
    labels = [f"{(c or '?')[:7]}\n{t:%m-%d %H:%M}" for c, t in zip(h["commit_sha"], h["time_utc"])] if len(h) else []
    step = max(1, len(x) // 12)
    ax.set_xticks(x[::step], labels[::step], fontsize=7)
    ax.set_ylabel("max |Δ| (0 drawn at the floor)")
    ax.set_title(f"{case}: {len(h)} runs" + (f", key {key}" if key else ""))
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    fig.savefig(out_png, dpi=100, metadata={"Software": "nbparity", "Title": f"history {case}",
                                            "Description": f"runs={len(h)} key={key or ''}"})
    plt.close(fig)
    return out_png


def default_plot_path(results_dir: Path, case: str, key: Optional[str] = None) -> Path:
    safe_key = "".join(ch if ch.isalnum() or ch in "_-" else "_" for ch in key) if key else ""
    return Path(results_dir) / "history" / (f"{case}__{safe_key}.png" if key else f"{case}.png")
