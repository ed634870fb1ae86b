"""Human and machine views of a ParityResult: rich table, markdown summary, JSON.

The table is built once and printed by a recording console, so the evidence directory keeps
exactly what the terminal showed (report.txt).
"""
from __future__ import annotations

import io
import json
from typing import Iterable, Optional

from rich.console import Console
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from harness.model.result import ParityResult, RowModel

_STATUS_STYLE = {"ok": "green", "diverged": "bold red", "C only": "yellow", "torch only": "yellow",
                 "text differs": "bold red"}


def _fmt_values(vals: Optional[list]) -> str:
    if vals is None:
        return "—"
    return " ".join(("%.15g" % v) if isinstance(v, float) else str(v) for v in vals)


def _fmt_tol(row: RowModel) -> str:
    if any(isinstance(v, str) for v in (row.c or []) + (row.torch or [])):
        return "exact"
    return f"{row.atol:g}" if row.rtol == 0 else f"{row.atol:g}+{row.rtol:g}·|C|"


def _fmt_diff(row: RowModel) -> str:
    if row.abs_diff is None:
        return "—"
    d = row.abs_diff
    s = f"{d:.3g}" if isinstance(d, float) else str(d)
    return s + (f" ({row.worst_component})" if row.worst_component and row.verdict != "ok" else "")


def diff_table(result: ParityResult, only_divergent: bool = False) -> Table:
    first = result.first_divergence.label if result.first_divergence else None
    table = Table(title=f"{result.case}: trace at pixel (slow {result.pixel[0]}, fast {result.pixel[1]}) "
                        "in dataflow order", show_lines=False, expand=False)
    for col, kw in (("stage", {"style": "dim"}), ("key", {"no_wrap": True}), ("C", {"overflow": "fold"}),
                    ("torch", {"overflow": "fold"}), ("|Δ|", {"justify": "right"}),
                    ("tol", {"justify": "right"}), ("status", {})):
        table.add_column(col, **kw)
    last_stage = None
    for row in result.rows:
        if only_divergent and row.verdict == "ok":
            continue
        is_first = row.label == first
        status = row.verdict + (f" [{row.defect}]" if row.defect else "")
        if is_first:
            status = "◀ FIRST " + status
        table.add_row(row.stage if row.stage != last_stage else "", row.label, _fmt_values(row.c),
                      _fmt_values(row.torch), _fmt_diff(row), _fmt_tol(row),
                      Text(status, style=_STATUS_STYLE.get(row.verdict, "")),
                      style="on dark_red" if is_first else None)
        last_stage = row.stage
    return table


def image_table(result: ParityResult) -> Optional[Table]:
    m = result.image
    if not m:
        return None
    t = Table(title="float image (torch vs C)", show_header=False)
    t.add_column("metric")
    t.add_column("value", justify="right")

    def g(x, fmt="{:.6g}"):
        return "—" if x is None else (fmt.format(x) if isinstance(x, (int, float)) else str(x))

    t.add_row("shape (slow, fast)", f"{tuple(m['shape_c'])}" + ("" if m["shape_c"] == m["shape_py"] else f" vs {tuple(m['shape_py'])}"))
    t.add_row("max |Δ|", g(m["max_abs_diff"]))
    t.add_row("max |Δ| / max |C|", g(m["rel_to_max"]))
    t.add_row("allowed max |Δ|", g(m["allowed"]))
    t.add_row("pixels over tolerance", g(m["n_failed"], "{}"))
    t.add_row("worst pixel (slow, fast)", f"{tuple(m['worst_pixel'])} C {g(m['c_at_worst'])} torch {g(m['py_at_worst'])}"
              if m["worst_pixel"] else "—")
    t.add_row("correlation", g(m["correlation"], "{:.12g}"))
    t.add_row("sum ratio torch/C", g(m["sum_ratio"], "{:.12g}"))
    t.add_row("fraction equal in float32", g(m["frac_equal_f32"], "{:.6f}"))
    if m["nan_c"] or m["nan_py"]:
        t.add_row("NaN pixels C / torch", f"{m['nan_c']} / {m['nan_py']}")
    t.add_row("verdict", Text("ok" if m["ok"] else f"DIVERGED: {m['reason']}", style="green" if m["ok"] else "bold red"))
    return t


