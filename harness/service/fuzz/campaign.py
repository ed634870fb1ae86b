"""A fuzz campaign: Hypothesis draws examples, runs them, and shrinks each new divergence.

Hypothesis runs in chunks of examples (each with its own seed, :func:`chunk_seed`) so that
``--budget`` is honoured between chunks, and inside them by ending the Hypothesis run
(harness.service.fuzz.stopping). A divergence whose signature (what diverged: 'image',
'trace:KEY', 'engine-fails', 'c-fails', 'output:FLAG') is new fails the test, and Hypothesis
shrinks it; a known signature does not, so each chunk finds something new. The last example
that fails is the minimal one (Hypothesis replays it last); a shrink that runs past its budget
(``Plan.shrink_budget_s``, or the campaign's end) is cut, and the smallest failure seen so far
is the minimal one. Its example database lives under results/, and the first chunk replays
what it holds: a divergence found once is tried first.
"""
from __future__ import annotations

import random
import time
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Optional, Sequence

import hypothesis.core
from hypothesis import HealthCheck, Phase, Verbosity, given, seed, settings
from hypothesis.database import DirectoryBasedExampleDatabase
from hypothesis.errors import HypothesisDeprecationWarning

from harness.runners.base import Runner
from harness.service.fuzz import stopping
from harness.service.fuzz.example import Verdict, timed
from harness.service.fuzz.strategy import MAX_PIXELS, Example, examples

CHUNK = 25
#: Chunks per campaign seed before the chunk seeds of --seed N run into those of --seed N+1.
CHUNK_SEEDS = 1_000_003
#: How long one divergence may shrink by default (seconds of runs, both sides).
SHRINK_BUDGET_S = 60.0


class _Diverged(Exception):
    """Raised inside the Hypothesis test for the signature being shrunk."""


@dataclass(frozen=True)
class Plan:
    examples: Optional[int] = None
    budget_s: Optional[float] = None
    seed: int = 0
    families: Optional[tuple[str, ...]] = None
    database: Optional[Path] = None
    max_pixels: int = MAX_PIXELS
    shrink_budget_s: float = SHRINK_BUDGET_S


@dataclass(frozen=True)
class Found:
    example: Example
    verdict: Verdict
    shrink_runs: int = 0
    shrink_s: float = 0.0
    cut: bool = False  # the shrink hit its budget: the smallest failure seen so far


@dataclass
class Tally:
    """What the campaign has done so far (the progress display reads it)."""

    done: int = 0
    shrink_runs: int = 0
    both_refused: int = 0
    explained: int = 0
    slow: int = 0  # the C ran past its timeout: skipped
    found: list[Found] = field(default_factory=list)
    shrinking: Optional[str] = None
    shrinks_cut: int = 0
    started: float = field(default_factory=time.monotonic)
    example_s: float = 0.0

    def per_minute(self) -> float:
        wall = time.monotonic() - self.started
        return 60.0 * self.done / wall if wall > 0 else 0.0


@dataclass
class _State:
    plan: Plan
    reference: Runner
    impl: Runner
    tally: Tally
    on_change: Callable[[Tally], None]
    deadlines: stopping.Deadlines = field(default_factory=lambda: stopping.Deadlines(None, SHRINK_BUDGET_S))
    target: Optional[str] = None
    last: Optional[Found] = None
    known: set[str] = field(default_factory=set)
    shrink_started: float = 0.0
    cut: bool = False

    def _stop_if_spent(self) -> None:
        now = stopping.now()
        if self.target is None and self.deadlines.campaign_over(now):
            raise stopping.Stop("campaign budget spent")
        if self.target is not None and now >= self.deadlines.shrink_end(self.shrink_started):
            self.cut = True
            raise stopping.Stop("shrink budget spent")

    def body(self, ex: Example) -> None:
        self._stop_if_spent()
        verdict, wall = timed(ex, self.reference, self.impl)
        t = self.tally
        if self.target is None:
            t.done += 1
            t.example_s += wall
        else:
            t.shrink_runs += 1
        t.both_refused += verdict.both_refused
        t.slow += verdict.slow and self.target is None
        if verdict.divergent and verdict.explained:
            t.explained += self.target is None
        elif verdict.divergent and verdict.signature not in self.known:
            if self.target is None:
                self.target = t.shrinking = verdict.signature
                self.shrink_started = stopping.now()
            # Any new signature keeps the shrink going: a smaller argv often diverges first at
            # another key of the same bug (the last failure is the minimal example either way).
            self.last = Found(ex, verdict)
            self.on_change(t)
            raise _Diverged(verdict.signature)
        self.on_change(t)


