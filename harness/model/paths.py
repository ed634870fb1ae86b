"""Where things live: the repository, the case files, the recordings, the evidence.

Each location has one resolution rule (explicit option, then environment, then a default next
to the repository) so a fresh clone works without configuration.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

REPO_ROOT = Path(__file__).resolve().parents[2]


def _pick(explicit: Optional[str | os.PathLike], env: str, default: Path) -> Path:
    if explicit:
        return Path(explicit).expanduser().resolve()
    value = os.environ.get(env)
    if value:
        return Path(value).expanduser().resolve()
    return default.resolve()


def cases_dir(explicit: Optional[str | os.PathLike] = None) -> Path:
    return _pick(explicit, "NB_CASES_DIR", REPO_ROOT / "cases")


def golden_dir(explicit: Optional[str | os.PathLike] = None) -> Path:
    return _pick(explicit, "NB_GOLDEN_DIR", REPO_ROOT.parent / "shared" / "golden")


def results_dir(explicit: Optional[str | os.PathLike] = None) -> Path:
    return _pick(explicit, "NB_RESULTS_DIR", REPO_ROOT / "results")
