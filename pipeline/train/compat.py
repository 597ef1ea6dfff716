"""Compatibility shim: Keras 3 ``Model.fit`` under ``MultiWorkerMirroredStrategy``.

Keras 3.15 (TensorFlow backend) fails in two places when a model trains under
``tf.distribute.MultiWorkerMirroredStrategy`` (keras-team/keras#20585, open):

1. ``_maybe_symbolic_build`` averages a whole input batch with ``strategy.reduce`` just to learn
   its shapes; the collective reduce of a PerReplica batch raises "Attempt to convert a value
   (PerReplica...)". We take the first local replica's batch instead (only shapes are used).
2. ``reduce_per_replica`` reduces scalar logs (loss, metric results) with ``axis=0``, which a
   rank-0 tensor does not have. Scalars are reduced with ``axis=None`` instead; metric values
   are already synchronised across replicas, so their mean is the value itself.

Both are applied only for multi-worker strategies and are verified by
``tests/train/test_distribute.py`` (two local workers train in lock-step to identical weights).
Remove this module when Keras fixes the issue.
"""

from __future__ import annotations

from typing import Any

_PATCHED = False


def patch_multi_worker(model: Any, strategy: Any) -> None:
    """Apply both work-arounds for ``model`` trained under the multi-worker ``strategy``."""
    import tensorflow as tf
    from keras.src import tree

    def symbolic_build(iterator: Any = None, data_batch: Any = None) -> None:
        if iterator is not None and data_batch is None:
            for _, _, batches in iterator:
                batch = next(batches)
                break
            data_batch = tree.map_structure(
                lambda v: strategy.experimental_local_results(v)[0]
                if isinstance(v, tf.distribute.DistributedValues) else v, batch)
        with strategy.scope():
            model._symbolic_build(data_batch=data_batch)

    model._maybe_symbolic_build = symbolic_build
    _patch_reduce_per_replica()


def _patch_reduce_per_replica() -> None:
    global _PATCHED
    if _PATCHED:
        return
    import keras.src.backend.tensorflow.trainer as tf_trainer
    from keras.src import tree

    original = tf_trainer.reduce_per_replica

    def reduce_per_replica(values: Any, strategy: Any, reduction: str) -> Any:
        if not (tf_trainer._collective_all_reduce_multi_worker(strategy)
                and reduction in ("auto", "mean")):
            return original(values, strategy, reduction)

        def reduce(v: Any) -> Any:
            if not tf_trainer._is_per_replica_instance(v):
                return v
            rank = len(strategy.experimental_local_results(v)[0].shape)
            return strategy.reduce("MEAN", v, axis=0 if rank else None)

        return tree.map_structure(reduce, values)

    tf_trainer.reduce_per_replica = reduce_per_replica
    _PATCHED = True
