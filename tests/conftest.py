"""Suite-wide collection order: the longest test files first.

With ``-n 2 --dist loadfile`` (the README's command) pytest-xdist hands out whole files in
collection order. A long file collected late runs alone at the end while the other worker is
idle; starting the longest files first (longest-processing-time-first scheduling) keeps both
workers busy. The list holds the files that took longest in a full run (README "Tests"); order
within a file and among the other files is unchanged.
"""

from __future__ import annotations

import os

import pytest

# One TensorFlow thread per op and per pool in the test processes and the stage processes they
# start (they inherit the environment). The README's command runs two xdist workers on two
# cores: TensorFlow's default of one thread per core in each of them oversubscribes the cores,
# and its thread pools spin while they wait. Measured on the 2-core AVX2 machine, the trainer
# and explain/evaluate test files side by side: 203 -> 163 s wall, 337 -> 265 s CPU. Set
# before any test module imports TensorFlow; an explicit setting in the environment wins.
os.environ.setdefault("TF_NUM_INTRAOP_THREADS", "1")
os.environ.setdefault("TF_NUM_INTEROP_THREADS", "1")
# The same for the other native thread pools (OpenMP, OpenBLAS/MKL under NumPy and SciPy, OpenCV
# under albumentations): 7-9% less CPU on the explain/evaluate and distribute test files.
# The variables reach the processes the tests start; threadpoolctl limits the pools already
# loaded in this one (a plugin may have imported NumPy first).
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "OPENCV_FOR_THREADS_NUM"):
    os.environ.setdefault(_var, "1")
_THREAD_LIMITS = None

# No per-example time limit in property tests: a test asserts behaviour, and a loaded CI worker
# (two xdist workers, TensorFlow in one) can take an innocent example past Hypothesis' default
# 200 ms. Speed lives in bench/.
from hypothesis import settings as _hypothesis_settings  # noqa: E402

_hypothesis_settings.register_profile("medvision", deadline=None)
_hypothesis_settings.load_profile("medvision")


def pytest_configure(config) -> None:
    global _THREAD_LIMITS
    from threadpoolctl import threadpool_limits

    _THREAD_LIMITS = threadpool_limits(1)  # kept for the whole session

LONGEST_FIRST = (
    "tests/test_dvc_pipeline.py",
    "tests/train/test_distribute.py",
    "tests/train/test_trainer.py",
    "tests/stages/test_explain_evaluate.py",
    "tests/test_notebooks.py",
    "tests/test_bench.py",
    "tests/stages/test_multilabel_decision.py",
    "tests/test_own_data.py",
    "tests/stages/test_folds.py",
    "tests/train/test_ema.py",
)


def pytest_collection_modifyitems(session, config, items) -> None:
    rank = {path: i for i, path in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.nodeid.split("::", 1)[0], len(rank)))  # stable


def _eager_wanted() -> bool:
    return not os.environ.get("MEDVISION_TEST_GRAPH")


@pytest.fixture(scope="session", autouse=True)
def _eager_tensorflow():
    """Run ``tf.function``s eagerly in the test processes (tests marked ``graph`` excepted).

    Tracing a training step costs 5-15 s on a 2-core CPU, and the tests train tiny models on a
    few batches: eagerly, the tiny 2D stage fixture takes 6.7 s instead of 15.9. The graphs are
    still tested: every stage run in a subprocess (``dvc repro`` and ``dvc exp run`` end to
    end, the CLI, multi-worker training) traces as in production, and ``graph``-marked tests
    trace here (the notebook kernels that train and the bench smoke run eagerly too).
    ``MEDVISION_TEST_GRAPH=1`` traces everywhere. Session-scoped and autouse, so it is set
    before the shared trained fixtures.
    """
    import tensorflow as tf

    tf.config.run_functions_eagerly(_eager_wanted())
    yield
    tf.config.run_functions_eagerly(False)


@pytest.fixture(autouse=True)
def _graph_marker(request, _eager_tensorflow):
    """A ``graph``-marked test traces its functions as production does."""
    if request.node.get_closest_marker("graph") is None:
        yield
        return
    import tensorflow as tf

    tf.config.run_functions_eagerly(False)
    yield
    tf.config.run_functions_eagerly(_eager_wanted())
