"""Mask guidance (``train.mask_guidance``): a weakly supervised localization loss where lesion
masks exist.

Why: a classifier trained on labels alone may use whatever separates the classes (lesion
texture, but also global brightness, anatomy, markers), and its Grad-CAM then shows that, not the
lesion. Where ``masks.npy`` holds lesion masks, a small auxiliary loss can ask the features the
heatmap is read from to encode *where* the lesion is, which moves the classification evidence
(and so the maps) onto it without changing what the model outputs.

How: during training only, a 1x1 convolution on the target layer's feature map (the same
``auto:N`` rule as ``explain.layer``) predicts, per feature cell, the share of the cell covered by
lesion (the mask average-pooled to the feature grid); the loss is the binary cross-entropy
between the two, averaged over cells and over the images that carry evidence:

- an image with a non-empty mask (its lesions);
- a negative image (binary/multi-label: no positive label; multi-class: the first label), whose
  empty mask is the truth (no lesion anywhere);
- a positive image **without** a mask is unannotated, not lesion-free: weight 0.

``loss = classification loss + mask_guidance x guidance loss``. The saved model is the plain
classifier (the 1x1 head is discarded), so evaluate, explain, predict and serving are unchanged;
validation, the checkpoint rule and early stopping see the classifier alone (the validation loss
excludes the guidance term). A training split without any mask turns guidance off with a warning.

No library provides this for Keras models (it is a few lines around ``add_loss``); it follows
the segmentation-assisted classifiers of the chest X-ray literature (e.g. an auxiliary
localization head on the CAM layer), not a gradient-based attention loss, which would need
second-order gradients in every step.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from pipeline.dataset.layout import InterimLayout

log = logging.getLogger(__name__)

#: The auxiliary head's layer name (never saved: the classifier alone is).
HEAD_NAME = "mask_guidance_logits"


def guidance_weights(masks_nonempty: np.ndarray, targets: np.ndarray, *, problem: str) -> np.ndarray:
    """Per-image weight of the guidance loss (see the module docstring): 1 for an image with a
    mask or a negative image, 0 for a positive image without a mask.

    Args:
        masks_nonempty: ``(N,)`` bool, the image has lesion voxels.
        targets: ``(N, K)`` training targets.
        problem: ``binary``, ``multiclass`` or ``multilabel``.

    Returns:
        float32 ``(N,)``.
    """
    targets = np.asarray(targets)
    if problem == "multiclass":
        negative = targets.argmax(axis=1) == 0
    else:
        negative = ~(targets > 0.5).any(axis=1)
    return (np.asarray(masks_nonempty, bool) | negative).astype(np.float32)


def pool_factors(input_shape: tuple[int, ...], feature_shape: tuple[int, ...]) -> tuple[int, ...]:
    """Average-pooling size per spatial axis from the input grid to the feature grid:
    ``ceil(size / cells)``. Where the cells do not divide the input (EfficientNet's odd grids,
    image sizes that are no multiple of the stride), the mask is zero-padded evenly on both sides
    to ``factor x cells`` first (:func:`pool_padding`), so the border cells' lesion shares are
    slightly diluted: an approximate target at the edges, exact elsewhere.

    Raises:
        ValueError: A feature grid with no cell, or more cells than input pixels on an axis.
    """
    factors = []
    for size, cells in zip(input_shape, feature_shape, strict=True):
        if cells < 1 or cells > size:
            raise ValueError(f"mask guidance needs a feature map of 1 to {tuple(input_shape)} cells per "
                             f"axis. Received: {tuple(feature_shape)}; choose another "
                             "train.mask_guidance_layer")
        factors.append(-(-size // cells))
    return tuple(factors)


def pool_padding(input_shape: tuple[int, ...], feature_shape: tuple[int, ...]) -> tuple[tuple[int, int], ...]:
    """Zero padding ``(before, after)`` per spatial axis that makes the input grid
    ``factor x cells`` (:func:`pool_factors`); all zero where the cells divide the input."""
    pads = []
    for size, cells, factor in zip(input_shape, feature_shape, pool_factors(input_shape, feature_shape),
                                   strict=True):
        total = factor * cells - size
        pads.append((total // 2, total - total // 2))
    return tuple(pads)


def make_guided_model(classifier: Any, *, layer: str, weight: float) -> Any:
    """A training wrapper around ``classifier`` that adds the guidance loss.

    Called with ``(images, masks, weights)`` it returns the classifier's output and adds
    ``weight x`` the guidance loss (:func:`guidance_loss`); called with images alone it is the
    classifier (validation). ``wrapper.classifier`` is the model to save.

    Args:
        classifier: A :func:`pipeline.models.build_model` model (2D or 3D).
        layer: Target layer rule or name (:func:`pipeline.models.target_layer.resolve_target_layer`).
        weight: Loss weight (> 0).
    """
    import keras

    from pipeline.models.target_layer import resolve_target_layer

    name = resolve_target_layer(classifier, layer)
    features = classifier.get_layer(name).output
    spatial = tuple(int(s) for s in classifier.inputs[0].shape[1:-1])
    cells = tuple(int(s) for s in features.shape[1:-1])
    factors = pool_factors(spatial, cells)
    conv = keras.layers.Conv2D if len(spatial) == 2 else keras.layers.Conv3D

    class GuidedModel(keras.Model):
        """Classifier + auxiliary lesion-share head (training only)."""

        def __init__(self) -> None:
            super().__init__(name="mask_guided")
            self.classifier = classifier
            self.tap = keras.Model(classifier.inputs, [classifier.outputs[0], features], name="guidance_tap")
            self.head = conv(1, 1, dtype="float32", name=HEAD_NAME)
            self.guidance_layer = name
            self.factors = factors
            self.weight = float(weight)

        def call(self, inputs: Any, training: bool | None = None) -> Any:
            if not isinstance(inputs, (tuple, list)):
                return self.classifier(inputs, training=training)
            images, masks, weights = inputs
            output, feats = self.tap(images, training=training)
            logits = self.head(keras.ops.cast(feats, "float32"))
            self.add_loss(self.weight * guidance_loss(logits, masks, weights, self.factors))
            return output

    model = GuidedModel()
    in_shape = tuple(int(s) for s in classifier.inputs[0].shape[1:])
    # Build it (BackupAndRestore needs a built model): one call on a blank batch.
    model((np.zeros((1, *in_shape), np.float32), np.zeros((1, *spatial, 1), np.uint8),
           np.zeros((1,), np.float32)), training=False)
    return model


def guidance_loss(logits: Any, masks: Any, weights: Any, factors: tuple[int, ...]) -> Any:
    """Weighted mean binary cross-entropy between per-cell logits and the mask's cell coverage.

    Args:
        logits: ``(B, *cells, 1)`` float32.
        masks: ``(B, *spatial, 1)`` 0/1 (any dtype).
        weights: ``(B,)`` per-image weights.
        factors: Pooling size per spatial axis (:func:`pool_factors`).

    Returns:
        A scalar: sum over images of weight x mean cell BCE, divided by max(sum of weights, 1).
    """
    import keras
    from keras import ops

    masks = ops.cast(masks, "float32")
    spatial = tuple(int(d) for d in masks.shape[1:-1])
    cells = tuple(int(d) for d in logits.shape[1:-1])
    pads = pool_padding(spatial, cells)
    if any(any(p) for p in pads):
        masks = ops.pad(masks, ((0, 0), *pads, (0, 0)))
    target = ops.average_pool(masks, pool_size=factors, strides=factors, padding="valid")
    bce = keras.losses.binary_crossentropy(target, logits, from_logits=True)  # (B, *cells)
    per_image = ops.mean(ops.reshape(bce, (ops.shape(bce)[0], -1)), axis=1)
    weights = ops.cast(ops.reshape(weights, (-1,)), "float32")
    return ops.sum(per_image * weights) / ops.maximum(ops.sum(weights), 1.0)


def guided_batches(ds: Any, *, problem: str) -> Any:
    """Map a ``(x, y, m)`` dataset (:func:`pipeline.dataset.tfdata.make_dataset` with
    ``return_masks``) to ``((x, m, w), y)``, ``w`` the per-image weight of
    :func:`guidance_weights`, computed in the graph from the (augmented) mask and the target."""
    import tensorflow as tf

    def to_inputs(x: Any, y: Any, m: Any) -> Any:
        axes = list(range(1, len(m.shape)))
        nonempty = tf.reduce_max(tf.cast(m, tf.float32), axis=axes) > 0
        if problem == "multiclass":
            negative = tf.equal(tf.argmax(y, axis=1), 0)
        else:
            negative = tf.logical_not(tf.reduce_any(y > 0.5, axis=1))
        return (x, m, tf.cast(nonempty | negative, tf.float32)), y

    return ds.map(to_inputs, num_parallel_calls=tf.data.AUTOTUNE)


def active(task: Any, data_dir: Any, train_indices: np.ndarray) -> bool:
    """Whether ``train.mask_guidance`` applies: a positive weight and at least one training image
    with a lesion mask (otherwise a warning says why it is off)."""

    from pipeline.dataset.store import open_array

    if task.train.mask_guidance <= 0:
        return False
    path = InterimLayout(data_dir).masks
    if not path.is_file():
        log.warning("tasks.%s.train.mask_guidance=%g ignored: the dataset has no masks.npy", task.name,
                    task.train.mask_guidance)
        return False
    masks = open_array(path)
    if not any(np.asarray(masks[int(i)]).any() for i in train_indices):
        log.warning("tasks.%s.train.mask_guidance=%g ignored: no training image has a lesion mask",
                    task.name, task.train.mask_guidance)
        return False
    return True
