"""Scale-out: campaign slices on a Dask LocalCluster with two workers, and the identity check a
worker makes before it takes work."""
from __future__ import annotations

from dataclasses import replace

import pytest

pytest.importorskip("hypothesis")
pytest.importorskip("distributed", reason="scale-out needs dask distributed (the test and fuzz extras)")

from harness.model.errors import UsageError  # noqa: E402
from harness.service.fuzz import cluster  # noqa: E402
from harness.service.fuzz.campaign import Plan  # noqa: E402


def test_two_worker_local_cluster_runs_every_example(tmp_path):
    plan = Plan(examples=6, seed=5, families=("shapes",), database=tmp_path / "db", max_pixels=8)
    seen = []
    tally = cluster.run_distributed(plan, impl="engine", vs="engine", c_bin=None, golden=tmp_path, scheduler=None,
                                    workers=2, on_change=lambda t: seen.append(t.done))
    assert tally.done == 6
    assert len(seen) == 2          # the two slices streamed back one by one
    assert tally.found == []


def test_slices_share_the_examples_with_their_own_seeds():
    parts = cluster.slices(Plan(examples=5, seed=2), 2, impl="engine", vs="engine", c_bin=None, golden=".",
                           expected=cluster.identity(None, needs_c=False))
    assert [p.plan.examples for p in parts] == [3, 2]
    assert len({p.plan.seed for p in parts}) == 2


def test_a_worker_with_another_engine_commit_refuses(tmp_path):
    mine = cluster.identity(None, needs_c=False)
    job = cluster.Slice(plan=Plan(examples=1, families=("shapes",), max_pixels=4), impl="engine", vs="engine",
                        c_bin=None, golden=str(tmp_path), expected=replace(mine, engine_commit="0" * 40))
    with pytest.raises(UsageError, match="worker refused"):
        cluster.run_slice(job)
