"""The runner protocol and the request every runner takes (results: harness.model.run)."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Protocol

import numpy as np

from harness.model.run import RunOutput
from harness.registry.cases import Case, Reference
from harness.runners import inputs


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
    #: The engine's set-up for exactly this request (harness.runners.engine.Prepared), when the
    #: pipeline's check built it: the engine runner hands it to the engine instead of building it again.
    engine_setup: Optional[Any] = field(default=None, compare=False, repr=False)


class Runner(Protocol):
    name: str

    def run(self, request: RunRequest) -> RunOutput:
        """Run or replay; raise RunnerFailure, ReferenceDataError or InputError when it cannot."""
        ...


def check_inputs(request: RunRequest) -> dict[str, Path]:
    """Every file the argv reads is declared and exists under the data root (exit 2 otherwise)."""
    return inputs.resolve(request.case, request.data_root)


def check_image(image: np.ndarray, who: str) -> Optional[str]:
    """Why an image is unusable as a result (all NaN), or None."""
    if image.size and np.isnan(image).all():
        return f"{who} wrote an all-NaN image (a missing -mat file does this, exit code 0)"
    return None
