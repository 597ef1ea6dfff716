"""ordered_map: every core when forking is safe, the same results in the same order either way."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from pipeline.utils.processes import fork_context, ordered_map

ROOT = Path(__file__).resolve().parents[2]

#: In a fresh interpreter (no TensorFlow, no threads): which processes ran which job, and what a
#: failing job raises in the caller.
_FRESH = """
import json, multiprocessing, os, sys
from pipeline.utils.processes import cores, ordered_map

# Inherited by the forked workers: the first cores() jobs meet here, which only processes that
# run at the same time can do (a worker that took two of them would wait out the timeout).
MEET = multiprocessing.get_context("fork").Barrier(cores())

def square_and_pid(x):
    if x < 0:
        raise ValueError(f"negative job {x}")
    return x * x, os.getpid()

def meet(x):
    MEET.wait(timeout=60)
    return os.getpid()

together = ordered_map(meet, list(range(cores())))
results = ordered_map(square_and_pid, list(range(40)), chunksize=3)
try:
    ordered_map(square_and_pid, [1, 2, -3, 4])
    error = None
except ValueError as exc:
    error = str(exc)
print(json.dumps({"results": results, "together": together, "me": os.getpid(), "cores": cores(),
                  "error": error}))
"""


def test_jobs_run_in_forked_processes_in_order_and_errors_reach_the_caller():
    res = subprocess.run([sys.executable, "-c", _FRESH], cwd=ROOT, capture_output=True, text=True,
                         timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert [r[0] for r in out["results"]] == [x * x for x in range(40)]
    assert out["me"] not in {r[1] for r in out["results"]}  # all in workers
    # One worker per core, all running at once (2+ cores here and in CI). Which worker takes
    # which of the 40 short jobs is the scheduler's choice, so that is not asserted.
    assert out["cores"] >= 2
    assert len(set(out["together"])) == out["cores"]
    assert out["me"] not in out["together"]
    assert out["error"] == "negative job -3"


def _pid(x: int) -> tuple[int, int]:
    return x, os.getpid()


def test_a_process_with_another_thread_runs_the_jobs_itself():
    """Forking a process that runs threads (a notebook's, TensorFlow's) can deadlock the child:
    the jobs then run here, with the same results."""
    stop = threading.Event()
    thread = threading.Thread(target=stop.wait, name="busy")
    thread.start()
    try:
        assert fork_context() is None
        assert ordered_map(_pid, [3, 1, 2]) == [(3, os.getpid()), (1, os.getpid()), (2, os.getpid())]
    finally:
        stop.set()
        thread.join()


@pytest.mark.parametrize("jobs", [[], [7]])
def test_nothing_to_share_runs_here(jobs):
    assert ordered_map(_pid, jobs) == [(j, os.getpid()) for j in jobs]
