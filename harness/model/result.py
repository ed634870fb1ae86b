"""The typed, serializable result of one parity run (what --json prints and evidence stores)."""
from __future__ import annotations

import math
from typing import Any, Literal, Optional

from pydantic import BaseModel, ConfigDict

from harness.compare.primitive import Row

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

    @classmethod
    def of(cls, row: Row) -> "RowModel":
        return cls(
            label=row.label, kind=row.kind, key=row.key, stage=row.stage, occurrence=row.occurrence,
            phi_tic=row.phi_tic, components=list(row.components),
            component=row.component_name(row.component_filter) if row.component_filter is not None else None,
            c=jsonable(list(row.c)) if row.c is not None else None,
            torch=jsonable(list(row.py)) if row.py is not None else None,
            abs_diff=jsonable(row.max_abs_diff),
            worst_component=(row.component_name(row.worst_component)
                             if row.worst_component is not None and len(row.c or ()) > 1 else None),
            atol=row.tolerance.atol, rtol=row.tolerance.rtol, verdict=row.verdict, defect=row.defect,
        )


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
    #: Extra pixels traced because the images diverged while the traced pixel agreed
    #: (harness.compare.autopixel.PixelTrace.as_dict()).
    autopixels: list[dict[str, Any]] = []
    evidence_dir: Optional[str] = None