def header(result: ParityResult) -> Panel:
    lines = [f"case [bold]{result.case}[/bold]   mode {result.mode}   pixel (slow {result.pixel[0]}, fast {result.pixel[1]})"]
    if result.reference:
        lines.append(f"reference: {escape(result.reference.description)}")
    if result.reference_choice:
        lines.append(f"           [dim]({escape(result.reference_choice)})[/dim]")
    if result.engine:
        lines.append(f"engine:    {escape(result.engine.description)}")
    if result.trace_note:
        lines.append(f"[yellow]{escape(result.trace_note)}[/yellow]")
    if result.keys_filter:
        lines.append(f"keys: {', '.join(result.keys_filter)}")
    return Panel("\n".join(lines), title="nbparity run", expand=False)


def _g(x) -> str:
    return f"{x:.3g}" if isinstance(x, (int, float)) else str(x)


def summary_lines(result: ParityResult) -> list[str]:
    out: list[str] = []
    fd = result.first_divergence
    if result.status in ("runner-failure", "reference-error", "input-error"):
        out.append(f"{result.status.upper()}: {result.failure}")
    elif fd is None and result.trace_compared:
        c = result.counts
        out.append(f"Trace: all {c.get('total', 0)} aligned values within tolerance.")
    elif fd is not None:
        comp = f" (component {fd.worst_component or fd.component})" if (fd.worst_component or fd.component) else ""
        if fd.verdict in ("C only", "torch only"):
            out.append(f"First divergence: {fd.label} (stage {fd.stage}) is present in the "
                       f"{'C' if fd.verdict == 'C only' else 'torch'} trace only.")
        else:
            out.append(f"First divergence: {fd.label}{comp} at stage '{fd.stage}': "
                       f"C {_fmt_values(fd.c)} vs torch {_fmt_values(fd.torch)}, "
                       f"|Δ| {_fmt_diff(fd)} > tolerance {_fmt_tol(fd)}.")
        if result.downstream:
            shown = ", ".join(result.downstream[:12]) + (f", … ({len(result.downstream) - 12} more)" if len(result.downstream) > 12 else "")
            out.append(f"Downstream divergent keys ({len(result.downstream)}): {shown}.")
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
    if result.expected_failure and result.status == "divergence":
        out.append(f"Expected failure: {result.expected_failure}")
    verdict = {0: "PARITY", 1: "DIVERGENCE", 2: "USAGE/INPUT ERROR", 3: "RUNNER FAILURE"}.get(result.exit_code, "?")
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


def render(console: Console, result: ParityResult, only_divergent: bool = False) -> None:
    console.print(header(result))
    if result.trace_compared and result.rows:
        if only_divergent and all(r.verdict == "ok" for r in result.rows):
            console.print(f"trace: no divergent keys among {len(result.rows)} aligned values")
        else:
            console.print(diff_table(result, only_divergent))
    it = image_table(result)
    if it is not None:
        console.print(it)
    style = "green" if result.exit_code == 0 else ("bold red" if result.exit_code in (1, 3) else "yellow")
    for line in summary_lines(result):
        console.print(Text(line, style=style if line.startswith("Verdict") else ""))


def export_text(result: ParityResult, width: int = 200) -> str:
    console = Console(record=True, width=width, file=io.StringIO(), color_system=None)
    render(console, result)
    return console.export_text()


def markdown_summary(result: ParityResult) -> str:
    lines = [f"# nbparity: {result.case}", "",
             f"- mode: {result.mode}", f"- traced pixel: slow {result.pixel[0]}, fast {result.pixel[1]}"]
    if result.reference:
        lines.append(f"- reference: {result.reference.description}")
    if result.reference_choice:
        lines.append(f"- reference choice: {result.reference_choice}")
    if result.engine:
        lines.append(f"- engine: {result.engine.description}")
    if result.trace_note:
        lines.append(f"- note: {result.trace_note}")
    lines += ["", "## Result", ""] + [f"{l}" for l in summary_lines(result)]
    fd = result.first_divergence
    if fd is not None:
        lines += ["", "## First divergence", "",
                  "| key | stage | component | C | torch | abs diff | tolerance | verdict |",
                  "|---|---|---|---|---|---|---|---|",
                  f"| {fd.label} | {fd.stage} | {fd.worst_component or fd.component or ''} | {_fmt_values(fd.c)} | "
                  f"{_fmt_values(fd.torch)} | {_fmt_diff(fd)} | {_fmt_tol(fd)} | {fd.verdict} |"]
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
