"""`nbparity list`: the cases in the registry, with their references and tags."""
from __future__ import annotations

import argparse
import json

from rich.table import Table

from harness.cli.common import CliConsole, cases_dir
from harness.model.errors import ExitCode
from harness.registry.cases import Registry

NAME = "list"


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser(NAME, help="list cases")
    p.add_argument("--tag", action="append", default=[], help="only cases with this tag (repeatable)")
    p.add_argument("--json", action="store_true")
    return p


def handle(args: argparse.Namespace, console: CliConsole) -> int:
    cases, errors = Registry(cases_dir(args)).select(args.tag or None)
    for e in errors:
        console.err.print(e.message, markup=False, highlight=False)
    if args.json:
        print(json.dumps([{"name": c.name, "mode": c.mode, "tags": c.tags, "description": c.description,
                           "references": {m: r.model_dump() for m, r in c.references.items()}}
                          for c in cases], indent=2))
    else:
        t = Table(title=f"{len(cases)} cases" + (f" ({len(errors)} invalid case files)" if errors else ""))
        for col in ("name", "mode", "pixel", "references", "tags", "description"):
            t.add_column(col, overflow="fold")
        for c in cases:
            refs = "; ".join(f"{m}: {r.recording or 'live'} ({r.kind})" for m, r in c.references.items())
            t.add_row(c.name, c.mode, " ".join(f"({s},{f})" for s, f in c.trace_pixels), refs,
                      ", ".join(c.tags), c.description[:80] + ("…" if len(c.description) > 80 else ""))
        console.out.print(t)
    return int(ExitCode.USAGE) if errors else 0
