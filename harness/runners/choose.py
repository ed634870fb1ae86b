"""The one rule for which C reference a run uses: a live binary or the recording.

Binaries: ``--c-bin``, then ``NB_C_BIN``, then ``golden_bin/nanoBragg`` for an instrumented C;
``--c-bin``, then ``NB_C_FIXED_BIN``, then ``golden_bin/nanoBragg_fixed`` for a fixed C.

Sources:

* ``--recorded``: the recording, always.
* ``--live``: the live binary of the reference's kind, always (a fixed-C reference needs the
  fixed build). In the gate, which runs every reference, ``--live`` applies to references that
  allow a live C (``live = true``); the others keep their recordings; the gate's ``--c-bin``
  is the instrumented C, never a fixed-C reference's binary.
* neither (auto): the instrumented C when the reference allows a live C (``live = true``) and a
  binary is found; otherwise the recording. A fixed C is never picked up on its own, so
  ``NB_C_FIXED_BIN`` matters only with ``--live``.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Optional

from harness.model.paths import REPO_ROOT
from harness.registry.cases import Reference

Source = Literal["auto", "live", "recorded"]

#: The environment variable and the golden_bin/ name of each kind of binary.
BINARY_ENV = {"instrumented-c": "NB_C_BIN", "fixed-c": "NB_C_FIXED_BIN"}
DEFAULT_NAME = {"instrumented-c": "nanoBragg", "fixed-c": "nanoBragg_fixed"}


@dataclass(frozen=True)
class Choice:
    """Live (with ``binary``, which may be None or missing: the runner then fails loudly) or
    the recording; ``why`` is shown in the report."""

    live: bool
    binary: Optional[Path]
    why: str


def find_binary(kind: str = "instrumented-c", explicit: Optional[str] = None) -> Optional[Path]:
    """--c-bin, then the kind's variable, then golden_bin/.

    Returns the first candidate that is given, even if it is not there: an explicit choice that
    does not exist must fail loudly rather than fall back.
    """
    if explicit:
        return Path(explicit).expanduser()
    env = BINARY_ENV.get(kind, "NB_C_BIN")
    if os.environ.get(env):
        return Path(os.environ[env]).expanduser()
    default = REPO_ROOT / "golden_bin" / DEFAULT_NAME.get(kind, "nanoBragg")
    return default if default.exists() else None


def where_text(kind: str) -> str:
    """Where a binary of ``kind`` is looked for, for messages."""
    return f"--c-bin, {BINARY_ENV.get(kind, 'NB_C_BIN')}, golden_bin/{DEFAULT_NAME.get(kind, 'nanoBragg')}"


def live_binary_found(kind: str, explicit: Optional[str] = None) -> Optional[Path]:
    """The binary auto mode would run: an explicit --c-bin (even if missing), else one that exists."""
    binary = find_binary(kind, explicit)
    return binary if binary is not None and (explicit or binary.exists()) else None


def binary_problem(binary: Optional[Path], kind: str = "instrumented-c") -> Optional[str]:
    """Why ``binary`` cannot be run (one line naming the fix), or None: the user's to fix (exit 2)."""
    if binary is None:
        return f"no C binary (pass --c-bin, set {BINARY_ENV.get(kind, 'NB_C_BIN')} or put one in golden_bin/)"
    if not binary.is_file():
        return f"no C binary at {binary} (check --c-bin / {BINARY_ENV.get(kind, 'NB_C_BIN')})"
    if not os.access(binary, os.X_OK):
        return f"C binary {binary} is not executable (chmod +x it, or check --c-bin / {BINARY_ENV.get(kind, 'NB_C_BIN')})"
    return None


def choose(ref: Reference, source: Source = "auto", c_bin: Optional[str] = None) -> Choice:
    """Live or recorded for one reference (see the module's docstring for the rule)."""
    if source == "recorded":
        return Choice(False, None, "recorded reference (--recorded)")
    if source == "live":
        return Choice(True, find_binary(ref.kind, c_bin), "live C (--live)")
    binary = live_binary_found(ref.kind, c_bin) if ref.live and ref.kind == "instrumented-c" else None
    if binary is not None:
        return Choice(True, binary, f"live C binary found at {binary}")
    if ref.kind != "instrumented-c":
        return Choice(False, None, "a fixed C runs only with --live: using the recording")
    if ref.recording is None:  # nothing else to compare against: the missing binary is the failure
        return Choice(True, find_binary(ref.kind, c_bin),
                      f"no recording for this reference and no live C binary ({where_text(ref.kind)})")
    why = "live C not allowed for this reference" if not ref.live else f"no live C binary ({where_text(ref.kind)})"
    return Choice(False, None, f"{why}: using the recording")


def for_gate(ref: Reference, source: Source, c_bin: Optional[str]) -> tuple[Source, Optional[str]]:
    """(source, --c-bin) for one reference of a gate: its --live covers the references that
    allow a live C (the rest stay recorded), and its --c-bin names the instrumented C only (a
    fixed-C reference takes NB_C_FIXED_BIN or golden_bin/nanoBragg_fixed)."""
    source = "auto" if source == "live" and not ref.live else source
    return source, (c_bin if ref.kind == "instrumented-c" else None)


def describe(source: Source, c_bin: Optional[str], golden: Path) -> str:
    """One line for a run over many cases: where their instrumented references come from."""
    if source == "recorded":
        return "recordings (--recorded)"
    binary = find_binary("instrumented-c", c_bin) if source == "live" else live_binary_found("instrumented-c", c_bin)
    if binary is not None:
        return f"live C {binary}"
    return f"recordings under {golden} (no live C binary)"
