"""The run ledger: one SQLite row per case per `nbparity run`/`gate`, read back into pandas.

Why SQLite: the standard library has it, appends from concurrent pytest-xdist workers are safe
with WAL journaling plus a busy timeout, and a half-written row is impossible (each append is
one transaction). A ledger that SQLite cannot read is never truncated or rewritten in place: it
is renamed to ``ledger.sqlite.corrupt-<stamp>`` (with its -wal/-shm companions), the rename is
reported, and a fresh ledger takes its place.
"""
from __future__ import annotations

import fcntl
import json
import math
import os
import sqlite3
import subprocess
import sys
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping, Optional

import pandas as pd

LEDGER_NAME = "ledger.sqlite"
SCHEMA_VERSION = 1
BUSY_TIMEOUT_MS = 30_000
GREEN_STATUS = "parity"

#: Column name → SQL type, in table order. Kept in one place so append/read/tests agree.
COLUMNS: dict[str, str] = {
    "run_id": "TEXT NOT NULL",          # one `run`/`gate` invocation (groups its cases)
    "command": "TEXT NOT NULL",         # run | gate | bisect | ...
    "time_utc": "TEXT NOT NULL",        # ISO 8601, UTC
    "case_name": "TEXT NOT NULL",
    "mode": "TEXT",
    "pixel_slow": "INTEGER",
    "pixel_fast": "INTEGER",
    "commit_sha": "TEXT",
    "dirty": "INTEGER",                 # 1 when tracked files had uncommitted changes
    "branch": "TEXT",
    "device": "TEXT",
    "dtype": "TEXT",
    "reference_runner": "TEXT",         # c-live | c-recorded | ...
    "reference_id": "TEXT",             # binary sha256 or recording name
    "reference_sha256": "TEXT",         # binary sha256 or recording manifest sha256
    "status": "TEXT NOT NULL",          # the verdict: parity | divergence | runner-failure | ...
    "exit_code": "INTEGER NOT NULL",
    "label": "TEXT",
    "first_key": "TEXT",                # label of the first divergent row (e.g. rot_b_angstroms#1)
    "first_delta": "REAL",
    "key_deltas": "TEXT",               # JSON {key: max |Δ| over its occurrences}
    "trace_rows": "TEXT",               # JSON [{kind,key,occurrence,phi_tic,abs_diff,c,torch}]
    "image_ok": "INTEGER",
    "image_max_abs_diff": "REAL",
    "image_rel_to_max": "REAL",
    "image_correlation": "REAL",
    "image_n_failed": "INTEGER",
    "image_worst_slow": "INTEGER",
    "image_worst_fast": "INTEGER",
    "image_metrics": "TEXT",            # JSON: the whole image metrics dict
    "wall_reference_s": "REAL",
    "wall_engine_s": "REAL",
    "evidence_dir": "TEXT",
}
JSON_COLUMNS = ("key_deltas", "trace_rows", "image_metrics")


class LedgerError(Exception):
    """The ledger cannot be used (not corruption: e.g. a permission problem)."""


def ledger_path(results_dir: Path) -> Path:
    return Path(results_dir) / LEDGER_NAME


def new_run_id() -> str:
    return datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:8]


# ---------------------------------------------------------------- project state


