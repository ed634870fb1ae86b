"""`nbparity recordings-check` and the plan of `record --all`, on small recording sets made here."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from harness.cli.main import main
from harness.model import paths
from harness.references import recordings_check
from harness.registry.cases import Registry
from harness.service import record_all

STDOUT = ("nanoBragg\n  mmap(inputs/mask.img) = 0x55d1c0a0\n  seed: 1234\nTRACE_C: pixel_pos_meters 0.1 0.2 0.3\n"
          "TRACE_C: I_pixel_final 1.5e-07\n  2x2 pixels\n")


def _recording(root: Path, name: str = "one", image=None, stdout: str = STDOUT, smv: bytes = b"SMV") -> Path:
    d = root / "cases" / name
    d.mkdir(parents=True, exist_ok=True)
    img = np.array([[0.0, 1.0], [2.5, 3.0]], dtype="<f4") if image is None else image
    (d / "floatimage.bin").write_bytes(img.tobytes())
    (d / "c_stdout.log").write_text(stdout)
    (d / "c_stderr.log").write_text("")
    (d / "intimage.img").write_bytes(smv)
    (d / "case.json").write_text(json.dumps({"name": name, "argv": ["-N", "1"], "detpixels": [2, 2]}))
    (root / "index.json").write_text(json.dumps({"cases": [{"name": name}]}))
    return d


def test_identical_sets_report_identical_and_volatile_lines_are_ignored(tmp_path):
    _recording(tmp_path / "ref")
    _recording(tmp_path / "new", stdout=STDOUT.replace("0x55d1c0a0", "0x7f00beef").replace("1234", "99"))
    report = recordings_check.check(tmp_path / "new", tmp_path / "ref")
    assert report.n_different == 0
    assert report.cases[0].checked == ["image", "trace (2 lines)", "intimage.img"]


def test_each_kind_of_difference_is_listed(tmp_path):
    _recording(tmp_path / "ref")
    image = np.array([[0.0, 1.0], [2.5, np.nextafter(np.float32(3.0), np.float32(4.0))]], dtype="<f4")
    _recording(tmp_path / "new", image=image, stdout=STDOUT.replace("1.5e-07", "1.5000001e-07"), smv=b"SMW")
    diffs = recordings_check.check(tmp_path / "new", tmp_path / "ref").cases[0].differences
    assert any(d.startswith("float image: 1 of 4 pixels differ") and "[slow 1, fast 1]" in d for d in diffs)
    assert any(d.startswith("trace line 2:") and "1.5000001e-07" in d for d in diffs)
    assert "intimage.img: bytes differ" in diffs


def test_trace_values_compare_as_numbers(tmp_path):
    _recording(tmp_path / "ref")
    _recording(tmp_path / "new", stdout=STDOUT.replace("1.5e-07", "1.50e-07"))
    assert recordings_check.check(tmp_path / "new", tmp_path / "ref").n_different == 0


def test_a_missing_case_is_a_difference_and_the_cli_exits_1(tmp_path, capsys):
    _recording(tmp_path / "ref")
    _recording(tmp_path / "ref", name="two")
    (tmp_path / "ref" / "index.json").write_text(json.dumps({"cases": [{"name": "one"}, {"name": "two"}]}))
    _recording(tmp_path / "new")
    code = main(["recordings-check", str(tmp_path / "new"), "--against", str(tmp_path / "ref")])
    out = capsys.readouterr().out
    assert code == 1
    assert "DIFF  two:" in out and "not in the fresh set" in out and "1 of 2 identical, 1 differ" in out


def test_record_all_plans_every_pinned_recording_once_with_fixed_c_from_its_base():
    cases, errors = Registry(paths.cases_dir()).load_all()
    assert not errors
    planned = {p.name: p for p in record_all.plan(cases)}
    pinned = {r.recording for c in cases for r in c.references.values() if r.recording}
    assert set(planned) == pinned
    for name, p in planned.items():
        assert p.case.name == (name.removesuffix("__cfixed") if p.kind == "fixed-c" else name) or \
            name not in {c.name for c in cases}
    assert record_all.output_flags(planned["smv_noise"].case) == ("-intfile", "-noisefile")
    assert record_all.output_flags(planned["pgm_scale_adc"].case) == ("-intfile", "-pgmfile")
    assert record_all.output_flags(planned["simple_cubic"].case) == ()


def _fake_pair(fake_c, monkeypatch, tmp_path, fixed_variant: str = "ok") -> Path:
    from harness.references import c_build

    inst = fake_c("phi_carryover")
    inst = inst.rename(inst.with_name("fake-instrumented"))  # fake_c names its script after the variant only
    fixed = fake_c("phi_carryover__cfixed", variant=fixed_variant)
    for binary, sha in ((inst, "2de2"), (fixed, "1d87")):
        c_build.provenance_path(binary).write_text(json.dumps({
            "source_sha256": sha, "sources": [{"repo": "r/n", "commit": "c" * 40, "path": "nanoBragg.c"}],
            "flags": ["-O2"], "compiler": {"version": "cc 1"}}))
    monkeypatch.setenv("NB_C_BIN", str(inst))
    monkeypatch.setenv("NB_C_FIXED_BIN", str(fixed))
    cases = tmp_path / "cases"
    cases.mkdir()
    (cases / "phi_carryover.toml").write_text((paths.cases_dir() / "phi_carryover.toml").read_text())
    (tmp_path / "bin" / "inputs").mkdir(parents=True)
    return cases


def test_record_all_writes_the_golden_layout_and_a_repinned_registry(fake_c, monkeypatch, tmp_path):
    from harness.model.hashing import sha256_file
    from harness.service import recordings_cache

    cases = _fake_pair(fake_c, monkeypatch, tmp_path)
    cached = recordings_cache.ensure(cases, cache_root=tmp_path / "cache", bin_dir=tmp_path / "bin")
    index = json.loads((cached.golden / "index.json").read_text())
    assert [c["name"] for c in index["cases"]] == ["phi_carryover", "phi_carryover__cfixed"]
    fixed = json.loads((cached.golden / "cases" / "phi_carryover__cfixed" / "case.json").read_text())
    assert fixed["reference_kind"] == "fixed-c" and fixed["derived_from"] == "phi_carryover"
    assert fixed["c_source"]["sha256"] == "1d87" and fixed["trace_pixel"] is None
    case = Registry(cached.cases).get("phi_carryover")
    for mode, rec in (("c-parity", "phi_carryover"), ("spec", "phi_carryover__cfixed")):
        assert case.references[mode].manifest_sha256 == sha256_file(cached.golden / "cases" / rec / "case.json")
    again = recordings_cache.ensure(cases, cache_root=tmp_path / "cache", bin_dir=tmp_path / "bin")
    assert again == cached and len(list((tmp_path / "cache").iterdir())) == 2  # the set and its lock


def test_record_all_is_all_or_nothing(fake_c, monkeypatch, tmp_path):
    import pytest

    from harness.model.errors import RunnerFailure

    cases = _fake_pair(fake_c, monkeypatch, tmp_path, fixed_variant="exit9")
    out = tmp_path / "fresh"
    with pytest.raises(RunnerFailure):
        record_all.record_all(out, cases, golden=None, bin_dir=tmp_path / "bin")
    assert not out.exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".fresh")]


def test_without_recordings_or_a_built_c_the_tests_fail_saying_make_c(tmp_path):
    import pytest

    from tests.conftest import require_golden

    with pytest.raises(pytest.fail.Exception) as e:
        require_golden(tmp_path / "nowhere")
    assert "recorded C runs not found" in str(e.value) and "make c" in str(e.value) and "NB_GOLDEN_DIR" in str(e.value)
