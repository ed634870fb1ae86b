"""Missing, corrupt, stale and forged recordings: exit 2 (a reference error), never a pass."""
from __future__ import annotations

import gzip
import hashlib
import json
import shutil

import pytest

from tests.faults import support as s

pytestmark = pytest.mark.faults


def _rec(world):
    return world.golden / "cases" / s.CASE


def _manifest(world) -> dict:
    return json.loads((_rec(world) / "case.json").read_text())


def _forge(world, manifest: dict) -> None:
    """Rewrite case.json and pin the case to it, as someone who edits both would."""
    path = _rec(world) / "case.json"
    path.write_text(json.dumps(manifest, indent=2))
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    world.write_case(s.case_toml(recording=s.CASE, sha=sha))


def _sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _run(world, *extra):
    return world.nbparity("run", s.CASE, "--recorded", "--no-pictures", *extra)


def test_recording_missing(world):
    shutil.rmtree(_rec(world))
    res = _run(world)
    s.assert_contract(world, res, 2)
    assert "tiny" in s.error_lines(res.stderr)[0]


def test_recordings_root_missing(world):
    res = world.nbparity("run", s.CASE, "--recorded", "--no-pictures", "--golden-dir", str(world.root / "nowhere"))
    s.assert_contract(world, res, 2)


def test_manifest_not_json(world):
    (_rec(world) / "case.json").write_text('{"argv": [')
    res = _run(world)
    s.assert_contract(world, res, 2)
    assert "case.json" in s.error_lines(res.stderr)[0]


def test_manifest_edited_no_longer_matches_the_pin(world):
    m = _manifest(world)
    m["description"] = "edited by hand"
    (_rec(world) / "case.json").write_text(json.dumps(m, indent=2))
    res = _run(world)
    s.assert_contract(world, res, 2)
    assert "stale" in s.error_lines(res.stderr)[0]


def test_stdout_log_changed_after_recording(world):
    with open(_rec(world) / "c_stdout.log", "a") as f:
        f.write("TRACE_C: I_pixel_final 1\n")
    res = _run(world)
    s.assert_contract(world, res, 2)
    assert "c_stdout.log" in s.error_lines(res.stderr)[0]


def test_image_byte_flipped(world):
    img = _rec(world) / "floatimage.bin"
    data = bytearray(img.read_bytes())
    data[5] ^= 0x40
    img.write_bytes(bytes(data))
    res = _run(world)
    s.assert_contract(world, res, 2)
    assert "floatimage" in s.error_lines(res.stderr)[0]


def test_case_argv_edited_against_its_recording(world):
    argv = list(s.ARGV)
    argv[argv.index("-N") + 1] = "3"
    world.write_case(s.case_toml(argv=argv, recording=s.CASE, sha=_manifest_sha(world)))
    res = _run(world)
    s.assert_contract(world, res, 2)
    assert "argv" in s.error_lines(res.stderr)[0]


def _manifest_sha(world) -> str:
    return _sha(_rec(world) / "case.json")


def test_forged_manifest_with_a_wrong_image_sha(world):
    """The manifest and its pin agree, but the image is not the one the manifest promises."""
    m = _manifest(world)
    m["floatimage_raw_sha256"] = "0" * 64
    _forge(world, m)
    res = _run(world)
    s.assert_contract(world, res, 2)


def test_forged_manifest_without_outputs(world):
    m = _manifest(world)
    del m["outputs"]
    _forge(world, m)
    res = _run(world)
    s.assert_contract(world, res, 2)
    assert "outputs" in s.error_lines(res.stderr)[0]


def test_truncated_gzip_image(world):
    """A gzipped image cut short, its hashes forged to match: the decoder's error is one line."""
    rec = _rec(world)
    raw = (rec / "floatimage.bin").read_bytes()
    gz = gzip.compress(raw)[:-12]
    (rec / "floatimage.bin").unlink()
    (rec / "floatimage.bin.gz").write_bytes(gz)
    m = _manifest(world)
    m["floatimage_gzipped"] = True
    m["outputs"].pop("floatimage.bin")
    m["outputs"]["floatimage.bin.gz"] = hashlib.sha256(gz).hexdigest()
    _forge(world, m)
    res = _run(world)
    s.assert_contract(world, res, 2)
    assert "floatimage.bin.gz" in s.error_lines(res.stderr)[0]


def test_image_of_the_wrong_size(world):
    rec = _rec(world)
    img = rec / "floatimage.bin"
    img.write_bytes(img.read_bytes()[:-4])
    m = _manifest(world)
    m["outputs"]["floatimage.bin"] = _sha(img)
    m["floatimage_raw_sha256"] = _sha(img)
    _forge(world, m)
    res = _run(world)
    s.assert_contract(world, res, 2)
