"""The README's benchmark commands run (on tiny sizes) and print the figures the issues quote.

These are smoke runs: speed is measured by running the scripts at their defaults (README, issue
notes), never asserted here."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow

#: script -> (tiny arguments, regexes its output must match)
RUNS = {
    "ingest": (["--patients", "6", "--repeat", "2"],
               [r"ratio \d+\.\d\dx \(goal >= 1\.6x\)", r"memory ratio 2x / 1x: main \d+\.\d\d"]),
    "decoders": (["--patients", "6"], [r"ms/file"]),
    "explain": (["--width", "16", "--size", "32", "--images", "4", "--batch", "2", "--repeats", "1"],
                [r"speed-up \(a\) / \(b\)\s+\d+\.\d x",
                 r"Grad-CAM / fwd\+bwd \(goal <= 1\.3x\)\s+\d+\.\d\d x"]),
    "train_input": (["--steps", "3", "--batch", "4"],
                    [r"pipeline share of step time: \d+\.\d%", r"bfloat16/float32 = \d+\.\d\d"]),
}


@pytest.mark.parametrize("script", sorted(RUNS))
def test_bench_script_runs_and_prints_its_ratio(script):
    args, patterns = RUNS[script]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    res = subprocess.run([sys.executable, f"bench/{script}.py", *args], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=900)
    assert res.returncode == 0, res.stderr[-3000:]
    for pattern in patterns:
        assert re.search(pattern, res.stdout), f"{pattern!r} not in:\n{res.stdout}"
