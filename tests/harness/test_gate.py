"""`nbparity gate`: outcomes, expected-failure marks that cannot rot, JUnit XML, the markdown
summary, and a deliberately broken engine formula turning the gate red at the right key."""
from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import numpy as np
import pytest

from harness.cli import main as cli
from harness.service import gate
from harness.registry.cases import load_case
from harness.model.result import ParityResult, RowModel, RunInfo
from tests.harness.conftest import CASES, perturb_line, write_case


def gate_main(tmp_path, *args):
    junit = tmp_path / "junit.xml"
    rc = cli.main(["--results-dir", str(tmp_path / "res"), "gate", "--no-pictures", "--junit", str(junit),
                   "--summary", str(tmp_path / "summary.md"), *args])
    return rc, ET.parse(junit).getroot() if junit.exists() else None


def cases_of(root):
    return {tc.get("name"): tc for tc in root.iter("testcase")}


# ---------------------------------------------------------------- judging one run


def _result(status="parity", exit_code=0, **kw) -> ParityResult:
    return ParityResult(case="phi_carryover", mode="c-parity", pixel=(10, 12), status=status, exit_code=exit_code, **kw)


def _item(expected=None, mode="c-parity", at="F_latt_a"):
    case = load_case(CASES / "phi_carryover.toml")
    if expected:
        case = case.model_copy(update={"expected_failure": expected, "expected_failure_at": at})
    return gate.GateItem(case, mode)


FD = RowModel(label="F_latt_a", kind="pixel", key="F_latt_a", stage="lattice factor", occurrence=0, phi_tic=None,
              components=[], component=None, c=[1.0], torch=[1.5], abs_diff=0.5, worst_component=None, atol=1e-6,
              rtol=1e-9, verdict="diverged")


def test_judge_pass_fail_and_first_divergence_line():
    assert gate.judge(_item(), _result())[0] == gate.PASS
    outcome, msg = gate.judge(_item(), _result("divergence", 1, first_divergence=FD, label="regression"))
    assert outcome == gate.FAIL
    assert msg.startswith("first divergence: F_latt_a at stage lattice factor: C 1 vs torch 1.5")


def test_expected_failure_fails_as_xfail_and_an_unexpected_pass_is_red():
    outcome, msg = gate.judge(_item("F_latt not finished"), _result("divergence", 1, first_divergence=FD))
    assert outcome == gate.XFAIL and "F_latt not finished" in msg and "F_latt_a" in msg
    outcome, msg = gate.judge(_item("F_latt not finished"), _result())
    assert outcome == gate.XPASS and "remove the mark" in msg
    assert gate.exit_code([gate.Outcome(_item("x"), gate.XPASS, msg, 0.1)]) == 1


def test_missing_reference_is_an_error_even_when_marked():
    res = _result("reference-error", 2, failure="recording 'x' not found")
    assert gate.judge(_item("anything"), res)[0] == gate.ERROR
    ref_ok = RunInfo(runner="c-recorded", description="rec", trace_supported=True, exit_code=0, wall_s=0.1)
    eng_crash = RunInfo(runner="torch", description="torch", trace_supported=True, wall_s=0.2)
    crash = _result("runner-failure", 3, failure="torch engine raised NotImplementedError", reference=ref_ok,
                    engine=eng_crash)
    assert gate.judge(_item("engine feature not finished", at="engine"), crash)[0] == gate.XFAIL
    assert gate.judge(_item(), crash)[0] == gate.ERROR
    c_crash = _result("runner-failure", 3, failure="C timed out",
                      reference=RunInfo(runner="c-live", description="C", trace_supported=True, wall_s=1.0),
                      engine=RunInfo(runner="torch", description="torch engine (not run)", trace_supported=True))
    assert gate.judge(_item("engine feature not finished", at="engine"), c_crash)[0] == gate.ERROR


