"""Suite-wide collection order: the longest test files first.

With ``-n 2 --dist loadfile`` (the README's command) pytest-xdist hands out whole files in
collection order. A long file collected late runs alone at the end while the other worker is
idle; starting the longest files first (longest-processing-time-first scheduling) keeps both
workers busy. The list holds the files that took longest in a full run (README "Tests"); order
within a file and among the other files is unchanged.
"""

from __future__ import annotations

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
