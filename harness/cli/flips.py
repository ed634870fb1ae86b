"""`nbparity flips`: cases whose verdict changed between their last two runs."""
from __future__ import annotations

import argparse
import json

from rich.table import Table
from rich.text import Text

from harness.cli.common import CliConsole
from harness.cli.history import add_run_filters, read_ledger
from harness.model.errors import ExitCode
from harness.service import ledger

NAME = "flips"


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    f = subparsers.add_parser(NAME, help="cases whose verdict changed between their last two comparable runs "
                                         "(same case, mode, dtype, device, reference and run kind)")
    f.add_argument("--strict", action="store_true", help="exit 1 when a case went from green to not")
    f.add_argument("--json", action="store_true")
    add_run_filters(f)
    return f


def handle(args: argparse.Namespace, console: CliConsole) -> int:
    fl = ledger.flips(read_ledger(args, console))
    if args.json:
        print(json.dumps([{**f.__dict__, "regressed": f.regressed} for f in fl], indent=2))
    elif not fl:
        console.out.print("no verdict flips: every case has the verdict of its previous run")
    else:
        t = Table(title=f"{len(fl)} cases changed verdict between their last two runs")
        for c in ("case", "runs", "before", "after", "commits", "first divergence now"):
            t.add_column(c, overflow="fold")
        for f in fl:
            runs = "/".join(x for x in (f.kind, f.mode, f.device, f.dtype, f.reference_id) if x)
            t.add_row(f.case_name, runs, f"{f.before_outcome} ({f.before})",
                      Text(f"{f.after_outcome} ({f.after})", style="bold red" if f.regressed else "green"),
                      f"{(f.before_commit or '?')[:10]} → {(f.after_commit or '?')[:10]}", f.first_key or "—")
        console.out.print(t)
    return int(ExitCode.DIVERGENCE) if args.strict and any(f.regressed for f in fl) else 0
