"""What keeps `nbparity run`'s own overhead down without changing what it finds: the engine's
set-up is built once (by the check) and handed to the run, the engine's load is timed apart as
the engine's, and only the named subcommand's module is imported."""
from __future__ import annotations

import json
import subprocess
import sys

import engine.api
import engine.config.setup
from harness.cli import main as cli
from harness.model import paths
from harness.runners import engine as engine_runner

CASE = "phi_carryover"


def test_the_engine_setup_is_built_once_and_the_run_uses_it(tmp_path, monkeypatch):
    built, used = [], []
    real_build, real_run = engine.config.setup.build_setup, engine.api.run

    def counting_build(*a, **k):
        built.append(a[0])
        return real_build(*a, **k)

    def spying_run(argv, *, setup=None, **k):   # engine.api.run's signature, as the runner inspects it
        used.append(setup)
        return real_run(argv, setup=setup, **k)

    monkeypatch.setattr(engine.config.setup, "build_setup", counting_build)
    monkeypatch.setattr(engine.api, "build_setup", counting_build)
    monkeypatch.setattr(engine_runner, "load_api", lambda: spying_run)
    rc = cli.main(["--results-dir", str(tmp_path), "run", CASE, "--recorded", "--no-pictures", "--mode", "c-parity"])
    assert rc == 0
    assert len(built) == 1 and len(used) == 1 and used[0] is not None
    res = json.loads((tmp_path / CASE / "latest" / "result.json").read_text())
    assert res["status"] == "parity" and res["image"]["ok"] is True


def test_the_engine_load_is_claimed_by_one_run_only(monkeypatch):
    monkeypatch.setattr(engine_runner, "_load", {"s": 1.25, "claimed": False})
    assert engine_runner.claim_load_s() == 1.25
    assert engine_runner.claim_load_s() == 0.0


def test_a_run_records_its_engine_load_in_a_fresh_process(tmp_path):
    """In a fresh process the load is real (torch is imported by it) and lands in result.json."""
    out = subprocess.run([sys.executable, "-m", "harness", "--results-dir", str(tmp_path), "run", CASE,
                          "--recorded", "--no-pictures", "--mode", "c-parity", "--trace-only"],
                         capture_output=True, text=True, cwd=paths.REPO_ROOT, timeout=300)
    assert out.returncode == 0, out.stderr
    res = json.loads((tmp_path / CASE / "latest" / "result.json").read_text())
    assert res["engine"]["provenance"]["load_s"] > 0.1   # torch alone takes longer than this to import


def test_only_the_named_subcommand_module_is_imported():
    code = ("import sys; from harness.cli.main import parse_args; a = parse_args(['run', 'x']); "
            "print(a.command, sorted(m for m in sys.modules if m.startswith('harness.cli.') and "
            "m not in ('harness.cli.main', 'harness.cli.common', 'harness.cli.registry', 'harness.cli.version', "
            "'harness.cli.pairs')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=paths.REPO_ROOT,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split(None, 1) == ["run", "['harness.cli.run']\n"]


def test_an_option_value_named_like_a_subcommand_still_parses_the_real_one():
    args = cli.parse_args(["--results-dir", "run", "history", "c1"])
    assert (args.command, args.case, args.results_dir) == ("history", "c1", "run")
    assert args.handler.__module__ == "harness.cli.history"


def _aligned_rows():
    """extreme_tiny's thousands of rows, a few of them made to diverge."""
    from harness.compare import traces
    from harness.compare.primitive import ToleranceTable, align
    stdout = (paths.golden_dir() / "cases" / "extreme_tiny" / "c_stdout.log").read_text()
    py = traces.to_engine_prefix(stdout).replace("0.", "0.00000001", 3)
    return align(traces.parse(stdout, "C"), traces.parse(py, "PY"), ToleranceTable())


def test_row_models_are_what_model_construct_builds_and_dump_as_pydantic_does():
    from pydantic import TypeAdapter

    from harness.compare import verdict
    from harness.model.result import RowModel
    from harness.report.run_evidence import rows_json
    rows = _aligned_rows()
    assert any(not r.ok for r in rows)
    fast = [verdict.row_model(r) for r in rows]
    slow = [RowModel.model_construct(**vars(m)) for m in fast]
    assert fast == slow and all(a.model_fields_set == b.model_fields_set for a, b in zip(fast, slow))
    assert rows_json(fast) == TypeAdapter(list[RowModel]).dump_python(slow, mode="json")
    assert json.dumps(rows_json(fast)) == json.dumps(TypeAdapter(list[RowModel]).dump_python(slow, mode="json"))
