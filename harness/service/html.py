"""A static HTML page over the ledger: one row per case with its verdict, first divergence,
a sparkline of max |Δ| over its runs (inline SVG, no scripts, no network) and links to the
evidence.

The page must survive being moved or uploaded as a CI artifact: evidence that lies under the
output directory is linked relatively; evidence elsewhere (``report --out X``) has its small
files (pictures, report, result) copied to X/_evidence/CASE/STAMP/ first, so X is self-contained.
"""
from __future__ import annotations

import html
import math
import os
import shutil
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Optional, Sequence

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pandas loads lazily (see the imports below)
    import pandas as pd

from harness.service import ledger

PICTURES = ("c_image.png", "torch_image.png", "abs_diff.png", "radial_profile.png")
#: What a copied evidence directory keeps: the files a reader of the page opens (not the
#: float arrays, logs or traces; the original evidence keeps those).
COPIED = PICTURES + ("report.txt", "diff_summary.md", "result.json", "image_metrics.json", "autopixels.json",
                     "env.json", "commands.txt", "git_diff.patch")
#: Where copies go: a leading "_" can never be a case name (a slug), so pruning this folder
#: can never touch a real evidence directory even when --out is the results directory.
ASSETS = "_evidence"
#: Colours follow the gate's outcome (a pass with known C defects is a pass), not the raw status.
_COLOR = {"pass": "#1a7f37", "xfail": "#1a7f37", "fail": "#cf222e", "xpass": "#cf222e", "error": "#cf222e"}
_CLASS = {"pass": "parity", "xfail": "parity", "fail": "divergence", "xpass": "divergence", "error": "divergence"}
_OTHER = "#9a6700"

CSS = """
body { font-family: system-ui, sans-serif; margin: 1.5em; color: #1f2328; }
table { border-collapse: collapse; }
th, td { border-bottom: 1px solid #d0d7de; padding: 4px 10px; text-align: left; vertical-align: middle; }
th { background: #f6f8fa; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.parity { color: #1a7f37; font-weight: 600; }
.divergence { color: #cf222e; font-weight: 600; }
.other { color: #9a6700; font-weight: 600; }
img.thumb { height: 64px; border: 1px solid #d0d7de; }
.flips li { margin: 2px 0; }
small { color: #59636e; }
"""


def run_max_delta(row: Any) -> Optional[float]:
    """A run's headline |Δ|: the largest trace |Δ| over all keys, else the image's max |Δ|."""
    import pandas as pd  # noqa: PLC0415 - pandas takes ~0.3 s to load: only ledger reads pay it
    deltas = [v for v in (row.get("key_deltas") or {}).values() if isinstance(v, (int, float)) and math.isfinite(v)]
    if deltas:
        return float(max(deltas))
    v = row.get("image_max_abs_diff")
    return None if v is None or pd.isna(v) else float(v)


def sparkline(values: Sequence[Optional[float]], statuses: Sequence[str], width: int = 140, height: int = 28) -> str:
    """Inline SVG of log10(|Δ|) per run; 0 and missing values sit on the bottom line.

    One circle per run, coloured by its verdict, with the value as a tooltip.
    """
    n = len(values)
    pos = [v for v in values if v is not None and v > 0]
    lo = math.log10(min(pos)) if pos else 0.0
    hi = math.log10(max(pos)) if pos else 1.0
    if hi - lo < 1e-9:
        lo, hi = lo - 0.5, hi + 0.5
    pad = 4

    def xy(i: int, v: Optional[float]) -> tuple[float, float]:
        x = pad + (width - 2 * pad) * (i / (n - 1) if n > 1 else 0.5)
        if v is None or v <= 0:
            return x, height - pad
        frac = (math.log10(v) - lo) / (hi - lo)
        return x, (height - pad) - frac * (height - 2 * pad)

    pts = [xy(i, v) for i, v in enumerate(values)]
    poly = " ".join(f"{x:.1f},{y:.1f}" for x, y in pts)
    dots = "".join(
        f'<circle cx="{x:.1f}" cy="{y:.1f}" r="2.5" fill="{_COLOR.get(s, _OTHER)}">'
        f"<title>{html.escape(_fmt(v))} ({html.escape(s)})</title></circle>"
        for (x, y), v, s in zip(pts, values, statuses))
    return (f'<svg class="spark" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}" role="img" aria-label="max |Δ| over {n} runs">'
            f'<polyline fill="none" stroke="#57606a" stroke-width="1" points="{poly}"/>{dots}</svg>')


