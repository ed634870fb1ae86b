"""`nbparity record CASE`: a live C run stored as a recording in the shared/golden format.

The C is a fake executable that replays a recorded run, so these tests need no C binary."""
from __future__ import annotations

import gzip
import json
import os
import stat

import numpy as np

from harness.cli import main as cli
from harness.registry import importer
from harness.references import recordings
from harness.registry.cases import load_case
from harness.model.hashing import sha256_bytes, sha256_file
from tests.harness.conftest import CASES, recorded_image


def test_record_writes_a_recording_that_verifies_and_imports(tmp_path, fake_c, golden_dir, capsys, fake_engine):
    fake = fake_c("phi_carryover")
    root = tmp_path / "rec"
    rc = cli.main(["--golden-dir", str(golden_dir), "record", "phi_carryover", "--c-bin", str(fake),
                   "--out", str(root)])
    assert rc == 0, capsys.readouterr()
    d = root / "cases" / "phi_carryover"
    m = json.loads((d / "case.json").read_text())
    assert m["argv"][-5:] == ["-floatfile", "cases/phi_carryover/floatimage.bin", "-trace_pixel", "10", "12"]
    assert m["trace_pixel"] == [10, 12] and m["detpixels"] == [64, 64] and m["reference_kind"] == "instrumented-c"
    assert m["omp_num_threads"] == 1 and m["exit_code"] == 0 and not m["floatimage_gzipped"]
    assert "Fdump.bin" in m["side_outputs_discarded"]  # the fake drops one in its cwd
    assert set(m["outputs"]) == {"c_stdout.log", "c_stderr.log", "floatimage.bin"}
    for name, sha in m["outputs"].items():
        assert sha256_file(d / name) == sha
    img = np.fromfile(d / "floatimage.bin", "<f4").reshape(64, 64)
    np.testing.assert_array_equal(img, recorded_image(golden_dir, "phi_carryover"))
    assert m["floatimage_raw_sha256"] == sha256_bytes(img.tobytes())
    assert "F_latt" in m["trace_c_keys_present"] and m["trace_c_phi_lines"] == 10
    index = json.loads((root / "index.json").read_text())
    assert [c["name"] for c in index["cases"]] == ["phi_carryover"]

    # it is a valid reference for the case, and import-recordings pins it
    case = load_case(CASES / "phi_carryover.toml")
    rec = recordings.load(root, "phi_carryover")
    recordings.verify(rec, case, case.references["c-parity"].model_copy(update={"manifest_sha256": None}), (10, 12))
    cases = tmp_path / "cases"
    importer.write_plan(importer.plan_import(root, cases))
    assert load_case(cases / "phi_carryover.toml").references["c-parity"].manifest_sha256 == sha256_bytes(
        (d / "case.json").read_bytes())
    fake_engine("phi_carryover")
    assert cli.main(["--cases-dir", str(cases), "--golden-dir", str(root), "--results-dir", str(tmp_path / "res"),
                     "run", "phi_carryover", "--recorded", "--no-pictures"]) == 0


def test_record_refuses_to_overwrite_and_records_nothing_on_failure(tmp_path, fake_c, golden_dir, capsys):
    root = tmp_path / "rec"
    args = ["--golden-dir", str(golden_dir), "record", "phi_carryover", "--out", str(root)]
    assert cli.main([*args, "--c-bin", str(fake_c("phi_carryover"))]) == 0
    before = (root / "cases" / "phi_carryover" / "case.json").read_bytes()
    assert cli.main([*args, "--c-bin", str(fake_c("phi_carryover"))]) == 2
    assert "--force" in capsys.readouterr().err
    assert cli.main([*args, "--c-bin", str(fake_c("phi_carryover", "exit9")), "--force"]) == 3
    assert cli.main([*args, "--c-bin", str(fake_c("phi_carryover", "truncated")), "--force"]) == 3
    assert (root / "cases" / "phi_carryover" / "case.json").read_bytes() == before
    assert sorted(p.name for p in (root / "cases").iterdir()) == ["phi_carryover"]


