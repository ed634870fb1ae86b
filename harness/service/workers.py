"""The gate's worker processes: each run in its own process, the CPU threads shared out.

The engine runs in-process and uses every torch thread it is given, so N concurrent runs each
get cores // N threads (at least one): set before torch starts in the worker (OMP_NUM_THREADS)
and on torch itself when it is already loaded. Workers are forked, so they inherit the gate's
state (options, context, and in tests a replaced engine) without pickling it; only the item's
index goes to a worker and its Outcome comes back. Outcomes are handed on in plan order, whatever
order the workers finish in, so the output and the ledger's order do not depend on timing.
"""
from __future__ import annotations

import multiprocessing
import os
import signal
import sys
from concurrent.futures import ProcessPoolExecutor
from typing import Callable, Optional, Sequence, TypeVar

from harness.runners import process

Item = TypeVar("Item")
Result = TypeVar("Result")

#: What forked workers run: set just before the pool starts, read in the child.
_JOB: Optional[tuple[Sequence, Callable]] = None


def default_jobs() -> int:
    """The number of CPU cores this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def threads_per_worker(jobs: int, cores: Optional[int] = None) -> int:
    return max(1, (cores or default_jobs()) // max(1, jobs))


_BUSY = False


def _init_worker(threads: int) -> None:
    _, pinned = process.pinned_env(threads)  # the thread variables every child of the harness gets
    os.environ.update({k: v for k, v in pinned.items() if k.endswith("_NUM_THREADS")})
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(threads)
    # Ctrl-C reaches the whole process group: the gate handles it and stops the workers itself.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    during_run = signal.getsignal(signal.SIGTERM)

    def on_term(signum: int, frame: object) -> None:
        if _BUSY and callable(during_run):
            during_run(signum, frame)  # the CLI's clean stop: the run removes its staging
        os._exit(128 + signum)  # idle: nothing to clean up, no traceback

    signal.signal(signal.SIGTERM, on_term)


def _run_one(index: int):  # noqa: ANN202 - returns whatever the job returns
    global _BUSY
    assert _JOB is not None, "worker started without a job"
    items, fn = _JOB
    _BUSY = True
    try:
        return fn(items[index])
    finally:
        _BUSY = False


def run_in_order(items: Sequence[Item], fn: Callable[[Item], Result],
                 on_done: Callable[[int, Result], None], jobs: int) -> list[Result]:
    """[fn(item) for item in items], in this process when jobs is 1 (or there is one item), else
    over ``jobs`` forked workers; on_done(i, result) is called in plan order either way."""
    if jobs > 1 and len(items) > 1:
        return run_parallel(items, fn, on_done, jobs)
    out: list[Result] = []
    for i, item in enumerate(items):
        out.append(fn(item))
        on_done(i, out[-1])
    return out


def run_parallel(items: Sequence[Item], fn: Callable[[Item], Result],
                 on_done: Callable[[int, Result], None], jobs: int) -> list[Result]:
    """[fn(item) for item in items] over ``jobs`` forked workers; on_done(i, result) in order."""
    global _JOB
    _JOB = (items, fn)
    out: list[Result] = []
    pool = ProcessPoolExecutor(max_workers=min(jobs, len(items)), mp_context=multiprocessing.get_context("fork"),
                               initializer=_init_worker, initargs=(threads_per_worker(jobs),))
    try:
        futures = [pool.submit(_run_one, i) for i in range(len(items))]
        for i, fut in enumerate(futures):
            out.append(fut.result())  # in plan order: waiting on i while later ones finish
            on_done(i, out[-1])
    except BaseException:
        _stop_workers(pool)
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        _JOB = None
    return out


def _stop_workers(pool: ProcessPoolExecutor) -> None:
    """Ctrl-C or SIGTERM in the gate: nothing new starts, and the runs under way are ended by
    SIGTERM, which each worker turns into the CLI's clean stop (no half-written evidence)."""
    # The executor keeps its processes in a private mapping; there is no public way to signal them.
    for proc in list(getattr(pool, "_processes", {}).values()):
        try:
            os.kill(proc.pid, signal.SIGTERM)
        except (ProcessLookupError, PermissionError):
            pass
