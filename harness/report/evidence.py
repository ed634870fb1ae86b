"""Evidence directories: results/<case>/<UTC timestamp>/, complete or absent, never reused.

Files are written into a hidden sibling (``.tmp-…``) and the directory is renamed into place at
the end. rename(2) onto an existing non-empty directory fails, so two runs that finish in the
same microsecond take different names (a numeric suffix), never each other's. ``latest`` is a
relative symlink (a text file where links are not possible) replaced atomically.
"""
from __future__ import annotations

import errno
import json
import os
import shutil
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Optional

from harness.registry.cases import SLUG

LATEST = "latest"


def utc_stamp(now: Optional[datetime] = None) -> str:
    now = now or datetime.now(timezone.utc)
    return now.strftime("%Y%m%dT%H%M%S.%fZ")


class EvidenceDir:
    """A run's evidence, staged in a temporary directory until :meth:`commit`."""

    def __init__(self, results_root: Path, case: str, now: Optional[datetime] = None, *,
                 mark_latest: bool = True):
        if not SLUG.match(case):
            raise ValueError(f"case name {case!r} is not a slug; refusing to write evidence for it")
        self.case_root = results_root / case
        self.case_root.mkdir(parents=True, exist_ok=True)
        self.stamp = utc_stamp(now)
        #: Staging folders of runs that died without clean-up (SIGKILL), removed now.
        self.swept = sweep_stale(self.case_root)
        self.staging = self.case_root / f".tmp-{self.stamp}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.staging.mkdir()
        self.final: Optional[Path] = None
        #: False for helper runs (autotraced pixels): ``latest`` stays on the run a person asked for.
        self.mark_latest = mark_latest

    # -- writing
    def path(self, name: str) -> Path:
        if "/" in name or name.startswith("."):
            raise ValueError(f"evidence file name {name!r} must be a plain name")
        return self.staging / name

    def write_text(self, name: str, text: str) -> Path:
        p = self.path(name)
        p.write_text(text, encoding="utf-8")
        return p

    def write_json(self, name: str, data: Any, compact: bool = False) -> Path:
        """compact: one line, for files with thousands of trace rows (json's C encoder is used
        only without indent, ten times faster than the indented one)."""
        text = json.dumps(data, indent=None if compact else 2, default=str, allow_nan=False)
        return self.write_text(name, text + "\n")

    def write_bytes(self, name: str, data: bytes) -> Path:
        p = self.path(name)
        p.write_bytes(data)
        return p

    # -- finishing
    def commit(self) -> Path:
        """Move the staged directory into place under a fresh name; update ``latest``."""
        for i in range(1000):
            name = self.stamp if i == 0 else f"{self.stamp}-{i}"
            target = self.case_root / name
            if target.exists():
                continue
            try:
                os.rename(self.staging, target)
            except OSError as e:
                if e.errno in (errno.EEXIST, errno.ENOTEMPTY):
                    continue  # lost a race for this name: take the next suffix
                raise
            self.final = target
            if self.mark_latest:
                _point_latest(self.case_root, name)
            return target
        raise RuntimeError(f"no free evidence directory name under {self.case_root}")

    def discard(self) -> None:
        shutil.rmtree(self.staging, ignore_errors=True)

    def __enter__(self) -> "EvidenceDir":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        # An exception before commit leaves nothing behind: evidence is complete or absent.
        if self.final is None:
            self.discard()


def sweep_stale(case_root: Path) -> list[Path]:
    """Remove ``.tmp-STAMP-PID-…`` staging folders whose process is gone (it was SIGKILLed:
    nothing else leaves one behind); a live process's staging is left alone."""
    swept = []
    for p in case_root.glob(".tmp-*"):
        parts = p.name.split("-")
        if len(parts) != 4 or not parts[2].isdigit() or pid_alive(int(parts[2])):
            continue
        shutil.rmtree(p, ignore_errors=True)
        swept.append(p)
    return swept


def pid_alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie does not: it can never finish its staging)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def _point_latest(case_root: Path, name: str) -> None:
    tmp = case_root / f".latest-{uuid.uuid4().hex}"
    try:
        os.symlink(name, tmp)
    except (OSError, NotImplementedError):
        tmp.write_text(name + "\n", encoding="utf-8")
    # Newest wins even when runs finish out of order: never point back to an older stamp.
    current = resolve_latest(case_root)
    if current is not None and current.name > name:
        tmp.unlink()
        return
    os.replace(tmp, case_root / LATEST)


def resolve_latest(case_root: Path) -> Optional[Path]:
    link = case_root / LATEST
    if link.is_symlink():
        target = case_root / os.readlink(link)
    elif link.is_file():
        target = case_root / link.read_text(encoding="utf-8").strip()
    else:
        return None
    return target if target.is_dir() else None


def list_runs(case_root: Path) -> list[Path]:
    """Committed evidence directories, oldest first."""
    if not case_root.is_dir():
        return []
    return sorted(p for p in case_root.iterdir() if p.is_dir() and not p.is_symlink()
                  and not p.name.startswith("."))
