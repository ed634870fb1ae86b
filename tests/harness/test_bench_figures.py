"""The bench's per-case figures: harness overhead, render / C, whole process / C and render /
floor, from scripted walls (no test here times anything), plus the probe's evaluation count and
the floor on a real tiny run."""
from __future__ import annotations

import io
import json

import numpy as np
import pytest
import torch
from rich.console import Console

from harness.bench import measure as bench
from harness.bench.figures_table import figures_table, worst_lines
from harness.bench.floor import floor_seconds
from harness.bench.probe import main as probe_main
from tests.harness.conftest import recorded_image
from tests.harness.test_bench import TINY, FakeProcs, _bench, _walls


@pytest.fixture
def tiny_image(golden_dir) -> np.ndarray:
    return recorded_image(golden_dir, TINY)


def test_figures_from_scripted_walls(golden_dir, tiny_image):
    procs = FakeProcs(tiny_image, _walls())
    doc = _bench(golden_dir, procs, probe=True, overhead=True).run()
    (case,) = doc["cases"]
    f = case["figures"]
    # run wall 1.75 − engine 1.0 − engine load 0.125 − reference 0.25
    assert f["overhead_s"] == pytest.approx(0.375)
    assert f["engine_load_s"] == pytest.approx(0.125)
    vs = {r["threads"]: r for r in f["vs_c"]}
    # render medians 0.4 and 0.2 against C medians 2.0 and 1.2; processes 1.0 and 0.6
    assert vs[1]["render_ratio"] == pytest.approx(0.2) and vs[2]["render_ratio"] == pytest.approx(0.2 / 1.2)
    assert vs[1]["process_ratio"] == pytest.approx(0.5) and vs[2]["process_ratio"] == pytest.approx(0.5)
    floors = {(x["dtype"], x["threads"]): x["multiple"] for x in f["floor"]}
    assert floors[("float64", 1)] == pytest.approx(4.0) and floors[("float32", 2)] == pytest.approx(2.0)
    assert doc["worst_render_ratio"] == [{"case": TINY, "render_ratio": pytest.approx(0.2), "threads": 1}]
    over = [t for t in doc["targets"] if t["target"].startswith("harness overhead")]
    assert over[0]["met"] is True
    (render,) = [t for t in doc["targets"] if t["target"].startswith("engine render")]
    assert render["case"] == TINY and render["value"] == pytest.approx(0.2) and render["met"] is True
    # The float32 whole-process target is the full frame's alone (this tiny case has none).
    assert not [t for t in doc["targets"] if t["target"].startswith("float32")]
    console = Console(file=io.StringIO(), width=300, color_system=None)
    console.print(figures_table(doc))
    text = console.file.getvalue()
    assert "render/C 1t" in text and "0.38" in text and "0.12" in text and "4.00" in text
    assert worst_lines(doc) == [f"worst render / C (float64): {TINY} 0.20 (1t)"]


def test_render_ratio_is_withheld_when_the_engine_image_fails(golden_dir, tiny_image):
    def off(img):
        img = img.copy()
        img.flat[int(np.argmax(img))] *= 1.01
        return img

    procs = FakeProcs(tiny_image, _walls(), image_edit={(bench.ENGINE, "float64"): off})
    doc = _bench(golden_dir, procs, probe=True, overhead=False).run()
    f = doc["cases"][0]["figures"]
    assert all(r["render_ratio"] is None and r["process_ratio"] is None for r in f["vs_c"])
    assert f["overhead_s"] is None and doc["worst_render_ratio"] == []


def test_probe_counts_every_evaluation(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    argv = ["-cell", "100", "100", "100", "90", "90", "90", "-default_F", "100", "-N", "2", "-lambda", "1",
            "-distance", "100", "-detpixels", "8", "-pixel", "0.1", "-oversample", "2", "-phisteps", "3",
            "-osc", "0.3", "-nonoise", "-nopgm"]
    assert probe_main(["--warmup", "0", "--repeats", "2", "--floor", "--", *argv]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["evaluations"] == 8 * 8 * 2 * 2 * 3      # pixels × sub-pixels × φ steps
    assert len(out["render_s"]) == 2 and len(out["floor_s"]) == 2
    assert probe_main(["--repeats", "0", "--", *argv]) == 2


def test_floor_runs_in_both_dtypes():
    assert floor_seconds(5000, dtype=torch.float32, chunk=1024) > 0.0
    assert floor_seconds(1, dtype=torch.float64) > 0.0


def test_render_and_float32_targets_read_the_figures():
    from harness.bench.analysis import TARGET_F32_CASE, targets
    figures = {"overhead_s": 0.5, "vs_c": [{"threads": 1, "render_ratio": 1.25}, {"threads": 2, "render_ratio": 0.5}],
               "floor": [{"dtype": "float64", "device": "cpu", "threads": 1, "render_median_s": 3.0},
                         {"dtype": "float32", "device": "cpu", "threads": 1, "render_median_s": 1.5}]}
    f32 = [{"device": "cpu", "threads": 1, "speedup": 1.3, "float32_loss_rel_to_max": 1e-3}]
    doc = {"settings": {"threads": [1, 2], "devices": ["cpu"], "c_binary": "c"},
           "cases": [{"name": TARGET_F32_CASE, "ratios": [], "float32": f32, "measurements": [], "figures": figures},
                     {"name": "small", "ratios": [], "float32": f32, "measurements": [],
                      "figures": {"vs_c": [{"threads": 1, "render_ratio": None}]}}]}
    got = {(t["target"].split(" (")[0].split(",")[0], t["case"]): t for t in targets(doc)}
    render = got[("engine render ≤ 1× C whole process", TARGET_F32_CASE)]
    assert render["value"] == 1.25 and render["met"] is False
    assert got[("engine render ≤ 1× C whole process", "small")]["met"] is None
    f = got[("float32 ≥ 1.6× float64", TARGET_F32_CASE)]
    assert f["met"] is False and "render alone 2.00×" in f["note"]
    assert ("float32 ≥ 1.6× float64", "small") not in got
