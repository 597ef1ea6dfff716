"""The ingest's worker pool: labels.csv rows decoded in parallel, results in input order.

:func:`run_jobs` runs :func:`pipeline.ingest.samples.process` over the jobs, in a process pool
when there are workers and jobs to share (chunks of 2D files, one 3D series at a time, a bounded
number in flight) and yields the results in job order, so the outputs of
:func:`pipeline.ingest.run_ingest` do not depend on the worker count. :func:`map_ordered` is the
same machinery for any picklable job function (``predict`` decodes through it). :func:`start_context`
chooses ``fork`` or ``spawn``; a worker that dies on a hostile file is retried in isolation, so
the file is quarantined and every other one is still processed.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
from collections.abc import Callable, Iterator
from functools import partial
from typing import Any

from pipeline.ingest.samples import SampleJob, SampleResult, process, warm_imports

log = logging.getLogger(__name__)


#: 2D files per inter-process round trip, by start method (capped by :func:`_pooled` so that every
#: worker gets at least 4 chunks). Larger chunks amortise the round trip: 5,000 files of 28 x 28
#: on 2 cores (AVX-512 machine), best of 3 interleaved rounds against the bare loop: 1.00x with
#: 16, 1.04x with 64; 1k x 1k files 0.42x -> 0.45x. But when a worker crashes, every file in
#: flight (up to 2 x workers chunks) is retried in a process of its own: cheap when forked
#: (milliseconds), about a second each when spawned, so spawned pools keep small chunks.
CHUNK_2D = {"fork": 64, "spawn": 16}


def run_jobs(jobs: list[SampleJob], *, workers: int, progress: bool, label: str) -> Iterator[SampleResult]:
    """Results in job order (so outputs do not depend on the worker count)."""
    from tqdm import tqdm

    pooled = workers > 1 and len(jobs) > 1
    ctx = start_context() if pooled else None  # before tqdm, whose monitor is a thread
    bar = tqdm(total=len(jobs), desc=f"ingest {label}", unit="sample", disable=not progress)
    try:
        # 2D files take milliseconds: batch them to amortise the round trip. 3D series take
        # seconds each: one per task keeps the workers evenly loaded.
        method = ctx.get_start_method() if ctx is not None else "spawn"
        if method == "fork":  # forked workers inherit the modules instead of importing them
            warm_imports(jobs[0].kind)
        chunk = CHUNK_2D.get(method, CHUNK_2D["spawn"]) if jobs and jobs[0].kind == "2d" else 1
        for result in map_ordered(process, jobs, workers=workers, chunk=chunk, on_crash=_crashed, ctx=ctx):
            yield result
            bar.update()
    finally:
        bar.close()


def map_ordered(func: Callable[[Any], Any], jobs: list[Any], *, workers: int, chunk: int,
                on_crash: Callable[[Any], Any], ctx: Any = None) -> Iterator[Any]:
    """``func`` over ``jobs``, results in job order: in a process pool when ``workers > 1`` and
    there is more than one job, else in this process.

    Args:
        func: A picklable (module-level) function of one job; it turns bad input into a result,
            never an exception.
        jobs: Picklable jobs.
        workers: Process count.
        chunk: Jobs per inter-process round trip (see :func:`_pooled`).
        on_crash: Job -> the result standing for it when its process died (a decoder crash).
        ctx: Multiprocessing context (default: :func:`start_context`).
    """
    if workers <= 1 or len(jobs) <= 1:
        yield from map(func, jobs)
        return
    yield from _pooled(jobs, workers=workers, ctx=ctx or start_context(), chunk=chunk, func=func,
                       on_crash=on_crash)


def _crashed(job: SampleJob) -> SampleResult:
    """The quarantine entry of a file whose decoding process died."""
    return SampleResult(job.position, rejection=(
        "the decoding process crashed on this file (decoder bug triggered by corrupt or "
        "hostile data)", "crash"))


def start_context() -> Any:
    """The multiprocessing context for decoding workers.

    ``fork`` when it is safe: this process has imported no TensorFlow (whose thread pools and
    locks do not survive a fork) and runs no other Python thread. Forked workers inherit the
    imported decoders, so they start in milliseconds; that is what the ingest stage (a process
    of its own that never imports TensorFlow) gets. tqdm's monitor thread does not count: it
    only sleeps and touches tqdm's own lock, which workers never use. Otherwise (a notebook
    that trained a model, a caller with threads) ``spawn``: every worker starts a fresh
    interpreter and imports the decoders again (about a second), but nothing is inherited.
    """
    from pipeline.utils.processes import fork_context

    return fork_context() or mp.get_context("spawn")


#: Seconds between a worker's checks that the process that started it is still alive.
PARENT_CHECK_S = 1.0


def _worker_init() -> None:
    """One thread per native library per worker: the pool already uses every core, and
    OpenCV's/BLAS's own thread pools on top would oversubscribe them, and so would GDCM's JPEG
    2000 threads (:func:`~pipeline.io.dicom_pixels.prefer_single_threaded_decoders`). A worker
    keeps freed memory for the next file (:func:`_reuse_freed_memory`) and exits when its
    parent dies (:func:`_exit_with_parent`)."""
    from pipeline.io.dicom_pixels import prefer_single_threaded_decoders

    _exit_with_parent()
    _reuse_freed_memory()
    prefer_single_threaded_decoders()
    try:
        import cv2

        cv2.setNumThreads(1)
    except ImportError:  # pragma: no cover (opencv comes with albumentations)
        pass
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)


#: glibc ``mallopt`` parameters and the values a worker sets (see :func:`_reuse_freed_memory`).
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
MMAP_THRESHOLD_BYTES = 32 << 20
TRIM_THRESHOLD_BYTES = 256 << 20


def _reuse_freed_memory() -> bool:
    """Serve allocations below 32 MiB from the heap and keep up to 256 MiB of freed heap (glibc).

    A large radiograph passes through several arrays of megabytes per file (the file's bytes,
    the decoded pixels, the float image). glibc maps each from fresh pages and unmaps it on free,
    so every file paid thousands of page faults: 9.0 -> 3.5 ms per 1k x 1k file in one process
    (``bench/ingest.py --size 1024``). With these thresholds the next file reuses the memory.
    The cost is that a worker holds its peak heap (tens of MB) until the pool ends. Returns
    whether the C library took the settings (False off glibc: macOS, musl; nothing to do).
    """
    import ctypes
    import ctypes.util

    try:
        mallopt = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)) and bool(
        mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES))


def _exit_with_parent() -> None:
    """Exit this worker when the process that started it dies.

    A killed ``ingest`` or ``predict`` (SIGKILL, OOM killer, a closed notebook kernel) gets no
    chance to stop its pool, and its workers would otherwise go on decoding, or wait forever on
    a queue nobody writes to, holding memory and cores. A daemon thread checks every
    :data:`PARENT_CHECK_S` seconds whether the worker was re-parented (the parent's pid is gone)
    and then ends the process at once.
    """
    import os
    import threading
    import time

    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(PARENT_CHECK_S)
        os._exit(1)

    threading.Thread(target=watch, name="medvision-parent-watch", daemon=True).start()


def _process_chunk(func: Callable[[Any], Any], jobs: list[Any]) -> list[Any]:
    return [func(job) for job in jobs]


def _pooled(jobs: list[Any], *, workers: int, ctx: Any, chunk: int = 4,
            func: Callable[[Any], Any] | None = None,
            on_crash: Callable[[Any], Any] | None = None) -> Iterator[Any]:
    """Run jobs in a process pool, in order, with a bounded number in flight (bounded memory).

    Jobs travel in chunks of ``chunk`` (one inter-process round trip per chunk, not per file);
    at most ``2 * workers`` chunks are in flight. A worker that dies (a C decoder crashing on a
    hostile file) breaks the pool; the jobs that were in flight are then retried one by one in
    a fresh single-process pool, so the culprit is quarantined with its reason and every other
    file is still processed.
    """
    from collections import deque
    from concurrent.futures import ProcessPoolExecutor
    from concurrent.futures.process import BrokenProcessPool

    func = func or process  # looked up now: tests replace the module's process
    on_crash = on_crash or _crashed
    window = workers * 2
    chunk = max(1, min(chunk, len(jobs) // (workers * 4)))  # small inputs: every worker busy
    pending = deque(jobs)
    while pending:
        retry: list[Any] = []
        with ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_worker_init) as pool:
            in_flight: deque = deque()
            try:
                while pending or in_flight:
                    while pending and len(in_flight) < window:
                        batch = [pending.popleft() for _ in range(min(chunk, len(pending)))]
                        # in flight before submitting: a pool found broken at submit time
                        # raises here, and the batch must still be retried, not lost
                        in_flight.append((batch, None))
                        in_flight[-1] = (batch, pool.submit(partial(_process_chunk, func), batch))
                    results = in_flight[0][1].result()
                    in_flight.popleft()
                    yield from results
            except BrokenProcessPool:
                retry = [job for batch, _ in in_flight for job in batch]
                log.warning("a decoding process died; retrying %d input(s) one at a time", len(retry))
        for job in retry:  # they precede everything still pending: order is kept
            yield _isolated(job, ctx, func, on_crash)


def _isolated(job: Any, ctx: Any, func: Callable[[Any], Any], on_crash: Callable[[Any], Any]) -> Any:
    """Run one job in its own process; a crash becomes ``on_crash(job)`` (a quarantine reason)."""
    from concurrent.futures import ProcessPoolExecutor
    from concurrent.futures.process import BrokenProcessPool

    with ProcessPoolExecutor(max_workers=1, mp_context=ctx, initializer=_exit_with_parent) as pool:
        try:
            return pool.submit(func, job).result()
        except BrokenProcessPool:
            return on_crash(job)
