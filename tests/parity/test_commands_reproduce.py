"""Every command in an evidence directory's commands.txt reproduces its run exactly.

The engine's line is what a person re-runs to look at a divergence: against a fixed-C reference
it must carry the C defects the engine reproduced (the defects that build did not fix), or the
re-run is a different image (max|Δ|/max|C| 1.03 on supervisor__cfixed).
"""
from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from engine.io import floatimage
from harness.model import paths
from harness.pipeline import Context, RunOptions, run_case
from harness.references import recordings
from harness.registry.cases import Registry
from harness.runners.engine import SHOWN_FLOATFILE


def _engine_command(commands_txt: str) -> list[str]:
    block = commands_txt.split("# engine:", 1)[1]
    line = next(x for x in block.splitlines() if x.startswith("command: "))
    return shlex.split(line.removeprefix("command: "))


@pytest.mark.parity
def test_engine_command_of_a_fixed_c_run_gives_the_same_image(tmp_path, golden_dir):
    case = Registry(paths.cases_dir()).get("phi_rotation_9steps")
    ref = case.references["spec"]
    assert ref.kind == "fixed-c" and ref.fixes  # the engine runs with the defects not fixed there
    ctx = Context(golden_dir=golden_dir, results_dir=tmp_path / "res", cases_dir=paths.cases_dir())
    res = run_case(case, RunOptions(mode="spec", source="recorded", pictures=False, autotrace=False), ctx)
    assert res.status == "parity", res.failure
    cmd = _engine_command((Path(res.evidence_dir) / "commands.txt").read_text())
    assert cmd[:3] == ["python", "-m", "engine"] and "--c-defects" in cmd
    # the defects on the line are the ones the engine ran with (supervisor__cfixed: 1.03 without them)
    ran = res.engine.provenance["defects"]
    assert cmd[cmd.index("--c-defects") + 1].split(",") == ran and "pix0-vector-ignored" in ran
    for flag, value in (("--mode", "spec"), ("--dtype", "float64"), ("--device", "cpu"),
                        ("--c-threads", str(case.c_threads))):
        assert cmd[cmd.index(flag) + 1] == value
    work = tmp_path / "rerun"
    work.mkdir()
    p = subprocess.run([sys.executable, *cmd[1:]], cwd=work, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-2000:]
    shape = tuple(res.image["shape_c"])
    again = floatimage.from_bytes((work / SHOWN_FLOATFILE).read_bytes(), shape)
    c_img = recordings.read_image(recordings.load(golden_dir, ref.recording))
    # the re-run is the run: the same distance from the fixed C, pixel for pixel
    diff = np.abs(again.astype(np.float64) - c_img.astype(np.float64))
    assert float(diff.max()) == pytest.approx(res.image["max_abs_diff"], rel=1e-12, abs=1e-30)
    assert float(diff.max()) <= res.image["allowed"]
