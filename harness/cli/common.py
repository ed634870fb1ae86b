"""What every subcommand shares: the parser class, the global options, the consoles.

A subcommand module (harness/cli/<name>.py) exposes ``NAME``, ``register(subparsers)`` returning
its parser, and ``handle(args, console) -> int``; harness/cli/registry.py lists them.
"""
from __future__ import annotations

import argparse
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import NoReturn, Sequence

from rich.console import Console

from harness.model import paths
from harness.model.errors import ExitCode
from harness.model.suggest import argparse_hint

#: Options that may come before or after the subcommand (``nbparity gate --results-dir X``).
GLOBAL_OPTIONS = (
    ("--cases-dir", "case files (default: cases/ or NB_CASES_DIR)"),
    ("--golden-dir", "recorded C runs (default: ../shared/golden or NB_GOLDEN_DIR)"),
    ("--results-dir", "evidence root (default: results/ or NB_RESULTS_DIR)"),
)


class Parser(argparse.ArgumentParser):
    """argparse exits 2 on a usage error too; this keeps the message to one line."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(int(ExitCode.USAGE), f"{self.prog}: error: {argparse_hint(message, _options(self))}\n")


def _options(parser: argparse.ArgumentParser) -> set[str]:
    """Every --option of the parser and its subcommands (for "did you mean" on a mistyped one)."""
    found = set(parser._option_string_actions)
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                found |= set(sub._option_string_actions)
    return {o for o in found if o.startswith("--")}


def add_global_options(parser: argparse.ArgumentParser, *, after_subcommand: bool) -> None:
    """After the subcommand the default is SUPPRESS, so an option given before it survives."""
    group = parser.add_argument_group("global options (before or after the subcommand)")
    for flag, text in GLOBAL_OPTIONS:
        if after_subcommand:
            group.add_argument(flag, default=argparse.SUPPRESS, help=text)
        else:
            group.add_argument(flag, help=text)
    group.add_argument("--debug", action="store_true",
                       default=argparse.SUPPRESS if after_subcommand else False,
                       help="show the traceback of an unexpected error (also NB_DEBUG=1)")


def seconds(text: str) -> float:
    """argparse type for --timeout: positive finite seconds (nan, inf, 0 and -5 are refused)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds, got {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"expected a finite number of seconds > 0, got {text!r}")
    return value


def split_commas(values: Sequence[str]) -> list[str]:
    """Repeatable, comma-separated option values as one flat list."""
    return [v.strip() for chunk in values for v in chunk.split(",") if v.strip()]


def _wide_unless_tty(stderr: bool) -> Console:
    # Piped output (make, CI logs) gets a wide console so the value columns are not folded.
    stream = sys.stderr if stderr else sys.stdout
    return Console(stderr=stderr) if stream.isatty() else Console(stderr=stderr, width=220)


@dataclass
class CliConsole:
    """The two consoles a handler writes to, and the command line it was called with."""

    out: Console = field(default_factory=lambda: _wide_unless_tty(False))
    err: Console = field(default_factory=lambda: _wide_unless_tty(True))
    argv: list[str] = field(default_factory=list)

    def note(self, message: str) -> None:
        """One plain line on stderr, prefixed like every other nbparity message."""
        self.err.print(f"nbparity: {message}", markup=False, highlight=False, soft_wrap=True)

    def plain(self, text: str) -> None:
        self.out.print(text, markup=False, highlight=False)


def cases_dir(args: argparse.Namespace) -> Path:
    return paths.cases_dir(getattr(args, "cases_dir", None))


def golden_dir(args: argparse.Namespace) -> Path:
    return paths.golden_dir(getattr(args, "golden_dir", None))


def results_dir(args: argparse.Namespace) -> Path:
    return paths.results_dir(getattr(args, "results_dir", None))