def test_expected_failure_covers_only_what_it_names():
    """A mark for one thing (here the image) never hides another failure (a trace divergence,
    as a float32 run gives): that is a fail, and the message says what was marked."""
    image_fails = _result("divergence", 1, label="regression",
                          image={"ok": False, "reason": "389 pixels over tolerance", "max_abs_diff": 2.0})
    trace_fails = _result("divergence", 1, first_divergence=FD, label="regression")
    assert gate.judge(_item("image differs", at="image"), image_fails)[0] == gate.XFAIL
    outcome, msg = gate.judge(_item("image differs", at="image"), trace_fails)
    assert outcome == gate.FAIL and "failed at F_latt_a, not at image" in msg and "image differs" in msg
    assert gate.judge(_item("F_latt_a off", at="F_latt_a"), trace_fails)[0] == gate.XFAIL
    assert gate.judge(_item("F_latt_a off", at="F_latt_a"), image_fails)[0] == gate.FAIL
    eng = RunInfo(runner="torch", description="torch", trace_supported=True, wall_s=0.2)
    ref_ok = RunInfo(runner="c-recorded", description="rec", trace_supported=True, exit_code=0, wall_s=0.1)
    crash = _result("runner-failure", 3, failure="raised", reference=ref_ok, engine=eng)
    assert gate.judge(_item("image differs", at="image"), crash)[0] == gate.ERROR


def test_expected_failure_mark_must_name_what_fails(tmp_path):
    from harness.model.errors import CaseFileError

    cases = _copy_case(tmp_path, "phi_carryover", expected_failure="no reason to name")
    with pytest.raises(CaseFileError, match="expected_failure needs expected_failure_at"):
        load_case(cases / "phi_carryover.toml")
    cases = _copy_case(tmp_path, "phi_carryover", expected_failure="x", expected_failure_at="F_lat_typo")
    with pytest.raises(CaseFileError, match="expected_failure_at.*trace key name or alias"):
        load_case(cases / "phi_carryover.toml")
    cases = _copy_case(tmp_path, "phi_carryover", expected_failure="x", expected_failure_at="image")
    assert load_case(cases / "phi_carryover.toml").expected_failure_at == "image"


def test_expected_failure_per_reference_mode():
    case = load_case(CASES / "supervisor.toml")
    assert gate.expected_failure(case, "c-parity") is None
    assert gate.expected_failure(case, "spec") is None        # the fixed-C reference passes today
    spec = case.references["spec"].model_copy(update={"expected_failure": "pix0 not finished"})
    marked = case.model_copy(update={"references": {**case.references, "spec": spec}})
    assert gate.expected_failure(marked, "spec") == "pix0 not finished"
    assert gate.expected_failure(marked, "c-parity") is None  # a reference's mark covers its own mode only


def test_plan_has_one_run_per_case_and_reference_mode():
    from harness.registry.cases import Registry

    items = gate.plan(Registry(CASES).load_all()[0])
    ids = [i.id for i in items]
    assert "supervisor[c-parity]" in ids and "supervisor[spec]" in ids and "phi_carryover_spec_vs_c[spec]" in ids
    assert len(ids) == len(set(ids))
    # every recording is compared somewhere, the __cfixed ones as spec-mode runs
    recs = {i.case.references[i.mode].recording for i in items}
    assert {"supervisor__cfixed", "phi_carryover__cfixed", "phi_rotation_9steps__cfixed",
            "oversample_flags__cfixed"} <= recs


# ---------------------------------------------------------------- the command, with a replaying engine


def test_gate_green_writes_junit_summary_and_step_summary(tmp_path, fake_engine, monkeypatch):
    fake_engine("phi_carryover")
    step = tmp_path / "step.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(step))
    rc, root = gate_main(tmp_path, "--cases", "phi_carryover", "--mode", "c-parity")
    assert rc == 0
    assert root.get("tests") == "1" and root.get("failures") == "0" and root.get("errors") == "0"
    tc = cases_of(root)["phi_carryover[c-parity]"]
    assert tc.find("failure") is None and "evidence: " in tc.find("system-out").text
    md = (tmp_path / "summary.md").read_text()
    assert "nbparity gate: green" in md and "| phi_carryover | c-parity |" in md
    assert step.read_text() == md + "\n"
    doc = json.loads((tmp_path / "res" / "gate.json").read_text())
    assert doc["counts"]["pass"] == 1
    # every run is in the ledger, under one gate run id
    from harness.service import ledger
    df = ledger.Ledger.under(tmp_path / "res").read()
    assert list(df["command"]) == ["gate"] and df["run_id"].nunique() == 1


