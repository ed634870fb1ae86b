"""`nbparity keys`: the trace keys in dataflow order, with their stages and aliases."""
from __future__ import annotations

import argparse
import json

from engine.outputs import trace as catalog
from harness.cli.common import CliConsole
from harness.compare import keys as keymod
from harness.report.console import rows_table

NAME = "keys"


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser(NAME, help="list trace keys, stages and aliases")
    p.add_argument("--json", action="store_true")
    return p


def handle(args: argparse.Namespace, console: CliConsole) -> int:
    rows = []
    for k in catalog.KEYS:
        aliases = sorted(w for w, sels in keymod.ALIASES.items()
                         if w != k.name and any(s.name == k.name and (s.kind in (None, k.kind)) for s in sels))
        rows.append({"stage": k.stage, "kind": k.kind, "key": k.name, "components": list(k.components),
                     "aliases": aliases, "doc": k.doc})
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    console.out.print(rows_table(((r["stage"], r["kind"], r["key"], " ".join(r["components"]),
                                   ", ".join(r["aliases"]), r["doc"]) for r in rows),
                                 ("stage", "kind", "key", "components", "aliases", "note"),
                                 title="trace keys in dataflow order (KEY.COMPONENT, phi:FIELD and source:FIELD also work)"))
    return 0
