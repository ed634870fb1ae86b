"""Find the first commit where a case went bad: binary search over the project's history, or
over another implementation's own repository (`bisect --impl`, judged by the pair run).

Each probed commit is checked out into its own ``git worktree add --detach`` under a temporary
directory (the user's checkout and index are never touched) and removed afterwards. The
candidates are ``git rev-list --ancestry-path good..bad`` (oldest first), so every probe lies on
a path from good to bad. A commit the evaluator cannot judge (the harness did not run there) is
skipped, as ``git bisect skip`` does.
"""
from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

from harness.model.environment import run_git
from harness.model.errors import UsageError
from harness.registry.implementations import CHECKOUT_ENV
from harness.service.ledger import selected_delta


@dataclass(frozen=True)
class Verdict:
    """What one commit's run of the case said.

    ok: the case passed (exit code 0). skip: the commit cannot be judged (no harness, crash).
    first_key/first_delta: its first divergent key. key_delta: the chosen key's |Δ|, if any.
    """

    ok: bool
    status: str = ""
    first_key: Optional[str] = None
    first_delta: Optional[float] = None
    key_delta: Optional[float] = None
    skip: bool = False
    detail: str = ""


@dataclass(frozen=True)
class Probe:
    commit: str
    subject: str
    verdict: Verdict
    bad: Optional[bool]  # None when skipped


@dataclass
class BisectResult:
    case: str
    good: str
    bad: str
    first_bad: Optional[str]
    first_bad_subject: str = ""
    verdict: Optional[Verdict] = None
    candidates: int = 0
    probes: list[Probe] = field(default_factory=list)
    #: When skipped commits hide the answer: every commit that may be the first bad one.
    ambiguous: list[str] = field(default_factory=list)
    criterion: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


Evaluate = Callable[[Path], Verdict]


# ---------------------------------------------------------------- git plumbing


def _git(repo: Path, *args: str, check: bool = True) -> str:
    p = run_git(repo, *args, timeout_s=600)
    if check and p.returncode != 0:
        raise UsageError(f"git {' '.join(args)} failed in {repo}: {(p.stderr or p.stdout).strip().splitlines()[-1:]}")
    return p.stdout


def resolve_rev(repo: Path, rev: str) -> str:
    p = run_git(repo, "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}")
    if p.returncode != 0:
        raise UsageError(f"bisect: {rev!r} is not a commit in {repo}")
    return p.stdout.strip()


def candidates(repo: Path, good: str, bad: str) -> list[str]:
    """Commits after good up to and including bad, oldest first, on good→bad ancestry paths."""
    if run_git(repo, "merge-base", "--is-ancestor", good, bad).returncode != 0:
        raise UsageError(f"bisect: --good {good[:12]} is not an ancestor of --bad {bad[:12]}")
    out = _git(repo, "rev-list", "--ancestry-path", "--topo-order", "--reverse", f"{good}..{bad}")
    return out.split()


def subject(repo: Path, commit: str) -> str:
    return _git(repo, "log", "-1", "--format=%s", commit, check=False).strip()


class Worktrees:
    """Detached worktrees under one temporary directory, all removed on exit."""

    def __init__(self, repo: Path):
        self.repo = repo
        self.root = Path(tempfile.mkdtemp(prefix="nbparity-bisect-"))
        self.paths: list[Path] = []

    def add(self, commit: str) -> Path:
        path = self.root / commit[:12]
        _git(self.repo, "worktree", "add", "--detach", "--force", str(path), commit)
        self.paths.append(path)
        return path

    def remove(self, path: Path) -> None:
        _git(self.repo, "worktree", "remove", "--force", str(path), check=False)
        shutil.rmtree(path, ignore_errors=True)
        if path in self.paths:
            self.paths.remove(path)

    def __enter__(self) -> "Worktrees":
        return self

    def __exit__(self, *exc: Any) -> None:
        for p in list(self.paths):
            self.remove(p)
        shutil.rmtree(self.root, ignore_errors=True)
        _git(self.repo, "worktree", "prune", check=False)


# ---------------------------------------------------------------- the search


def is_bad(v: Verdict, key: Optional[str], tolerance: Optional[float]) -> bool:
    """Bad = the case fails; with a key and tolerance, also when that key's |Δ| exceeds it."""
    if not v.ok:
        return True
    if key is not None and tolerance is not None and v.key_delta is not None:
        return v.key_delta > tolerance
    return False


