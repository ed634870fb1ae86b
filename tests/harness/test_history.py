"""History of one case: table content and the PNG plot."""
from __future__ import annotations

import io

import numpy as np
import pytest
from rich.console import Console

from harness.service import history
from tests.harness.service_fixtures import append, silent_ledger

from PIL import Image as PIL  # noqa: E402 - pillow comes with matplotlib


@pytest.fixture
def df(tmp_path):
    lg = silent_ledger(tmp_path / "l.sqlite")
    append(lg, "a", "parity", 0, commit="aaaaaaaaaaaa1")
    append(lg, "other", "parity", 1)
    append(lg, "a", "parity", 2, commit="aaaaaaaaaaaa2", k_delta=4e-7)
    append(lg, "a", "divergence", 3, commit="bbbbbbbbbbbb3", k_delta=6e-6, image_delta=0.5)
    append(lg, "a", "divergence", 4, commit="bbbbbbbbbbbb4", k_delta=8e-6, image_delta=0.7, dirty=True)
    return lg.read()


def _text(table) -> str:
    con = Console(record=True, width=250, file=io.StringIO(), color_system=None)
    con.print(table)
    return con.export_text()


def test_history_frame_selects_the_case_and_the_key(df):
    h = history.history_frame(df, "a", key="k_frac")
    assert list(h["commit_sha"]) == ["aaaaaaaaaaaa1", "aaaaaaaaaaaa2", "bbbbbbbbbbbb3", "bbbbbbbbbbbb4"]
    assert h["key_delta"].tolist() == pytest.approx([0.0, 4e-7, 6e-6, 8e-6])
    assert h["flip"].tolist() == [False, False, True, False]
    assert len(history.history_frame(df, "a", limit=2)) == 2
    with pytest.raises(KeyError):
        history.history_frame(df, "a", key="nonsense_key")


def test_history_table_shows_trend_and_flip(df):
    h = history.history_frame(df, "a", key="k_frac")
    text = _text(history.history_table(h, "a", key="k_frac"))
    lines = [l for l in text.splitlines() if "aaaaaaaaaa" in l or "bbbbbbbbbb" in l]
    assert len(lines) == 4
    assert "⇄ fail (divergence)" in lines[2] and "6e-06" in lines[2] and "hkl_frac" in lines[2]
    assert "+dirty" in lines[3] and "8e-06" in lines[3] and "0.7" in lines[3]
    assert "⇄" not in lines[3] and "parity" in lines[0]
    assert "c-parity/cpu/float64" in lines[0]


def test_history_plot_is_a_real_plot(tmp_path, df):
    h = history.history_frame(df, "a", key="k_frac")
    out = history.plot_history(h, "a", history.default_plot_path(tmp_path, "a", "k_frac"), key="k_frac",
                               tolerance=1e-6)
    assert out == tmp_path / "history" / "a__k_frac.png"
    assert out.stat().st_size > 10_000
    with PIL.open(out) as im:
        assert im.size == (900, 450) and "runs=4" in im.info["Description"]
        rgb = np.asarray(im.convert("RGB"), dtype=np.int16)
    red = (rgb[..., 0] > 200) & (rgb[..., 1] < 50) & (rgb[..., 2] < 50)
    green = (rgb[..., 0] < 50) & (rgb[..., 1] > 100) & (rgb[..., 2] < 50)
    assert red.sum() > 40 and green.sum() > 40     # two divergent and two parity markers
    # The divergent runs (larger Δ) sit higher on the plot than the parity runs.
    assert np.argwhere(red)[:, 0].mean() < np.argwhere(green)[:, 0].mean()
