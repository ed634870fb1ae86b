"""`nbparity --version`: harness, git commit (and dirty state), engine, torch build and the
provenance of the C binaries the runs would use."""
from __future__ import annotations

import argparse
import os
from datetime import datetime, timezone
from typing import Any, Optional

from harness.model import version
from harness.model.paths import REPO_ROOT
from harness.model.hashing import sha256_file
from harness.runners.choose import find_binary

_KINDS = {"instrumented-c": "NB_C_BIN", "fixed-c": "NB_C_FIXED_BIN"}


def c_provenance(kind: str, explicit: Optional[str] = None) -> Optional[dict[str, Any]]:
    """Where the binary of ``kind`` comes from and what it is (sha256, size, mtime); None when
    none is configured. Uses the runners' own search so --version names the binary a run uses."""
    path = find_binary(kind, explicit)
    if path is None:
        return None
    env = _KINDS[kind]
    source = "--c-bin" if explicit else (env if os.environ.get(env) else f"{REPO_ROOT.name}/golden_bin")
    prov: dict[str, Any] = {"path": str(path), "source": source, "exists": path.is_file()}
    if prov["exists"]:
        st = path.stat()
        prov.update(sha256=sha256_file(path), size=st.st_size,
                    mtime=datetime.fromtimestamp(st.st_mtime, timezone.utc).strftime("%Y-%m-%d %H:%M UTC"))
    return prov


def version_text(c_bin: Optional[str] = None) -> str:
    info = version.collect({kind: c_provenance(kind, c_bin if kind == "instrumented-c" else None)
                            for kind in _KINDS})
    return "\n".join(version.format_lines(info))


class _VersionAction(argparse.Action):
    """Like argparse's "version" action, but the text is gathered only when asked for
    (it runs git and imports torch)."""

    def __init__(self, option_strings, dest=argparse.SUPPRESS, default=argparse.SUPPRESS, help=None):
        super().__init__(option_strings=option_strings, dest=dest, default=default, nargs=0, help=help)

    def __call__(self, parser, namespace, values, option_string=None):
        print(version_text())
        parser.exit(0)


def add_version_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--version", action=_VersionAction,
                        help="print nbparity, git commit, engine, torch and C binary versions and exit")

