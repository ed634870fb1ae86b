"""Scale-out on Dask distributed: independent Hypothesis campaigns, one per task, on workers.

Hypothesis draws sequentially, so the unit of parallel work is a campaign slice (its own seed,
its share of the examples or the whole budget). Before a worker takes a slice it checks that it
has the coordinator's C binary (sha256) and engine commit; a worker that differs refuses with
one line naming both. Slices stream back as they finish (``as_completed``); the coordinator
writes the minimal cases and the ledger rows.

``scheduler``: a ``tcp://host:8786`` address of a running cluster, or None for a LocalCluster
with ``workers`` processes of one thread each.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Optional

from harness.model.environment import checkout
from harness.model.errors import UsageError
from harness.model.hashing import sha256_file
from harness.model.paths import REPO_ROOT
from harness.registry import implementations as impls
from harness.service.fuzz import sides
from harness.service.fuzz.campaign import Plan, Tally, run_campaign

ENGINE_REPO = str(REPO_ROOT)


@dataclass(frozen=True)
class Identity:
    """What every worker must share with the coordinator."""

    c_sha256: Optional[str]
    engine_commit: Optional[str]
    engine_dirty: Optional[bool]


@dataclass(frozen=True)
class Slice:
    plan: Plan
    impl: str
    vs: str
    c_bin: Optional[str]
    golden: str
    expected: Identity


def identity(c_bin: Optional[str], needs_c: bool) -> Identity:
    state = checkout(ENGINE_REPO)
    sha = sha256_file(sides.live_c(c_bin)) if needs_c else None
    return Identity(sha, state.commit, state.dirty)


def run_slice(job: Slice) -> Tally:
    """A worker's share: check its identity, then run the campaign slice in-process."""
    mine = identity(job.c_bin, needs_c="c" in (job.impl, job.vs))
    if mine != job.expected:
        raise UsageError(f"worker refused the work: it has C sha256 {mine.c_sha256} and engine commit "
                         f"{mine.engine_commit} (dirty {mine.engine_dirty}); the coordinator has "
                         f"{job.expected.c_sha256} / {job.expected.engine_commit} (dirty {job.expected.engine_dirty})")
    registry = impls.load_registry()
    golden = Path(job.golden)
    ref = sides.runner(impls.resolve(job.vs, registry), reference=True, golden=golden, c_bin=job.c_bin)
    impl = sides.runner(impls.resolve(job.impl, registry), reference=False, golden=golden, c_bin=job.c_bin)
    return run_campaign(job.plan, ref, impl)


def slices(plan: Plan, n: int, **common: object) -> list[Slice]:
    """``n`` slices: the examples shared out, each with its own seed (the budget applies to each)."""
    out = []
    for i in range(n):
        share = None if plan.examples is None else plan.examples // n + (i < plan.examples % n)
        if share == 0:
            continue
        out.append(Slice(plan=replace(plan, examples=share, seed=plan.seed * 1000 + i), **common))
    return out


def merge(into: Tally, part: Tally) -> None:
    into.done += part.done
    into.shrink_runs += part.shrink_runs
    into.shrinks_cut += part.shrinks_cut
    into.both_refused += part.both_refused
    into.explained += part.explained
    into.slow += part.slow
    into.example_s += part.example_s
    known = {f.verdict.signature for f in into.found}
    into.found.extend(f for f in part.found if f.verdict.signature not in known)


def run_distributed(plan: Plan, *, impl: str, vs: str, c_bin: Optional[str], golden: Path,
                    scheduler: Optional[str], workers: int,
                    on_change: Callable[[Tally], None] = lambda t: None) -> Tally:
    from dask.distributed import Client, LocalCluster, as_completed  # noqa: PLC0415 - the optional 'fuzz' extra

    expected = identity(c_bin, needs_c="c" in (impl, vs))
    cluster = None if scheduler else LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                                  dashboard_address=None)
    client = Client(scheduler or cluster)
    try:
        n = max(1, len(client.scheduler_info().get("workers", {}))) if scheduler else workers
        jobs = slices(plan, n, impl=impl, vs=vs, c_bin=c_bin, golden=str(golden), expected=expected)
        total = Tally()
        futures = client.map(run_slice, jobs, pure=False)
        for fut in as_completed(futures):
            merge(total, fut.result())
            on_change(total)
        return total
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
