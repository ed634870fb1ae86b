"""Builders shared by the regression-service tests: ParityResults and ledger rows without a run."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Optional

from harness.service import ledger
from harness.model.result import ParityResult, RunInfo

T0 = datetime(2030, 1, 1, tzinfo=timezone.utc)


def trace_row(key: str, c: list, torch: list, *, kind: str = "pixel", occurrence: int = 0,
              phi_tic: Optional[int] = None, atol: float = 1e-6) -> dict[str, Any]:
    diffs = [abs(a - b) for a, b in zip(c, torch)]
    d = max(diffs)
    label = (f"phi[{phi_tic}].{key}" if kind == "phi" else key) + (f"#{occurrence}" if occurrence else "")
    return dict(label=label, kind=kind, key=key, stage="test", occurrence=occurrence, phi_tic=phi_tic,
                components=[], component=None, c=c, torch=torch, abs_diff=d, worst_component=None,
                atol=atol, rtol=0.0, verdict="ok" if d <= atol else "diverged")


def make_result(case: str = "phi_carryover", *, status: str = "parity", k_delta: float = 0.0,
                image_delta: float = 0.0, evidence_dir: Optional[str] = None,
                mode: str = "c-parity") -> ParityResult:
    rows = [trace_row("pix0_vector_meters", [0.1, 0.2, 0.3], [0.1, 0.2, 0.3]),
            trace_row("hkl_frac", [1.0, 2.0, 3.0], [1.0, 2.0 + k_delta, 3.0]),
            trace_row("k_frac", [2.0], [2.0 + k_delta / 2], kind="phi", phi_tic=1)]
    first = next((r for r in rows if r["verdict"] != "ok"), None)
    diverged = status == "divergence"
    image = {"ok": image_delta == 0, "max_abs_diff": image_delta, "rel_to_max": image_delta / 10.0,
             "correlation": 1.0 - image_delta, "n_failed": int(image_delta > 0), "worst_pixel": [3, 4]}
    return ParityResult.model_validate(dict(
        case=case, mode=mode, pixel=(10, 12), status=status, exit_code=1 if diverged else (0 if status == "parity" else 3),
        label="regression" if diverged else None,
        reference=RunInfo(runner="c-recorded", description="recording", trace_supported=True, wall_s=0.5,
                          exit_code=0, provenance={"recording": case, "manifest_sha256": "ab" * 32}),
        engine=RunInfo(runner="torch", description="torch", trace_supported=True, wall_s=1.25, exit_code=0,
                       provenance={"device": "cpu", "dtype": "float64", "mode": mode}),
        trace_compared=True, rows=rows, first_divergence=first, image=image, evidence_dir=evidence_dir))


def append(lg: ledger.Ledger, case: str, status: str, i: int, *, commit: str = "c0", branch: str = "main",
           dirty: bool = False, run_id: Optional[str] = None, **kw: Any) -> int:
    row = ledger.row_from_result(make_result(case, status=status, **kw), run_id=run_id or f"run{i}",
                                 git=(commit, dirty, branch), now=T0 + timedelta(hours=i))
    return lg.append(row)


def silent_ledger(path: Path) -> ledger.Ledger:
    return ledger.Ledger(path, notice=lambda msg: None)
