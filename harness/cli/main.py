"""nbparity: list, show and run parity cases, gate the registry, import and record C runs
(also ``python -m harness``).

Exit codes: 0 parity holds, 1 divergence, 2 usage/case/input error, 3 runner failure,
130/143 interrupted (SIGINT/SIGTERM). Anything unexpected is one line and exit 3 (the
traceback with --debug or NB_DEBUG=1), never 0 or 1.
"""
from __future__ import annotations

import argparse
import os
import sys
import traceback
from typing import NoReturn, Optional, Sequence

from harness.cli.common import CliConsole, Parser, add_global_options
from harness.cli.registry import COMMAND_MODULES, command_module
from harness.cli.version import add_version_option
from harness.model.errors import ExitCode, HarnessError
from harness.runners.process import install_sigterm


def build_parser(only: Optional[str] = None) -> argparse.ArgumentParser:
    """Every subcommand's parser; ``only``: that one's, the others as quiet placeholders."""
    cls = Parser if only is None else _Quiet
    p = cls(prog="nbparity", description="Parity harness: C nanoBragg vs the PyTorch engine.")
    add_global_options(p, after_subcommand=False)
    add_version_option(p)
    sub = p.add_subparsers(dest="command", required=True, parser_class=cls)
    for name, module in COMMAND_MODULES:
        if only is not None and name != only:
            sub.add_parser(name, add_help=False).add_argument("rest", nargs=argparse.REMAINDER)
            continue
        command = command_module(module)
        sp = command.register(sub)
        add_global_options(sp, after_subcommand=True)
        sp.set_defaults(handler=command.handle)
    return p


class _NotThisWay(Exception):
    pass


class _Quiet(Parser):
    """The one-subcommand parser: an error sends the command line to the full parser, which
    says it (with hints from every subcommand's options)."""

    def error(self, message: str) -> NoReturn:
        raise _NotThisWay(message)


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    """Parse with only the named subcommand's module imported; anything else (help, a usage
    error, an option value that looked like a subcommand) is parsed by the full parser."""
    names = {name for name, _ in COMMAND_MODULES}
    first = next((a for a in argv if a in names or a in ("-h", "--help", "--version")), None)
    if first in names:
        try:
            args = build_parser(only=first).parse_args(argv)
            if getattr(args, "handler", None) is not None:
                return args
        except _NotThisWay:
            pass
    return build_parser().parse_args(argv)


def _debug(args: Optional[argparse.Namespace]) -> bool:
    return bool(getattr(args, "debug", False)) or os.environ.get("NB_DEBUG", "") not in ("", "0")


def _unexpected(console: CliConsole, e: BaseException, args: argparse.Namespace) -> int:
    """One line and an exit code >= 2 for an error nobody raised on purpose."""
    if _debug(args):
        console.err.print(traceback.format_exc(), markup=False, highlight=False)
    if isinstance(e, OSError):  # the file system refused (unwritable results folder, a path through a file)
        where = f"{e.filename}: " if e.filename else ""
        console.note(f"{where}{e.strerror or e} (check the path and its permissions; "
                     "--results-dir / NB_RESULTS_DIR choose where evidence goes)")
        return int(ExitCode.USAGE)
    first = (str(e).strip().splitlines() or [""])[0]
    console.note(f"unexpected {type(e).__name__}: {first} (rerun with --debug for the traceback)")
    return int(ExitCode.RUNNER_FAILURE)


def main(argv: Optional[Sequence[str]] = None, console: Optional[CliConsole] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    console = console or CliConsole()
    restore = install_sigterm()  # SIGTERM cleans up like Ctrl-C (child group killed, staging removed), exit 143
    try:
        return _main(argv, console)
    finally:
        restore()  # a caller in the same process (tests, a notebook) gets its own handlers back


def _main(argv: list[str], console: CliConsole) -> int:
    console.argv = argv
    try:
        args = parse_args(argv)
    except SystemExit as e:  # argparse: --help or --version (0), or a usage error (2)
        return e.code if isinstance(e.code, int) else int(ExitCode.USAGE)
    try:
        return int(args.handler(args, console))
    except SystemExit as e:  # something called sys.exit mid-command: that is no verdict (never 0 or 1)
        console.note(f"unexpected exit with code {e.code!r} (rerun with --debug for the traceback)")
        return int(ExitCode.RUNNER_FAILURE)
    except HarnessError as e:
        console.note(e.message)
        return int(e.exit_code)
    except KeyboardInterrupt as e:  # Ctrl-C, or SIGTERM raised as errors.Terminated (exit_code 143)
        console.note("terminated" if getattr(e, "exit_code", 130) != 130 else "interrupted")
        return int(getattr(e, "exit_code", 130))
    except Exception as e:  # noqa: BLE001 - the one guard: no traceback, never exit 0 or 1
        return _unexpected(console, e, args)
