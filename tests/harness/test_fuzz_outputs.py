"""Output files of a fuzz example (-intfile/-pgmfile/-noisefile) are compared byte for byte
with the live C's; a byte off is a divergence named 'output:FLAG', written out with the
output files in its recording."""
from __future__ import annotations

import json

import pytest

pytest.importorskip("hypothesis")

from hypothesis import given, settings  # noqa: E402

from engine.outputs import files as engine_files  # noqa: E402
from harness.runners.c import CRunner  # noqa: E402
from harness.runners.engine import TorchRunner  # noqa: E402
from harness.service.fuzz import outputs  # noqa: E402
from harness.service.fuzz.campaign import Found  # noqa: E402
from harness.service.fuzz.example import run_example  # noqa: E402
from harness.service.fuzz.strategy import Example, examples  # noqa: E402
from harness.model.paths import REPO_ROOT  # noqa: E402
from harness.service.fuzz.writeout import shown, write_case  # noqa: E402
from tests.harness.test_fuzz_example import BASE, _live_c  # noqa: E402


def test_difference_names_the_first_byte_and_a_missing_file():
    assert outputs._difference(b"abc", b"abc") is None
    assert outputs._difference(None, None) is None
    assert "first difference at byte 1" in outputs._difference(b"abc", b"aXc")
    assert "at byte 3" in outputs._difference(b"abc", b"abcd")
    assert outputs._difference(b"abc", None) == "written by the C only"


def test_some_examples_ask_for_outputs_and_noise_is_seeded():
    seen = []

    @settings(max_examples=60, database=None)
    @given(examples(("outputs",), max_pixels=8))
    def draw(ex: Example) -> None:
        seen.append(ex)
        assert set(ex.outputs) <= {"-intfile", "-pgmfile", "-noisefile"}
        assert "-noisefile" not in ex.outputs or "-seed" in ex.argv
        assert not any(f in ex.argv for f in ("-intfile", "-pgmfile", "-noisefile"))

    draw()
    assert any(ex.outputs for ex in seen) and any(not ex.outputs for ex in seen)


@pytest.mark.parametrize("flags", [("-intfile",), ("-pgmfile",), ("-noisefile",)])
def test_outputs_match_the_live_c(flags):
    argv = BASE + ("-seed", "3") if "-noisefile" in flags else BASE
    verdict = run_example(Example(argv, {}, (8, 8), flags), CRunner(_live_c()), TorchRunner())
    assert not verdict.divergent, verdict


def test_a_pgm_byte_off_is_an_output_divergence_and_is_recorded(tmp_path, monkeypatch):
    binary = _live_c()
    original = engine_files.pgm_bytes

    def one_byte_off(*a, **k):
        blob = bytearray(original(*a, **k))
        blob[-1] ^= 1
        return bytes(blob)

    monkeypatch.setattr(engine_files, "pgm_bytes", one_byte_off)
    ex = Example(BASE, {}, (8, 8), ("-intfile", "-pgmfile"))
    verdict = run_example(ex, CRunner(binary), TorchRunner())
    assert verdict.divergent and verdict.signature == "output:-pgmfile", verdict
    _path, case = write_case(Found(ex, verdict), tmp_path / "cases", binary)
    assert {"outputs", "pgm", "smv-output"} <= set(case.tags)
    manifest = json.loads((tmp_path / "cases" / "recordings" / "cases" / case.name / "case.json").read_text())
    assert {"image.pgm", "intimage.img"} <= set(manifest["outputs"])


def test_case_comments_name_repository_paths_relatively():
    assert shown(REPO_ROOT / "cases" / "fuzz" / "recordings") == "cases/fuzz/recordings"
