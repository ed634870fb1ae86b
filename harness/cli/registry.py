"""Every nbparity subcommand, in the order `nbparity --help` lists them.

Each entry names a module with ``NAME``, ``register(subparsers) -> ArgumentParser`` and
``handle(args, console) -> int``. A new subcommand is a new module added here; nothing else
dispatches. A module is imported only when its subcommand runs or the help lists them all: the
modules of the other subcommands cost every `nbparity run` a tenth of a second to import.
"""
from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any

#: (subcommand, its module under harness.cli); the module's NAME is the subcommand.
COMMAND_MODULES: tuple[tuple[str, str], ...] = (
    ("list", "list_cases"), ("show", "show"), ("keys", "keys"), ("impls", "impls"), ("run", "run"),
    ("gate", "gate"), ("import-recordings", "import_recordings"), ("record", "record"), ("bench", "bench"),
    ("calibrate", "calibrate"), ("history", "history"), ("flips", "flips"), ("report", "report"),
    ("clean", "clean"), ("bisect", "bisect"), ("build-c", "build_c"), ("recordings-check", "recordings_check"),
    ("fuzz", "fuzz"),
)


def command_module(module: str) -> ModuleType:
    return importlib.import_module(f"harness.cli.{module}")


def __getattr__(name: str) -> Any:
    """COMMANDS: every subcommand's module, imported."""
    if name == "COMMANDS":
        return tuple(command_module(m) for _, m in COMMAND_MODULES)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
