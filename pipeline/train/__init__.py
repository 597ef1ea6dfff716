"""The train stage: tf.data over ingested arrays -> fine-tuned Keras model + model card.

- :mod:`pipeline.train.precision`: mixed-precision policy resolution.
- :mod:`pipeline.train.distribute`: tf.distribute strategy resolution.
- :mod:`pipeline.train.objective`: targets, loss, class weights, metrics.
- :mod:`pipeline.train.callbacks`: DVCLive, checkpoint of the best model, early stopping, backup.
- :mod:`pipeline.train.trainer`: the two-phase fine-tuning loop.
- :mod:`pipeline.train.card`: the model card and safe model loading.
"""
