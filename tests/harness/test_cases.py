"""Case files: the shipped ones validate and match their recordings; bad ones fail in one line."""
from __future__ import annotations

import hashlib
import json

import pytest

from harness.cli import main as cli
from harness.registry.cases import Registry, load_case, strip_output_flags
from harness.model.errors import CaseFileError, UsageError
from tests.harness.conftest import CASES, write_case

GOOD = """
name = "{name}"
argv = ["-cell", "70", "70", "70", "90", "90", "90", "-default_F", "1", "-N", "2", "-distance", "100",
        "-detpixels", "64", "-pixel", "0.1", "-phi", "0", "-osc", "0.09", "-phisteps", "10"]
trace_pixels = [[10, 12]]
[references.c-parity]
recording = "phi_carryover"
"""


def test_shipped_cases_validate_and_match_their_recordings(golden_dir):
    cases, errors = Registry(CASES).load_all()
    assert not errors, [e.message for e in errors]
    names = {c.name for c in cases}
    assert {"supervisor", "supervisor_brightest_trace"} <= names
    for case in cases:
        for mode, ref in case.references.items():
            mpath = golden_dir / "cases" / ref.recording / "case.json"
            manifest = json.loads(mpath.read_text())
            assert hashlib.sha256(mpath.read_bytes()).hexdigest() == ref.manifest_sha256, (case.name, mode)
            assert strip_output_flags(manifest["argv"]) == case.argv, (case.name, mode)
            if ref.kind == "instrumented-c":
                assert list(case.trace_pixels[0]) == manifest["trace_pixel"]


def test_supervisor_is_the_flagship(golden_dir):
    case = load_case(CASES / "supervisor.toml")
    assert case.mode == "c-parity" and [tuple(p) for p in case.trace_pixels] == [(685, 1039)]
    assert case.references["c-parity"].recording == "supervisor"
    assert case.references["spec"].kind == "fixed-c"
    bright = load_case(CASES / "supervisor_brightest_trace.toml")
    assert [tuple(p) for p in bright.trace_pixels] == [(1039, 685)] and bright.argv == case.argv


def test_good_minimal_case_defaults(tmp_path):
    case = load_case(write_case(tmp_path, "mini", GOOD.format(name="mini")))
    assert case.tolerance.atol == 1e-6 and case.tolerance.rtol == 0
    assert case.image.rtol_of_max == 1e-6 and case.mode == "c-parity" and case.c_threads == 1


BAD = [
    ("argv_missing", GOOD.replace('argv = [', 'argz = [').replace('"-phisteps", "10"]', '"-phisteps", "10"]'), "argz", "unknown field"),
    ("not_toml", "name = \n", "", "expected valid TOML"),
    ("wrong_type", GOOD.replace("trace_pixels = [[10, 12]]", "trace_pixels = [[10]]"), "trace_pixels[0]", ""),
    ("neg_pixel", GOOD.replace("trace_pixels = [[10, 12]]", "trace_pixels = [[-1, 12]]"), "trace_pixels", "non-negative"),
    ("escape", GOOD.replace('name = "{name}"', 'name = "../../etc"'), "name", "slug"),
    ("outputs", GOOD.replace('"-N", "2",', '"-N", "2", "-floatfile", "x.bin",'), "argv", "-floatfile"),
    ("bad_mode", GOOD.replace('trace_pixels', 'mode = "fast"\ntrace_pixels'), "mode", "spec"),
    ("no_ref_for_mode", GOOD.replace('trace_pixels', 'mode = "spec"\ntrace_pixels'), "", "reference for the case's mode"),
    ("bad_tol_key", GOOD + "[tolerance.keys.not_a_key]\natol = 1\n", "tolerance.keys", "trace key name"),
    ("neg_atol", GOOD + "[tolerance]\natol = -1\n", "tolerance.atol", "greater than or equal"),
    ("bad_sha", GOOD + 'manifest_sha256 = "abc"\n', "references.c-parity.manifest_sha256", "64 lowercase hex"),
    ("input_not_in_argv", GOOD.replace('trace_pixels', 'inputs = ["inputs/A.mat"]\ntrace_pixels'), "", "not named in argv"),
    ("input_escape", GOOD.replace('trace_pixels', 'inputs = ["../x"]\ntrace_pixels'), "inputs", "without '..'"),
]


@pytest.mark.parametrize("stem,body,field,needle", BAD, ids=[b[0] for b in BAD])
def test_bad_case_file_is_one_line_naming_file_and_field(tmp_path, stem, body, field, needle):
    path = write_case(tmp_path, stem, body.replace("{name}", stem))
    with pytest.raises(CaseFileError) as e:
        load_case(path)
    msg = e.value.message
    assert "\n" not in msg
    assert msg.startswith(str(path))
    assert field in msg and needle in msg, msg
    assert e.value.exit_code == 2


def test_name_must_match_file_name(tmp_path):
    path = write_case(tmp_path, "other", GOOD.format(name="mini"))
    with pytest.raises(CaseFileError, match="field 'name': expected 'other'"):
        load_case(path)


def test_listing_survives_a_bad_file(tmp_path, capsys):
    write_case(tmp_path, "good_one", GOOD.format(name="good_one"))
    write_case(tmp_path, "broken", GOOD.format(name="broken").replace("trace_pixels = [[10, 12]]", ""))
    rc = cli.main(["--cases-dir", str(tmp_path), "list"])
    out, err = capsys.readouterr()
    assert rc == 2
    assert "good_one" in out
    bad_lines = [l for l in err.splitlines() if "broken.toml" in l]
    assert len(bad_lines) == 1 and "trace_pixels" in bad_lines[0] and "required" in bad_lines[0]
    cases, errors = Registry(tmp_path).load_all()
    assert [c.name for c in cases] == ["good_one"] and len(errors) == 1


def test_show_bad_and_unknown_cases_exit_2(tmp_path, capsys):
    write_case(tmp_path, "broken", "name = 3\n")
    assert cli.main(["--cases-dir", str(tmp_path), "show", "broken"]) == 2
    assert cli.main(["--cases-dir", str(tmp_path), "show", "nope"]) == 2
    assert cli.main(["--cases-dir", str(tmp_path), "run", "../escape"]) == 2
    err = capsys.readouterr().err
    assert "broken.toml: field 'name'" in err and "no case 'nope'" in err and "not a slug" in err


def test_registry_get_rejects_path_names(tmp_path):
    with pytest.raises(UsageError):
        Registry(tmp_path).get("a/b")


def test_show_and_list_json(capsys):
    assert cli.main(["show", "supervisor", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["trace_pixels"] == [[685, 1039]]
    assert cli.main(["list", "--json", "--tag", "flagship"]) == 0
    names = {c["name"] for c in json.loads(capsys.readouterr().out)}
    assert {"supervisor", "supervisor_brightest_trace"} <= names and "phi_carryover" not in names


def test_reference_fixes_must_name_registered_defects(tmp_path):
    body = GOOD.format(name="fx") + 'fixes = ["phi0-stale-rotation"]\n'
    assert load_case(write_case(tmp_path, "fx", body)).references["c-parity"].fixes == ["phi0-stale-rotation"]
    bad = GOOD.format(name="fy") + 'fixes = ["no-such-defect"]\n'
    with pytest.raises(CaseFileError, match="references.c-parity.fixes.*no-such-defect"):
        load_case(write_case(tmp_path, "fy", bad))
