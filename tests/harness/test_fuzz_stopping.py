"""A campaign stops when it should: a divergence's shrink is cut at its budget (the smallest
failure so far is kept), --budget holds with shrinking included, and a SIGTERM that Python
arriving inside a ``__del__`` or gc callback (where Python drops exceptions) still ends the run
with Terminated under the CLI's handler (harness.runners.process.install_sigterm)."""
from __future__ import annotations

import os
import signal
import time

import pytest

pytest.importorskip("hypothesis")

from harness.model.errors import Terminated  # noqa: E402
from harness.runners.engine import TorchRunner  # noqa: E402
from harness.runners.process import install_sigterm  # noqa: E402
from harness.service.fuzz.campaign import Plan, run_campaign  # noqa: E402
from harness.service.fuzz.example import EngineAsReference  # noqa: E402
from tests.harness.test_fuzz_planted import PerturbedEngine  # noqa: E402


def _planted(tmp_path, **plan) -> Plan:
    return Plan(families=("shapes",), database=tmp_path / "db", max_pixels=16, seed=7, **plan)


def test_a_shrink_past_its_budget_is_cut_and_keeps_the_failure_found(tmp_path):
    tally = run_campaign(_planted(tmp_path, examples=60, shrink_budget_s=0.0), EngineAsReference(TorchRunner()),
                         PerturbedEngine())
    assert tally.found, f"no divergence in {tally.done} examples"
    first = tally.found[0]
    assert first.cut and tally.shrinks_cut == len(tally.found)
    assert first.shrink_runs == 0  # cut before any shrink candidate ran
    assert "-binary_spots" in first.example.argv


def test_an_uncut_shrink_reports_its_runs(tmp_path):
    tally = run_campaign(_planted(tmp_path, examples=60), EngineAsReference(TorchRunner()), PerturbedEngine())
    assert tally.found and not tally.found[0].cut
    assert tally.found[0].shrink_runs > 0 and tally.shrinks_cut == 0


def test_the_campaign_budget_holds_while_shrinking(tmp_path):
    budget = 3.0
    t0 = time.monotonic()
    tally = run_campaign(_planted(tmp_path, examples=10_000, budget_s=budget, shrink_budget_s=600.0),
                         EngineAsReference(TorchRunner()), PerturbedEngine())
    wall = time.monotonic() - t0
    # One example (two small engine runs) may finish past the budget, nothing more.
    assert wall < budget + 2.0, (wall, tally.done, tally.shrink_runs)
    assert tally.done < 10_000


class _SwallowedSigterm(TorchRunner):
    """Sends SIGTERM to this process from inside a ``__del__``, where Python prints the raised
    exception and drops it (as it does in Hypothesis's gc callback)."""

    name = "torch-sigterm"

    def run(self, request):
        class Bomb:
            def __del__(self):
                os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(0.01)  # the handler runs here, inside __del__

        Bomb()
        return super().run(request)


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_a_sigterm_inside_del_still_ends_the_campaign(tmp_path):
    restore = install_sigterm()
    try:
        with pytest.raises(Terminated) as e:
            run_campaign(_planted(tmp_path, examples=20), EngineAsReference(TorchRunner()), _SwallowedSigterm())
    finally:
        restore()
    assert e.value.exit_code == 143


class _Recording(TorchRunner):
    """The engine, noting each example it is asked to run."""

    def __init__(self, seen: set):
        self.seen = seen

    def run(self, request):
        self.seen.add((tuple(request.case.argv), tuple(request.pixel)))
        return super().run(request)


def test_nearby_seeds_draw_different_examples():
    """Slices of one campaign use seeds 1, 2, 3...: they must not share chunks of examples."""
    drawn = []
    for s in (1, 2):
        seen: set = set()
        run_campaign(Plan(examples=30, seed=s, families=("shapes",), database=None, max_pixels=4),
                     EngineAsReference(TorchRunner()), _Recording(seen))
        drawn.append({argv for argv, _pixel in seen})
    shared = drawn[0] & drawn[1]
    assert len(shared) <= 3, sorted(shared)  # a few plain argv (no flags drawn) may coincide
