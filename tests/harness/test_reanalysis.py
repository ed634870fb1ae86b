"""Evidence a run can be re-analysed from: both float images, the source changes of a dirty
tree; and the run says how long its pictures took and how to skip them."""
from __future__ import annotations

import io
import json

import numpy as np
import pytest
from rich.console import Console

from harness.cli import main as cli
from harness.cli.common import CliConsole
from harness.report import kept_data
from harness.report.evidence import EvidenceDir
from tests.harness.conftest import recorded_image

CASE = "phi_carryover"


def _run(tmp_path, *args):
    err = io.StringIO()
    console = CliConsole(out=Console(file=io.StringIO(), width=200), err=Console(file=err, width=200))
    rc = cli.main(["--results-dir", str(tmp_path / "res"), "run", CASE, "--recorded", *args], console=console)
    return rc, tmp_path / "res" / CASE / "latest", err.getvalue()


def test_evidence_keeps_both_float_images_and_result_says_where(tmp_path, fake_engine, golden_dir):
    fake_engine(CASE, image_edit=lambda img: img + np.float32(0.5) * (img > img.max() / 2))
    rc, ev, err = _run(tmp_path, "--no-pictures")
    assert rc == 1
    res = json.loads((ev / "result.json").read_text())
    assert res["float_images"]["kept"] is True and res["float_images"]["file"] == "images.npz"
    with np.load(ev / res["float_images"]["file"]) as z:
        c, t = z["c"], z["torch"]
    ref = recorded_image(golden_dir, CASE)
    assert np.array_equal(c, ref) and c.dtype == ref.dtype
    # The kept arrays reproduce the run's image verdict without running anything.
    assert float(np.abs(t.astype(np.float64) - c).max()) == pytest.approx(res["image"]["max_abs_diff"])
    assert "pictures" not in err


def test_no_keep_images_and_the_size_threshold(tmp_path):
    c = np.zeros((30, 40), np.float32)
    with EvidenceDir(tmp_path, "x") as ev:
        assert kept_data.save_float_images(ev, c, c, keep=False) == {"kept": False, "why": "--no-keep-images"}
        small = kept_data.save_float_images(ev, c, c, max_pixels=1000)
        assert small is not None and not small["kept"] and "--keep-images" in small["why"]
        assert not (ev.staging / "images.npz").exists()
        forced = kept_data.save_float_images(ev, c, c, keep=True, max_pixels=1000)
        assert forced is not None and forced["kept"] and forced["shape"] == [30, 40]
        assert kept_data.save_float_images(ev, None, c) is None
        ev.commit()


def test_dirty_tree_saves_its_diff_and_untracked_sources(tmp_path, monkeypatch):
    patch = "diff --git a/engine/x.py b/engine/x.py\n+changed\n"
    monkeypatch.setattr(kept_data, "working_changes", lambda: (patch, ["engine/new.py", "harness/y.py"]))
    with EvidenceDir(tmp_path, "x") as ev:
        info = kept_data.save_source_changes(ev, dirty=True)
        assert (ev.staging / "git_diff.patch").read_text() == patch
        assert (ev.staging / "untracked.txt").read_text().splitlines() == ["engine/new.py", "harness/y.py"]
        ev.commit()
    assert info == {"diff": "git_diff.patch", "diff_lines": 2, "untracked": "untracked.txt", "untracked_count": 2}
    monkeypatch.setattr(kept_data, "working_changes", lambda: ("", []))
    with EvidenceDir(tmp_path, "y") as ev:
        assert kept_data.save_source_changes(ev, dirty=False) is None
        assert not (ev.staging / "git_diff.patch").exists()
        ev.commit()


def test_working_changes_reads_this_checkout():
    from harness.model.environment import checkout, working_changes

    diff, untracked = working_changes()
    state = checkout()
    assert state.dirty is not None, "the project is a git checkout"
    assert diff is not None and (bool(diff.strip()) == state.dirty)
    assert all(u.startswith(("engine/", "harness/")) for u in untracked)


def test_pictures_step_reports_its_time_and_how_to_skip_it(tmp_path, fake_engine):
    fake_engine(CASE)
    rc, ev, err = _run(tmp_path)
    assert rc == 0 and (ev / "abs_diff.png").is_file()
    line = next(ln for ln in err.splitlines() if "pictures" in ln)
    assert "--no-pictures saves this" in line and " s;" in line
    seconds = float(line.split("(")[1].split(" s;")[0])
    assert 0 < seconds < 120


def test_every_step_of_a_run_announces_itself(tmp_path, fake_engine, golden_dir, repo_case):
    """Each step that can take seconds on a full detector shows progress; none runs silently."""
    import contextlib

    from harness.model import paths
    from harness.pipeline import Context, RunOptions, run_case

    fake_engine(CASE, image_edit=lambda img: img * np.float32(1.5))
    steps: list[str] = []

    @contextlib.contextmanager
    def progress(msg):
        steps.append(msg)
        yield

    ctx = Context(golden_dir=golden_dir, results_dir=tmp_path, cases_dir=paths.cases_dir(), progress=progress)
    run_case(repo_case(CASE), RunOptions(source="recorded"), ctx)
    firsts = [s.split()[0].rstrip(":") for s in steps]
    for step in ("checking", "reference", "torch", "comparing", "tracing", "keeping", "drawing"):
        assert step in firsts, (step, steps)
    assert any("--no-pictures skips" in s for s in steps)
