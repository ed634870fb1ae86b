"""Recordings regenerated from the built C, for a machine without NB_GOLDEN_DIR (a bare CI runner).

``.cache/recordings/<key>/golden`` holds every recording (`record --all`), and ``.../cases`` a copy
of the registry whose pins (manifest_sha256) name those recordings, so that the pair is
consistent: nothing is loosened, the pins just point at the regenerated set. The key is the
sha256 of the binaries and of the case files, so a new build or an edited case makes a new set.
Concurrent callers (pytest-xdist workers) wait on a lock while the first one records.
"""
from __future__ import annotations

import fcntl
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from harness.model.errors import UsageError
from harness.model.hashing import sha256_bytes, sha256_file
from harness.model.paths import REPO_ROOT
from harness.registry import pins
from harness.service import record_all

CACHE_ROOT = REPO_ROOT / ".cache" / "recordings"


@dataclass(frozen=True)
class Cached:
    golden: Path
    cases: Path


def key(cases_dir: Path) -> Optional[str]:
    """The cache key, or None when the binaries are not built."""
    try:
        bins = record_all.binaries()
    except UsageError:  # no binary: no cache (the caller says `make c`)
        return None
    parts = [f"{kind} {sha256_file(path)}" for kind, path in sorted(bins.items())]
    parts += [f"{p.name} {sha256_file(p)}" for p in sorted(Path(cases_dir).glob("*.toml"))]
    return sha256_bytes("\n".join(parts).encode())[:16]


def _repin(cases_dir: Path, golden: Path, dest: Path) -> None:
    manifests: pins.Manifests = {}
    for mpath in (golden / "cases").glob("*/case.json"):
        raw = mpath.read_bytes()
        manifests[mpath.parent.name] = (json.loads(raw), sha256_bytes(raw))
    dest.mkdir(parents=True)
    for path in sorted(Path(cases_dir).glob("*.toml")):
        text, _ = pins.refresh_text(path.read_text(encoding="utf-8"), manifests, set(manifests))
        (dest / path.name).write_text(text, encoding="utf-8")


def ensure(cases_dir: Path, cache_root: Path = CACHE_ROOT, bin_dir: Path = REPO_ROOT / "golden_bin") -> Optional[Cached]:
    """The regenerated recordings and their re-pinned registry; None when no C is built."""
    k = key(cases_dir)
    if k is None:
        return None
    root = cache_root / k
    done = Cached(root / "golden", root / "cases")
    if (root / "complete").is_file():
        return done
    cache_root.mkdir(parents=True, exist_ok=True)
    with open(cache_root / f".{k}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (root / "complete").is_file():
            return done
        stage = Path(tempfile.mkdtemp(prefix=f".{k}.partial-", dir=cache_root))
        try:
            record_all.record_all(stage / "golden", cases_dir, golden=None, bin_dir=bin_dir)
            _repin(cases_dir, stage / "golden", stage / "cases")
            (stage / "complete").write_text("recorded by nbparity from the binaries in golden_bin/\n")
            if root.exists():
                shutil.rmtree(root)
            os.rename(stage, root)
        finally:
            shutil.rmtree(stage, ignore_errors=True)
    return done
