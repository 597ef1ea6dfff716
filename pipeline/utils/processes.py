"""CPU-bound jobs on every core: forked processes when forking is safe, results in job order."""

from __future__ import annotations

import multiprocessing as mp
import os
import sys
import threading
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

T = TypeVar("T")
R = TypeVar("R")


def fork_context() -> Any | None:
    """A ``fork`` multiprocessing context when forking this process is safe, else None.

    Safe: the platform forks, this process has imported no TensorFlow (whose thread pools and
    locks do not survive a fork) and runs no other Python thread. tqdm's monitor thread does
    not count: it only sleeps and touches tqdm's own lock, which workers never use. Forked
    workers inherit the imported modules, so they start in milliseconds.
    """
    others = [t for t in threading.enumerate()
              if t is not threading.main_thread() and t.name != "tqdm_monitor"]
    if "fork" in mp.get_all_start_methods() and "tensorflow" not in sys.modules and not others:
        return mp.get_context("fork")
    return None


def cores() -> int:
    """CPU cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover (macOS, Windows)
        return os.cpu_count() or 1


def ordered_map(func: Callable[[T], R], jobs: Sequence[T], *, chunksize: int = 1) -> list[R]:
    """``[func(job) for job in jobs]``: in forked processes on every core when there are cores
    and jobs to share and forking is safe (:func:`fork_context`), else in this process.

    The results, and whatever ``func`` writes, are the same either way when each job depends
    on its arguments only (its own seeded random generator, its own files). An exception in a
    job is raised here. Spawned interpreters are never used: they would re-import the caller's
    modules (a second or more each), which short jobs in a notebook or a test do not repay.
    For the project's own jobs (the demo); decoding untrusted files goes through
    :func:`pipeline.ingest.pool.map_ordered`, which adds crash isolation and bounded memory.

    Args:
        func: A picklable (module-level) function of one job.
        jobs: Picklable jobs.
        chunksize: Jobs per inter-process round trip (short jobs: several).
    """
    ctx = fork_context()
    workers = min(cores(), len(jobs))
    if ctx is None or workers < 2:
        return [func(job) for job in jobs]
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
        return list(pool.map(func, jobs, chunksize=chunksize))