def test_gate_red_on_divergence_with_first_divergence_and_evidence(tmp_path, fake_engine):
    fake_engine("phi_carryover", edit=lambda s: perturb_line(s, "TRACE_PY: F_latt_b", 0, 1e-3))
    rc, root = gate_main(tmp_path, "--cases", "phi_carryover", "--mode", "c-parity")
    assert rc == 1
    failure = cases_of(root)["phi_carryover[c-parity]"].find("failure")
    msg = failure.get("message")
    assert msg.startswith("first divergence: F_latt_b") and "(evidence: " in msg
    evidence = tmp_path / msg.split("(evidence: ")[1].rstrip(")")  # relative to the JUnit file
    assert evidence.resolve().is_relative_to((tmp_path / "res").resolve()) and json.loads(
        (evidence / "result.json").read_text())["first_divergence"]["key"] == "F_latt_b"
    assert "nbparity gate: RED" in (tmp_path / "summary.md").read_text()


def test_gate_image_only_reference_compares_the_image(tmp_path, fake_engine):
    fake_engine("phi_carryover__cfixed")
    rc, root = gate_main(tmp_path, "--cases", "phi_carryover", "--mode", "spec")
    assert rc == 0 and cases_of(root)["phi_carryover[spec]"].find("failure") is None
    fake_engine("phi_carryover")  # the instrumented image is not the fixed C's
    rc, root = gate_main(tmp_path, "--cases", "phi_carryover", "--mode", "spec")
    assert rc == 1
    assert cases_of(root)["phi_carryover[spec]"].find("failure").get("message").startswith("image diverges")


def _copy_case(tmp_path, name, **extra_lines):
    text = (CASES / f"{name}.toml").read_text()
    for k, v in extra_lines.items():
        text = text.replace("\nargv = [", f"\n{k} = {json.dumps(v)}\nargv = [", 1)
    d = tmp_path / "cases"
    d.mkdir(exist_ok=True)
    (d / f"{name}.toml").write_text(text)
    return d


def test_marked_case_that_passes_turns_the_gate_red(tmp_path, fake_engine):
    fake_engine("phi_carryover")
    cases = _copy_case(tmp_path, "phi_carryover", expected_failure="engine support not finished",
                       expected_failure_at="F_latt_b")
    rc, root = gate_main(tmp_path, "--cases", "phi_carryover", "--mode", "c-parity")  # repo cases: pass
    assert rc == 0
    rc = cli.main(["--cases-dir", str(cases), "--results-dir", str(tmp_path / "res"), "gate", "--no-pictures",
                   "--junit", str(tmp_path / "j2.xml"), "--summary", str(tmp_path / "s2.md"), "--mode", "c-parity",
                   "--cases", "phi_carryover"])
    assert rc == 1
    f = cases_of(ET.parse(tmp_path / "j2.xml").getroot())["phi_carryover[c-parity]"].find("failure")
    assert f.get("type") == "unexpected-pass" and "engine support not finished" in f.get("message")


def test_marked_case_that_fails_is_xfail_and_green(tmp_path, fake_engine):
    fake_engine("phi_carryover", edit=lambda s: perturb_line(s, "TRACE_PY: F_latt_b", 0, 1e-3))
    cases = _copy_case(tmp_path, "phi_carryover", expected_failure="F_latt_b not finished",
                       expected_failure_at="F_latt_b")
    rc = cli.main(["--cases-dir", str(cases), "--results-dir", str(tmp_path / "res"), "gate", "--no-pictures",
                   "--junit", str(tmp_path / "j.xml"), "--summary", str(tmp_path / "s.md"), "--mode", "c-parity",
                   "--cases", "phi_carryover"])
    assert rc == 0
    skipped = cases_of(ET.parse(tmp_path / "j.xml").getroot())["phi_carryover[c-parity]"].find("skipped")
    assert "F_latt_b not finished" in skipped.get("message") and "F_latt_b" in skipped.get("message")
    assert "⚪ xfail" in (tmp_path / "s.md").read_text()


def test_missing_reference_fails_the_gate_never_skips(tmp_path, fake_engine):
    fake_engine("phi_carryover")
    cases = tmp_path / "cases"
    write_case(cases, "ghost", """
        name = "ghost"
        tags = ["small"]
        argv = ["-cell", "70", "70", "70", "90", "90", "90", "-N", "2", "-default_F", "100", "-detpixels", "64"]
        trace_pixels = [[10, 12]]
        [references.c-parity]
        recording = "no_such_recording"
        live = false
    """)
    rc = cli.main(["--cases-dir", str(cases), "--results-dir", str(tmp_path / "res"), "gate", "--no-pictures",
                   "--junit", str(tmp_path / "j.xml"), "--summary", str(tmp_path / "s.md")])
    assert rc == 2  # a missing reference: not a divergence, the comparison could not happen
    root = ET.parse(tmp_path / "j.xml").getroot()
    assert int(root.get("errors")) >= 1 and root.get("skipped") == "0"
    assert "not found" in cases_of(root)["ghost[c-parity]"].find("error").get("message")
    # the whole registry was selected, so coverage is checked too: recordings without an entry
    assert any("no case refers to it" in (e.get("message") or "") for e in root.iter("error"))


