"""Bisect over a throw-away git repository built here, with a known first bad commit."""
from __future__ import annotations

import json
import subprocess
import textwrap
from pathlib import Path

import pytest

from harness.service import bisect as bis
from harness.model.errors import UsageError


@pytest.fixture(autouse=True)
def git_identity(monkeypatch):
    for k, v in {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.invalid",
                 "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.invalid",
                 "GIT_CONFIG_GLOBAL": "/dev/null", "GIT_CONFIG_NOSYSTEM": "1"}.items():
        monkeypatch.setenv(k, v)


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True).stdout.strip()


def make_repo(tmp_path: Path, deltas: list[float], extra_files: dict[str, str] | None = None) -> tuple[Path, list[str]]:
    """One commit per delta; each writes delta.txt (the 'engine error' at that commit)."""
    repo = tmp_path / "proj"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    for name, text in (extra_files or {}).items():
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        (repo / name).write_text(text)
    shas = []
    for i, d in enumerate(deltas):
        (repo / "delta.txt").write_text(repr(d))
        git(repo, "add", "-A")
        git(repo, "commit", "-q", "--allow-empty", "-m", f"commit {i}: delta {d}")
        shas.append(git(repo, "rev-parse", "HEAD"))
    return repo, shas


def file_evaluator(seen: list[Path]):
    def evaluate(worktree: Path) -> bis.Verdict:
        seen.append(worktree)
        assert worktree.is_dir() and (worktree / ".git").is_file(), "expected a linked worktree"
        text = (worktree / "delta.txt").read_text()
        if text == "'skip'":
            return bis.Verdict(ok=False, skip=True, detail="does not build")
        d = float(text)
        return bis.Verdict(ok=d <= 1e-6, status="parity" if d <= 1e-6 else "divergence",
                           first_key="rot_b_angstroms" if d > 1e-6 else None, first_delta=d, key_delta=d)
    return evaluate


DELTAS = [0.0, 0.0, 1e-9, 0.0, 2e-9, 0.0, 0.0, 3e-6, 3e-6, 4e-6, 0.5, 0.5]   # first bad: commit 7


def test_finds_the_known_bad_commit_and_cleans_up(tmp_path):
    repo, shas = make_repo(tmp_path, DELTAS)
    seen: list[Path] = []
    res = bis.bisect(repo, "toy", shas[0], shas[-1], evaluate=file_evaluator(seen))
    assert res.first_bad == shas[7]
    assert res.first_bad_subject == "commit 7: delta 3e-06"
    assert res.verdict.first_key == "rot_b_angstroms" and res.verdict.first_delta == 3e-6
    assert res.candidates == len(DELTAS) - 1 and not res.ambiguous
    assert 3 <= len(res.probes) <= 2 + 4        # two endpoints + ⌈log2(11)⌉
    # Every probe was its own worktree, all gone now, and git forgot them.
    assert len(set(seen)) == len(seen)
    assert not any(p.exists() for p in seen) and not seen[0].parent.exists()
    assert git(repo, "worktree", "list", "--porcelain").count("worktree ") == 1
    assert git(repo, "status", "--porcelain") == ""


def test_key_tolerance_crossing_is_bad_even_when_the_case_passes(tmp_path):
    repo, shas = make_repo(tmp_path, [0.0, 1e-9, 2e-8, 5e-8, 9e-8, 2e-7, 3e-7])

    def evaluate(worktree: Path) -> bis.Verdict:
        d = float((worktree / "delta.txt").read_text())
        return bis.Verdict(ok=True, status="parity", key_delta=d)     # always within 1e-6

    res = bis.bisect(repo, "toy", shas[0], shas[-1], evaluate=evaluate, key="k_frac", tolerance=5e-8)
    assert res.first_bad == shas[4] and "k_frac" in res.criterion
    with pytest.raises(UsageError, match="not bad"):
        bis.bisect(repo, "toy", shas[0], shas[-1], evaluate=evaluate)   # no key: nothing is bad


def test_skipped_commit_next_to_the_answer_is_reported_as_ambiguous(tmp_path):
    repo, shas = make_repo(tmp_path, [0.0, 0.0, "skip", 1.0, 1.0])
    # make_repo writes repr(delta): the string commit reads "'skip'".
    res = bis.bisect(repo, "toy", shas[0], shas[-1], evaluate=file_evaluator([]))
    assert res.first_bad == shas[3]
    assert res.ambiguous == [shas[2], shas[3]]
    assert any(p.bad is None for p in res.probes)


def test_endpoints_are_checked(tmp_path):
    repo, shas = make_repo(tmp_path, [1.0, 1.0, 1.0])
    with pytest.raises(UsageError, match="--good .* is not good"):
        bis.bisect(repo, "toy", shas[0], shas[-1], evaluate=file_evaluator([]))
    with pytest.raises(UsageError, match="not an ancestor"):
        bis.bisect(repo, "toy", shas[2], shas[0], evaluate=file_evaluator([]))
    with pytest.raises(UsageError, match="not a commit"):
        bis.bisect(repo, "toy", "no-such-rev", shas[0], evaluate=file_evaluator([]))
    assert git(repo, "worktree", "list", "--porcelain").count("worktree ") == 1


FAKE_HARNESS = textwrap.dedent('''
    """A stand-in `python -m harness` for the bisect test: judges the commit by delta.txt."""
    import json, os, sys
    from pathlib import Path
    root = Path(__file__).resolve().parent.parent
    assert sys.argv[1:3] == ["run", "toy"] and "--json" in sys.argv, sys.argv
    d = float((root / "delta.txt").read_text())
    bad = d > 1e-6
    rows = [{"kind": "pixel", "key": "hkl_frac", "c": [1.0, 2.0, 3.0], "torch": [1.0, 2.0 + d, 3.0],
             "abs_diff": d, "occurrence": 0, "phi_tic": None}]
    print(json.dumps({"status": "divergence" if bad else "parity", "exit_code": int(bad),
                      "first_divergence": {"label": "hkl_frac", "abs_diff": d} if bad else None,
                      "rows": rows, "golden": os.environ["NB_GOLDEN_DIR"], "cwd": os.getcwd()}))
    sys.exit(int(bad))
''')


def test_default_evaluator_runs_the_commits_own_harness(tmp_path):
    repo, shas = make_repo(tmp_path, [0.0, 0.0, 0.0, 2e-6, 2e-6],
                           extra_files={"harness/__init__.py": "", "harness/__main__.py": FAKE_HARNESS})
    lines: list[str] = []
    res = bis.bisect(repo, "toy", shas[0], shas[-1], key="k_frac", progress=lines.append)
    assert res.first_bad == shas[3]
    assert res.verdict.first_key == "hkl_frac" and res.verdict.key_delta == pytest.approx(2e-6)
    assert res.verdict.status == "divergence" and not res.verdict.skip
    assert lines and all(l.split()[1] in ("good", "bad") for l in lines)


def test_verdict_from_unparsable_output_is_a_skip():
    v = bis.verdict_from_run(2, "", "nbparity: no case 'toy'\n")
    assert v.skip and "no case" in v.detail
    v = bis.verdict_from_run(2, json.dumps({"status": "input-error", "exit_code": 2, "failure": "no input"}), "")
    assert v.skip
    v = bis.verdict_from_run(3, json.dumps({"status": "runner-failure", "exit_code": 3}), "")
    assert not v.skip and not v.ok
