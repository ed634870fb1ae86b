"""Where results go: a results path that cannot be a folder, a corrupt or locked ledger."""
from __future__ import annotations

import sqlite3
import threading

import pytest

from tests.faults import support as s

pytestmark = pytest.mark.faults


def test_results_path_through_a_regular_file(world):
    """(chmod 0500 does not stop root, which CI runs as; a path through a file stops everyone.)"""
    blocker = world.root / "file"
    blocker.write_text("not a folder\n")
    res = world.nbparity("run", s.CASE, "--recorded", "--no-pictures", results=blocker / "sub")
    s.assert_contract(world, res, 2, evidence=False)
    assert "file" in s.error_lines(res.stderr)[0]
    assert blocker.read_text() == "not a folder\n"


def test_corrupt_ledger_is_set_aside_not_lost(world):
    ledger = world.results / "ledger.sqlite"
    for extra in ("-wal", "-shm"):
        (world.results / f"ledger.sqlite{extra}").unlink(missing_ok=True)
    garbage = b"this is not a database " * 200
    ledger.write_bytes(garbage)
    world.before_rows = []  # the rows are gone with the corruption; the bytes must not be
    res = world.nbparity("run", s.CASE, "--recorded", "--no-pictures")
    s.assert_contract(world, res, 0, evidence=True, stderr_lines=1)
    assert "ledger" in s.error_lines(res.stderr)[0]
    kept = [p for p in world.results.iterdir() if p.name.startswith("ledger.sqlite") and p.read_bytes() == garbage]
    assert kept, "the corrupt ledger's bytes were not kept"
    assert len(s.ledger_rows(world.results)) == 1


def test_locked_ledger_is_waited_for(world):
    """Another process holds the ledger in an exclusive transaction for a few seconds."""
    # The timer thread ends the transaction: the connection must allow another thread.
    con = sqlite3.connect(world.results / "ledger.sqlite", timeout=5, isolation_level=None,
                          check_same_thread=False)
    con.execute("BEGIN EXCLUSIVE")
    release = threading.Timer(6.0, lambda: (con.execute("ROLLBACK"), con.close()))
    release.start()
    try:
        res = world.nbparity("run", s.CASE, "--recorded", "--no-pictures")
    finally:
        release.join()
    s.assert_contract(world, res, 0, evidence=True, stderr_lines=0)


def test_ledger_path_is_a_folder(world):
    ledger = world.results / "ledger.sqlite"
    for extra in ("", "-wal", "-shm"):
        (world.results / f"ledger.sqlite{extra}").unlink(missing_ok=True)
    ledger.mkdir()
    world.before_rows = []
    res = world.nbparity("run", s.CASE, "--recorded", "--no-pictures")
    s.assert_contract(world, res, 0, evidence=True, ledger_row=False, stderr_lines=1)
    assert "ledger" in s.error_lines(res.stderr)[0]
    assert ledger.is_dir()