def _fmt(v: Any) -> str:
    import pandas as pd  # noqa: PLC0415 - pandas takes ~0.3 s to load: only ledger reads pay it
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "—"
    try:
        if pd.isna(v):
            return "—"
    except (TypeError, ValueError):
        pass
    return f"{v:.3g}" if isinstance(v, (int, float)) else str(v)


def _inside(path: Path, root: Path) -> bool:
    try:
        path.resolve().relative_to(root.resolve())
    except ValueError:
        return False
    return True


def portable_evidence(evidence_dir: Optional[str], case: str, out_dir: Path) -> Optional[Path]:
    """The evidence directory the page links to: the original when it lies under ``out_dir``,
    else a copy of its COPIED files under out_dir/_evidence/CASE/STAMP (None if it is gone)."""
    if not isinstance(evidence_dir, str) or not evidence_dir or not Path(evidence_dir).is_dir():
        return None
    src = Path(evidence_dir)
    if _inside(src, out_dir):
        return src
    dst = out_dir / ASSETS / case / src.name
    dst.mkdir(parents=True, exist_ok=True)
    for name in COPIED:
        f = src / name
        if f.is_file() and not ((dst / name).is_file() and (dst / name).stat().st_size == f.stat().st_size):
            shutil.copy2(f, dst / name)
    return dst


def _rel(target: Optional[Path], out_dir: Path) -> Optional[str]:
    if target is None:
        return None
    return Path(os.path.relpath(target.resolve(), out_dir.resolve())).as_posix()


def _case_row(case: str, g: pd.DataFrame, out_dir: Path) -> str:
    g = g.sort_values("id")
    last = g.iloc[-1].to_dict()
    outcome = str(last["outcome"])
    cls = _CLASS.get(outcome, "other")
    verdict = html.escape(f"{outcome} ({last['status']})") + (f"<br><small>{html.escape(last['label'])}</small>"
                                     if isinstance(last.get("label"), str) else "")
    if isinstance(last.get("first_key"), str):
        first = f"<code>{html.escape(last['first_key'])}</code> |Δ| {html.escape(_fmt(last.get('first_delta')))}"
    else:
        first = "—"
    values = [run_max_delta(r) for r in g.to_dict("records")]
    spark = sparkline(values, [str(s) for s in g["outcome"]])
    ev_dir = portable_evidence(last.get("evidence_dir"), case, out_dir)
    ev = _rel(ev_dir, out_dir)
    links = []
    if ev_dir is not None and ev:
        links.append(f'<a href="{html.escape(ev)}/">evidence</a>')
        if (ev_dir / "report.txt").is_file():
            links.append(f'<a href="{html.escape(ev)}/report.txt">report</a>')
        for pic in PICTURES:
            if (ev_dir / pic).is_file():
                links.append(f'<a href="{html.escape(ev)}/{pic}">{pic.removesuffix(".png").replace("_", " ")}</a>')
        if (ev_dir / "abs_diff.png").is_file():
            links.append(f'<a href="{html.escape(ev)}/abs_diff.png"><img class="thumb" alt="|Δ| map" '
                         f'src="{html.escape(ev)}/abs_diff.png"></a>')
    elif isinstance(last.get("evidence_dir"), str):
        links.append(f"<small>evidence gone: {html.escape(last['evidence_dir'])}</small>")
    commit = (last.get("commit_sha") or "?")[:10] + ("+dirty" if last.get("dirty") is True else "")
    when = last["time_utc"].strftime("%Y-%m-%d %H:%M") if hasattr(last["time_utc"], "strftime") else str(last["time_utc"])
    return (f'<tr data-case="{html.escape(case)}"><td><b>{html.escape(case)}</b><br><small>{html.escape(str(last.get("mode")))}'
            f"</small></td><td class=\"{cls}\">{verdict}</td><td>{first}</td>"
            f'<td class="num">{html.escape(_fmt(last.get("image_max_abs_diff")))}</td>'
            f"<td>{spark}<br><small>{len(g)} runs, last {html.escape(_fmt(values[-1]))}</small></td>"
            f"<td><small>{html.escape(when)}<br>{html.escape(commit)}</small></td>"
            f"<td>{' '.join(links) or '—'}</td></tr>")


