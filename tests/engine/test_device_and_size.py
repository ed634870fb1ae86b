"""A device that is not there, or a size that cannot fit in memory, is a one-line usage error
(exit 2) before anything is allocated: never an assertion or an allocator traceback."""
from __future__ import annotations

import subprocess
import sys

import pytest
import torch

import engine.render.frame
import engine.render.trace_only
from engine import api, cli
from engine.config.device import check_device
from engine.config.options import UsageError
from engine.config.setup import build_setup
from engine.render.chunking import check_memory

TINY = ["-cell", "50", "50", "50", "90", "90", "90", "-default_F", "10", "-N", "2", "-detpixels", "8",
        "-nonoise", "-nopgm"]


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    return err


@pytest.fixture
def no_render(monkeypatch):
    """Fail loudly if a run gets as far as planning a render (the first allocation)."""
    def refuse(*a, **k):
        raise AssertionError("the render was planned: the refusal came too late")
    monkeypatch.setattr(engine.render.frame, "make_plan", refuse)
    monkeypatch.setattr(engine.render.trace_only, "make_plan", refuse)


def test_cuda_without_cuda_is_a_usage_error(monkeypatch, capsys, tmp_path, no_render):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert cli.main(TINY + ["--device", "cuda"]) == 2
    err = _one_line_error(capsys)
    assert "--device cuda" in err and "CUDA is not available" in err and "--device cpu" in err
    with pytest.raises(UsageError, match="CUDA is not available"):
        api.run(TINY, device="cuda", write_outputs=False)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("device", ["cdua", "gpu", "meta", "cuda:x"])
def test_a_misspelt_or_unsupported_device_is_a_usage_error(device, capsys, tmp_path, monkeypatch, no_render):
    monkeypatch.chdir(tmp_path)
    assert cli.main(TINY + ["--device", device]) == 2
    err = _one_line_error(capsys)
    assert repr(device) in err and "expected cpu, cuda or cuda:N" in err


def test_a_cuda_index_past_the_last_device_is_refused(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.raises(UsageError, match=r"only 1 CUDA device \(cuda:0..cuda:0\)"):
        check_device("cuda:1")
    assert check_device("cuda:0") == "cuda:0" and check_device("cpu") == "cpu"


@pytest.mark.parametrize("extra, named", [
    (["-detpixels", "200000"], "200000x200000"),
    (["-oversample", "100000"], "-oversample 100000"),
])
def test_a_size_that_cannot_fit_is_refused_before_allocating(extra, named, capsys, tmp_path, monkeypatch,
                                                            no_render):
    monkeypatch.chdir(tmp_path)
    assert cli.main(TINY + extra) == 2
    err = _one_line_error(capsys)
    assert named in err and "of memory available on cpu" in err
    assert list(tmp_path.iterdir()) == []


def test_the_refusal_weighs_the_image_and_one_row_against_what_is_available():
    setup = build_setup(TINY + ["-oversample", "2"])
    image = 8 * 8 * (8 + 4 + 1)            # float64 image, its float32 copy, the rendered mask
    check_memory(setup, available=10 ** 9)
    with pytest.raises(UsageError, match="one row of 8 pixels"):
        check_memory(setup, available=image + 1)
    big = build_setup(["-cell", "50", "50", "50", "90", "90", "90", "-default_F", "10", "-N", "2",
                       "-detpixels", "4000", "-oversample", "1"])
    with pytest.raises(UsageError, match=r"4000x4000 detector \(1.6e\+07 pixels"):
        check_memory(big, available=100 * 1024 ** 2)


def test_python_m_engine_refuses_a_huge_detector_with_exit_2(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "engine", *TINY, "-detpixels", "200000"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.count("\n") == 1 and "200000x200000" in proc.stderr
    assert list(tmp_path.iterdir()) == []
