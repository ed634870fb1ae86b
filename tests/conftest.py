"""Shared fixtures: where the recorded C runs live (NB_GOLDEN_DIR, default ../shared/golden;
without either, recordings regenerated from the C built by `make c`)."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent


def golden_root() -> Path:
    return Path(os.environ.get("NB_GOLDEN_DIR", REPO_ROOT.parent / "shared" / "golden")).resolve()


def pytest_configure(config: pytest.Config) -> None:
    """No NB_GOLDEN_DIR and no ../shared/golden: a built C stands in. Its recordings are made once
    into .cache/recordings/<binaries' sha256>/, with a copy of the registry pinned to them, and
    both are used through NB_GOLDEN_DIR / NB_CASES_DIR (set before the test modules load)."""
    if os.environ.get("NB_GOLDEN_DIR") or (golden_root() / "index.json").is_file():
        return
    from harness.service import recordings_cache

    cached = recordings_cache.ensure(Path(os.environ.get("NB_CASES_DIR") or REPO_ROOT / "cases"))
    if cached is not None:
        os.environ["NB_GOLDEN_DIR"] = str(cached.golden)
        os.environ["NB_CASES_DIR"] = str(cached.cases)


@pytest.fixture(scope="session")
def golden_dir() -> Path:
    return require_golden(golden_root())


def require_golden(root: Path) -> Path:
    if not (root / "index.json").is_file():
        # In CI the recordings are the ground truth: their absence is a failure, not a skip.
        pytest.fail(f"recorded C runs not found at {root}: set NB_GOLDEN_DIR, or run `make c` (the tests then "
                    "regenerate them from the built C)", pytrace=False)
    return root


#: Stands in for the recordings' names when they are missing, so that a test parametrized over
#: them fails in its golden_dir fixture with one clear line instead of vanishing from the run.
RECORDINGS_MISSING = "recordings-missing"


def recording_names(traced_only: bool = False) -> list[str]:
    """Names of the recorded C runs (only those with a traced pixel if asked), sorted."""
    root = golden_root() / "cases"
    if not root.is_dir():
        return [RECORDINGS_MISSING]
    names = []
    for d in sorted(root.iterdir()):
        manifest = d / "case.json"
        if manifest.is_file() and (not traced_only or json.loads(manifest.read_text())["trace_pixel"]):
            names.append(d.name)
    return names


@pytest.fixture(autouse=True)
def _no_ci_step_summary(monkeypatch: pytest.MonkeyPatch) -> None:
    """The gates the tests run (some red on purpose) must never reach the CI run's own page:
    on GitHub, GITHUB_STEP_SUMMARY is the workflow's summary file."""
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
