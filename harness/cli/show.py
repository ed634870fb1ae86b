"""`nbparity show CASE`: one case's argv, inputs, tolerances and references."""
from __future__ import annotations

import argparse
import json
import shlex

from rich.table import Table

from harness.cli.common import CliConsole, cases_dir
from harness.registry.cases import Case, Registry
from harness.runners.choose import choose

NAME = "show"


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser(NAME, help="show one case")
    p.add_argument("case")
    p.add_argument("--json", action="store_true")
    return p


def handle(args: argparse.Namespace, console: CliConsole) -> int:
    case = Registry(cases_dir(args)).get(args.case)
    if args.json:
        print(json.dumps(case.model_dump(mode="json"), indent=2))
        return 0
    console.out.print(case_table(case))
    return 0


def case_table(case: Case) -> Table:
    t = Table(title=f"case {case.name}", show_header=False)
    t.add_column("field", style="bold")
    t.add_column("value", overflow="fold")
    t.add_row("description", case.description)
    t.add_row("mode", case.mode)
    t.add_row("argv", shlex.join(case.argv))
    t.add_row("inputs", ", ".join(case.inputs) + f"  (data root: {case.data_root})")
    t.add_row("trace pixels", ", ".join(f"slow {s} fast {f}" for s, f in case.trace_pixels))
    t.add_row("threads / timeout", f"{case.c_threads} / {case.timeout_s:g} s")
    tol = case.tolerance
    t.add_row("trace tolerance", f"|Δ| ≤ {tol.atol:g} + {tol.rtol:g}·|C|" +
              "".join(f"; {k}: atol {v.atol} rtol {v.rtol}" for k, v in tol.keys.items()))
    t.add_row("image bar", f"max|Δ| ≤ {case.image.atol:g} + {case.image.rtol_of_max:g}·max|C|" +
              (f", correlation ≥ {case.image.min_correlation}" if case.image.min_correlation is not None else ""))
    for m, r in case.references.items():
        live = f"by default: {choose(r).why}"  # the one live-vs-recorded rule
        t.add_row(f"reference ({m})", f"{r.kind}; recording {r.recording or '—'}"
                  f"{' sha256 ' + r.manifest_sha256 if r.manifest_sha256 else ''}; {live}")
    t.add_row("tags", ", ".join(case.tags))
    if case.expected_failure:
        t.add_row("expected failure", case.expected_failure)
    return t