def render_html(df: pd.DataFrame, out_dir: Path, title: str = "nbparity report") -> str:
    out_dir = Path(out_dir)
    rows = [] if df.empty else [_case_row(str(c), g, out_dir) for c, g in df.groupby("case_name", sort=True)]
    flips = ledger.flips(df)
    flip_items = "".join(
        f"<li><b>{html.escape(f.case_name)}</b>: {html.escape(f'{f.before_outcome} ({f.before})')} → "
        f'<span class="{_CLASS.get(str(f.after_outcome), "other")}">'
        f"{html.escape(f'{f.after_outcome} ({f.after})')}</span> "
        f"<small>({html.escape((f.before_commit or '?')[:10])} → {html.escape((f.after_commit or '?')[:10])}"
        f"{', first ' + html.escape(f.first_key) if f.first_key else ''})</small></li>" for f in flips)
    n_green = 0 if df.empty else sum(
        1 for _, g in df.groupby("case_name") if g.sort_values("id").iloc[-1]["outcome"] in ledger.GREEN_OUTCOMES)
    now = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title>"
            f"<style>{CSS}</style></head><body>\n<h1>{html.escape(title)}</h1>\n"
            f"<p>{len(rows)} cases, {n_green} green (pass or expected failure) in their latest run; {len(df)} runs in the ledger. "
            f"<small>Generated {now}.</small></p>\n"
            f"<h2>Verdict flips (last two runs of each case)</h2>\n"
            + (f'<ul class="flips">{flip_items}</ul>' if flips else "<p>none</p>")
            + "\n<h2>Cases</h2>\n<table><thead><tr><th>case</th><th>verdict</th><th>first divergence</th>"
              "<th>image max |Δ|</th><th>max |Δ| over runs</th><th>last run</th><th>evidence</th></tr></thead>"
              "<tbody>\n" + "\n".join(rows) + "\n</tbody></table>\n</body></html>\n")


def write_report(df: pd.DataFrame, out_dir: Path, title: str = "nbparity report") -> Path:
    """Write out_dir/index.html atomically (a reader never sees half a page)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / "index.html"
    tmp = out_dir / f".index.html.{os.getpid()}.tmp"
    tmp.write_text(render_html(df, out_dir, title), encoding="utf-8")
    os.replace(tmp, target)
    _prune_copies(df, out_dir)
    return target


def _prune_copies(df: pd.DataFrame, out_dir: Path) -> None:
    """Drop copies of evidence that the page no longer links to (a case's older latest runs)."""
    root = out_dir / ASSETS
    if not root.is_dir():
        return
    linked = set()
    if not df.empty:
        for case, g in df.groupby("case_name"):
            ev = g.sort_values("id").iloc[-1].get("evidence_dir")
            if isinstance(ev, str) and ev:
                linked.add(root / str(case) / Path(ev).name)
    for copy in root.glob("*/*"):
        if copy.is_dir() and copy not in linked:
            shutil.rmtree(copy)
