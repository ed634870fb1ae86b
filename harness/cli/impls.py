"""`nbparity impls`: the registered implementations, what each can do and how it prints."""
from __future__ import annotations

import argparse
import json

from harness.cli.common import CliConsole
from harness.model.errors import UsageError
from harness.registry import implementations as impls
from harness.report.console import rows_table

NAME = "impls"


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser(NAME, help="list the implementations --impl/--vs can name")
    p.add_argument("--impls", metavar="FILE", help="TOML file with more implementations (default: $NB_IMPLS)")
    p.add_argument("--json", action="store_true")
    return p


def _can(impl: impls.Implementation) -> str:
    c = impl.can
    words = [w for w, ok in (("trace", c.trace), ("phi", c.phi_lines), ("smv", c.smv), ("pgm", c.pgm)) if ok]
    return " ".join(words + ["/".join(c.devices), "/".join(c.dtypes)])


def _command(impl: impls.Implementation) -> str:
    """Its expanded command, or the template and why it cannot be expanded here (a listing is
    not a run: an unset variable is shown, not raised)."""
    if impl.kind != "command":
        return str(impl.entry)
    try:
        return " ".join(impl.argv_prefix())
    except UsageError as e:
        return f"(not runnable here: {e.message})"


def handle(args: argparse.Namespace, console: CliConsole) -> int:
    registry = impls.load_registry(args.impls)
    if args.json:
        print(json.dumps({n: i.model_dump(mode="json") for n, i in registry.items()}, indent=2))
        return 0
    rows = ((i.name, i.kind, _command(i),
             i.trace_prefix if i.can.trace else "(image only)", _can(i),
             ", ".join(f"{a}→{b}" for a, b in i.keys.items()) + ("; " if i.keys and i.units else "")
             + ", ".join(f"{k} in {u.unit}" for k, u in i.units.items()), i.description)
            for i in registry.values())
    console.out.print(rows_table(rows, ("name", "kind", "command", "trace", "can", "keys / units", "description"),
                                 title="implementations (--impl NAME --vs NAME)"))
    return 0
