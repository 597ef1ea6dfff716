"""Class activation maps of an ensemble (:func:`pipeline.models.build_ensemble`, ``train.folds``).

An ensemble's map is the mean of its members' maps:

1. The class is the *ensemble's* (its predicted class, or the one asked for), so every member
   explains the same output.
2. Each member is explained on its own, exactly as a single model: its float32/logit copy
   (:mod:`pipeline.explain.view`), its target layer resolved by the same setting (``auto``,
   ``auto:N`` or a layer name, looked up *inside the member*; members of one architecture
   resolve to the same name), its method and library (tf-explain works per member: each is a
   flat functional model), and the usual ReLU, upsampling and division by the map's maximum
   (:mod:`pipeline.explain.maps`).
3. The members' normalised maps are averaged with equal weights, and the mean is normalised
   once more (maximum 1, or all zero), the contract of every map, so IoU thresholds (a fraction
   of the maximum), colour scales and the deletion test read it as a single model's map. The
   deletion test scores the ensemble's own output with it.

Why normalise each member's map before averaging, instead of averaging raw activation maps:

- The ensemble weighs its members equally (the arithmetic mean of their probabilities); averaging
  normalised maps gives each member the same equal say in *where* the evidence is.
- A raw map's scale is arbitrary per member: it is the product of that member's feature
  magnitudes and logit gradients, which differ between members initialised and trained
  separately (BatchNorm scales, weight norms). A raw mean would show whichever member has the
  largest activations. Maps are already relative within one image and not comparable in
  magnitude across images (:mod:`pipeline.explain.maps`); across models even less so.
- A raw mean is the ensemble's Grad-CAM only in a special case (the gradient of the mean of the
  members' *logits*, with their feature maps concatenated). The saved ensemble averages
  *probabilities*, whose gradient weights member ``i`` by ``p_i (1 - p_i)``: a confident member
  would vanish from the map (the saturation that makes the pipeline explain logits at all).
  Grad-CAM++ (non-linear in the gradients) and Score-CAM (probability weights) have no such
  identity. Normalise-then-average means the same for every method, in 2D and 3D.

A member without positive evidence (an all-zero map) contributes zeros: it supports no region,
so it lowers the mean's contrast instead of being skipped.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from pipeline.explain.maps import normalize


def average_maps(member_maps: Sequence[np.ndarray]) -> np.ndarray:
    """The ensemble's map from its members' normalised maps of the same images and class.

    Args:
        member_maps: One float ``(N, *spatial)`` array in [0, 1] per member (each map's maximum
            1 or the map all zero), all of one shape.

    Returns:
        float32 ``(N, *spatial)``: the per-pixel mean over members, normalised per image to
        maximum 1 (all zero where no member has evidence).

    Raises:
        ValueError: No member maps, or maps of different shapes.
    """
    shapes = {np.shape(m) for m in member_maps}
    if len(shapes) != 1:
        raise ValueError(f"member_maps must be one or more arrays of one shape. Received shapes: "
                         f"{sorted(shapes)}")
    mean = np.mean(np.stack([np.asarray(m, np.float32) for m in member_maps]), axis=0)
    return normalize(mean)


def common_layer(member_layers: Sequence[str]) -> str:
    """The one target layer name the members resolved to.

    Raises:
        ValueError: Members resolved the setting to different layers (an ensemble of different
            architectures: pass a layer name they all have).
    """
    names = list(dict.fromkeys(member_layers))
    if len(names) != 1:
        raise ValueError(f"the ensemble's members resolved the target layer to different layers "
                         f"{names}; give a layer name every member has. Received: {names}")
    return names[0]
