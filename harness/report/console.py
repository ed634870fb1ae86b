"""Human and machine views of a ParityResult: rich tables, markdown summary, JSON.

What a person reads is short: repeated trace rows (sub-pixel, source, φ step) collapse into one
row per key with a count and the worst |Δ|, a long trace shows the keys around the first
divergence, and a run where every value agrees gets one line per stage. ``--full`` shows every
row. The evidence keeps every row anyway (trace_table.txt, formatted once, and diff.json).
"""
from __future__ import annotations

import io
import json
from dataclasses import dataclass
from typing import Iterable, Optional, Sequence

from rich.console import Console
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from harness.model.result import ParityResult, RowModel

_STATUS_STYLE = {"ok": "green", "diverged": "bold red", "C only": "yellow", "torch only": "yellow",
                 "text differs": "bold red"}
#: Keys shown before / after the first divergent key when the collapsed trace is longer than this.
WINDOW_BEFORE, WINDOW_AFTER, LONG_TRACE = 8, 16, 40
VERDICT_WORDS = {0: "PARITY", 1: "DIVERGENCE", 2: "USAGE/INPUT ERROR", 3: "RUNNER FAILURE"}


def fmt_values(vals: Optional[list]) -> str:
    if vals is None:
        return "—"
    return " ".join(("%.15g" % v) if isinstance(v, float) else str(v) for v in vals)


def fmt_tol(row: RowModel) -> str:
    if any(isinstance(v, str) for v in (row.c or []) + (row.torch or [])):
        return "exact"
    return f"{row.atol:g}" if row.rtol == 0 else f"{row.atol:g}+{row.rtol:g}·|C|"


def fmt_diff(row: RowModel) -> str:
    if row.abs_diff is None:
        return "—"
    d = row.abs_diff
    s = f"{d:.3g}" if isinstance(d, float) else str(d)
    return s + (f" ({row.worst_component})" if row.worst_component and row.verdict != "ok" else "")


def _g(x) -> str:
    if x is None:  # the JSON form of NaN/inf (ImageMetrics.as_dict)
        return "non-finite"
    return f"{x:.3g}" if isinstance(x, (int, float)) else str(x)


# ---------------------------------------------------------------- header: one list, two renderings


def header_fields(result: ParityResult) -> list[tuple[str, str]]:
    """(label, value) pairs for the run header: the rich panel and the markdown list both use these."""
    fields = [("case", result.case), ("mode", result.mode),
              ("traced pixel", f"slow {result.pixel[0]}, fast {result.pixel[1]}")]
    if result.reference:
        fields.append(("reference", result.reference.description))
    if result.reference_choice:
        fields.append(("reference choice", result.reference_choice))
    if result.engine:
        fields.append(("engine", result.engine.description))
    if result.trace_note:
        fields.append(("note", result.trace_note))
    if result.keys_filter:
        fields.append(("keys", ", ".join(result.keys_filter)))
    return fields


def header(result: ParityResult) -> Panel:
    lines = [f"{label}: " + (f"[bold]{escape(value)}[/bold]" if label == "case" else escape(value))
             for label, value in header_fields(result)]
    return Panel("\n".join(lines), title="nbparity run", expand=False)


def markdown_header(result: ParityResult) -> list[str]:
    return [f"- {label}: {value}" for label, value in header_fields(result)]


# ---------------------------------------------------------------- the trace, collapsed


@dataclass
class KeyGroup:
    """All rows of one trace key (its sub-pixel, source and φ repeats) as one table row."""

    shown: RowModel          # the first divergent row, else the worst one
    count: int
    n_bad: int
    is_first: bool

    @property
    def label(self) -> str:
        r = self.shown
        return r.label if self.count == 1 else f"{r.key} ×{self.count}"


def _worse(a: RowModel, b: RowModel) -> bool:
    da, db = a.abs_diff, b.abs_diff
    return isinstance(da, (int, float)) and (not isinstance(db, (int, float)) or da > db)


def group_rows(rows: Sequence[RowModel], first_label: Optional[str]) -> list[KeyGroup]:
    """One group per (kind, key), in order of first appearance (dataflow order); linear time."""
    groups: dict[tuple[str, str], KeyGroup] = {}
    for r in rows:
        g = groups.get((r.kind, r.key))
        if g is None:
            groups[(r.kind, r.key)] = KeyGroup(r, 1, int(r.verdict != "ok"), r.label == first_label)
            continue
        g.count += 1
        g.n_bad += r.verdict != "ok"
        if r.label == first_label:
            g.shown, g.is_first = r, True
        elif not g.is_first and (g.shown.verdict == "ok") >= (r.verdict == "ok") and _worse(r, g.shown):
            g.shown = r
    return list(groups.values())