def chunk_seed(seed: int, k: int) -> int:
    """The seed of chunk ``k`` of a campaign seeded ``seed``: campaigns of nearby seeds draw
    different examples (``seed + k`` made --seed 1 and --seed 2 share all but one chunk)."""
    return seed * CHUNK_SEEDS + k


def _seeded(test: Callable, draw_seed: int) -> Callable:
    """The test, drawing from ``draw_seed``. Hypothesis's ``@seed`` turns its example database
    off, so the seed goes into the per-thread Random Hypothesis draws each run's seed from
    (its own module state); where that is missing, ``@seed`` (reproducible, without database)."""
    local = getattr(hypothesis.core, "threadlocal", None)
    if local is None or not hasattr(local, "_hypothesis_global_random"):
        return seed(draw_seed)(test)
    local._hypothesis_global_random = random.Random(draw_seed)
    return test


def _run_chunk(state: _State, n: int, draw_seed: int, first: bool) -> None:
    plan = state.plan
    db = DirectoryBasedExampleDatabase(str(plan.database)) if plan.database else None
    phases = [Phase.explicit, Phase.generate, Phase.target, Phase.shrink] + ([Phase.reuse] if first else [])
    strategy = examples(plan.families, max_pixels=plan.max_pixels)
    runs_before = state.tally.shrink_runs

    # derandomize=False: under CI=true Hypothesis loads its 'ci' profile, which derandomizes and
    # would draw the same examples whatever --seed says.
    @settings(max_examples=n, deadline=None, database=db, phases=phases, report_multiple_bugs=False,
              suppress_health_check=list(HealthCheck), print_blob=False, verbosity=Verbosity.quiet,
              derandomize=False)
    @given(strategy)
    def fuzz_example(ex: Example) -> None:
        state.body(ex)

    fuzz_example = _seeded(fuzz_example, draw_seed)
    try:
        with warnings.catch_warnings():
            # The engine seeds Python's random module in the test body; Hypothesis warns about any
            # use of it while it draws, which says nothing about the example.
            warnings.simplefilter("ignore", HypothesisDeprecationWarning)
            fuzz_example()
    except (_Diverged, stopping.Stop):
        pass
    except Exception:  # noqa: BLE001 - a flaky divergence (a C hang) still names its last example
        if state.last is None:
            raise
    if state.last is not None:
        t = state.tally
        found = replace(state.last, shrink_runs=t.shrink_runs - runs_before, cut=state.cut,
                        shrink_s=stopping.now() - state.shrink_started)
        t.found.append(found)
        t.shrinks_cut += state.cut
        state.known.add(found.verdict.signature)
    state.target = state.tally.shrinking = None
    state.last = None
    state.cut = False


def run_campaign(plan: Plan, reference: Runner, impl: Runner,
                 on_change: Callable[[Tally], None] = lambda t: None,
                 known: Sequence[str] = ()) -> Tally:
    """Run examples until ``plan.examples`` are done or ``plan.budget_s`` is spent (shrinking
    included)."""
    tally = Tally()
    state = _State(plan, reference, impl, tally, on_change, known=set(known),
                   deadlines=stopping.deadlines(tally.started, plan.budget_s, plan.shrink_budget_s))
    k = 0
    while True:
        left = None if plan.examples is None else plan.examples - tally.done
        if left is not None and left <= 0:
            break
        if state.deadlines.campaign_over(stopping.now()):
            break
        before = (tally.done, len(tally.found))
        _run_chunk(state, min(CHUNK, left) if left is not None else CHUNK, chunk_seed(plan.seed, k), first=(k == 0))
        k += 1
        if (tally.done, len(tally.found)) == before:
            break  # Hypothesis has nothing left to draw (tiny search space), or the budget is spent
    return tally
