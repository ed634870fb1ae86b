"""What one parity run leaves in its evidence directory, file by file.

commands.txt, env.json, each side's stdout/stderr and trace lines, diff.json (every aligned row),
image_metrics.json, diff_summary.md, result.json, report.txt (what the terminal showed) and
trace_table.txt (every row, formatted once in linear time).
"""
from __future__ import annotations

import json
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, Optional, Sequence

from harness.compare import traces
from harness.model.environment import snapshot
from harness.model.result import ParityResult, RowModel, jsonable
from harness.model.run import RunOutput
from harness.report.console import export_text, markdown_summary, trace_table_text
from harness.report.evidence import EvidenceDir


#: Stands for the rows in a document encoded without them (they are encoded once, then spliced in).
_ROWS_MARK = "\u0000rows\u0000"


def rows_json(rows: Sequence[RowModel]) -> list[dict]:
    """What ``TypeAdapter(list[RowModel]).dump_python(rows, mode="json")`` gives, read straight
    from each row's fields: verdict.row_model builds every value JSON-ready (the test suite checks
    that they agree)."""
    return [dict(vars(r)) for r in rows]


def _json_with_rows(doc: dict, rows_text: str) -> str:
    """json.dumps(doc) in one line, its "rows" (already encoded as ``rows_text``) spliced in."""
    text = json.dumps({**doc, "rows": _ROWS_MARK}, default=str, allow_nan=False)
    return text.replace(json.dumps(_ROWS_MARK), rows_text, 1)


@dataclass(frozen=True)
class RunSettings:
    """How the run was asked for: the command line and the engine's settings."""

    command_line: str
    device: str
    dtype: str
    c_threads: int


def commands_text(settings: RunSettings, ref_out: Optional[RunOutput], eng_out: Optional[RunOutput]) -> str:
    lines = ["# harness", f"cwd: {Path.cwd()}", f"command: {settings.command_line or '(API call)'}", ""]
    for title, out in (("reference", ref_out), ("engine", eng_out)):
        if out is None:
            lines += [f"# {title}: did not run", ""]
            continue
        lines += [f"# {title}: {out.description}", f"cwd: {out.cwd}",
                  "env: " + " ".join(f"{k}={v}" for k, v in out.env.items()),
                  f"command: {shlex.join(out.argv)}",
                  f"exit code: {out.exit_code}", f"wall time: {out.wall_s:.3f} s", ""]
    return "\n".join(lines)


def _unique_lines(recs: Iterable[traces.TraceRecord]) -> Iterator[traces.TraceRecord]:
    seen = set()
    for r in recs:
        if (r.line_no, r.text) not in seen:
            seen.add((r.line_no, r.text))
            yield r


def trace_lines(stdout: str, records: Optional[Sequence[traces.TraceRecord]] = None) -> str:
    """The trace lines of one stdout (``records``: its parse, when the comparison made one)."""
    recs = traces.parse(stdout) if records is None else records
    return "".join(r.text + "\n" for r in _unique_lines(recs))


def _env(result: ParityResult, settings: RunSettings) -> dict:
    env = snapshot()
    env["case"] = {"name": result.case, "mode": result.mode, "pixel": list(result.pixel),
                   "c_threads": settings.c_threads}
    env["reference"] = result.reference.model_dump(mode="json") if result.reference else None
    env["engine"] = {"device": settings.device, "dtype": settings.dtype, "mode": result.mode,
                     **(result.engine.model_dump(mode="json") if result.engine else {})}
    return jsonable(env)


def _result_json(result: ParityResult, all_rows: Sequence[RowModel], rows_json: list) -> dict:
    """result.model_dump(mode="json"), reusing the rows already dumped for diff.json when they are
    the same rows (no --keys): thousands of rows are dumped once, not twice."""
    if result.rows is not all_rows:
        return result.model_dump(mode="json")
    rest = result.model_dump(mode="json", exclude={"rows"})
    return {k: rows_json if k == "rows" else rest[k] for k in type(result).model_fields if k == "rows" or k in rest}


def write_run_evidence(ev: EvidenceDir, result: ParityResult, all_rows: Sequence[RowModel], settings: RunSettings,
                       ref_out: Optional[RunOutput], eng_out: Optional[RunOutput],
                       records: Optional[dict[str, list[traces.TraceRecord]]] = None) -> None:
    """all_rows: every aligned row (diff.json, trace_table.txt); records: the parsed traces by side."""
    ev.write_text("commands.txt", commands_text(settings, ref_out, eng_out))
    ev.write_json("env.json", _env(result, settings))
    for name, out in (("c", ref_out), ("torch", eng_out)):
        if out is None:
            continue
        ev.write_text(f"{name}_stdout.log", out.stdout)
        if out.stderr:
            ev.write_text(f"{name}_stderr.log", out.stderr)
        ev.write_text(f"trace_{name}.txt", trace_lines(out.stdout, (records or {}).get(name)))
    rows = rows_json(all_rows)
    # Encoded once for diff.json and result.json (the C encoder: one line), not once per file.
    rows_text = json.dumps(rows, default=str, allow_nan=False)
    ev.write_text("diff.json", _json_with_rows({"case": result.case, "pixel": list(result.pixel), "mode": result.mode,
                                                "trace_compared": result.trace_compared}, rows_text) + "\n")
    if all_rows:
        ev.write_text("trace_table.txt", trace_table_text(all_rows, result))
    if result.image is not None:
        ev.write_json("image_metrics.json", result.image)
    ev.write_text("diff_summary.md", markdown_summary(result))
    doc = _result_json(result, all_rows, rows)
    if len(result.rows) > 200 and doc["rows"] is rows:
        ev.write_text("result.json", _json_with_rows(doc, rows_text) + "\n")
    else:
        ev.write_json("result.json", doc, compact=len(result.rows) > 200)
    ev.write_text("report.txt", export_text(result))
