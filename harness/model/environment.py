"""What env.json records: interpreter, libraries, host, threads and the project's git state."""
from __future__ import annotations

import os
import platform
import subprocess
import sys
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import Any, Optional

from harness.model.paths import REPO_ROOT


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def run_git(repo: Path | str, *args: str, timeout_s: float = 60.0) -> subprocess.CompletedProcess[str]:
    """One git command in ``repo``, never prompting; an unstartable git is a failed run (rc 127).

    --no-optional-locks: reading the state must not rewrite the index of the checkout.
    """
    try:
        return subprocess.run(["git", "--no-optional-locks", "-C", str(repo), *args],
                              capture_output=True, text=True, timeout=timeout_s)
    except (OSError, subprocess.TimeoutExpired) as e:
        return subprocess.CompletedProcess(["git", *args], 127, "", str(e))


@dataclass(frozen=True)
class GitState:
    """What a result is recorded against: commit, uncommitted tracked changes, branch."""

    commit: Optional[str]
    dirty: Optional[bool]
    branch: Optional[str]


def checkout(repo: str = str(REPO_ROOT)) -> GitState:
    """The checkout's state (the one place the harness asks git for it); cached because a gate
    records many runs against the same checkout (keyed by the path, however the caller passed it:
    a run asks three times)."""
    return _checkout(str(repo))


@lru_cache(maxsize=8)
def _checkout(repo: str) -> GitState:
    def out(*args: str) -> Optional[str]:
        p = run_git(repo, *args, timeout_s=10)
        return p.stdout.strip() if p.returncode == 0 else None

    status = out("status", "--porcelain", "--untracked-files=no")
    branch = out("rev-parse", "--abbrev-ref", "HEAD")
    return GitState(out("rev-parse", "HEAD"), None if status is None else bool(status),
                    None if branch == "HEAD" else branch)


def git_state(repo: str = str(REPO_ROOT)) -> dict[str, Any]:
    """:func:`checkout` as a dict (env.json, --version): commit, dirty, branch."""
    return asdict(checkout(repo))


def working_changes(repo: str = str(REPO_ROOT), under: tuple[str, ...] = ("engine", "harness")
                    ) -> tuple[Optional[str], list[str]]:
    """(``git diff HEAD`` of the tracked files, untracked files below ``under``): what a dirty
    run ran that no commit holds. The diff is None when git cannot tell."""
    diff = run_git(repo, "diff", "HEAD", "--no-color", "--no-ext-diff")
    others = run_git(repo, "ls-files", "--others", "--exclude-standard", "--", *under)
    untracked = others.stdout.splitlines() if others.returncode == 0 else []
    return (diff.stdout if diff.returncode == 0 else None), untracked


def snapshot() -> dict[str, Any]:
    try:
        import torch  # noqa: PLC0415 - slow to import; only a run's env.json needs it
        torch_info = {"version": torch.__version__, "num_threads": torch.get_num_threads(),
                      "cuda_available": bool(torch.cuda.is_available())}
    except ImportError:  # pragma: no cover
        torch_info = {"version": None}
    return {
        "utc": datetime.now(timezone.utc).isoformat(),
        "python": sys.version.split()[0],
        "executable": sys.executable,
        "platform": platform.platform(),
        "host": platform.node(),
        "cpu_count": os.cpu_count(),
        "torch": torch_info,
        "numpy": _version("numpy"),
        "pydantic": _version("pydantic"),
        "rich": _version("rich"),
        "nbparity": _version("nbparity"),
        "git": git_state(),
        "env": {k: os.environ[k] for k in sorted(os.environ)
                if k.startswith(("OMP_", "NB_", "MKL_", "CUDA_VISIBLE")) or k == "LC_ALL"},
    }
