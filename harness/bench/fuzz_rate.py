"""The fuzzer's throughput for `nbparity bench`: examples per minute, in-process and on a two-worker
Dask LocalCluster (issue 14 asks for both, on this machine's cores).

Each row runs the real command in a fresh process (`nbparity fuzz --examples N --seed S
--no-write --workers W`, a private results directory so no example database is replayed) and
reads the rate from its summary line: the campaign's own rate (from its first example, after
imports and the cluster's start) and the whole command's (its wall clock, start-up included).
Against the live C where one is built, else with the engine standing in for it (`--vs engine`).
A divergence's shrink is cut after one second: the row measures drawing and judging examples.
"""
from __future__ import annotations

import re
import subprocess
import sys
import tempfile
import time
from typing import Any, Optional

from harness.runners.choose import binary_problem, find_binary

SEED = 14
#: Examples per row: the full bench, and --quick (in-process only: a LocalCluster's start costs more).
EXAMPLES, QUICK_EXAMPLES = 120, 10
TIMEOUT_S = 900.0
_SUMMARY = re.compile(r"^(\d+) examples in \S+ s of runs \(([\d.]+)/min\), (\d+) shrink runs")


def _vs() -> tuple[list[str], str]:
    binary = find_binary("instrumented-c")
    if binary is None or binary_problem(binary, "instrumented-c"):
        return ["--vs", "engine"], "engine (no live C)"
    return [], "live C"


def _row(workers: int, examples: int) -> dict[str, Any]:
    vs_args, vs = _vs()
    row: dict[str, Any] = {"workers": workers, "examples": examples, "vs": vs, "per_min": None,
                           "per_min_wall": None, "wall_s": None, "error": None}
    with tempfile.TemporaryDirectory(prefix="nbparity-fuzzrate-") as tmp:
        cmd = [sys.executable, "-m", "harness", "--results-dir", tmp, "fuzz", "--examples", str(examples),
               "--seed", str(SEED), "--no-write", "--shrink-budget", "1", "--workers", str(workers), *vs_args]
        row["command"] = " ".join(["nbparity", "--results-dir", "TMP", *cmd[5:]])
        t0 = time.monotonic()
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT_S, check=False)
        except subprocess.TimeoutExpired:
            row["error"] = f"timed out after {TIMEOUT_S:g} s"
            return row
        wall = time.monotonic() - t0
    m = next((m for line in done.stdout.splitlines() if (m := _SUMMARY.match(line.strip()))), None)
    if done.returncode not in (0, 1) or m is None:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        row["error"] = f"exit {done.returncode}: {last[:200]}"
        return row
    row.update(per_min=float(m.group(2)), per_min_wall=60.0 * int(m.group(1)) / wall, wall_s=wall,
               shrink_runs=int(m.group(3)))
    return row


def measure(quick: bool) -> dict[str, Any]:
    """{'rows': [...], 'note': ...}: in-process always; the two-worker LocalCluster unless quick."""
    if quick:
        return {"rows": [_row(1, QUICK_EXAMPLES)],
                "note": "--quick: in-process only, 10 examples (the two-worker LocalCluster row is in the full bench)"}
    return {"rows": [_row(1, EXAMPLES), _row(2, EXAMPLES)], "note": None}


def summary_lines(doc: Optional[dict[str, Any]]) -> list[str]:
    """One line per row for the bench's footer."""
    if not doc:
        return []
    out = []
    for r in doc["rows"]:
        where = "in-process" if r["workers"] == 1 else f"LocalCluster of {r['workers']} workers"
        if r["error"]:
            out.append(f"fuzz throughput ({where}, vs {r['vs']}): error: {r['error']}")
            continue
        out.append(f"fuzz throughput ({where}, vs {r['vs']}): {r['per_min']:.0f} examples/min "
                   f"({r['per_min_wall']:.0f}/min with start-up; {r['examples']} examples in {r['wall_s']:.0f} s, "
                   f"{r['shrink_runs']} shrink runs): `{r['command']}`")
    if doc.get("note"):
        out.append(f"fuzz throughput: {doc['note']}")
    return out
