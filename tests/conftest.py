"""Shared fixtures: where the recorded C runs live (NB_GOLDEN_DIR, default ../shared/golden)."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent


def golden_root() -> Path:
    return Path(os.environ.get("NB_GOLDEN_DIR", REPO_ROOT.parent / "shared" / "golden")).resolve()


@pytest.fixture(scope="session")
def golden_dir() -> Path:
    root = golden_root()
    if not (root / "index.json").is_file():
        # In CI the recordings are the ground truth: their absence is a failure, not a skip.
        pytest.fail(f"recorded C runs not found at {root} (set NB_GOLDEN_DIR)")
    return root