def test_gate_list_and_unknown_case(tmp_path, capsys):
    assert cli.main(["gate", "--list", "--tags", "flagship"]) == 0
    out = capsys.readouterr().out
    assert "supervisor[c-parity]" in out and "simple_cubic" not in out
    assert cli.main(["gate", "--cases", "nope"]) == 2


# ---------------------------------------------------------------- the real engine, broken on purpose


def break_engine_function(monkeypatch, module: str, name: str, factor: float = 1.0001) -> int:
    """Scale what engine function ``module.name`` returns by ``factor``, wherever the engine
    refers to it (its home module and every engine module that imported it by name).
    Returns how many references were replaced."""
    import importlib
    import sys

    import engine.api  # noqa: F401 - loads the engine modules a run uses
    import engine.config.setup  # noqa: F401
    import engine.render.frame  # noqa: F401

    original = getattr(importlib.import_module(module), name)
    broken = lambda *a, **k: original(*a, **k) * factor  # noqa: E731
    n = 0
    for mod_name, mod in list(sys.modules.items()):
        if (mod_name == "engine" or mod_name.startswith("engine.")) and getattr(mod, name, None) is original:
            monkeypatch.setattr(mod, name, broken)
            n += 1
    return n


@pytest.mark.parametrize("target, case, key", [
    ("engine.sample.lattice.sincg", "phi_carryover", "F_latt_a"),
    ("engine.render.pixel_physics.polarization_factor", "conv_xds", "polar"),
])
def test_breaking_an_engine_formula_turns_the_gate_red_at_its_key(tmp_path, monkeypatch, target, case, key):
    module, name = target.rsplit(".", 1)
    assert break_engine_function(monkeypatch, module, name) >= 1
    rc, root = gate_main(tmp_path, "--cases", case, "--mode", "c-parity")
    assert rc == 1
    msg = cases_of(root)[f"{case}[c-parity]"].find("failure").get("message")
    assert msg.startswith(f"first divergence: {key} at stage "), msg
    monkeypatch.undo()  # and the intact engine is green again
    rc, root = gate_main(tmp_path, "--cases", case, "--mode", "c-parity")
    assert rc == 0


def test_breaking_the_image_path_turns_the_image_red(tmp_path, monkeypatch):
    """sincg feeds only the traced pixel; the frame's lattice factor is square_inplace. Breaking
    that one must turn the image red (|Δ| > 0, pixels over the bar), not only the trace."""
    assert break_engine_function(monkeypatch, "engine.sample.lattice", "square_inplace") >= 1
    rc, root = gate_main(tmp_path, "--cases", "phi_carryover", "--mode", "c-parity")
    assert rc == 1
    assert cases_of(root)["phi_carryover[c-parity]"].find("failure") is not None
    result = json.loads((tmp_path / "res" / "phi_carryover" / "latest" / "result.json").read_text())
    image = result["image"]
    assert image["ok"] is False and image["n_failed"] > 0 and image["max_abs_diff"] > image["allowed"], image