def bisect(repo: Path, case: str, good: str, bad: str, *, evaluate: Optional[Evaluate] = None,
           key: Optional[str] = None, tolerance: Optional[float] = None,
           progress: Callable[[str], None] = lambda msg: None) -> BisectResult:
    """Binary search for the first bad commit in good..bad (see module doc).

    evaluate(worktree) judges one checkout; the default runs the harness of that checkout on
    ``case`` (see :func:`harness_evaluator`). The endpoints are checked first: a good that is
    bad, or a bad that is good, is an error, not an answer.
    """
    repo = Path(repo).resolve()
    good_sha, bad_sha = resolve_rev(repo, good), resolve_rev(repo, bad)
    cands = candidates(repo, good_sha, bad_sha)
    if not cands:
        raise UsageError(f"bisect: no commits between --good {good} and --bad {bad}")
    evaluate = evaluate or harness_evaluator(case, key=key)
    crit = "verdict" + (f" or |Δ {key}| > {tolerance:g}" if key is not None and tolerance is not None else "")
    result = BisectResult(case=case, good=good_sha, bad=bad_sha, first_bad=None, candidates=len(cands),
                          criterion=crit)
    verdicts: dict[str, Verdict] = {}

    with Worktrees(repo) as wt:
        def probe(commit: str) -> Optional[bool]:
            path = wt.add(commit)
            try:
                v = evaluate(path)
            finally:
                wt.remove(path)
            verdicts[commit] = v
            flag = None if v.skip else is_bad(v, key, tolerance)
            result.probes.append(Probe(commit, subject(repo, commit), v, flag))
            progress(f"{commit[:12]} {'skip' if flag is None else ('bad' if flag else 'good')}"
                     f" ({v.status or ('ok' if v.ok else 'fail')}{', first ' + v.first_key if v.first_key else ''})")
            return flag

        if probe(good_sha) is not False:
            v = verdicts[good_sha]
            raise UsageError(f"bisect: --good {good} is not good for {case} "
                             f"({'cannot be judged: ' + v.detail if v.skip else v.status or 'failing'})")
        if probe(bad_sha) is not True:
            v = verdicts[bad_sha]
            raise UsageError(f"bisect: --bad {bad} is not bad for {case} "
                             f"({'cannot be judged: ' + v.detail if v.skip else 'it passes ' + crit})")
        lo, hi = -1, len(cands) - 1          # cands[lo] good (-1 = the good commit), cands[hi] bad
        skipped: set[int] = set()
        while True:
            open_ = [i for i in range(lo + 1, hi) if i not in skipped]
            if not open_:
                break
            mid = open_[len(open_) // 2]
            flag = probe(cands[mid])
            if flag is None:
                skipped.add(mid)
            elif flag:
                hi = mid
            else:
                lo = mid
    first = cands[hi]
    if any(i in skipped for i in range(lo + 1, hi)):
        result.ambiguous = [cands[i] for i in range(lo + 1, hi + 1)]
    result.first_bad = first
    result.first_bad_subject = subject(repo, first)
    result.verdict = verdicts[first]
    return result


# ---------------------------------------------------------------- the evaluators


def _run_harness(argv: list[str], cwd: Optional[Path], env_update: dict[str, str], key: Optional[str],
                 timeout_s: float, cannot_run: tuple[int, ...] = ()) -> Verdict:
    """``python -m harness run … --json`` with evidence in a throw-away directory (also its cwd
    when ``cwd`` is None), as a Verdict."""
    with tempfile.TemporaryDirectory(prefix="nbparity-bisect-results-") as res:
        env = {k: v for k, v in os.environ.items() if k not in ("NB_CASES_DIR", "NB_RESULTS_DIR")}
        env.update(env_update, NB_RESULTS_DIR=res)
        try:
            p = subprocess.run([sys.executable, "-m", "harness", "run", *argv, "--json"],
                               cwd=cwd or res, env=env, capture_output=True, text=True, timeout=timeout_s)
        except subprocess.TimeoutExpired:
            return Verdict(ok=False, status="timeout", skip=True, detail=f"timed out after {timeout_s:g} s")
    return verdict_from_run(p.returncode, p.stdout, p.stderr, key, cannot_run)


def harness_evaluator(case: str, *, key: Optional[str] = None, extra_args: tuple[str, ...] = ("--trace-only",),
                      golden_dir: Optional[Path] = None, timeout_s: float = 3600.0) -> Evaluate:
    """Run ``python -m harness run CASE --json`` of the checked-out commit in its worktree.

    PYTHONPATH is the worktree, so that commit's harness and engine are the ones imported (not
    the installed editable copy). The recordings are this checkout's (NB_GOLDEN_DIR, set here
    because the worktree has no ../shared next to it); evidence goes to a throw-away directory;
    NB_CASES_DIR is dropped so that the commit's own case files are used.
    """
    from harness.model import paths  # noqa: PLC0415

    golden = Path(golden_dir) if golden_dir else paths.golden_dir()

    def evaluate(worktree: Path) -> Verdict:
        return _run_harness([case, *extra_args], worktree, dict(PYTHONPATH=str(worktree), NB_GOLDEN_DIR=str(golden)),
                            key, timeout_s)

    return evaluate


def pair_evaluator(case: str, impl: str, vs: str, *, key: Optional[str] = None,
                   extra_args: tuple[str, ...] = ("--trace-only",), impls_file: Optional[str] = None,
                   golden_dir: Optional[Path] = None, cases_dir: Optional[Path] = None,
                   timeout_s: float = 3600.0) -> Evaluate:
    """Judge a commit of implementation ``impl``'s own repository by the pair run
    ``nbparity run CASE --impl IMPL --vs VS`` of this project, with that commit's worktree as the
    implementation's ``{checkout}`` (harness.registry.implementations.CHECKOUT_ENV).

    The verdict is git bisect's: parity is good, a divergence bad, and a commit where the pair
    cannot run (the implementation crashes or is not runnable there: exit 2 or 3) is skipped.
    """
    from harness.model import paths  # noqa: PLC0415

    golden = Path(golden_dir) if golden_dir else paths.golden_dir()
    cases = Path(cases_dir) if cases_dir else paths.cases_dir()
    impls = ("--impls", str(Path(impls_file).resolve())) if impls_file else ()
    argv = [case, "--impl", impl, "--vs", vs, *impls, *extra_args]

    def evaluate(worktree: Path) -> Verdict:
        # This project's harness and cases; only the implementation's code is the probed commit's.
        env = {CHECKOUT_ENV: f"{impl}={worktree}", "NB_GOLDEN_DIR": str(golden), "NB_CASES_DIR": str(cases)}
        return _run_harness(argv, None, env, key, timeout_s, cannot_run=(2, 3))

    return evaluate


def verdict_from_run(returncode: int, stdout: str, stderr: str, key: Optional[str] = None,
                     cannot_run: tuple[int, ...] = ()) -> Verdict:
    """Parse the ``--json`` result of one run; anything unparsable is a skip, not a verdict, and so
    is an exit code in ``cannot_run`` (the commit could not be run, rather than ran and differed)."""
    try:
        res = json.loads(stdout)
        status = res["status"]
        exit_code = int(res["exit_code"])
    except (json.JSONDecodeError, KeyError, TypeError, ValueError):
        last = (stderr.strip().splitlines() or ["no output"])[-1]
        return Verdict(ok=False, status="unjudged", skip=True, detail=f"exit {returncode}: {last[:200]}")
    if status in ("input-error", "reference-error") and exit_code == 2:
        # The case or its inputs do not exist at this commit: it cannot say good or bad.
        return Verdict(ok=False, status=status, skip=True, detail=str(res.get("failure") or status))
    if exit_code in cannot_run:
        return Verdict(ok=False, status=status, skip=True, detail=str(res.get("failure") or status))
    fd = res.get("first_divergence") or {}
    delta = fd.get("abs_diff")
    kd = None
    if key is not None:
        kd = selected_delta(res.get("rows") or [], key)
    return Verdict(ok=exit_code == 0, status=status, first_key=fd.get("label"),
                   first_delta=float(delta) if isinstance(delta, (int, float)) and math.isfinite(delta) else None,
                   key_delta=kd, detail=str(res.get("failure") or ""))
