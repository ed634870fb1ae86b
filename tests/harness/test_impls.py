"""The implementation registry and key alignment across conventions (issue 13).

The trace-level tests need no process; the fake-port tests run tests/harness/fixtures/fake_port.py
(the bundled engine behind a C-style command line with four planted differences) against the
engine through `run_pair`, the same path as `nbparity run CASE --impl fake --vs engine`.
"""
from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
import pytest

from harness.compare import conventions
from harness.compare.primitive import Tolerance, ToleranceTable
from harness.model.errors import CaseFileError, UsageError
from harness.model.paths import REPO_ROOT
from harness.registry import implementations as impls

FAKE_PORT = REPO_ROOT / "tests" / "harness" / "fixtures" / "fake_port.py"

FAKE_TOML = f"""
[fake]
kind = "command"
description = "fake port (engine with planted differences)"
command = ["{{python}}", "{FAKE_PORT}"]
trace_prefix = "TRACE_FAKE"
[fake.keys]
solid_angle_sr = "omega_pixel_sr"
[fake.units]
rot_a_angstroms = {{ unit = "m", factor = 1e10, catalog_unit = "Å" }}
"""

REF_STDOUT = """\
TRACE_C:distance_m=0.1
TRACE_C: pix0_vector_meters 0.1 0.2 0.3
TRACE_C: close_distance_meters 0.1
TRACE_C: omega_pixel_sr 1e-06
TRACE_C: rot_a_angstroms 10 20 30
TRACE_C: F_latt_b 4.5
TRACE_C_PHI phi_tic=0 phi_deg=0 k_frac=0.25 F_latt_b=4.5 F_latt=40
TRACE_C: I_pixel_final 2
"""

FAKE_STDOUT = """\
TRACE_FAKE: pix0_vector_meters 0.1 0.2 0.3
TRACE_FAKE: solid_angle_sr 1e-06
TRACE_FAKE: rot_a_angstroms 1e-09 2e-09 3e-09
TRACE_FAKE: F_latt_b 4.6
TRACE_FAKE_PHI phi_tic=0 phi_deg=0 k_frac=0.25 F_latt_b=4.5 F_latt=40
TRACE_FAKE: I_pixel_final 2
TRACE_PY: I_pixel_final 99
"""


def _fake(tmp_path: Path, text: str = FAKE_TOML) -> impls.Implementation:
    path = tmp_path / "impls.toml"
    path.write_text(text, encoding="utf-8")
    return impls.load_registry(files=[path])["fake"]


# ---------------------------------------------------------------- the registry


def test_builtins_and_the_repository_entries_validate():
    reg = impls.load_registry()
    assert {"c", "c-upstream", "c-fixed", "engine", "hoidn"} <= set(reg)
    assert reg["c-fixed"].image_only and reg["c-upstream"].image_only and not reg["c"].image_only
    assert reg["engine"].kind == "in-process" and reg["hoidn"].kind == "command"


