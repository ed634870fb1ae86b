"""`nbparity bisect CASE --impl NAME`: bisecting another implementation's own git repository.

A throw-away repository holds a tiny "port": a wrapper over tests/harness/fixtures/fake_port.py
(the bundled engine with a C-style command line) that reads which trace key to perturb from a
file of its checkout. One commit plants the perturbation; the pair run `--impl fake --vs engine`
judges each probed commit, and bisect must name that commit.
"""
from __future__ import annotations

import json
import subprocess
import textwrap
from pathlib import Path

import pytest

from harness.cli import main as cli
from harness.model.paths import REPO_ROOT
from harness.registry import implementations as impls
from harness.service import bisect as bis
from tests.harness.test_bisect import git_identity  # noqa: F401 - the fixture

FAKE_PORT = REPO_ROOT / "tests" / "harness" / "fixtures" / "fake_port.py"
CASE = "extreme_tiny"  # 128x128: each probe is one small pair run

# The port of the throw-away repository: the fake port, perturbing what perturb.txt names.
PORT = textwrap.dedent(f'''
    import os, runpy, sys
    from pathlib import Path
    os.environ["FAKE_PORT_PERTURB"] = (Path(__file__).parent / "perturb.txt").read_text().strip()
    sys.argv[0] = {str(FAKE_PORT)!r}
    runpy.run_path(sys.argv[0], run_name="__main__")
''')

ENTRY = textwrap.dedent('''
    [fake]
    kind = "command"
    command = ["{{python}}", "{{checkout}}/port.py"]
    repository = "{repo}"
    trace_prefix = "TRACE_FAKE"
    [fake.keys]
    solid_angle_sr = "omega_pixel_sr"
    [fake.units]
    rot_a_angstroms = {{ unit = "m", factor = 1e10, catalog_unit = "Å" }}
''')


@pytest.fixture(autouse=True)
def no_inherited_checkout(monkeypatch, git_identity):
    monkeypatch.delenv(impls.CHECKOUT_ENV, raising=False)
    monkeypatch.delenv("FAKE_PORT_PERTURB", raising=False)


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True).stdout.strip()


def _port_repo(tmp_path: Path, perturbs: list[str]) -> tuple[Path, list[str], Path]:
    """One commit per entry of ``perturbs`` (what perturb.txt says there); the registry file."""
    repo = tmp_path / "port"
    repo.mkdir()
    _git(repo, "init", "-q", "-b", "main")
    (repo / "port.py").write_text(PORT)
    shas = []
    for i, what in enumerate(perturbs):
        (repo / "perturb.txt").write_text(what + "\n")
        (repo / "notes.txt").write_text(f"commit {i}\n")
        _git(repo, "add", "-A")
        _git(repo, "commit", "-q", "-m", f"port {i}: perturb {what}")
        shas.append(_git(repo, "rev-parse", "HEAD"))
    registry = tmp_path / "impls.toml"
    registry.write_text(ENTRY.format(repo=repo))
    return repo, shas, registry


def test_bisect_impl_names_the_commit_that_planted_the_perturbation(tmp_path, capsys, golden_dir):
    repo, shas, registry = _port_repo(tmp_path, ["none", "none", "F_latt_b", "F_latt_b"])
    rc = cli.main(["bisect", CASE, "--impl", "fake", "--vs", "engine", "--impls", str(registry),
                   "--good", shas[0], "--bad", shas[-1], "--json"])
    cap = capsys.readouterr()
    assert rc == 0, cap.err
    res = json.loads(cap.out)
    assert res["first_bad"] == shas[2] and res["first_bad_subject"] == "port 2: perturb F_latt_b"
    assert res["verdict"]["first_key"] == "F_latt_b" and res["verdict"]["status"] == "divergence"
    judged = {p["commit"]: p["bad"] for p in res["probes"]}
    assert judged[shas[0]] is False and judged[shas[1]] is False and judged[shas[3]] is True
    # Its worktrees are gone and the port's checkout is untouched.
    assert _git(repo, "worktree", "list", "--porcelain").count("worktree ") == 1
    assert _git(repo, "status", "--porcelain") == "" and _git(repo, "rev-parse", "HEAD") == shas[-1]


def test_the_probed_checkout_replaces_the_repository_only_for_that_implementation(tmp_path, monkeypatch):
    _, _, registry = _port_repo(tmp_path, ["none"])
    entry = impls.load_registry(files=[registry])["fake"]
    assert entry.argv_prefix()[1] == f"{tmp_path / 'port'}/port.py" and entry.runs_a_checkout()
    monkeypatch.setenv(impls.CHECKOUT_ENV, "fake=/tmp/probe")
    assert entry.argv_prefix()[1] == "/tmp/probe/port.py"
    monkeypatch.setenv(impls.CHECKOUT_ENV, "other=/tmp/probe")
    assert entry.argv_prefix()[1] == f"{tmp_path / 'port'}/port.py"


def test_checkout_env_applies_only_while_a_commit_is_probed(monkeypatch):
    entry = impls.Implementation(name="p", kind="command", command=["python"], env={"A": "1"},
                                 repository="/src/p", checkout_env={"PYTHONPATH": "{checkout}/src"})
    assert entry.run_env() == {"A": "1"} and entry.runs_a_checkout()
    monkeypatch.setenv(impls.CHECKOUT_ENV, "p=/tmp/wt")
    assert entry.run_env() == {"A": "1", "PYTHONPATH": "/tmp/wt/src"}


def test_a_commit_where_the_pair_cannot_run_is_skipped_not_bad():
    crashed = json.dumps({"status": "runner-failure", "exit_code": 3, "failure": "fake exited with code 1"})
    v = bis.verdict_from_run(3, crashed, "", cannot_run=(2, 3))
    assert v.skip and "exited" in v.detail
    assert not bis.verdict_from_run(3, crashed, "").skip   # the project's own bisect: a crash is bad


@pytest.mark.parametrize("entry, words", [
    ('[p]\nkind = "command"\ncommand = ["python"]\n', "does not run a checkout"),
    ('[p]\nkind = "command"\ncommand = ["{checkout}/run"]\n', "names no `repository`"),
    ('[p]\nkind = "command"\ncommand = ["{checkout}/run"]\nrepository = "/nonexistent/p"\n', "is not a git checkout"),
])
def test_bisect_impl_refuses_what_it_cannot_bisect_in_one_line(tmp_path, capsys, entry, words):
    registry = tmp_path / "impls.toml"
    registry.write_text(entry)
    rc = cli.main(["bisect", CASE, "--impl", "p", "--impls", str(registry), "--good", "a", "--bad", "b"])
    err = capsys.readouterr().err
    assert rc == 2 and words in err and len(err.strip().splitlines()) == 1
