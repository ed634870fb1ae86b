"""What one runner produced: the typed result every runner (C, recording, engine) returns."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np


@dataclass(frozen=True)
class RunOutput:
    """``image`` is (slow, fast) or None when not produced/needed.

    ``trace_supported`` is False when this output carries no trace to compare: an image-only
    (fixed-C) reference, or an upstream C binary without trace support; ``notes`` then says why.
    """

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
    #: The child's own peak resident memory, when a process was run (bytes).
    peak_rss_bytes: Optional[int] = None
