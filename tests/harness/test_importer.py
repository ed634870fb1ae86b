"""The case library: made from the recordings by `nbparity import-recordings`, covering every
recording, and noticing a changed recording."""
from __future__ import annotations

import json
import shutil

import pytest

from harness.cli import main as cli
from harness.registry import importer
from harness.registry.cases import Registry, load_case
from harness.model.errors import ReferenceDataError
from harness.runners.recorded import RecordedRunner
from tests.harness.conftest import CASES


def test_registry_covers_every_recording_and_every_entry_has_reference_and_tags(golden_dir):
    cases, errors = Registry(CASES).load_all()
    assert not errors, [e.message for e in errors]
    problems = importer.coverage_problems(golden_dir, cases)
    assert not problems, "\n".join(problems)
    index = json.loads((golden_dir / "index.json").read_text())
    assert len(index["cases"]) == index["n_cases"] == len(importer.recording_names(golden_dir))


def test_committed_registry_is_what_the_import_makes(golden_dir):
    plan = importer.plan_import(golden_dir, CASES)
    assert not plan.problems
    stale = [f"{f.path.name} ({f.action})" for f in plan.changed]
    assert not stale, f"run `nbparity import-recordings`: {stale}"


def test_import_into_an_empty_directory(tmp_path, golden_dir, capsys):
    out = tmp_path / "cases"
    assert cli.main(["--cases-dir", str(out), "import-recordings", str(golden_dir)]) == 0
    names = sorted(p.stem for p in out.glob("*.toml"))
    instrumented = [n for n in importer.recording_names(golden_dir) if "__cfixed" not in n]
    assert names == instrumented
    sup = load_case(out / "supervisor.toml")
    assert sup.references["c-parity"].recording == "supervisor"
    spec = sup.references["spec"]
    assert spec.kind == "fixed-c" and spec.recording == "supervisor__cfixed" and spec.live
    assert spec.fixes == ["phi0-stale-rotation", "oversample-running-sum"]
    assert sup.trace_pixels == [(685, 1039)] and "-floatfile" not in sup.argv and "-trace_pixel" not in sup.argv
    assert "full-frame" in sup.tags and "defect:pix0-vector-ignored" in sup.tags
    assert "defect:phi0-stale-rotation" in sup.tags
    threads = load_case(out / "threads2_phi_rotation.toml")
    assert threads.c_threads == 2 and "threads" in threads.tags
    assert load_case(out / "oversample_flags.toml").references["spec"].recording == "oversample_flags__cfixed"
    # importing again changes nothing; --check agrees
    assert cli.main(["--cases-dir", str(out), "import-recordings", str(golden_dir), "--check"]) == 0
    (out / "roi.toml").unlink()
    assert cli.main(["--cases-dir", str(out), "import-recordings", str(golden_dir), "--check"]) == 1
    assert not (out / "roi.toml").exists()


def test_reimport_keeps_hand_edits_and_refreshes_the_pin(tmp_path, golden_dir):
    root = tmp_path / "golden"
    (root / "cases").mkdir(parents=True)
    for n in ("phi_carryover", "phi_carryover__cfixed"):
        shutil.copytree(golden_dir / "cases" / n, root / "cases" / n)
    cases = tmp_path / "cases"
    importer.write_plan(importer.plan_import(root, cases))
    path = cases / "phi_carryover.toml"
    text = path.read_text().replace('mode = "c-parity"\n', 'mode = "c-parity"\nexpected_failure = "kept"\n'
                                    'expected_failure_at = "image"\n', 1)
    text = text.replace('    "small",\n', '    "small",\n    "my-tag",\n', 1)
    text = text.replace("atol = 1e-06", "atol = 2e-06", 1)
    path.write_text(text)
    old_sha = load_case(path).references["c-parity"].manifest_sha256

    # the recording changes (re-recorded): the pinned entry notices it ...
    manifest = root / "cases" / "phi_carryover" / "case.json"
    data = json.loads(manifest.read_text())
    data["description"] += " (re-recorded)"
    manifest.write_text(json.dumps(data, indent=1) + "\n")
    case = load_case(path)
    problems = importer.coverage_problems(root, [case])
    assert any("changed" in p and "phi_carryover" in p for p in problems)
    from harness.runners.base import RunRequest
    req = RunRequest(case=case, mode="c-parity", pixel=(10, 12), data_root=root,
                     reference=case.references["c-parity"])
    with pytest.raises(ReferenceDataError, match="stale reference"):
        RecordedRunner(root).run(req)

    # ... until it is imported again, which keeps what people edited
    plan = importer.plan_import(root, cases)
    assert [f.path.name for f in plan.changed] == ["phi_carryover.toml"]
    importer.write_plan(plan)
    case = load_case(path)
    assert case.references["c-parity"].manifest_sha256 != old_sha
    assert case.expected_failure == "kept" and case.expected_failure_at == "image"
    assert "my-tag" in case.tags and case.tolerance.atol == 2e-06
    assert importer.coverage_problems(root, [case]) == []


