"""AdamW with one fused update per variable: Keras' semantics, a fraction of its graph.

Why not plain ``keras.optimizers.AdamW``: on the TensorFlow backend its update is written in
``keras.ops`` and rebuilt for every variable: the step count, both bias-correction powers, the
learning-rate schedule (once more per variable for the weight decay) and the moving-average
momentum, about 100 graph ops per variable. Tracing that costs more than tracing the model: a
124-variable CNN at 64 px (slot variables built first, as the trainer does) took 14.1 s for its
first AdamW step (warm-up + cosine schedule) against 3.0 s with SGD and 3.6 s with this class,
on one core of the AVX2 machine; every training process pays it once per phase
(``bench/optimizer.py`` prints the task models' figures side by side).

:class:`FusedAdamW` computes the shared scalars once per step and updates each variable with
TensorFlow's own Adam kernel (``ResourceApplyAdam``, the kernel ``tf.keras`` 2 used, with CPU,
GPU and XLA implementations), the decoupled weight decay and the EMA in the same
``tf.distribute`` update. Same algorithm, same order per variable (decay, Adam, average), same
variables and config as ``AdamW``; values agree to float32 rounding (the kernel computes
``1 - beta`` in float32, Keras in float64). It runs inside a ``LossScaleOptimizer`` and under
``MirroredStrategy``/``MultiWorkerMirroredStrategy`` (gradients are all-reduced first, by
Keras, and each replica updates its own copy). Cases it does not fuse go to Keras unchanged:
sparse gradients (``IndexedSlices``), ``amsgrad`` and gradient accumulation.
"""

from __future__ import annotations

from typing import Any

import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="medvision")
class FusedAdamW(keras.optimizers.AdamW):
    """``keras.optimizers.AdamW`` (same arguments and config) with a fused TensorFlow update."""

    def _fused(self) -> bool:
        return not self.amsgrad and not self.gradient_accumulation_steps

    def _apply_weight_decay(self, variables: Any) -> None:
        if not self._fused():
            super()._apply_weight_decay(variables)
        # else: decayed inside the fused update, before the Adam step (Keras' order)

    def _update_model_variables_moving_average(self, trainable_variables: Any) -> None:
        if not self._fused():
            super()._update_model_variables_moving_average(trainable_variables)
            return
        done = getattr(self, "_averaged_in_update", frozenset())
        for var in trainable_variables:  # those without a dense gradient this step: Keras' way
            index = self._get_variable_index(var)
            average = self._model_variables_moving_average[index]
            if index in done or average is None:
                continue
            not_first_step = keras.ops.not_equal(self.iterations, 0)
            momentum = keras.ops.multiply(keras.ops.cast(not_first_step, var.dtype), self.ema_momentum)
            average.assign(keras.ops.add(keras.ops.multiply(momentum, average),
                                         keras.ops.multiply(keras.ops.subtract(1, momentum), var)))

    def _distributed_tf_update_step(self, distribution: Any, grads_and_vars: Any,
                                    learning_rate: Any) -> None:
        if not self._fused():
            super()._distributed_tf_update_step(distribution, grads_and_vars, learning_rate)
            return
        # Under MirroredStrategy a schedule's rate arrives per replica: every replica computed the
        # same value from the same (mirrored) step count, so the first one serves all.
        learning_rate = distribution.experimental_local_results(learning_rate)[0]
        scalars: dict[Any, dict[str, Any]] = {}
        averaged = set()
        for grad, var in grads_and_vars:
            index = self._get_variable_index(var)
            decay = self.weight_decay is not None and self._use_weight_decay(
                self._trainable_variables[index])
            if isinstance(grad, tf.IndexedSlices):  # sparse: Keras' update (and its EMA)
                distribution.extended.update(var, self._keras_update, group=False,
                                             args=(grad, learning_rate, decay))
                continue
            if var.dtype not in scalars:
                scalars[var.dtype] = self._step_scalars(learning_rate, var.dtype)
            average = self._ema_average(index)
            if average is not None:
                averaged.add(index)
            distribution.extended.update(
                var, self._fused_update, group=False,
                args=(grad, self._momentums[index].value, self._velocities[index].value,
                      average, scalars[var.dtype], decay))
        self._averaged_in_update = frozenset(averaged)

    def _keras_update(self, var: Any, grad: Any, learning_rate: Any, decay: bool) -> Any:
        if decay:  # as Keras' TensorFlow weight decay
            var.assign_sub(var * tf.cast(self.weight_decay, var.dtype) * tf.cast(learning_rate, var.dtype))
        return self.update_step(grad, var, learning_rate)

    def _ema_average(self, index: int) -> Any:
        if not self.use_ema:
            return None
        average = self._model_variables_moving_average[index]
        return None if average is None else average.value

    def _step_scalars(self, learning_rate: Any, dtype: Any) -> dict[str, Any]:
        """What every variable's update shares, computed once per step and dtype."""
        step = tf.cast(self.iterations + 1, dtype)
        out = {
            "lr": tf.cast(learning_rate, dtype),
            "beta_1": tf.cast(self.beta_1, dtype),
            "beta_2": tf.cast(self.beta_2, dtype),
            "epsilon": tf.cast(self.epsilon, dtype),
        }
        out["beta_1_power"] = tf.pow(out["beta_1"], step)
        out["beta_2_power"] = tf.pow(out["beta_2"], step)
        if self.weight_decay is not None:
            out["weight_decay"] = tf.cast(self.weight_decay, dtype)
        if self.use_ema:
            momentum = tf.cast(tf.not_equal(self.iterations, 0), dtype) * tf.cast(
                self.ema_momentum, dtype)
            out["ema_momentum"] = momentum
            out["ema_rest"] = 1 - momentum
        return out

    def _fused_update(self, var: Any, grad: Any, m: Any, v: Any, average: Any,
                      s: dict[str, Any], decay: bool) -> Any:
        """Weight decay, Adam and the moving average of one variable (one replica's copy)."""
        if decay:
            var.assign_sub(var * s["weight_decay"] * s["lr"])
        op = tf.raw_ops.ResourceApplyAdam(
            var=var.handle, m=m.handle, v=v.handle, beta1_power=s["beta_1_power"],
            beta2_power=s["beta_2_power"], lr=s["lr"], beta1=s["beta_1"], beta2=s["beta_2"],
            epsilon=s["epsilon"], grad=tf.cast(grad, var.dtype), use_locking=False)
        if average is None:
            return op
        with tf.control_dependencies([op]):
            return average.assign(s["ema_momentum"] * average + s["ema_rest"] * var)
