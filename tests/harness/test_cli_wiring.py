"""The regression service and the bench are wired into `nbparity`; `run` keeps the ledger,
pictures and, when only the image diverges, traces of extra pixels."""
from __future__ import annotations

import json

import pytest

from harness.cli import main as cli
from harness.service import ledger


@pytest.mark.parametrize("command", ["history", "flips", "report", "bisect", "bench", "gate", "import-recordings",
                                     "record"])
def test_every_subcommand_is_in_the_parser(command, capsys):
    assert cli.main([command, "--help"]) == 0
    assert "usage: nbparity " + command in capsys.readouterr().out


def test_run_appends_to_the_ledger_and_flips_reads_it(tmp_path, capsys, fake_engine):
    fake_engine("phi_carryover")
    res = str(tmp_path / "res")
    assert cli.main(["--results-dir", res, "run", "phi_carryover", "--recorded"]) == 0
    df = ledger.Ledger.under(tmp_path / "res").read()
    assert list(df["command"]) == ["run"] and list(df["status"]) == ["parity"]
    assert df["device"].iloc[0] == "cpu" and df["dtype"].iloc[0] == "float64"
    capsys.readouterr()
    assert cli.main(["--results-dir", res, "flips"]) == 0
    assert "no verdict flips" in capsys.readouterr().out
    assert cli.main(["--results-dir", res, "history", "phi_carryover", "--no-plot"]) == 0
    assert "phi_carryover" in capsys.readouterr().out


def test_run_writes_the_pictures_into_the_evidence(tmp_path, fake_engine):
    fake_engine("phi_carryover")
    assert cli.main(["--results-dir", str(tmp_path / "res"), "run", "phi_carryover", "--recorded"]) == 0
    ev = tmp_path / "res" / "phi_carryover" / "latest"
    for name in ("c_image.png", "torch_image.png", "abs_diff.png", "radial_profile.png"):
        assert (ev / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
    assert not list((tmp_path / "res" / "phi_carryover").glob(".tmp-*"))  # staged, then renamed in
    assert cli.main(["--results-dir", str(tmp_path / "r2"), "run", "phi_carryover", "--recorded",
                     "--no-pictures"]) == 0
    assert not list((tmp_path / "r2" / "phi_carryover" / "latest").glob("*.png"))


def test_image_divergence_with_an_agreeing_trace_traces_more_pixels(tmp_path, capsys, fake_engine):
    def bump(img):
        img[40, 50] += 1.0  # far from the traced pixel (10, 12), whose trace still agrees
        return img

    fake_engine("phi_carryover", image_edit=bump)
    rc = cli.main(["--results-dir", str(tmp_path / "res"), "run", "phi_carryover", "--recorded", "--json"])
    res = json.loads(capsys.readouterr().out)
    assert rc == 1 and res["first_divergence"] is None and not res["image"]["ok"]
    picks = res["autopixels"]
    assert picks and picks[0]["chosen"]["slow"] == 40 and picks[0]["chosen"]["fast"] == 50
    assert all(p["status"] == "engine-only" for p in picks)  # no live C: traced in the engine alone
    ev = tmp_path / "res" / "phi_carryover" / "latest"
    saved = json.loads((ev / "autopixels.json").read_text())
    assert [p["chosen"]["slow"] for p in saved["pixels"]] == [p["chosen"]["slow"] for p in picks]
    assert "traced 4 more pixels" in (ev / "report.txt").read_text() or \
        f"traced {len(picks)} more pixels" in (ev / "report.txt").read_text()
    assert "(slow 40, fast 50) worst |Δ|" in (ev / "report.txt").read_text()
