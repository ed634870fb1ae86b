"""Every nbparity subcommand, in the order `nbparity --help` lists them.

Each entry is a module with ``NAME``, ``register(subparsers) -> ArgumentParser`` and
``handle(args, console) -> int``. A new subcommand is a new module added here; nothing else
dispatches.
"""
from __future__ import annotations

from types import ModuleType

from harness.cli import fuzz, impls
from harness.cli import (bench, bisect, build_c, calibrate, clean, flips, gate, history, import_recordings, keys,
                         list_cases, record, recordings_check, report, run, show)

COMMANDS: tuple[ModuleType, ...] = (
    list_cases, show, keys, impls, run, gate, import_recordings, record, bench, calibrate, history, flips, report, clean,
    bisect, build_c, recordings_check, fuzz,
)
