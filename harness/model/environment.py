"""What env.json records: interpreter, libraries, host, threads and the project's git state."""
from __future__ import annotations

import os
import platform
import subprocess
import sys
from datetime import datetime, timezone
from importlib import metadata
from typing import Any

from harness.model.paths import REPO_ROOT


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def git_state() -> dict[str, Any]:
    def git(*args: str) -> str | None:
        try:
            # --no-optional-locks: reading the state must not rewrite the index.
            p = subprocess.run(["git", "--no-optional-locks", "-C", str(REPO_ROOT), *args],
                               capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return p.stdout if p.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no")
    return {"commit": commit.strip() if commit else None,
            "dirty": (bool(status.strip()) if status is not None else None)}


def snapshot() -> dict[str, Any]:
    try:
        import torch
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
