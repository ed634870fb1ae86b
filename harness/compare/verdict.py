"""Compare two runs' outputs and reach the verdict: align the traces, measure the images, label.

The pipeline hands over plain values (stdout, images, the case's bars), so this layer knows
nothing of runners or case files; what it returns is the update to a ParityResult.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Optional, Sequence

import numpy as np

from harness.compare import keys, labels, traces
from harness.compare.images import ImageThreshold, image_metrics
from harness.compare.primitive import VERDICT_OK, Row, ToleranceTable, align, first_divergence, narrow
from harness.model.errors import ExitCode
from harness.model.result import RowModel, jsonable


def _constructed(values: dict[str, Any]) -> RowModel:
    """RowModel.model_construct(**values) for values naming every field in order, without its
    per-field alias and default look-ups (a quarter of a long trace's comparison); the test
    suite checks that it builds what model_construct builds."""
    m = RowModel.__new__(RowModel)
    object.__setattr__(m, "__dict__", values)
    object.__setattr__(m, "__pydantic_fields_set__", set(values))
    object.__setattr__(m, "__pydantic_extra__", None)
    object.__setattr__(m, "__pydantic_private__", None)
    return m


def row_model(row: Row) -> RowModel:
    """The serializable view of one aligned trace row (what --json prints and diff.json keeps).

    Built without re-validation (thousands of rows per run): every field comes typed from Row.
    """
    return _constructed(dict(
        label=row.label, kind=row.kind, key=row.key, stage=row.stage, occurrence=row.occurrence,
        phi_tic=row.phi_tic, components=list(row.components),
        component=row.component_name(row.component_filter) if row.component_filter is not None else None,
        c=jsonable(list(row.c)) if row.c is not None else None,
        torch=jsonable(list(row.py)) if row.py is not None else None,
        abs_diff=jsonable(row.max_abs_diff),
        worst_component=(row.component_name(row.worst_component)
                         if row.worst_component is not None and len(row.c or ()) > 1 else None),
        atol=row.tolerance.atol, rtol=row.tolerance.rtol, verdict=row.verdict, defect=row.defect, note=row.note,
    ))


@dataclass(frozen=True)
class Bars:
    """What one case asks of a comparison: tolerances, image bar, and what labels need to know."""

    tolerances: ToleranceTable
    image: ImageThreshold
    argv: Sequence[str]
    mode: str
    reference_traced: bool
    reference_kind: str
    reference_fixes: Sequence[str] = ()


@dataclass(frozen=True)
class Sides:
    """The two outputs as plain values."""

    c_stdout: str
    torch_stdout: str
    c_image: Optional[np.ndarray]
    torch_image: Optional[np.ndarray]
    trace_supported: bool
    want_image: bool
    #: Why the reference has no trace, when its runner said (an upstream, untraced C binary).
    no_trace_note: Optional[str] = None


@dataclass
class Outcome:
    """The ParityResult fields this comparison decides, the full alignment for diff.json (as
    RowModels, built once), and each side's parsed trace records (parsed once)."""

    update: dict[str, Any] = field(default_factory=dict)
    all_rows: list[RowModel] = field(default_factory=list)
    records: dict[str, list[traces.TraceRecord]] = field(default_factory=dict)


def _with_defect(row: Row, lab: labels.Label) -> Row:
    return replace(row, defect=", ".join(lab.defect_ids))


def _counts(rows: Sequence[Row]) -> dict[str, int]:
    out = {"total": len(rows), "ok": 0}
    for r in rows:
        k = "ok" if r.verdict == VERDICT_OK else r.verdict.replace(" ", "_")
        out[k] = out.get(k, 0) + 1
    return out


def _mark_defects(rows: list[Row], lab: Optional[labels.Label]) -> list[Row]:
    if lab is None or not lab.known_defect:
        return rows
    return [r if r.ok else _with_defect(r, lab) for r in rows]


def compare_traces(sides: Sides, bars: Bars, selectors: Sequence[keys.Selector],
                   out: Outcome) -> tuple[bool, Optional[labels.Label]]:
    """Align the traces into ``out``: (diverged, the label of the divergence)."""
    if not sides.trace_supported:
        out.update.update(trace_compared=False,
                          trace_note=sides.no_trace_note
                          or f"image-only reference ({bars.reference_kind}): the trace was not compared")
        return False, None
    out.records = {"c": traces.parse(sides.c_stdout), "torch": traces.parse(sides.torch_stdout)}
    py_recs = [r for r in out.records["torch"] if r.source == "PY"]
    all_rows = align([r for r in out.records["c"] if r.source == "C"], py_recs, bars.tolerances)
    rows = narrow(all_rows, selectors) if selectors else all_rows
    lab = labels.label(rows, bars.argv, bars.mode, bars.reference_traced, context=all_rows)
    rows = _mark_defects(rows, lab)
    lab_all = lab if not selectors else labels.label(all_rows, bars.argv, bars.mode, bars.reference_traced)
    out.all_rows = [row_model(r) for r in _mark_defects(all_rows, lab_all)]
    div = first_divergence(rows)
    out.update.update(trace_compared=True, rows=[row_model(r) for r in rows] if selectors else out.all_rows,
                      first_divergence=row_model(div.first) if div.first else None,
                      downstream=[r.label for r in div.downstream], counts=_counts(rows))
    if not py_recs:
        out.update["trace_note"] = "the torch engine printed no TRACE_PY lines"
    return div.found, lab


def compare_images(sides: Sides, bars: Bars, trace_label: Optional[labels.Label],
                   out: Outcome) -> tuple[bool, Optional[labels.Label]]:
    """Measure the images into ``out``: (diverged, the label that explains it)."""
    if not (sides.want_image and sides.c_image is not None and sides.torch_image is not None):
        out.update["image_note"] = "not compared (--trace-only)" if not sides.want_image else "not compared (no image)"
        if not out.update.get("trace_compared"):
            out.update["trace_note"] = (out.update.get("trace_note", "") + "; nothing was compared").lstrip("; ")
        return False, trace_label
    m = image_metrics(sides.c_image, sides.torch_image, bars.image)
    out.update["image"] = jsonable(m.as_dict())
    if m.ok:
        return False, trace_label
    if trace_label is not None:
        return True, trace_label
    if not sides.trace_supported:
        return True, labels.label_image_only(bars.argv, bars.mode, bars.reference_fixes)
    return True, labels.Label(labels.REGRESSION)


def decide(sides: Sides, bars: Bars, selectors: Sequence[keys.Selector], allow_known_defects: bool) -> Outcome:
    """Compare both sides and set status, exit code, label and (when they apply) the allowed defects."""
    out = Outcome()
    trace_diverged, trace_label = compare_traces(sides, bars, selectors, out)
    image_diverged, lab = compare_images(sides, bars, trace_label, out)
    if trace_diverged or image_diverged:
        allowed = allow_known_defects and lab is not None and lab.known_defect
        out.update.update(status="divergence", exit_code=int(ExitCode.PARITY if allowed else ExitCode.DIVERGENCE),
                          label=lab.text if lab else labels.REGRESSION,
                          allowed_defects=list(lab.defect_ids) if allowed and lab else [])
    elif not out.update.get("trace_compared") and "image" not in out.update:
        # Nothing compared is not parity.
        out.update.update(status="input-error", exit_code=int(ExitCode.USAGE),
                          failure="nothing to compare: image-only reference and --trace-only")
    return out
