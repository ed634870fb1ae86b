"""The typed, serializable result of one parity run (what --json prints and evidence stores)."""
from __future__ import annotations

import math
from typing import Any, Literal, Optional

from pydantic import BaseModel, ConfigDict

Status = Literal["parity", "divergence", "runner-failure", "reference-error", "input-error"]


def jsonable(v: Any) -> Any:
    """JSON has no NaN/inf: spell them as strings so nothing is silently dropped."""
    if isinstance(v, float) and not math.isfinite(v):
        return "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf")
    if isinstance(v, (list, tuple)):
        return [jsonable(x) for x in v]
    if isinstance(v, dict):
        return {str(k): jsonable(x) for k, x in v.items()}
    return v


class RowModel(BaseModel):
    """One aligned trace row as data (harness.compare.verdict.row_model builds it from a Row)."""

    model_config = ConfigDict(frozen=True)

    label: str
    kind: str
    key: str
    stage: str
    occurrence: int
    phi_tic: Optional[int]
    components: list[str]
    component: Optional[str]
    c: Optional[list[Any]]
    torch: Optional[list[Any]]
    abs_diff: Any
    worst_component: Optional[str]
    atol: float
    rtol: float
    verdict: str
    defect: Optional[str] = None
    #: How the values were made comparable (a unit conversion between implementations).
    note: Optional[str] = None


class RunInfo(BaseModel):
    runner: str
    description: str
    trace_supported: bool
    wall_s: Optional[float] = None
    exit_code: Optional[int] = None
    provenance: dict[str, Any] = {}


class ParityResult(BaseModel):
    case: str
    mode: str
    pixel: tuple[int, int]
    status: Status
    exit_code: int
    label: Optional[str] = None
    expected_failure: Optional[str] = None
    reference_choice: str = ""
    reference: Optional[RunInfo] = None
    engine: Optional[RunInfo] = None
    #: Column names of the two sides: (reference, under test); a pair run names its implementations.
    sides: tuple[str, str] = ("C", "torch")
    trace_compared: bool = False
    trace_note: str = ""
    keys_filter: list[str] = []
    counts: dict[str, int] = {}
    first_divergence: Optional[RowModel] = None
    downstream: list[str] = []
    rows: list[RowModel] = []
    image: Optional[dict[str, Any]] = None
    image_note: str = ""
    failure: Optional[str] = None
    #: Known C defects that --allow-known-defects let pass (their ids); empty otherwise.
    allowed_defects: list[str] = []
    #: Extra pixels traced because the images diverged while the traced pixel agreed
    #: (harness.compare.autopixel.PixelTrace.as_dict()).
    autopixels: list[dict[str, Any]] = []
    #: Where the evidence keeps both float images (images.npz), or why it does not
    #: (harness.report.kept_data); None when the run produced no two images.
    float_images: Optional[dict[str, Any]] = None
    #: A run from a modified tree: the evidence's git_diff.patch / untracked.txt; None if clean.
    source_changes: Optional[dict[str, Any]] = None
    evidence_dir: Optional[str] = None
