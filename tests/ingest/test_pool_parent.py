"""Decoding workers do not outlive the process that started them: a SIGKILLed ingest or predict
(OOM killer, closed notebook kernel) leaves no workers decoding or waiting on a dead queue."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = """
import multiprocessing as mp, sys
from pipeline.ingest.pool import map_ordered
from tests.ingest.pool_jobs import record_and_sleep
jobs = [(sys.argv[1], i) for i in range(6)]
list(map_ordered(record_and_sleep, jobs, workers=2, chunk=1, on_crash=None, ctx=mp.get_context(sys.argv[2])))
"""


def _running(pid: int) -> bool:
    """Alive and not a zombie (an orphan's zombie may wait for a PID 1 that does not reap)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"


def _wait(condition, timeout: float) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if condition():
            return True
        time.sleep(0.1)
    return condition()


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc (Linux)")
@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_workers_exit_when_their_parent_is_killed(tmp_path, method):
    parent = subprocess.Popen([sys.executable, "-c", SCRIPT, str(tmp_path), method], cwd=ROOT,
                              env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        assert _wait(lambda: len(list(tmp_path.glob("pid-*"))) == 2, 60), "workers did not start"
        workers = [int(p.name.split("-")[1]) for p in tmp_path.glob("pid-*")]
        assert all(_running(pid) for pid in workers)
        parent.send_signal(signal.SIGKILL)
        parent.wait(10)
        assert _wait(lambda: not any(_running(pid) for pid in workers), 10), "workers outlived their parent"
    finally:
        parent.kill()
        for p in tmp_path.glob("pid-*"):
            try:
                os.kill(int(p.name.split("-")[1]), signal.SIGKILL)
            except ProcessLookupError:
                pass
