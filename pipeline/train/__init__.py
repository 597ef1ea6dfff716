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
- :mod:`pipeline.train.phases`: the two fine-tuning phases of one model (freezing, optimizer,
  resumable ``fit`` calls).
- :mod:`pipeline.train.trainer`: the train stage's run: data, one model or k fold models, card.
- :mod:`pipeline.train.inputs`: the run's splits, tf.data pipelines and augmentation list.
- :mod:`pipeline.train.run_record`: the model card's contents, the kept epoch in DVCLive, the
  resumable state's key.
- :mod:`pipeline.train.crossval`: k-fold cross-validation by patient (``train.folds``): what
  each member trains and validates on, resuming per member, the card section.
- :mod:`pipeline.train.folds`: fitting the members, their ensemble (the saved model), DVCLive.
- :mod:`pipeline.train.oof`: out-of-fold scores and ``oof_predictions.csv``.
- :mod:`pipeline.train.card`: the model card and safe model loading.
"""
