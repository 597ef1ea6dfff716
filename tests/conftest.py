"""Suite-wide collection order: the longest test files first.

With ``-n 2 --dist loadfile`` (the README's command) pytest-xdist hands out whole files in
collection order. A long file collected late runs alone at the end while the other worker is
idle; starting the longest files first (longest-processing-time-first scheduling) keeps both
workers busy. The list holds the files that took longest in a full run (README "Tests"); order
within a file and among the other files is unchanged.
"""

from __future__ import annotations

import os

# One TensorFlow thread per op and per pool in the test processes and the stage processes they
# start (they inherit the environment). The README's command runs two xdist workers on two
# cores: TensorFlow's default of one thread per core in each of them oversubscribes the cores,
# and its thread pools spin while they wait. Measured on the 2-core AVX2 machine, the trainer
# and explain/evaluate test files side by side: 203 -> 163 s wall, 337 -> 265 s CPU. Set
# before any test module imports TensorFlow; an explicit setting in the environment wins.
os.environ.setdefault("TF_NUM_INTRAOP_THREADS", "1")
os.environ.setdefault("TF_NUM_INTEROP_THREADS", "1")

LONGEST_FIRST = (
    "tests/test_dvc_pipeline.py",
    "tests/test_bench.py",
    "tests/train/test_distribute.py",
    "tests/train/test_trainer.py",
    "tests/test_notebooks.py",
    "tests/stages/test_explain_evaluate.py",
    "tests/stages/test_folds.py",
)


def pytest_collection_modifyitems(session, config, items) -> None:
    rank = {path: i for i, path in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.nodeid.split("::", 1)[0], len(rank)))  # stable