@lru_cache(maxsize=8)
def git_info(repo: str) -> tuple[Optional[str], Optional[bool], Optional[str]]:
    """(commit, dirty, branch) of ``repo``; cached because a gate appends many rows."""

    def git(*args: str) -> Optional[str]:
        try:
            # --no-optional-locks: reading the state must not rewrite the index.
            p = subprocess.run(["git", "--no-optional-locks", "-C", repo, *args],
                               capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return p.stdout.strip() if p.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no")
    branch = git("rev-parse", "--abbrev-ref", "HEAD")
    return commit, (bool(status) if status is not None else None), (None if branch == "HEAD" else branch)


# ---------------------------------------------------------------- rows


def _num(v: Any) -> Optional[float]:
    """A float for SQLite; NaN/inf (or their JSON spellings) become NULL."""
    if v is None or isinstance(v, bool):
        return None
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def _get(obj: Any, name: str, default: Any = None) -> Any:
    if isinstance(obj, Mapping):
        return obj.get(name, default)
    return getattr(obj, name, default)


def _as_dict(obj: Any) -> dict:
    if obj is None:
        return {}
    if isinstance(obj, Mapping):
        return dict(obj)
    if hasattr(obj, "model_dump"):
        return obj.model_dump(mode="json")
    return dict(vars(obj))


def row_from_result(result: Any, *, command: str = "run", run_id: Optional[str] = None,
                    device: Optional[str] = None, dtype: Optional[str] = None,
                    git: Optional[tuple[Optional[str], Optional[bool], Optional[str]]] = None,
                    now: Optional[datetime] = None) -> dict[str, Any]:
    """A ledger row from a ParityResult (or its JSON dict).

    device/dtype fill in when the engine never ran (its provenance is then empty); git is
    (commit, dirty, branch) and defaults to this checkout's state.
    """
    r = _as_dict(result)
    from harness.model.paths import REPO_ROOT  # noqa: PLC0415 - keeps this module importable alone

    commit, dirty, branch = git if git is not None else git_info(str(REPO_ROOT))
    ref = r.get("reference") or {}
    eng = r.get("engine") or {}
    ref_prov = ref.get("provenance") or {}
    eng_prov = eng.get("provenance") or {}
    if ref_prov.get("binary_sha256"):
        ref_id = ref_prov.get("binary_sha256")
        ref_sha = ref_prov.get("binary_sha256")
    else:
        ref_id = ref_prov.get("recording")
        ref_sha = ref_prov.get("manifest_sha256")
    rows = r.get("rows") or []
    trace_rows = [{"kind": x.get("kind"), "key": x.get("key"), "occurrence": x.get("occurrence"),
                   "phi_tic": x.get("phi_tic"), "abs_diff": _num(x.get("abs_diff")),
                   "verdict": x.get("verdict"), "c": x.get("c"), "torch": x.get("torch")}
                  for x in (_as_dict(x) for x in rows)]
    fd = _as_dict(r.get("first_divergence")) or {}
    img = r.get("image") or {}
    worst = img.get("worst_pixel") or (None, None)
    pixel = r.get("pixel") or (None, None)
    return {
        "run_id": run_id or new_run_id(),
        "command": command,
        "time_utc": (now or datetime.now(timezone.utc)).isoformat(timespec="microseconds"),
        "case_name": r["case"],
        "mode": r.get("mode"),
        "pixel_slow": pixel[0], "pixel_fast": pixel[1],
        "commit_sha": commit, "dirty": None if dirty is None else int(bool(dirty)), "branch": branch,
        "device": eng_prov.get("device") or device, "dtype": eng_prov.get("dtype") or dtype,
        "reference_runner": ref.get("runner"), "reference_id": ref_id, "reference_sha256": ref_sha,
        "status": r["status"], "exit_code": int(r["exit_code"]), "label": r.get("label"),
        "first_key": fd.get("label"), "first_delta": _num(fd.get("abs_diff")),
        "key_deltas": max_delta_per_key(trace_rows),
        "trace_rows": trace_rows,
        "image_ok": None if not img else int(bool(img.get("ok"))),
        "image_max_abs_diff": _num(img.get("max_abs_diff")),
        "image_rel_to_max": _num(img.get("rel_to_max")),
        "image_correlation": _num(img.get("correlation")),
        "image_n_failed": img.get("n_failed"),
        "image_worst_slow": worst[0], "image_worst_fast": worst[1],
        "image_metrics": img or None,
        "wall_reference_s": _num(ref.get("wall_s")), "wall_engine_s": _num(eng.get("wall_s")),
        "evidence_dir": r.get("evidence_dir"),
    }


def max_delta_per_key(trace_rows: Iterable[Mapping[str, Any]]) -> dict[str, Optional[float]]:
    """{key: largest |Δ| over its occurrences and φ tics}; φ-line fields as ``phi:FIELD``."""
    out: dict[str, Optional[float]] = {}
    for row in trace_rows:
        name = ("phi:" if row.get("kind") == "phi" else "") + str(row.get("key"))
        d = _num(row.get("abs_diff"))
        prev = out.get(name)
        out[name] = d if prev is None else (prev if d is None else max(prev, d))
    return out


def selected_delta(trace_rows: Iterable[Mapping[str, Any]], word: str) -> Optional[float]:
    """Largest |Δ| over the rows a ``--keys`` word selects (a component alias such as k_frac
    compares that one component). None when no row matches or nothing numeric was compared."""
    from harness.compare import keys  # noqa: PLC0415 - needs the engine's key catalog

    sels = keys.resolve(word)  # KeyError with a one-line message for unknown words
    best: Optional[float] = None
    for row in trace_rows:
        for sel in sels:
            if not sel.matches(str(row.get("kind")), str(row.get("key"))):
                continue
            if sel.component is None:
                d = _num(row.get("abs_diff"))
            else:
                c, t = row.get("c") or (), row.get("torch") or ()
                d = (_num(abs(_num(t[sel.component]) - _num(c[sel.component])))
                     if sel.component < min(len(c), len(t)) and _num(c[sel.component]) is not None
                     and _num(t[sel.component]) is not None else None)
            if d is not None:
                best = d if best is None else max(best, d)
            break
    return best


# ---------------------------------------------------------------- the ledger


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

    @property
    def regressed(self) -> bool:
        return self.before == GREEN_STATUS and self.after != GREEN_STATUS


def _is_corruption(e: sqlite3.DatabaseError) -> bool:
    if isinstance(e, sqlite3.OperationalError):
        msg = str(e).lower()
        return "malformed" in msg or "not a database" in msg or "corrupt" in msg
    return True  # DatabaseError proper: "file is not a database", "disk image is malformed"


def _default_notice(msg: str) -> None:
    sys.stderr.write(f"nbparity: {msg}\n")


class Ledger:
    """One SQLite file. Every call opens its own short-lived connection (xdist-safe)."""

    def __init__(self, path: Path, notice: Callable[[str], None] = _default_notice):
        self.path = Path(path)
        self.notice = notice
        self.notices: list[str] = []

    @classmethod
    def under(cls, results_dir: Path, **kw: Any) -> "Ledger":
        return cls(ledger_path(results_dir), **kw)

    # -- connection handling
    def _report(self, msg: str) -> None:
        self.notices.append(msg)
        self.notice(msg)

    @contextmanager
    def _lock(self) -> Iterator[None]:
        """A process-wide lock for the rare set-aside step, so two workers never both rename."""
        lock = self.path.with_name(self.path.name + ".lock")
        with open(lock, "a") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def _open(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        con = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
        try:
            con.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
            mode = con.execute("PRAGMA journal_mode=WAL").fetchone()
            if mode is None or str(mode[0]).lower() != "wal":
                # Not fatal (e.g. a filesystem without shared memory); appends still lock.
                pass
            con.execute("BEGIN IMMEDIATE")
            cols = ", ".join(f"{k} {t}" for k, t in COLUMNS.items())
            con.execute(f"CREATE TABLE IF NOT EXISTS runs (id INTEGER PRIMARY KEY AUTOINCREMENT, {cols})")
            con.execute("CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v TEXT)")
            con.execute("INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
            have = {r[1] for r in con.execute("PRAGMA table_info(runs)")}
            for k, t in COLUMNS.items():  # a newer schema adds columns; old rows read NULL
                if k not in have:
                    con.execute(f"ALTER TABLE runs ADD COLUMN {k} {t.replace(' NOT NULL', '')}")
            con.execute("COMMIT")
        except BaseException:
            con.close()
            raise
        return con

    def _set_aside(self, why: Exception) -> Optional[Path]:
        """Rename a corrupt ledger out of the way (never delete it); None if already done."""
        with self._lock():
            if not self.path.exists():
                return None
            try:  # another worker may have replaced it with a healthy one meanwhile
                con = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_MS / 1000)
                try:
                    ok = con.execute("PRAGMA quick_check").fetchone()
                finally:
                    con.close()
                if ok and ok[0] == "ok":
                    return None
            except sqlite3.DatabaseError:
                pass
            stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S.%fZ")
            target = self.path.with_name(f"{self.path.name}.corrupt-{stamp}")
            os.rename(self.path, target)
            for suffix in ("-wal", "-shm", "-journal"):
                side = self.path.with_name(self.path.name + suffix)
                if side.exists():
                    os.rename(side, target.with_name(target.name + suffix))
        self._report(f"ledger {self.path} is corrupt ({why}); moved aside to {target.name}, "
                     "starting a fresh ledger")
        return target

    def _with_connection(self, fn: Callable[[sqlite3.Connection], Any]) -> Any:
        """Run fn on a fresh connection; on corruption set the file aside and retry once."""
        for attempt in (0, 1):
            try:
                con = self._open()
                try:
                    return fn(con)
                finally:
                    con.close()
            except sqlite3.DatabaseError as e:
                if attempt == 0 and _is_corruption(e):
                    self._set_aside(e)
                    continue
                raise LedgerError(f"ledger {self.path}: {e}") from None
        raise AssertionError("unreachable")  # pragma: no cover

    # -- writing
    def append(self, row: Mapping[str, Any]) -> int:
        """Append one row (see COLUMNS; a ParityResult goes through row_from_result first)."""
        missing = [k for k, t in COLUMNS.items() if "NOT NULL" in t and row.get(k) is None]
        if missing:
            raise ValueError(f"ledger row lacks {', '.join(missing)}")
        unknown = set(row) - set(COLUMNS)
        if unknown:
            raise ValueError(f"ledger row has unknown columns {sorted(unknown)}")
        values = [json.dumps(row.get(k), allow_nan=False) if k in JSON_COLUMNS and row.get(k) is not None
                  else row.get(k) for k in COLUMNS]

        def insert(con: sqlite3.Connection) -> int:
            for delay in (0.05, 0.1, 0.2, 0.4, 0.8, 1.6, 0):
                try:
                    with con:  # sqlite3 context: one transaction
                        cur = con.execute(
                            f"INSERT INTO runs ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})",
                            values)
                    return int(cur.lastrowid)
                except sqlite3.OperationalError as e:
                    # busy_timeout covers nearly all contention; this covers the rest (WAL reset).
                    if "locked" not in str(e) or not delay:
                        raise
                    time.sleep(delay)
            raise AssertionError("unreachable")  # pragma: no cover

        return self._with_connection(insert)

    def append_result(self, result: Any, **kw: Any) -> int:
        return self.append(row_from_result(result, **kw))

    # -- reading
    def read(self, case: Optional[str] = None) -> pd.DataFrame:
        """All rows (oldest first) as a DataFrame; JSON columns decoded, time as datetime."""
        def select(con: sqlite3.Connection) -> pd.DataFrame:
            q = "SELECT * FROM runs" + (" WHERE case_name = ?" if case else "") + " ORDER BY id"
            cur = con.execute(q, (case,) if case else ())
            names = [d[0] for d in cur.description]
            return pd.DataFrame.from_records(cur.fetchall(), columns=names)

        if not self.path.exists():
            return empty_frame()
        df = self._with_connection(select)
        for k in JSON_COLUMNS:
            df[k] = df[k].map(lambda s: json.loads(s) if isinstance(s, str) else None).astype(object)
        for k, t in COLUMNS.items():  # text columns: None for missing, never a float NaN
            if t.startswith("TEXT") and k not in JSON_COLUMNS:
                df[k] = df[k].astype(object).where(df[k].notna(), None)
        df["time_utc"] = pd.to_datetime(df["time_utc"], utc=True, format="ISO8601")
        df["dirty"] = df["dirty"].astype("boolean")
        df["image_ok"] = df["image_ok"].astype("boolean")
        return df

    def flips(self) -> list[Flip]:
        return flips(self.read())

    def last_green(self, case: str, branch: str = "main", *, clean_only: bool = True) -> Optional[dict]:
        return last_green(self.read(case), case, branch, clean_only=clean_only)


def empty_frame() -> pd.DataFrame:
    return pd.DataFrame({"id": pd.Series(dtype="int64"),
                         **{k: pd.Series(dtype=object) for k in COLUMNS}})


# ---------------------------------------------------------------- analysis over a frame


def flips(df: pd.DataFrame) -> list[Flip]:
    """Cases whose verdict differs between their last two runs (per case and engine mode)."""
    out: list[Flip] = []
    if df.empty:
        return out
    for (case, mode), g in df.sort_values("id").groupby(["case_name", "mode"], dropna=False, sort=True):
        if len(g) < 2:
            continue
        a, b = g.iloc[-2], g.iloc[-1]
        if a["status"] != b["status"]:
            out.append(Flip(case, None if pd.isna(mode) else mode, a["status"], b["status"],
                            str(a["time_utc"]), str(b["time_utc"]), a["commit_sha"], b["commit_sha"],
                            b["first_key"] if isinstance(b["first_key"], str) else None))
    return out


def last_green(df: pd.DataFrame, case: str, branch: str = "main", *, clean_only: bool = True,
               before_id: Optional[int] = None) -> Optional[dict]:
    """The newest green (parity) row of ``case`` on ``branch``; dirty runs do not count when
    clean_only, since their code is not what the branch holds."""
    if df.empty:
        return None
    sel = (df["case_name"] == case) & (df["status"] == GREEN_STATUS) & (df["branch"] == branch)
    if clean_only:
        sel &= df["dirty"].fillna(True) == False  # noqa: E712 - pandas boolean mask
    if before_id is not None:
        sel &= df["id"] < before_id
    hit = df[sel]
    return None if hit.empty else hit.sort_values("id").iloc[-1].to_dict()


def gate_flips(df: pd.DataFrame, run_id: str, branch: str = "main", *, clean_only: bool = True) -> list[Flip]:
    """For the gate: this run's cases that are not green now but were at the last green run
    on ``branch``."""
    out: list[Flip] = []
    now = df[df["run_id"] == run_id]
    for _, row in now.sort_values("id").iterrows():
        if row["status"] == GREEN_STATUS:
            continue
        green = last_green(df, row["case_name"], branch, clean_only=clean_only, before_id=int(row["id"]))
        if green is None:
            continue
        out.append(Flip(row["case_name"], row["mode"], GREEN_STATUS, row["status"], str(green["time_utc"]),
                        str(row["time_utc"]), green["commit_sha"], row["commit_sha"],
                        row["first_key"] if isinstance(row["first_key"], str) else None))
    return out


def record(result: Any, results_dir: Path, *, command: str = "run", run_id: Optional[str] = None,
           notice: Callable[[str], None] = _default_notice, **kw: Any) -> Optional[int]:
    """Append a result to results_dir's ledger for the CLI. A ledger problem is reported, never
    allowed to change the run's verdict or exit code."""
    try:
        return Ledger.under(results_dir, notice=notice).append_result(result, command=command, run_id=run_id, **kw)
    except (LedgerError, OSError, ValueError) as e:
        notice(f"ledger not updated: {e}")
        return None
