"""Evidence directories: complete or absent, never reused, latest points at the newest."""
from __future__ import annotations

import multiprocessing as mp
import os
from datetime import datetime, timezone
from pathlib import Path

import pytest

from harness.report.evidence import EvidenceDir, list_runs, resolve_latest

FIXED = datetime(2030, 1, 2, 3, 4, 5, 678901, tzinfo=timezone.utc)


def _commit_one(args):
    root, i = args
    ev = EvidenceDir(Path(root), "case_a", now=FIXED)
    ev.write_text("who.txt", str(i))
    ev.write_text("big.txt", "x" * 100_000)
    return str(ev.commit())


def test_commit_moves_complete_directory_into_place(tmp_path):
    with EvidenceDir(tmp_path, "c1", now=FIXED) as ev:
        ev.write_text("a.txt", "1")
        ev.write_json("b.json", {"x": 1})
        final = ev.commit()
    assert final.name == "20300102T030405.678901Z"
    assert sorted(p.name for p in final.iterdir()) == ["a.txt", "b.json"]
    assert not [p for p in (tmp_path / "c1").iterdir() if p.name.startswith(".")]
    assert resolve_latest(tmp_path / "c1") == final


def test_exception_before_commit_leaves_nothing(tmp_path):
    with pytest.raises(RuntimeError):
        with EvidenceDir(tmp_path, "c1") as ev:
            ev.write_text("a.txt", "partial")
            raise RuntimeError("crash while writing")
    assert list((tmp_path / "c1").iterdir()) == []
    assert list_runs(tmp_path / "c1") == []


def test_same_timestamp_never_collides_or_overwrites(tmp_path):
    finals = []
    for i in range(3):
        ev = EvidenceDir(tmp_path, "c1", now=FIXED)
        ev.write_text("i.txt", str(i))
        finals.append(ev.commit())
    assert len(set(finals)) == 3
    assert [(f / "i.txt").read_text() for f in finals] == ["0", "1", "2"]


def test_concurrent_processes_get_distinct_complete_directories(tmp_path):
    # spawn, not fork: a fork of a pytest worker that has run torch can deadlock on a lock held
    # by one of its threads at fork time.
    ctx = mp.get_context("spawn")
    with ctx.Pool(4) as pool:
        finals = pool.map(_commit_one, [(str(tmp_path), i) for i in range(12)])
    assert len(set(finals)) == 12
    runs = list_runs(tmp_path / "case_a")
    assert len(runs) == 12
    assert sorted((r / "who.txt").read_text() for r in runs) == sorted(str(i) for i in range(12))
    assert all(len((r / "big.txt").read_text()) == 100_000 for r in runs)
    assert not [p for p in (tmp_path / "case_a").iterdir() if p.name.startswith(".")]
    assert resolve_latest(tmp_path / "case_a") in runs


def test_latest_is_a_relative_symlink_to_the_newest(tmp_path):
    old = EvidenceDir(tmp_path, "c1", now=datetime(2030, 1, 1, tzinfo=timezone.utc))
    new = EvidenceDir(tmp_path, "c1", now=datetime(2030, 1, 2, tzinfo=timezone.utc))
    new_final = new.commit()
    old.commit()  # finishes later but is older: latest must not move back
    link = tmp_path / "c1" / "latest"
    assert link.is_symlink() and not os.path.isabs(os.readlink(link))
    assert resolve_latest(tmp_path / "c1") == new_final


def test_latest_falls_back_to_a_text_file(tmp_path, monkeypatch):
    def no_symlink(*a, **k):
        raise OSError("symlinks not supported here")
    monkeypatch.setattr(os, "symlink", no_symlink)
    final = EvidenceDir(tmp_path, "c1").commit()
    latest = tmp_path / "c1" / "latest"
    assert latest.is_file() and not latest.is_symlink()
    assert resolve_latest(tmp_path / "c1") == final


@pytest.mark.parametrize("bad", ["../x", "a/b", "", ".hidden"])
def test_case_names_cannot_escape_results(tmp_path, bad):
    with pytest.raises(ValueError):
        EvidenceDir(tmp_path, bad)


def test_file_names_stay_inside(tmp_path):
    ev = EvidenceDir(tmp_path, "c1")
    with pytest.raises(ValueError):
        ev.write_text("../escape.txt", "x")
    ev.discard()


def test_a_helper_run_does_not_move_latest(tmp_path):
    """Autotraced pixels are runs of their own, newer than the run a person asked for: ``latest``
    must stay on the main run."""
    with EvidenceDir(tmp_path, "case_a") as main:
        main.write_text("x.txt", "main")
        first = main.commit()
    with EvidenceDir(tmp_path, "case_a", mark_latest=False) as helper:
        helper.write_text("x.txt", "helper")
        second = helper.commit()
    assert second.name > first.name
    assert resolve_latest(tmp_path / "case_a") == first