def _window(groups: list[KeyGroup]) -> tuple[list[KeyGroup], int, int]:
    """The groups around the first divergence: (shown, hidden before, hidden after)."""
    first = next((i for i, g in enumerate(groups) if g.is_first), None)
    if first is None or len(groups) <= LONG_TRACE:
        return groups, 0, 0
    lo, hi = max(0, first - WINDOW_BEFORE), min(len(groups), first + WINDOW_AFTER + 1)
    return groups[lo:hi], lo, len(groups) - hi


def _trace_table(result: ParityResult, groups: Sequence[KeyGroup], title_note: str = "") -> Table:
    table = Table(title=f"{result.case}: trace at pixel (slow {result.pixel[0]}, fast {result.pixel[1]}) "
                        f"in dataflow order{title_note}", show_lines=False, expand=False)
    for col, kw in (("stage", {"style": "dim"}), ("key", {"no_wrap": True}), (result.sides[0], {"overflow": "fold"}),
                    (result.sides[1], {"overflow": "fold"}), ("|Δ|", {"justify": "right"}),
                    ("tol", {"justify": "right"}), ("status", {})):
        table.add_column(col, **kw)
    last_stage = None
    for g in groups:
        row = g.shown
        status = row.verdict + (f" [{row.defect}]" if row.defect else "") + (f" ({row.note})" if row.note else "")
        if g.count > 1 and g.n_bad:
            status += f" ({g.n_bad} of {g.count})"
        if g.is_first:
            status = "◀ FIRST " + status
        table.add_row(row.stage if row.stage != last_stage else "", g.label, fmt_values(row.c),
                      fmt_values(row.torch), fmt_diff(row), fmt_tol(row),
                      Text(status, style=_STATUS_STYLE.get(row.verdict, "")),
                      style="on dark_red" if g.is_first else None)
        last_stage = row.stage
    return table


def diff_table(result: ParityResult, only_divergent: bool = False, full: bool = False) -> Table:
    """The trace as a person reads it (collapsed, around the first divergence); ``full``: every row."""
    first = result.first_divergence.label if result.first_divergence else None
    if full:
        groups = [KeyGroup(r, 1, int(r.verdict != "ok"), r.label == first) for r in result.rows]
    else:
        groups = group_rows(result.rows, first)
    if only_divergent:
        groups = [g for g in groups if g.n_bad]
    shown, before, after = (groups, 0, 0) if full else _window(groups)
    note = (f" ({len(groups) - len(shown)} of {len(groups)} keys hidden: {before} before, {after} after; "
            "--full shows every row)") if before or after else ""
    return _trace_table(result, shown, note)


def stage_summary(result: ParityResult) -> Table:
    """A trace where every value agrees: one line per stage."""
    t = Table(title=f"{result.case}: trace at pixel (slow {result.pixel[0]}, fast {result.pixel[1]}): "
                    f"all {len(result.rows)} values within tolerance (--full shows every row)")
    for col, kw in (("stage", {}), ("keys", {"justify": "right"}), ("values", {"justify": "right"}),
                    ("worst |Δ|", {"justify": "right"}), ("at", {})):
        t.add_column(col, **kw)
    stages: dict[str, list[RowModel]] = {}
    for r in result.rows:
        stages.setdefault(r.stage, []).append(r)
    for stage, rows in stages.items():
        worst = None
        for r in rows:
            if worst is None or _worse(r, worst):
                worst = r
        t.add_row(stage, str(len({(r.kind, r.key) for r in rows})), str(len(rows)),
                  fmt_diff(worst) if worst is not None else "—", worst.label if worst is not None else "")
    return t


