"""Ledger rows: the one builder every command's row goes through, and the |Δ| views of them.

A row says what ran (command kind, case, mode, device, dtype, reference), against which code
(git state), what the verdict was (status, exit code, and the outcome that decides green) and
the numbers behind it (trace |Δ| per key, image metrics, wall times).
"""
from __future__ import annotations

import math
import uuid
from datetime import datetime, timezone
from typing import Any, Iterable, Mapping, Optional

from harness.compare import keys
from harness.model.environment import GitState, checkout

#: The outcomes a row can have; pass and xfail are green (what the gate says).
GREEN_OUTCOMES = ("pass", "xfail")


def new_run_id() -> str:
    return datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:8]


def num(v: Any) -> Optional[float]:
    """A float for SQLite; NaN/inf (or their JSON spellings) become NULL."""
    if v is None or isinstance(v, bool):
        return None
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def _as_dict(obj: Any, exclude: Optional[set[str]] = None) -> dict:
    if obj is None:
        return {}
    if isinstance(obj, Mapping):
        return dict(obj)
    if hasattr(obj, "model_dump"):
        return obj.model_dump(mode="json", exclude=exclude)
    return dict(vars(obj))


_TRACE_ROW_FIELDS = ("kind", "key", "occurrence", "phi_tic", "abs_diff", "verdict", "c", "torch")


def _trace_row(x: Any) -> dict[str, Any]:
    """The ledger's fields of one trace row: a RowModel (values already JSON-safe) or its JSON
    dict (one type check per row: a run has thousands)."""
    d = x if isinstance(x, Mapping) else vars(x)  # a RowModel keeps its fields in __dict__
    row = {name: d.get(name) for name in _TRACE_ROW_FIELDS}
    row["abs_diff"] = num(row["abs_diff"])
    return row


def outcome_of(exit_code: int) -> str:
    """The outcome of a run outside the gate: its exit code (0 parity, known defects allowed)."""
    return "pass" if exit_code == 0 else ("fail" if exit_code == 1 else "error")


def build_row(*, command: str, case_name: str, status: str, exit_code: int, run_id: Optional[str] = None,
              outcome: Optional[str] = None, git: Optional[GitState] = None, now: Optional[datetime] = None,
              image: Optional[Mapping[str, Any]] = None, **fields: Any) -> dict[str, Any]:
    """A complete ledger row: the columns every row has, the image columns from its metrics
    dict, and ``fields`` for the rest (mode, device, dtype, reference_*, first_*, wall_*, ...)."""
    git = git if git is not None else checkout()
    img = dict(image or {})
    worst = img.get("worst_pixel") or (None, None)
    row = {
        "run_id": run_id or new_run_id(), "command": command,
        "time_utc": (now or datetime.now(timezone.utc)).isoformat(timespec="microseconds"),
        "case_name": case_name, "commit_sha": git.commit,
        "dirty": None if git.dirty is None else int(bool(git.dirty)), "branch": git.branch,
        "status": status, "exit_code": int(exit_code), "outcome": outcome or outcome_of(int(exit_code)),
        "image_ok": None if not img else int(bool(img.get("ok"))),
        "image_max_abs_diff": num(img.get("max_abs_diff")), "image_rel_to_max": num(img.get("rel_to_max")),
        "image_correlation": num(img.get("correlation")), "image_n_failed": img.get("n_failed"),
        "image_worst_slow": worst[0], "image_worst_fast": worst[1], "image_metrics": img or None,
    }
    row.update(fields)
    return row


def row_from_result(result: Any, *, command: str = "run", run_id: Optional[str] = None,
                    device: Optional[str] = None, dtype: Optional[str] = None, outcome: Optional[str] = None,
                    git: Optional[tuple[Optional[str], Optional[bool], Optional[str]] | GitState] = None,
                    now: Optional[datetime] = None) -> dict[str, Any]:
    """The ledger row of a ParityResult (or its JSON dict).

    device/dtype fill in when the engine never ran (its provenance is then empty); git is
    (commit, dirty, branch) and defaults to this checkout's state; outcome is the gate's
    (pass, fail, xfail, xpass, error), else derived from the exit code.
    """
    # The trace rows are read as they are: dumping thousands of them to dicts cost a run 0.3 s.
    r = _as_dict(result, exclude={"rows"})
    trace_in = (result.get("rows") if isinstance(result, Mapping) else getattr(result, "rows", None)) or []
    ref, eng = r.get("reference") or {}, r.get("engine") or {}
    ref_prov, eng_prov = ref.get("provenance") or {}, eng.get("provenance") or {}
    if ref_prov.get("binary_sha256"):
        ref_id = ref_sha = ref_prov.get("binary_sha256")
    else:
        ref_id, ref_sha = ref_prov.get("recording"), ref_prov.get("manifest_sha256")
    trace_rows = [_trace_row(x) for x in trace_in]
    fd = _as_dict(r.get("first_divergence")) or {}
    pixel = r.get("pixel") or (None, None)
    state = GitState(*git) if isinstance(git, tuple) else git
    return build_row(
        command=command, case_name=r["case"], status=r["status"], exit_code=int(r["exit_code"]), run_id=run_id,
        outcome=outcome, git=state, now=now, image=r.get("image"),
        mode=r.get("mode"), pixel_slow=pixel[0], pixel_fast=pixel[1],
        device=eng_prov.get("device") or device, dtype=eng_prov.get("dtype") or dtype,
        reference_runner=ref.get("runner"), reference_id=ref_id, reference_sha256=ref_sha,
        reference_build=ref_prov.get("build"),
        label=r.get("label"), first_key=fd.get("label"), first_delta=num(fd.get("abs_diff")),
        key_deltas=max_delta_per_key(trace_rows), trace_rows=trace_rows,
        wall_reference_s=num(ref.get("wall_s")), wall_engine_s=num(eng.get("wall_s")),
        evidence_dir=r.get("evidence_dir"))


def max_delta_per_key(trace_rows: Iterable[Mapping[str, Any]]) -> dict[str, Optional[float]]:
    """{key: largest |Δ| over its occurrences and φ tics}; φ-line fields as ``phi:FIELD``."""
    out: dict[str, Optional[float]] = {}
    for row in trace_rows:
        name = ("phi:" if row.get("kind") == "phi" else "") + str(row.get("key"))
        d = num(row.get("abs_diff"))
        prev = out.get(name)
        out[name] = d if prev is None else (prev if d is None else max(prev, d))
    return out


def _component_delta(row: Mapping[str, Any], i: int) -> Optional[float]:
    c, t = row.get("c") or (), row.get("torch") or ()
    if i >= min(len(c), len(t)) or num(c[i]) is None or num(t[i]) is None:
        return None
    return num(abs(num(t[i]) - num(c[i])))


def selected_delta(trace_rows: Iterable[Mapping[str, Any]], word: str) -> Optional[float]:
    """Largest |Δ| over the rows a ``--keys`` word selects (a component alias such as k_frac
    compares that one component). None when no row matches or nothing numeric was compared."""
    sels = keys.resolve(word)  # KeyError with a one-line message for unknown words
    best: Optional[float] = None
    for row in trace_rows:
        sel = next((s for s in sels if s.matches(str(row.get("kind")), str(row.get("key")))), None)
        if sel is None:
            continue
        d = num(row.get("abs_diff")) if sel.component is None else _component_delta(row, sel.component)
        if d is not None:
            best = d if best is None else max(best, d)
    return best