def test_record_large_image_is_gzipped_and_fixed_c_has_no_trace(tmp_path, fake_c, golden_dir, monkeypatch):
    from harness.service import record

    monkeypatch.setattr(record, "GZIP_OVER_BYTES", 1000)
    fake = fake_c("phi_carryover")
    root = tmp_path / "rec"
    assert cli.main(["--golden-dir", str(golden_dir), "record", "phi_carryover", "--c-bin", str(fake),
                     "--out", str(root), "--fixed"]) == 0
    d = root / "cases" / "phi_carryover__cfixed"
    m = json.loads((d / "case.json").read_text())
    assert m["floatimage_gzipped"] and m["reference_kind"] == "fixed-c" and m["trace_pixel"] is None
    assert m["derived_from"] == "phi_carryover" and "-trace_pixel" not in m["argv"]
    raw = gzip.decompress((d / "floatimage.bin.gz").read_bytes())
    assert sha256_bytes(raw) == m["floatimage_raw_sha256"]


def test_record_needs_a_binary(tmp_path, monkeypatch):
    monkeypatch.delenv("NB_C_BIN", raising=False)
    monkeypatch.setattr("harness.runners.choose.REPO_ROOT", tmp_path)
    assert cli.main(["record", "phi_carryover", "--out", str(tmp_path / "x")]) == 2


def _tree(root):
    """Every path under root with its bytes (and mode), to prove a failed record left nothing."""
    return {p.relative_to(root).as_posix(): (p.read_bytes() if p.is_file() else b"", p.stat().st_mode)
            for p in sorted(root.rglob("*"))}


def test_record_with_a_corrupt_index_is_a_one_line_error_and_leaves_nothing(tmp_path, fake_c, golden_dir, capsys):
    root = tmp_path / "rec"
    (root / "cases").mkdir(parents=True)
    (root / "index.json").write_text('{"cases": [')
    before = _tree(root)
    rc = cli.main(["--golden-dir", str(golden_dir), "record", "phi_carryover", "--out", str(root),
                   "--c-bin", str(fake_c("phi_carryover"))])
    err = capsys.readouterr().err
    assert rc == 2
    assert "index.json is not valid JSON" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    assert _tree(root) == before


def test_record_of_a_half_written_image_is_a_one_line_error_and_leaves_nothing(tmp_path, fake_c, golden_dir, capsys):
    root = tmp_path / "rec"
    args = ["--golden-dir", str(golden_dir), "record", "phi_carryover", "--out", str(root)]
    assert cli.main([*args, "--c-bin", str(fake_c("phi_carryover"))]) == 0
    capsys.readouterr()
    before = _tree(root)
    rc = cli.main([*args, "--force", "--c-bin", str(fake_c("phi_carryover", "half"))])
    err = capsys.readouterr().err
    assert rc == 3
    assert "bytes, expected" in err and "nothing recorded" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    assert _tree(root) == before


def test_a_recording_is_readable_by_others(tmp_path, fake_c, golden_dir):
    root = tmp_path / "rec"
    old = os.umask(0o022)
    try:
        assert cli.main(["--golden-dir", str(golden_dir), "record", "phi_carryover", "--out", str(root),
                         "--c-bin", str(fake_c("phi_carryover"))]) == 0
    finally:
        os.umask(old)
    assert stat.S_IMODE((root / "cases" / "phi_carryover").stat().st_mode) == 0o755


def test_staging_of_a_killed_record_is_swept_by_the_next(tmp_path, fake_c, golden_dir):
    import subprocess
    import sys

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    root = tmp_path / "rec"
    stale = root / "cases" / f".record-phi_carryover-{dead.pid}-abc123"
    stale.mkdir(parents=True)
    assert cli.main(["--golden-dir", str(golden_dir), "record", "phi_carryover", "--out", str(root),
                     "--c-bin", str(fake_c("phi_carryover"))]) == 0
    assert sorted(p.name for p in (root / "cases").iterdir()) == ["phi_carryover"]