def test_gate_uses_a_live_c_when_given_and_recordings_where_no_live_c_is_allowed(tmp_path, fake_c, fake_engine,
                                                                                monkeypatch):
    from harness.service import ledger

    monkeypatch.setattr("harness.runners.choose.REPO_ROOT", tmp_path)  # no golden_bin/nanoBragg_fixed
    monkeypatch.setenv("NB_C_FIXED_BIN", str(fake_c("phi_carryover__cfixed", "notrace")))
    fake_engine("phi_carryover")
    fake = fake_c("phi_carryover")
    for extra in ((), ("--live",)):
        res = tmp_path / ("live" if extra else "auto")
        cli.main(["--results-dir", str(res), "gate", "--no-pictures", "--cases", "phi_carryover",
                  "--c-bin", str(fake), "--junit", str(res / "j.xml"), "--summary", str(res / "s.md"), *extra])
        df = ledger.Ledger.under(res).read().set_index("mode")
        assert df.loc["c-parity", "reference_runner"] == "c-live" and df.loc["c-parity", "status"] == "parity"
        # A fixed C is never picked up on its own; with --live the spec reference runs the fixed
        # binary (NB_C_FIXED_BIN), never the instrumented --c-bin.
        assert df.loc["spec", "reference_runner"] == ("c-live" if extra else "c-recorded")
        if extra:
            ev = sorted((res / "phi_carryover").glob("2*/result.json"))
            specs = [json.loads(p.read_text()) for p in ev]
            binaries = [r["reference"]["provenance"]["binary"] for r in specs if r["mode"] == "spec"]
            assert binaries and all("phi_carryover__cfixed" in b or "notrace" in b for b in binaries)


def _outcomes(tmp_path, tag, *args):
    res = tmp_path / tag
    rc = cli.main(["--results-dir", str(res), "gate", "--no-pictures", "--junit", str(res / "j.xml"),
                   "--summary", str(res / "s.md"), *args])
    doc = json.loads((res / "gate.json").read_text())
    # the message names its evidence directory, which differs between the two gates
    runs = [(r["case"], r["mode"], r["outcome"], r["message"].split(" (evidence: ")[0]) for r in doc["runs"]]
    names = [tc.get("name") for tc in ET.parse(res / "j.xml").getroot().iter("testcase")]
    from harness.service import ledger
    rows = ledger.Ledger.under(res).read()
    return rc, runs, names, list(zip(rows["case_name"], rows["mode"], rows["outcome"]))


def test_gate_jobs_gives_the_verdicts_of_one_job_in_the_same_order(tmp_path, fake_engine):
    fake_engine("phi_carryover")  # c-parity passes; spec (fixed-C image) and the variant do not
    sel = ["--cases", "phi_carryover,phi_carryover_spec_vs_c,simple_cubic"]
    one = _outcomes(tmp_path, "one", *sel, "--jobs", "1")
    two = _outcomes(tmp_path, "two", *sel, "--jobs", "2")
    assert one == two
    rc, runs, names, ledger_rows = two
    assert rc == 1 and {o for _, _, o, _ in runs} >= {"pass", "fail"}
    assert names == sorted(names, key=lambda n: n.split("[")[0]) and len(names) == 4
    assert [(c, m) for c, m, _ in ledger_rows] == [(c, m) for c, m, _, _ in runs]


def _nap(seconds: float) -> tuple[float, int]:
    import os
    import time
    time.sleep(seconds)
    return seconds, os.getpid()


def test_workers_hand_results_on_in_plan_order_from_other_processes():
    import os

    from harness.service import workers

    seen: list[int] = []
    out = workers.run_parallel([0.4, 0.0, 0.1], _nap, lambda i, r: seen.append(i), jobs=2)
    assert seen == [0, 1, 2] and [s for s, _ in out] == [0.4, 0.0, 0.1]
    assert all(pid != os.getpid() for _, pid in out)
    assert workers.threads_per_worker(2, cores=2) == 1 and workers.threads_per_worker(3, cores=8) == 2


def _kept(tmp_path):
    ev = tmp_path / "res" / "phi_carryover" / "latest"
    return (ev / "images.npz").exists(), json.loads((ev / "result.json").read_text())["float_images"]


def test_gate_keeps_float_images_only_for_runs_that_do_not_pass(tmp_path, fake_engine):
    fake_engine("phi_carryover")
    assert gate_main(tmp_path, "--cases", "phi_carryover", "--mode", "c-parity", "--no-pictures")[0] == 0
    kept, says = _kept(tmp_path)
    assert not kept and says["kept"] is False and "--keep-images" in says["why"]
    assert gate_main(tmp_path, "--cases", "phi_carryover", "--mode", "c-parity", "--no-pictures",
                     "--keep-images")[0] == 0
    kept, says = _kept(tmp_path)
    assert kept and says["kept"] is True
    fake_engine("phi_carryover", edit=lambda s: perturb_line(s, "TRACE_PY: F_latt_b", 0, 1e-3))
    assert gate_main(tmp_path, "--cases", "phi_carryover", "--mode", "c-parity", "--no-pictures")[0] == 1
    kept, says = _kept(tmp_path)
    assert kept and says["kept"] is True