def test_hand_written_case_gets_its_pin_refreshed_only(tmp_path, golden_dir):
    root = tmp_path / "golden"
    (root / "cases").mkdir(parents=True)
    shutil.copytree(golden_dir / "cases" / "phi_carryover", root / "cases" / "phi_carryover")
    cases = tmp_path / "cases"
    cases.mkdir()
    hand = (CASES / "phi_carryover_spec_vs_c.toml").read_text()
    pinned = load_case(CASES / "phi_carryover_spec_vs_c.toml").references["spec"].manifest_sha256
    (cases / "phi_carryover_spec_vs_c.toml").write_text(hand.replace(pinned, "0" * 64))
    plan = importer.plan_import(root, cases)
    changed = {f.path.name: f for f in plan.changed}
    assert set(changed) == {"phi_carryover.toml", "phi_carryover_spec_vs_c.toml"}
    assert changed["phi_carryover_spec_vs_c.toml"].text == hand


def test_fixes_from_the_fix_branches():
    m = {"c_source": {"commits": {"main": "x", "fix/phi0-stale-rotation": "a", "fix/subpixel-oversampling": "b"}}}
    assert importer.fixes_of(m) == ["phi0-stale-rotation", "oversample-running-sum"]
    assert importer.fixes_of({}) == []


def test_fixed_c_recording_without_its_base_is_reported(tmp_path, golden_dir):
    root = tmp_path / "golden"
    (root / "cases").mkdir(parents=True)
    shutil.copytree(golden_dir / "cases" / "phi_carryover__cfixed", root / "cases" / "phi_carryover__cfixed")
    plan = importer.plan_import(root, tmp_path / "cases")
    assert plan.files == [] and "derived from 'phi_carryover'" in plan.problems[0]


def _rerecord(root, name):
    manifest = root / "cases" / name / "case.json"
    data = json.loads(manifest.read_text())
    data["description"] += " (re-recorded)"
    manifest.write_text(json.dumps(data, indent=1) + "\n")
    return importer._manifest(root, name)[1]


def test_import_of_named_recordings_repins_only_those_and_lists_each_pin(tmp_path, golden_dir, capsys):
    root = tmp_path / "golden"
    (root / "cases").mkdir(parents=True)
    for n in ("phi_carryover", "phi_carryover__cfixed", "simple_cubic"):
        shutil.copytree(golden_dir / "cases" / n, root / "cases" / n)
    cases = tmp_path / "cases"
    importer.write_plan(importer.plan_import(root, cases))
    shutil.copy(CASES / "phi_carryover_spec_vs_c.toml", cases / "phi_carryover_spec_vs_c.toml")
    importer.write_plan(importer.plan_import(root, cases))  # the hand-written file gets today's pins
    before = {p.stem: load_case(p) for p in cases.glob("*.toml")}
    new = {n: _rerecord(root, n) for n in ("phi_carryover", "phi_carryover__cfixed", "simple_cubic")}

    # naming only the fixed-C recording moves only the spec pin, not its base's nor the others'
    assert cli.main(["--cases-dir", str(cases), "import-recordings", str(root), "phi_carryover__cfixed"]) == 0
    after = {p.stem: load_case(p) for p in cases.glob("*.toml")}
    pin = lambda cs, name, mode: cs[name].references[mode].manifest_sha256  # noqa: E731
    assert pin(after, "phi_carryover", "spec") == new["phi_carryover__cfixed"]
    assert pin(after, "phi_carryover", "c-parity") == pin(before, "phi_carryover", "c-parity")
    assert pin(after, "phi_carryover_spec_vs_c", "spec") == pin(before, "phi_carryover_spec_vs_c", "spec")
    assert pin(after, "simple_cubic", "c-parity") == pin(before, "simple_cubic", "c-parity")
    out = capsys.readouterr().out
    old = pin(before, "phi_carryover", "spec")
    assert f"phi_carryover [spec] phi_carryover__cfixed: {old} -> {new['phi_carryover__cfixed']}" in out
    assert out.count(" -> ") == 1

    # naming the instrumented one moves its pins (generated and hand-written) and lists both
    assert cli.main(["--cases-dir", str(cases), "import-recordings", str(root), "phi_carryover"]) == 0
    after = {p.stem: load_case(p) for p in cases.glob("*.toml")}
    assert pin(after, "phi_carryover", "c-parity") == new["phi_carryover"]
    assert pin(after, "phi_carryover_spec_vs_c", "spec") == new["phi_carryover"]
    assert pin(after, "simple_cubic", "c-parity") == pin(before, "simple_cubic", "c-parity")
    out = capsys.readouterr().out
    assert f"phi_carryover [c-parity] phi_carryover: {pin(before, 'phi_carryover', 'c-parity')} -> " in out
    assert f"phi_carryover_spec_vs_c [spec] phi_carryover: " in out and out.count(" -> ") == 2
    # the unnamed recording is still noticed as changed (stale), never silently accepted
    problems = importer.coverage_problems(root, [after["simple_cubic"]])
    assert any("simple_cubic" in p and "changed" in p for p in problems)
