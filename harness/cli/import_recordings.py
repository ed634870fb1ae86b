"""`nbparity import-recordings`: make or refresh registry entries (cases/*.toml) from recorded C runs."""
from __future__ import annotations

import argparse
from pathlib import Path

from rich.table import Table
from rich.text import Text

from harness.cli.common import CliConsole, cases_dir, golden_dir
from harness.model.errors import ExitCode
from harness.registry import importer

NAME = "import-recordings"


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    im = subparsers.add_parser(NAME, help="make/refresh registry entries (cases/*.toml) from recorded C runs")
    im.add_argument("dir", nargs="?", help="recordings root (default: --golden-dir / NB_GOLDEN_DIR)")
    im.add_argument("names", nargs="*", help="only these recordings (default: all)")
    im.add_argument("--check", action="store_true",
                    help="write nothing; exit 1 when an entry is missing or out of date")
    im.add_argument("--dry-run", action="store_true", help="show what would change, write nothing")
    return im


def handle(args: argparse.Namespace, console: CliConsole) -> int:
    golden = Path(args.dir).expanduser().resolve() if args.dir else golden_dir(args)
    target = cases_dir(args)
    plan = importer.plan_import(golden, target, args.names or None)
    for p in plan.problems:
        console.note(f"skipped {p}")
    t = Table(title=f"import-recordings {golden} → {target}")
    for col in ("case file", "action", "recordings"):
        t.add_column(col)
    for f in plan.files:
        if f.changes or not (args.check or args.dry_run):
            t.add_row(f.path.name, Text(f.action, style="green" if f.action == "unchanged" else "yellow"),
                      ", ".join(f.recordings))
    changed = plan.changed
    console.out.print(t)
    for pin in (p for f in changed for p in f.pins):  # a moved pin is never accepted silently
        console.plain(f"pin {pin}")
    if args.check:
        if changed or plan.problems:
            console.plain(f"{len(changed)} case files missing or out of date; "
                          f"run `nbparity import-recordings {golden}`")
            return int(ExitCode.DIVERGENCE)
        console.plain(f"registry up to date with {golden} ({len(plan.files)} case files)")
        return 0
    if args.dry_run:
        console.plain(f"dry run: {len(changed)} case files would change")
        return 0
    written = importer.write_plan(plan)
    console.plain(f"wrote {len(written)} case files ({sum(f.action == 'create' for f in written)} new); "
                  f"{len(plan.files) - len(written)} unchanged")
    return int(ExitCode.USAGE) if plan.problems else 0