def test_a_bad_entry_is_one_line_naming_file_and_field(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text('[x]\nkind = "command"\ncommand = ["true"]\n[x.units]\nnot_a_key = { unit = "m", factor = 1 }\n')
    with pytest.raises(CaseFileError) as e:
        impls.load_registry(files=[path])
    assert str(path) in e.value.message and "x.units" in e.value.message and "\n" not in e.value.message


def test_a_name_defined_twice_and_an_unknown_name_are_refused(tmp_path):
    path = tmp_path / "dup.toml"
    path.write_text('[engine]\nkind = "command"\ncommand = ["true"]\n')
    with pytest.raises(CaseFileError, match="already defined"):
        impls.load_registry(files=[path])
    with pytest.raises(UsageError, match="unknown implementation 'nope'.*engine"):
        impls.resolve("nope", impls.load_registry(files=[]))


def test_command_variables_expand(monkeypatch, tmp_path):
    monkeypatch.setenv("NB_TEST_PORT", "/opt/port/python")
    monkeypatch.delenv("NB_TEST_UNSET", raising=False)
    assert impls.expand("${NB_TEST_PORT}") == "/opt/port/python"
    assert impls.expand("${NB_TEST_UNSET:-fallback}") == "fallback"


# ---------------------------------------------------------------- alignment, units, not traced


def _rows(fake: impls.Implementation) -> dict[str, conventions.Row]:
    c = impls.BUILTIN["c"].convention()
    rows = conventions.align_pair(conventions.parse(REF_STDOUT, c), conventions.parse(FAKE_STDOUT, fake.convention()),
                                  ToleranceTable(Tolerance(1e-6, 1e-9)), c, fake.convention())
    return {r.label: r for r in rows}


def test_alias_units_not_traced_and_first_divergence(tmp_path):
    rows = _rows(_fake(tmp_path))
    assert rows["omega_pixel_sr"].verdict == "ok"                      # renamed key aligned
    assert rows["rot_a_angstroms"].verdict == "ok"                     # metres converted to Å
    assert rows["rot_a_angstroms"].py == pytest.approx((10, 20, 30))
    assert "fake prints m, ×1e+10 → Å" in rows["rot_a_angstroms"].note  # the conversion is shown
    assert rows["close_distance_meters"].verdict == "not traced by fake"
    assert rows["distance_m"].verdict == "not traced by fake"
    assert rows["I_pixel_final"].py == (2.0,)                          # another program's prefix ignored
    div = conventions.pair_divergence(list(rows.values()))
    assert div.first.label == "F_latt_b" and div.first.verdict == "diverged"


def test_without_the_tables_the_same_output_diverges(tmp_path):
    bare = _fake(tmp_path, FAKE_TOML.split("[fake.keys]")[0])
    rows = _rows(bare)
    assert rows["omega_pixel_sr"].verdict == "not traced by fake"
    assert rows["solid_angle_sr"].verdict == "not traced by c"
    assert rows["rot_a_angstroms"].verdict == "diverged"
    assert conventions.pair_divergence(list(rows.values())).first.label == "rot_a_angstroms"


def test_a_side_that_prints_no_trace_at_all_is_said(tmp_path):
    c = impls.BUILTIN["c"].convention()
    update = conventions.compare_pair_traces(REF_STDOUT, "no trace here\n", c, _fake(tmp_path).convention(),
                                             ToleranceTable()).update
    assert "fake printed no TRACE_FAKE lines" in update["trace_note"]
    assert update["first_divergence"] is None and update["counts"]["not_traced_by_fake"] == 11


# ---------------------------------------------------------------- the fake port, end to end


def _pair_run(tmp_path: Path, impl: impls.Implementation, vs: str, case: str = "phi_rotation_9steps", **opts):
    from harness.model import paths  # noqa: PLC0415
    from harness.pipeline import Context, RunOptions  # noqa: PLC0415
    from harness.registry.cases import load_case  # noqa: PLC0415
    from harness.service.pair import Pair, run_pair  # noqa: PLC0415

    ctx = Context(golden_dir=paths.golden_dir(), results_dir=tmp_path / "results", cases_dir=paths.cases_dir())
    vs_impl = impls.load_registry(files=[])[vs] if isinstance(vs, str) else vs
    return run_pair(load_case(paths.cases_dir() / f"{case}.toml"), Pair(impl, vs_impl),
                    RunOptions(**{"autotrace": False, "pictures": False, **opts}), ctx)


@pytest.fixture(scope="module")
def fake_runs(tmp_path_factory, golden_dir):
    """The fake port against the engine twice: with its perturbation (its pictures' titles
    recorded in PICTURE_CALLS), and without it."""
    from harness.report import pictures  # noqa: PLC0415 - patched for this fixture only

    tmp = tmp_path_factory.mktemp("fake")
    fake = _fake(tmp)
    mp = pytest.MonkeyPatch()
    try:
        mp.setattr(pictures, "write_run_images", lambda *a, **kw: PICTURE_CALLS.append(kw) or {})
        perturbed = _pair_run(tmp, fake, "engine", pictures=True)
        mp.setenv("FAKE_PORT_PERTURB", "none")
        clean = _pair_run(tmp, fake, "engine")
    finally:
        mp.undo()
    return perturbed, clean


PICTURE_CALLS: list[dict] = []


def _row(result, label):
    return next(r for r in result.rows if r.label == label)


def test_fake_port_planted_differences_each_under_its_label(fake_runs):
    perturbed, _ = fake_runs
    assert perturbed.trace_compared and perturbed.reference.runner == "engine" and perturbed.engine.runner == "fake"
    assert _row(perturbed, "omega_pixel_sr").verdict == "ok"                       # renamed key
    assert _row(perturbed, "rot_a_angstroms").verdict == "ok"                      # printed in metres
    assert "fake prints m" in _row(perturbed, "rot_a_angstroms").note
    assert _row(perturbed, "close_distance_meters").verdict == "not traced by fake"  # dropped key
    first = perturbed.first_divergence                                              # perturbed value
    assert (first.label, first.verdict, perturbed.exit_code) == ("F_latt_b", "diverged", 1)
    assert first.abs_diff == pytest.approx(abs(first.c[0]) * 1e-3, rel=1e-6)
    assert perturbed.image["ok"]                                                   # the image was not perturbed


def test_fake_port_without_its_perturbation_is_parity(fake_runs):
    _, clean = fake_runs
    assert (clean.status, clean.exit_code, clean.first_divergence) == ("parity", 0, None)
    assert clean.counts["not_traced_by_fake"] >= 1 and clean.image["ok"]
    evidence = Path(clean.evidence_dir)
    assert (evidence / "pair.json").is_file() and "fake" in (evidence / "commands.txt").read_text()


def test_a_pair_run_titles_its_pictures_with_both_side_names(fake_runs, tmp_path):
    from harness.report import pictures  # noqa: PLC0415 - matplotlib is optional
    from PIL import Image  # noqa: PLC0415

    assert [kw["sides"] for kw in PICTURE_CALLS] == [("engine", "fake")]   # what run_pair passed
    img = np.arange(64 * 64, dtype=np.float64).reshape(64, 64)
    pics = pictures.write_run_images(tmp_path, img, img * 1.01, sides=("c", "hoidn"))
    titles = {name: Image.open(pic.path).info.get("Title") for name, pic in pics.items()}
    assert titles["c_image.png"] == "c image" and titles["torch_image.png"] == "hoidn image"
    assert titles["abs_diff.png"] == "|hoidn − c|"
    (tmp_path / "d").mkdir()
    default = pictures.write_run_images(tmp_path / "d", img, img, beam_center=(32, 32))
    assert Image.open(default["abs_diff.png"].path).info.get("Title") == "|torch − C|"


# ---------------------------------------------------------------- known failures of a pair


def _marked(tmp_path: Path, at: str = "F_latt_b", vs: str = "engine") -> impls.Implementation:
    mark = f'\n[fake.expected_failures.phi_rotation_9steps]\nreason = "planted"\nat = "{at}"\nvs = "{vs}"\n'
    return _fake(tmp_path, FAKE_TOML + mark)


def _pair_item(impl: impls.Implementation, vs: str = "engine", case_mark: bool = False):
    from harness.model import paths  # noqa: PLC0415
    from harness.registry.cases import load_case  # noqa: PLC0415
    from harness.service.pair import Pair, PairItem  # noqa: PLC0415

    case = load_case(paths.cases_dir() / "phi_rotation_9steps.toml")
    if case_mark:
        case = case.model_copy(update={"expected_failure": "engine vs C", "expected_failure_at": "F_latt_b"})
    return PairItem(case, case.mode, Pair(impl, impls.load_registry(files=[])[vs]))


def test_a_case_files_mark_never_applies_to_another_pair(tmp_path):
    from harness.service.gate import GateItem  # noqa: PLC0415

    item = _pair_item(_fake(tmp_path), case_mark=True)
    assert GateItem(item.case, item.mode).expected_failure == "engine vs C"   # the engine's gate has it
    assert item.expected_failure is None and item.expected_at is None          # the pair does not


def test_an_implementations_own_mark_makes_its_known_failure_xfail(fake_runs, tmp_path, monkeypatch):
    from harness.service import gate, pair  # noqa: PLC0415

    perturbed, clean = fake_runs
    marked = _pair_item(_marked(tmp_path))
    assert (marked.expected_failure, marked.expected_at) == ("planted", "F_latt_b")
    monkeypatch.setattr(pair, "run_pair", lambda *a, **kw: perturbed)
    from harness.pipeline import RunOptions  # noqa: PLC0415

    assert pair.run_pair_item(marked, RunOptions(), None).outcome == gate.XFAIL        # the run path judges
    assert gate.judge(marked, clean)[0] == gate.XPASS                                   # a mark cannot rot
    outcome, msg = gate.judge(_pair_item(_marked(tmp_path, at="rot_b_angstroms")), perturbed)
    assert outcome == gate.FAIL and "not at rot_b_angstroms as marked" in msg          # only what it names
    assert gate.judge(_pair_item(_marked(tmp_path, vs="c")), perturbed)[0] == gate.FAIL  # another reference


def test_a_mark_for_a_case_not_in_the_registry_is_a_gate_problem(tmp_path):
    from harness.service.pair import stale_marks  # noqa: PLC0415

    item = _pair_item(_marked(tmp_path))
    assert stale_marks([item.pair], [item.case]) == []
    problems = stale_marks([item.pair], [])
    assert len(problems) == 1 and "fake" in problems[0] and "'phi_rotation_9steps'" in problems[0]


def test_a_mark_names_a_catalog_key(tmp_path):
    with pytest.raises(CaseFileError, match="fake.expected_failures") as e:
        _marked(tmp_path, at="F_lat_typo")
    assert "\n" not in e.value.message


# ---------------------------------------------------------------- crashes, hangs, garbage


def _command(tmp_path: Path, code: str, **extra) -> impls.Implementation:
    fields = "".join(f"{k} = {v}\n" for k, v in extra.items())
    return _fake(tmp_path, f'[fake]\nkind = "command"\ncommand = ["{{python}}", "-c", {code!r}]\n{fields}')


@pytest.mark.parametrize("code, extra, status, words", [
    ("import sys; print('boom', file=sys.stderr); sys.exit(5)", {}, "runner-failure", "fake exited with code 5: boom"),
    ("import time; time.sleep(30)", {"timeout_s": 1}, "runner-failure", "fake timed out after 1 s"),
    ("print('hello')", {"float_flag": '""'}, "runner-failure", "fake trace of pixel (128, 139) lacks pix0_vector_meters"),
])
def test_a_command_that_crashes_hangs_or_prints_garbage_is_one_line(tmp_path, golden_dir, code, extra, status, words):
    extra = {k: v for k, v in extra.items() if k != "float_flag"}
    impl = _command(tmp_path, code, **extra)
    if "print('hello')" in code:
        impl = impl.model_copy(update={"float_flag": None})
    result = _pair_run(tmp_path, impl, "c")
    assert (result.status, result.exit_code) == (status, 3)
    assert words in result.failure and "\n" not in result.failure
    assert Path(result.evidence_dir).is_dir()


def test_a_command_that_is_not_installed_is_a_usage_error(tmp_path, golden_dir):
    impl = _fake(tmp_path, '[fake]\nkind = "command"\ncommand = ["/nonexistent/port/python"]\n')
    result = _pair_run(tmp_path, impl, "c")
    assert result.exit_code == 2 and "cannot run '/nonexistent/port/python'" in result.failure
