"""tf.distribute strategy selection.

- ``default``: one device (the default strategy).
- ``mirrored``: synchronous data parallelism over all local GPUs (or, for tests, logical CPUs).
- ``multi_worker``: ``MultiWorkerMirroredStrategy`` across machines; every worker runs the same
  command with its own ``TF_CONFIG`` (README, "Scaling out").
- ``auto``: ``multi_worker`` when ``TF_CONFIG`` names more than one worker, ``mirrored`` when
  more than one GPU is visible, else ``default``.

The global batch is ``batch_size x replicas``; learning rates scale with ``lr_scaling``
(``linear``: x replicas, Goyal et al. 2017; ``sqrt``: x sqrt(replicas); ``none``).
"""

from __future__ import annotations

import json
import logging
import math
import os
from typing import Any

log = logging.getLogger(__name__)

#: One strategy object per kind and devices (or cluster) for the life of the process. A second
#: ``MirroredStrategy`` over the same devices restarts the collective instance keys, so its first
#: all-reduce collides with the first strategy's ("Shape mismatch in the collective instance 100
#: ... different input shapes at different members of the collective op", tensorflow#62790):
#: training twice in one process (a notebook kernel, ``bench/real_data.py``'s variants) failed.
#: ``MultiWorkerMirroredStrategy`` can be configured once per process at all.
_STRATEGIES: dict[tuple, Any] = {}


def resolve_strategy_name(name: str, *, n_gpus: int | None = None, tf_config: str | None = None) -> str:
    """Concrete strategy name for ``auto``; validates the others."""
    allowed = ("auto", "default", "mirrored", "multi_worker")
    if name not in allowed:
        raise ValueError(f"strategy must be one of {list(allowed)}. Received: {name!r}")
    if name != "auto":
        return name
    tf_config = os.environ.get("TF_CONFIG", "") if tf_config is None else tf_config
    if tf_config:
        try:
            workers = json.loads(tf_config).get("cluster", {}).get("worker", [])
        except json.JSONDecodeError:
            raise ValueError("TF_CONFIG is set but is not valid JSON") from None
        if len(workers) > 1:
            return "multi_worker"
    if n_gpus is None:
        import tensorflow as tf

        n_gpus = len(tf.config.list_logical_devices("GPU"))
    return "mirrored" if n_gpus > 1 else "default"


def make_strategy(name: str) -> Any:
    """The tf.distribute strategy for ``name`` (``auto`` resolved here).

    Mirrored and multi-worker strategies are created once per process and reused by later
    calls with the same devices or cluster (see ``_STRATEGIES``).
    """
    import tensorflow as tf

    resolved = resolve_strategy_name(name)
    if resolved == "default":
        strategy = tf.distribute.get_strategy()
    elif resolved == "multi_worker":
        strategy = _once(("multi_worker", os.environ.get("TF_CONFIG", "")),
                         tf.distribute.MultiWorkerMirroredStrategy)
    else:
        gpus = tf.config.list_logical_devices("GPU")
        devices = [d.name for d in (gpus or tf.config.list_logical_devices("CPU"))]
        strategy = _once(("mirrored", *devices), lambda: tf.distribute.MirroredStrategy(devices=devices))
    log.info("strategy %s with %d replica(s)", resolved, strategy.num_replicas_in_sync)
    return strategy


def _once(key: tuple, create: Any) -> Any:
    """The strategy cached under ``key``, created by ``create()`` on first use."""
    if key not in _STRATEGIES:
        _STRATEGIES[key] = create()
    return _STRATEGIES[key]


def scaled_lr(lr: float, replicas: int, rule: str) -> float:
    """Learning rate for ``replicas`` replicas under ``rule`` (``linear``, ``sqrt``, ``none``)."""
    if rule == "linear":
        return lr * replicas
    if rule == "sqrt":
        return lr * math.sqrt(replicas)
    if rule == "none":
        return lr
    raise ValueError(f"lr_scaling must be one of ['linear', 'none', 'sqrt']. Received: {rule!r}")


def is_chief() -> bool:
    """True on the worker that writes outputs (worker 0, or a single-process run)."""
    tf_config = os.environ.get("TF_CONFIG")
    if not tf_config:
        return True
    task = json.loads(tf_config).get("task", {})
    return task.get("type", "worker") in ("chief",) or (
        task.get("type", "worker") == "worker" and int(task.get("index", 0)) == 0
        and "chief" not in json.loads(tf_config).get("cluster", {}))
