"""`nbparity clean`: which evidence directories under results/ may go.

results/<case>/<UTC stamp>/ grows by one directory per run. A plan keeps the newest ``keep``
runs of each case and/or everything younger than ``older_than``, and never touches:
the run ``latest`` points at, any run the ledger records as the last green run on main (for
each series: case, mode, dtype, device, reference, command), and anything that is not a
committed evidence directory (staging folders, the ledger, gate reports, history plots).
"""
from __future__ import annotations

import re
import shutil
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Iterable, Optional

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # annotations only: pandas takes ~0.3 s to load
    import pandas as pd

from harness.model.errors import UsageError
from harness.model.suggest import did_you_mean
from harness.registry.cases import SLUG
from harness.report.evidence import list_runs, resolve_latest
from harness.service import ledger

#: A committed evidence directory's name (harness.report.evidence.utc_stamp, plus a race suffix).
STAMP = re.compile(r"^(\d{8}T\d{6}\.\d{6})Z(?:-\d+)?$")
_AGE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_age(text: str) -> timedelta:
    """'30m', '12h', '7d', '2w' → timedelta (argparse type for --older-than)."""
    m = _AGE.match(text)
    if not m:
        raise ValueError(f"expected an age such as 30m, 12h, 7d or 2w, got {text!r}")
    return timedelta(seconds=float(m.group(1)) * _UNIT_S[m.group(2)])


def run_time(run_dir: Path) -> datetime:
    """When a run was made: its stamp (UTC), else the directory's mtime."""
    m = STAMP.match(run_dir.name)
    if m:
        return datetime.strptime(m.group(1), "%Y%m%dT%H%M%S.%f").replace(tzinfo=timezone.utc)
    return datetime.fromtimestamp(run_dir.stat().st_mtime, timezone.utc)


@dataclass
class CleanPlan:
    delete: list[Path] = field(default_factory=list)
    kept: dict[Path, str] = field(default_factory=dict)   # protected run → why

    def size_bytes(self) -> int:
        return sum(f.stat().st_size for d in self.delete for f in d.rglob("*") if f.is_file())


def protected_by_ledger(df: pd.DataFrame, branch: str = "main") -> set[Path]:
    """Evidence directories of the last green run on ``branch`` of every series in the ledger."""
    if df.empty:
        return set()
    out: set[Path] = set()
    for _, g in df.groupby(list(ledger.LIKE), dropna=False, sort=False):
        row = g.iloc[-1].to_dict()
        green = ledger.last_green(df, str(row["case_name"]), branch, like=row)
        if green is not None and isinstance(green.get("evidence_dir"), str):
            out.add(Path(green["evidence_dir"]).resolve())
    return out


def _case_roots(results_dir: Path, cases: Iterable[str]) -> list[Path]:
    present = sorted(p for p in results_dir.iterdir() if p.is_dir() and SLUG.match(p.name)) if results_dir.is_dir() else []
    names = list(cases)
    for n in names:
        if not (results_dir / n).is_dir():
            raise UsageError(f"--case: no runs of {n!r} under {results_dir}"
                             + did_you_mean(n, [p.name for p in present]))
    return [results_dir / n for n in names] if names else present


def plan(results_dir: Path, df: pd.DataFrame, *, keep: Optional[int] = None, older_than: Optional[timedelta] = None,
         cases: Iterable[str] = (), now: Optional[datetime] = None) -> CleanPlan:
    """What to delete: runs beyond the newest ``keep`` of their case and (when given) older than
    ``older_than``; either criterion alone when only one is given."""
    if keep is None and older_than is None:
        raise UsageError("clean: say what to remove: --keep N (newest N runs per case) and/or --older-than AGE")
    if keep is not None and keep < 1:
        raise UsageError(f"--keep: expected at least 1 (the latest run is always kept), got {keep}")
    now = now or datetime.now(timezone.utc)
    green = protected_by_ledger(df)
    out = CleanPlan()
    for root in _case_roots(results_dir, cases):
        runs = [r for r in list_runs(root) if STAMP.match(r.name)]
        latest = resolve_latest(root)
        for i, run in enumerate(sorted(runs, key=lambda r: r.name, reverse=True)):
            if latest is not None and run.resolve() == latest.resolve():
                out.kept[run] = "latest run of the case"
            elif run.resolve() in green:
                out.kept[run] = "last green run on main (ledger)"
            elif (keep is None or i >= keep) and (older_than is None or now - run_time(run) > older_than):
                out.delete.append(run)
    return out


def apply(p: CleanPlan) -> int:
    """Delete the planned directories; how many went."""
    for d in p.delete:
        shutil.rmtree(d)
    return len(p.delete)
