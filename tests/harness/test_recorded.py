"""The recorded runner: replays only an unchanged recording of exactly the case's argv."""
from __future__ import annotations

import hashlib
import json
import shutil

import numpy as np
import pytest

from harness.cli import main as cli
from harness.model.errors import ReferenceDataError
from harness.runners.recorded import RecordedRunner


@pytest.fixture
def golden_copy(tmp_path, golden_dir):
    """A private copy of one small recording (tests edit it)."""
    root = tmp_path / "golden"
    shutil.copytree(golden_dir / "cases" / "phi_carryover", root / "cases" / "phi_carryover")
    for p in (root / "cases" / "phi_carryover").iterdir():
        p.chmod(0o644)
    (root / "index.json").write_text("{}")
    return root


def manifest_path(root):
    return root / "cases" / "phi_carryover" / "case.json"


def rewrite_manifest(root, **changes):
    p = manifest_path(root)
    m = json.loads(p.read_text())
    m.update(changes)
    p.write_text(json.dumps(m))


def test_replays_stdout_and_image(golden_copy, repo_case, request_for):
    out = RecordedRunner(golden_copy).run(request_for(repo_case("phi_carryover")))
    assert out.exit_code == 0 and "TRACE_C: F_cell" in out.stdout
    assert out.image.shape == (64, 64) and out.image.dtype == np.float32
    assert out.provenance["manifest_sha256"] == hashlib.sha256(manifest_path(golden_copy).read_bytes()).hexdigest()
    assert "recording phi_carryover sha256" in out.description


def test_missing_recording(golden_copy, repo_case, request_for):
    shutil.rmtree(golden_copy / "cases" / "phi_carryover")
    with pytest.raises(ReferenceDataError, match="not found"):
        RecordedRunner(golden_copy).run(request_for(repo_case("phi_carryover")))


def test_stale_manifest_sha(golden_copy, repo_case, request_for):
    rewrite_manifest(golden_copy, description="re-recorded")
    with pytest.raises(ReferenceDataError, match="stale reference.*case.json has sha256"):
        RecordedRunner(golden_copy).run(request_for(repo_case("phi_carryover")))


def test_stale_argv(golden_copy, repo_case, request_for):
    case = repo_case("phi_carryover")
    argv = list(case.argv)
    argv[argv.index("-phisteps") + 1] = "11"
    case = case.model_copy(update={"argv": argv})
    with pytest.raises(ReferenceDataError, match="argv differs.*'10', case '11'"):
        RecordedRunner(golden_copy).run(request_for(case))


def test_threads_must_match(golden_copy, repo_case, request_for):
    case = repo_case("phi_carryover").model_copy(update={"c_threads": 2})
    with pytest.raises(ReferenceDataError, match="OMP_NUM_THREADS=1"):
        RecordedRunner(golden_copy).run(request_for(case))


def test_corrupt_stored_file(golden_copy, repo_case, request_for):
    log = golden_copy / "cases" / "phi_carryover" / "c_stdout.log"
    log.write_text(log.read_text().replace("F_cell 1", "F_cell 2"))
    with pytest.raises(ReferenceDataError, match="corrupt reference.*c_stdout.log"):
        RecordedRunner(golden_copy).run(request_for(repo_case("phi_carryover")))


def test_corrupt_image_even_with_consistent_outputs(golden_copy, repo_case, request_for):
    img = golden_copy / "cases" / "phi_carryover" / "floatimage.bin"
    data = bytearray(img.read_bytes())
    data[100] ^= 0xFF
    img.write_bytes(bytes(data))
    m = json.loads(manifest_path(golden_copy).read_text())
    m["outputs"]["floatimage.bin"] = hashlib.sha256(bytes(data)).hexdigest()
    manifest_path(golden_copy).write_text(json.dumps(m))
    case = repo_case("phi_carryover")
    ref = case.references["c-parity"].model_copy(update={"manifest_sha256": None})
    case = case.model_copy(update={"references": {"c-parity": ref}})
    with pytest.raises(ReferenceDataError, match="floatimage_raw_sha256"):
        RecordedRunner(golden_copy).run(request_for(case))


def test_recording_of_another_pixel(golden_copy, repo_case, request_for):
    with pytest.raises(ReferenceDataError, match=r"traced pixel \[10, 12\], not \[1, 2\]"):
        RecordedRunner(golden_copy).run(request_for(repo_case("phi_carryover"), pixel=(1, 2)))


def test_trace_only_skips_the_image(golden_copy, repo_case, request_for):
    out = RecordedRunner(golden_copy).run(request_for(repo_case("phi_carryover"), want_image=False))
    assert out.image is None


def test_cli_stale_reference_exits_2_and_keeps_evidence(golden_copy, tmp_path, fake_engine, capsys):
    fake_engine("phi_carryover")
    rewrite_manifest(golden_copy, runtime_s=0)
    res = tmp_path / "res"
    rc = cli.main(["--golden-dir", str(golden_copy), "--results-dir", str(res), "run", "phi_carryover",
                   "--recorded", "--json"])
    assert rc == 2
    result = json.loads(capsys.readouterr().out)
    assert result["status"] == "reference-error" and "stale reference" in result["failure"]
    assert result["engine"]["description"].startswith("torch engine (not run)")
    summary = (res / "phi_carryover" / "latest" / "diff_summary.md").read_text()
    assert "stale reference" in summary
