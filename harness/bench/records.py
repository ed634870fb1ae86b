"""Where a bench run is kept: results/bench/<stamp>/bench.json (JSON-safe) and one run-ledger
row per benched case."""
from __future__ import annotations

import math
from datetime import datetime
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np

from harness.bench.measurement import C, ENGINE
from harness.report.evidence import EvidenceDir

#: Evidence goes to results/<EVIDENCE_NAME>/<stamp>/bench.json.
EVIDENCE_NAME = "bench"


def json_safe(obj: Any) -> Any:
    """JSON-safe: non-finite floats become null, tuples lists, paths strings."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, (np.floating, np.integer)):
        return json_safe(obj.item())
    return obj


def write_evidence(doc: dict[str, Any], results_dir: Path, report_text: str = "",
                   env: Optional[dict[str, Any]] = None,
                   notice: Callable[[str], None] = lambda msg: None) -> Path:
    """results/bench/<stamp>/ with bench.json (and report.txt, env.json); returns the directory.

    Then one row per case goes into the run ledger (results/ledger.sqlite) when it exists."""
    with EvidenceDir(results_dir, EVIDENCE_NAME) as ev:
        ev.write_json("bench.json", doc)
        if report_text:
            ev.write_text("report.txt", report_text)
        if env is not None:
            ev.write_json("env.json", env)
        final = ev.commit()
    append_ledger(doc, results_dir, final, notice)
    return final


def ledger_rows(doc: dict[str, Any], evidence: Path) -> list[dict[str, Any]]:
    """One run-ledger row per benched case (command "bench"): the float64 CPU engine's parity
    verdict over all its runs against the recording, its median wall and the C's at the same
    thread count (the first thread count benched)."""
    from harness.service import ledger  # noqa: PLC0415 - the ledger is optional for the bench

    run_id = ledger.new_run_id()
    rows = []
    for c in doc.get("cases", []):
        f64 = [m for m in c["measurements"]
               if m["runner"] == ENGINE and m["device"] == "cpu" and m["dtype"] == "float64"]
        if not f64:
            continue
        main = f64[0]
        if any(m["error"] for m in f64):
            status, code = "runner-failure", 3
        elif all(m["parity_ok"] for m in f64):
            status, code = "parity", 0
        else:
            status, code = "divergence", 1
        cm = next((m for m in c["measurements"] if m["runner"] == C and m["threads"] == main["threads"]), None)
        img = next((m["parity"] for m in f64 if m["parity"] and not m["parity"].get("ok")), main["parity"]) or {}
        finished = doc.get("finished_utc")
        rows.append(ledger.build_row(
            command="bench", case_name=c["name"], status=status, exit_code=code, run_id=run_id, image=img,
            now=datetime.fromisoformat(finished) if finished else None,
            mode=c["mode"], device="cpu", dtype="float64", reference_runner="c-recorded",
            reference_id=c["recording"]["name"], reference_sha256=c["recording"].get("manifest_sha256"),
            wall_reference_s=(cm["wall"] or {}).get("median") if cm else None,
            wall_engine_s=(main["wall"] or {}).get("median"), evidence_dir=str(evidence)))
    return rows


def append_ledger(doc: dict[str, Any], results_dir: Path, evidence: Path,
                  notice: Callable[[str], None] = lambda msg: None) -> int:
    """Append the bench's rows to results/ledger.sqlite if that ledger exists (never creates it).

    Returns the number of rows written; a ledger problem is reported through ``notice`` and
    never changes the bench's outcome.
    """
    try:
        from harness.service import ledger  # noqa: PLC0415
    except ImportError:
        return 0
    path = ledger.ledger_path(results_dir)
    if not path.is_file():
        return 0
    n = 0
    try:
        book = ledger.Ledger(path, notice=notice)
        for row in ledger_rows(doc, evidence):
            book.append(row)
            n += 1
    except (ledger.LedgerError, OSError, ValueError) as e:
        notice(f"ledger not updated: {e}")
    return n
