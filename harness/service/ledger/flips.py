"""Verdict changes over the ledger, judged like with like.

Two runs are comparable only when they ran the same thing the same way: the same case, engine
mode, dtype, device, reference and run kind (run, gate, bench). A float32 experiment, a failed
CUDA try or a bench row is never the "previous run" of a float64 CPU gate run. Green is the
gate's outcome (pass or xfail; a pass with known C defects is a pass), not the raw status.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Optional

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pandas loads lazily (see the imports below)
    import pandas as pd

from harness.service.ledger.rows import GREEN_OUTCOMES

#: What makes two runs comparable (the ledger columns of one series).
LIKE = ("case_name", "mode", "dtype", "device", "reference_id", "command")
#: `history`/`flips`/`report` filter options -> ledger column.
FILTERS = {"mode": "mode", "dtype": "dtype", "device": "device", "kind": "command"}


@dataclass(frozen=True)
class Flip:
    case_name: str
    mode: Optional[str]
    before: str
    after: str
    before_time: str
    after_time: str
    before_commit: Optional[str]
    after_commit: Optional[str]
    first_key: Optional[str] = None
    before_outcome: Optional[str] = None
    after_outcome: Optional[str] = None
    dtype: Optional[str] = None
    device: Optional[str] = None
    reference_id: Optional[str] = None
    kind: Optional[str] = None

    @property
    def regressed(self) -> bool:
        return self.before_outcome in GREEN_OUTCOMES and self.after_outcome not in GREEN_OUTCOMES


def _text(v: Any) -> Optional[str]:
    return v if isinstance(v, str) else None


def is_green(row: Mapping[str, Any]) -> bool:
    return row.get("outcome") in GREEN_OUTCOMES


def select(df: pd.DataFrame, **filters: Optional[str]) -> pd.DataFrame:
    """The rows matching every given filter (keys of FILTERS; None means any)."""
    for name, value in filters.items():
        if value is not None and not df.empty:
            df = df[df[FILTERS[name]] == value]
    return df


def _flip(a: Mapping[str, Any], b: Mapping[str, Any]) -> Flip:
    return Flip(b["case_name"], _text(b["mode"]), a["status"], b["status"], str(a["time_utc"]), str(b["time_utc"]),
                _text(a["commit_sha"]), _text(b["commit_sha"]), _text(b["first_key"]), a["outcome"], b["outcome"],
                _text(b["dtype"]), _text(b["device"]), _text(b["reference_id"]), _text(b["command"]))


def find_flips(df: pd.DataFrame) -> list[Flip]:
    """Series (see LIKE) whose outcome differs between their last two runs (a parity run followed
    by a pass with known C defects is no flip: both are green)."""
    out: list[Flip] = []
    if df.empty:
        return out
    for _, g in df.sort_values("id").groupby(list(LIKE), dropna=False, sort=True):
        if len(g) < 2:
            continue
        a, b = g.iloc[-2], g.iloc[-1]
        if a["outcome"] != b["outcome"]:
            out.append(_flip(a, b))
    return out


def _same_series(df: pd.DataFrame, row: Mapping[str, Any]) -> pd.Series:
    import pandas as pd  # noqa: PLC0415 - pandas takes ~0.3 s to load: only ledger reads pay it
    sel = pd.Series(True, index=df.index)
    for col in LIKE:
        v = row.get(col)
        sel &= df[col].isna() if v is None or (not isinstance(v, str) and pd.isna(v)) else df[col] == v
    return sel


def last_green(df: pd.DataFrame, case: str, branch: str = "main", *, clean_only: bool = True,
               before_id: Optional[int] = None, like: Optional[Mapping[str, Any]] = None) -> Optional[dict]:
    """The newest green row of ``case`` on ``branch`` (of the same series as ``like`` when
    given); dirty runs do not count when clean_only, since their code is not what the branch holds."""
    if df.empty:
        return None
    sel = (df["case_name"] == case) & df["outcome"].isin(GREEN_OUTCOMES) & (df["branch"] == branch)
    if like is not None:
        sel &= _same_series(df, like)
    if clean_only:
        sel &= df["dirty"].fillna(True) == False  # noqa: E712 - pandas boolean mask
    if before_id is not None:
        sel &= df["id"] < before_id
    hit = df[sel]
    return None if hit.empty else hit.sort_values("id").iloc[-1].to_dict()


def gate_flips(df: pd.DataFrame, run_id: str, branch: str = "main", *, clean_only: bool = True) -> list[Flip]:
    """For the gate: this run's series that are not green now but were at their last green run
    on ``branch``."""
    out: list[Flip] = []
    for _, row in df[df["run_id"] == run_id].sort_values("id").iterrows():
        if is_green(row):
            continue
        green = last_green(df, row["case_name"], branch, clean_only=clean_only, before_id=int(row["id"]),
                           like=row.to_dict())
        if green is not None:
            out.append(_flip(green, row))
    return out
