"""A fuzz campaign: Hypothesis draws examples, runs them, and shrinks each new divergence.

Hypothesis runs in chunks of examples (seed, seed+1, ...) so that ``--budget`` is honoured
between chunks. A divergence whose signature (what diverged: 'image', 'trace:KEY',
'engine-fails', 'c-fails') is new fails the test, and Hypothesis shrinks it; a known signature
does not, so each chunk finds something new. The last example that fails is the minimal one
(Hypothesis replays it last). Its example database lives under
results/, and the first chunk replays what it holds: a divergence found once is tried first.
"""
from __future__ import annotations

import random
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional, Sequence

import hypothesis.core
from hypothesis import HealthCheck, Phase, Verbosity, given, seed, settings
from hypothesis.database import DirectoryBasedExampleDatabase
from hypothesis.errors import HypothesisDeprecationWarning

from harness.runners.base import Runner
from harness.service.fuzz.example import Verdict, timed
from harness.service.fuzz.strategy import MAX_PIXELS, Example, examples

CHUNK = 25


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


@dataclass(frozen=True)
class Found:
    example: Example
    verdict: Verdict


@dataclass
class Tally:
    """What the campaign has done so far (the progress display reads it)."""

    done: int = 0
    shrink_runs: int = 0
    both_refused: int = 0
    explained: int = 0
    found: list[Found] = field(default_factory=list)
    shrinking: Optional[str] = None
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
    target: Optional[str] = None
    last: Optional[Found] = None
    known: set[str] = field(default_factory=set)

    def body(self, ex: Example) -> None:
        verdict, wall = timed(ex, self.reference, self.impl)
        t = self.tally
        if self.target is None:
            t.done += 1
            t.example_s += wall
        else:
            t.shrink_runs += 1
        t.both_refused += verdict.both_refused
        if verdict.divergent and verdict.explained:
            t.explained += self.target is None
        elif verdict.divergent and verdict.signature not in self.known:
            if self.target is None:
                self.target = t.shrinking = verdict.signature
            # Any new signature keeps the shrink going: a smaller argv often diverges first at
            # another key of the same bug (the last failure is the minimal example either way).
            self.last = Found(ex, verdict)
            self.on_change(t)
            raise _Diverged(verdict.signature)
        self.on_change(t)


def _seeded(test: Callable, chunk_seed: int) -> Callable:
    """The test, drawing from ``chunk_seed``. Hypothesis's ``@seed`` turns its example database
    off, so the seed goes into the per-thread Random Hypothesis draws each run's seed from
    (its own module state); where that is missing, ``@seed`` (reproducible, without database)."""
    local = getattr(hypothesis.core, "threadlocal", None)
    if local is None or not hasattr(local, "_hypothesis_global_random"):
        return seed(chunk_seed)(test)
    local._hypothesis_global_random = random.Random(chunk_seed)
    return test


def _run_chunk(state: _State, n: int, chunk_seed: int, first: bool) -> None:
    plan = state.plan
    db = DirectoryBasedExampleDatabase(str(plan.database)) if plan.database else None
    phases = [Phase.explicit, Phase.generate, Phase.target, Phase.shrink] + ([Phase.reuse] if first else [])
    strategy = examples(plan.families, max_pixels=plan.max_pixels)

    @settings(max_examples=n, deadline=None, database=db, phases=phases, report_multiple_bugs=False,
              suppress_health_check=list(HealthCheck), print_blob=False, verbosity=Verbosity.quiet)
    @given(strategy)
    def fuzz_example(ex: Example) -> None:
        state.body(ex)

    fuzz_example = _seeded(fuzz_example, chunk_seed)
    try:
        with warnings.catch_warnings():
            # The engine seeds Python's random module in the test body; Hypothesis warns about any
            # use of it while it draws, which says nothing about the example.
            warnings.simplefilter("ignore", HypothesisDeprecationWarning)
            fuzz_example()
    except _Diverged:
        pass
    except Exception:  # noqa: BLE001 - a flaky divergence (a C hang) still names its last example
        if state.last is None:
            raise
    if state.last is not None:
        state.tally.found.append(state.last)
        state.known.add(state.last.verdict.signature)
    state.target = state.tally.shrinking = None
    state.last = None


def run_campaign(plan: Plan, reference: Runner, impl: Runner,
                 on_change: Callable[[Tally], None] = lambda t: None,
                 known: Sequence[str] = ()) -> Tally:
    """Run examples until ``plan.examples`` are done or ``plan.budget_s`` is spent."""
    tally = Tally()
    state = _State(plan, reference, impl, tally, on_change, known=set(known))
    k = 0
    while True:
        left = None if plan.examples is None else plan.examples - tally.done
        if left is not None and left <= 0:
            break
        if plan.budget_s is not None and time.monotonic() - tally.started >= plan.budget_s:
            break
        before = (tally.done, len(tally.found))
        _run_chunk(state, min(CHUNK, left) if left is not None else CHUNK, plan.seed + k, first=(k == 0))
        k += 1
        if (tally.done, len(tally.found)) == before:
            break  # Hypothesis has nothing left to draw (tiny search space)
    return tally