def trace_table_text(rows: Sequence[RowModel], result: ParityResult) -> str:
    """Every aligned row as plain text, for the evidence: formatted once, linear in the rows."""
    first = result.first_divergence.label if result.first_divergence else None
    cols = ("stage", "key", *result.sides, "|Δ|", "tol", "status")
    body = [(r.stage, r.label, fmt_values(r.c), fmt_values(r.torch), fmt_diff(r), fmt_tol(r),
             ("◀ FIRST " if r.label == first else "") + r.verdict + (f" [{r.defect}]" if r.defect else "")
             + (f" ({r.note})" if r.note else ""))
            for r in rows]
    widths = [min(60, max([len(c)] + [len(b[i]) for b in body])) for i, c in enumerate(cols)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    return "\n".join([fmt.format(*cols), fmt.format(*("-" * w for w in widths))] +
                     [fmt.format(*b) for b in body]) + "\n"


# ---------------------------------------------------------------- image and summary


def image_table(result: ParityResult) -> Optional[Table]:
    m = result.image
    if not m:
        return None
    t = Table(title=f"float image ({result.sides[1]} vs {result.sides[0]})", show_header=False)
    t.add_column("metric")
    t.add_column("value", justify="right")

    def g(x, fmt="{:.6g}"):
        return "—" if x is None else (fmt.format(x) if isinstance(x, (int, float)) else str(x))

    t.add_row("shape (slow, fast)", f"{tuple(m['shape_c'])}" +
              ("" if m["shape_c"] == m["shape_py"] else f" vs {tuple(m['shape_py'])}"))
    t.add_row("max |Δ|", g(m["max_abs_diff"]))
    t.add_row("max |Δ| / max |C|", g(m["rel_to_max"]))
    t.add_row("allowed max |Δ|", g(m["allowed"]))
    t.add_row("pixels over tolerance", g(m["n_failed"], "{}"))
    t.add_row("worst pixel (slow, fast)", f"{tuple(m['worst_pixel'])} {result.sides[0]} {g(m['c_at_worst'])} "
              f"{result.sides[1]} {g(m['py_at_worst'])}" if m["worst_pixel"] else "—")
    t.add_row("correlation", g(m["correlation"], "{:.12g}"))
    t.add_row(f"sum ratio {result.sides[1]}/{result.sides[0]}", g(m["sum_ratio"], "{:.12g}"))
    t.add_row("fraction equal in float32", g(m["frac_equal_f32"], "{:.6f}"))
    if m["nan_c"] or m["nan_py"]:
        t.add_row("NaN pixels C / torch", f"{m['nan_c']} / {m['nan_py']}")
    t.add_row("verdict", Text("ok" if m["ok"] else f"DIVERGED: {m['reason']}",
                              style="green" if m["ok"] else "bold red"))
    return t


def _first_divergence_lines(result: ParityResult) -> list[str]:
    fd = result.first_divergence
    if fd is None:
        return []
    comp = f" (component {fd.worst_component or fd.component})" if (fd.worst_component or fd.component) else ""
    if fd.verdict in ("C only", "torch only"):
        out = [f"First divergence: {fd.label} (stage {fd.stage}) is present in the "
               f"{'C' if fd.verdict == 'C only' else 'torch'} trace only."]
    else:
        out = [f"First divergence: {fd.label}{comp} at stage '{fd.stage}': "
               f"{result.sides[0]} {fmt_values(fd.c)} vs {result.sides[1]} {fmt_values(fd.torch)}, "
               f"|Δ| {fmt_diff(fd)} > tolerance {fmt_tol(fd)}."]
    if result.downstream:
        more = f", … ({len(result.downstream) - 12} more)" if len(result.downstream) > 12 else ""
        out.append(f"Downstream divergent keys ({len(result.downstream)}): {', '.join(result.downstream[:12])}{more}.")
    return out


def allowed_defects_line(result: ParityResult) -> Optional[str]:
    """Why a divergence passes under --allow-known-defects: which defects, and what they account for."""
    if not result.allowed_defects:
        return None
    bad = [r.label for r in result.rows if r.verdict != "ok"]
    parts = []
    if bad:
        keys = sorted({r.key for r in result.rows if r.verdict != "ok"})
        parts.append(f"{len(bad)} divergent trace values (keys {', '.join(keys[:8])}"
                     f"{', …' if len(keys) > 8 else ''})")
    m = result.image
    if m and not m["ok"]:
        parts.append(f"the image's {m['n_failed']} pixels over tolerance (worst {tuple(m['worst_pixel'] or ())})")
    return (f"Passes with --allow-known-defects: known C defect {', '.join(result.allowed_defects)} "
            f"accounts for {' and '.join(parts) or 'the divergence'}.")


def summary_lines(result: ParityResult) -> list[str]:
    out: list[str] = []
    if result.status in ("runner-failure", "reference-error", "input-error"):
        out.append(f"{result.status.upper()}: {result.failure}")
    elif result.first_divergence is None and result.trace_compared:
        out.append(f"Trace: all {result.counts.get('total', 0)} aligned values within tolerance.")
    out += _first_divergence_lines(result)
    if result.image is not None:
        m = result.image
        out.append("Image: " + ("within tolerance" if m["ok"] else f"DIVERGED ({m['reason']})") +
                   f"; max|Δ| {_g(m['max_abs_diff'])}, max|Δ|/max|C| {_g(m['rel_to_max'])} "
                   f"(bar {_g(m['allowed'])} absolute), worst pixel (slow, fast) {tuple(m['worst_pixel'] or ())}.")
    elif result.image_note:
        out.append(f"Image: {result.image_note}")
    if result.autopixels:
        out.append(f"Images diverge while the traced pixel agrees: traced {len(result.autopixels)} more pixels:")
        out.extend("  " + autopixel_line(p) for p in result.autopixels)
    if result.label and result.status == "divergence":
        out.append(f"Label: {result.label}.")
    allowed = allowed_defects_line(result)
    if allowed:
        out.append(allowed)
    if result.expected_failure and result.status == "divergence":
        out.append(f"Expected failure: {result.expected_failure}")
    verdict = VERDICT_WORDS.get(result.exit_code, "?")
    if allowed:
        verdict += f" with known C defect {', '.join(result.allowed_defects)} allowed"
    out.append(f"Verdict: {verdict} (exit {result.exit_code}).")
    return out


def autopixel_line(p: dict) -> str:
    """One traced pick: where, why, and what its trace found."""
    ch = p.get("chosen") or {}
    where = f"(slow {ch.get('slow')}, fast {ch.get('fast')}) {ch.get('reason', '')}: C {_g(ch.get('c_value'))} " \
            f"torch {_g(ch.get('torch_value'))}"
    if p.get("compared"):
        found = (f"first divergence {p['first_key']} (|Δ| {_g(p.get('first_delta'))})" if p.get("first_key")
                 else f"trace {p.get('status')}")
    else:
        found = p.get("note") or p.get("status", "")
    return f"{where} → {found}"


def render(console: Console, result: ParityResult, only_divergent: bool = False, full: bool = False) -> None:
    console.print(header(result))
    if result.trace_compared and result.rows:
        diverged = any(r.verdict != "ok" for r in result.rows)
        if only_divergent and not diverged:
            console.print(f"trace: no divergent keys among {len(result.rows)} aligned values")
        elif not diverged and not full:
            console.print(stage_summary(result))
        else:
            console.print(diff_table(result, only_divergent, full))
    it = image_table(result)
    if it is not None:
        console.print(it)
    style = "green" if result.exit_code == 0 else ("bold red" if result.exit_code in (1, 3) else "yellow")
    for line in summary_lines(result):
        console.print(Text(line, style=style if line.startswith("Verdict") else ""))


def export_text(result: ParityResult, width: int = 200) -> str:
    """What the terminal showed (the collapsed view), as plain text for report.txt."""
    console = Console(record=True, width=width, file=io.StringIO(), color_system=None)
    render(console, result)
    return console.export_text()


def markdown_summary(result: ParityResult) -> str:
    lines = [f"# nbparity: {result.case}", "", *markdown_header(result), "", "## Result", "",
             *summary_lines(result)]
    fd = result.first_divergence
    if fd is not None:
        lines += ["", "## First divergence", "",
                  "| key | stage | component | C | torch | abs diff | tolerance | verdict |",
                  "|---|---|---|---|---|---|---|---|",
                  f"| {fd.label} | {fd.stage} | {fd.worst_component or fd.component or ''} | {fmt_values(fd.c)} | "
                  f"{fmt_values(fd.torch)} | {fmt_diff(fd)} | {fmt_tol(fd)} | {fd.verdict} |"]
    return "\n".join(lines) + "\n"


def to_json(result: ParityResult) -> str:
    return json.dumps(result.model_dump(mode="json"), indent=2, allow_nan=False)


def rows_table(rows: Iterable[tuple[str, ...]], columns: tuple[str, ...], title: str = "") -> Table:
    t = Table(title=title or None)
    for c in columns:
        t.add_column(c, overflow="fold")
    for r in rows:
        t.add_row(*r)
    return t
