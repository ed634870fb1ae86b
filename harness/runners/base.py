"""The runner protocol and the typed request/result every runner shares."""
from __future__ import annotations

import hashlib
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Protocol

import numpy as np

from harness.registry.cases import Case, Reference


@dataclass(frozen=True)
class RunRequest:
    """One run of one case: which mode, which pixel, where inputs live, what to keep."""

    case: Case
    mode: str
    pixel: tuple[int, int]
    data_root: Path
    reference: Reference
    want_image: bool = True
    device: str = "cpu"
    dtype: str = "float64"
    timeout_s: float = 600.0

    def input_paths(self) -> dict[str, Path]:
        return {p: self.data_root / p for p in self.case.inputs}


@dataclass(frozen=True)
class RunOutput:
    """What a runner produced. ``image`` is (slow, fast) or None when not produced/needed."""

    runner: str
    description: str
    argv: tuple[str, ...]
    cwd: str
    env: dict[str, str]
    exit_code: Optional[int]
    stdout: str
    stderr: str
    wall_s: float
    image: Optional[np.ndarray] = None
    trace_supported: bool = True
    provenance: dict[str, Any] = field(default_factory=dict)
    notes: tuple[str, ...] = ()


class Runner(Protocol):
    name: str

    def run(self, request: RunRequest) -> RunOutput:
        """Run or replay; raise RunnerFailure, ReferenceDataError or InputError when it cannot."""
        ...


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def check_inputs(request: RunRequest) -> dict[str, Path]:
    """Every input the case names must exist under the data root (exit 2 otherwise)."""
    from harness.model.errors import InputError

    paths = request.input_paths()
    for rel, p in paths.items():
        if not p.is_file():
            raise InputError(f"case {request.case.name}: input {rel!r} not found at {p} "
                             f"(data root {request.data_root}; set NB_GOLDEN_DIR or --golden-dir)")
    return paths


def stage_inputs(inputs: dict[str, Path], workdir: Path) -> None:
    """Link each input into ``workdir`` under its argv-relative name (copy where links fail), so a
    command sees the same relative paths as the recording while its cwd stays private."""
    for rel, src in inputs.items():
        dst = workdir / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        try:
            dst.symlink_to(src.resolve())
        except OSError:
            shutil.copy2(src, dst)


def check_image(image: np.ndarray, who: str) -> Optional[str]:
    """Why an image is unusable as a result (all NaN), or None."""
    if image.size and np.isnan(image).all():
        return f"{who} wrote an all-NaN image (a missing -mat file does this, exit code 0)"
    return None
