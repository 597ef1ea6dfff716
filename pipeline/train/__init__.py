"""The train stage: tf.data over ingested arrays -> fine-tuned Keras model + model card.

- :mod:`pipeline.train.precision`: mixed-precision policy resolution.
- :mod:`pipeline.train.distribute`: tf.distribute strategy resolution.
- :mod:`pipeline.train.objective`: targets, loss, class weights, metrics.
- :mod:`pipeline.train.selection`: which epoch is best (``train.checkpoint`` rules).
- :mod:`pipeline.train.checkpoint`: the resumable best-model checkpoint.
- :mod:`pipeline.train.stopping`: early stopping under the same rule.
- :mod:`pipeline.train.ema`: validating and saving the EMA weights (``train.ema``).
- :mod:`pipeline.train.callbacks`: one phase's callbacks (EMA, checkpoint, backup, early
  stopping, DVCLive).
- :mod:`pipeline.train.trainer`: the two-phase fine-tuning loop.
- :mod:`pipeline.train.card`: the model card and safe model loading.
"""
