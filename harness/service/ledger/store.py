"""The run ledger's store: one SQLite row per case per `nbparity run`/`gate`/`bench`, read back
into pandas.

Why SQLite: the standard library has it, appends from concurrent workers (pytest-xdist, the
gate's --jobs) are safe with WAL journaling plus a busy timeout, and a half-written row is
impossible (each append is one transaction). A ledger that SQLite cannot read is never truncated
or rewritten in place: it is renamed to ``ledger.sqlite.corrupt-<stamp>`` (with its -wal/-shm
companions), the rename is reported, and a fresh ledger takes its place.
"""
from __future__ import annotations

import fcntl
import json
import os
import sqlite3
import sys
import time
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Optional

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pandas loads lazily (see the imports below)
    import pandas as pd

from harness.service.ledger import rows
from harness.service.ledger.flips import Flip, find_flips, last_green

LEDGER_NAME = "ledger.sqlite"
SCHEMA_VERSION = 2
BUSY_TIMEOUT_MS = 30_000

#: Column name → SQL type, in table order. Kept in one place so append/read/tests agree.
COLUMNS: dict[str, str] = {
    "run_id": "TEXT NOT NULL",          # one `run`/`gate`/`bench` invocation (groups its cases)
    "command": "TEXT NOT NULL",         # the run kind: run | gate | bench
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
    "reference_build": "TEXT",          # JSON: a live C's golden_bin/<bin>.provenance.json (sources, flags)
    "status": "TEXT NOT NULL",          # the comparison: parity | divergence | runner-failure | ...
    "exit_code": "INTEGER NOT NULL",
    "outcome": "TEXT",                  # what decides green: pass | xfail | fail | xpass | error
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
JSON_COLUMNS = ("key_deltas", "trace_rows", "image_metrics", "reference_build")


class LedgerError(Exception):
    """The ledger cannot be used (not corruption: e.g. a permission problem)."""


def ledger_path(results_dir: Path) -> Path:
    return Path(results_dir) / LEDGER_NAME


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
        """Append one row (see COLUMNS; a ParityResult goes through rows.row_from_result first)."""
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
        return self.append(rows.row_from_result(result, **kw))

    # -- reading
    def read(self, case: Optional[str] = None) -> pd.DataFrame:
        """All rows (oldest first) as a DataFrame; JSON columns decoded, time as datetime."""
        import pandas as pd  # noqa: PLC0415 - pandas takes ~0.3 s to load: only ledger reads pay it

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
        # rows from before the outcome column: the outcome their exit code gives
        df["outcome"] = [o if isinstance(o, str) else rows.outcome_of(int(c))
                         for o, c in zip(df["outcome"], df["exit_code"])]
        df["time_utc"] = pd.to_datetime(df["time_utc"], utc=True, format="ISO8601")
        df["dirty"] = df["dirty"].astype("boolean")
        df["image_ok"] = df["image_ok"].astype("boolean")
        return df

    def flips(self) -> list[Flip]:
        return find_flips(self.read())

    def last_green(self, case: str, branch: str = "main", *, clean_only: bool = True) -> Optional[dict]:
        return last_green(self.read(case), case, branch, clean_only=clean_only)


def empty_frame() -> pd.DataFrame:
    import pandas as pd  # noqa: PLC0415 - pandas takes ~0.3 s to load: only ledger reads pay it
    return pd.DataFrame({"id": pd.Series(dtype="int64"),
                         **{k: pd.Series(dtype=object) for k in COLUMNS}})


def record(result: Any, results_dir: Path, *, command: str = "run", run_id: Optional[str] = None,
           notice: Callable[[str], None] = _default_notice, **kw: Any) -> Optional[int]:
    """Append a result to results_dir's ledger for the CLI. A ledger problem is reported, never
    allowed to change the run's verdict or exit code."""
    try:
        return Ledger.under(results_dir, notice=notice).append_result(result, command=command, run_id=run_id, **kw)
    except (LedgerError, OSError, ValueError) as e:
        notice(f"ledger not updated: {e}")
        return None
