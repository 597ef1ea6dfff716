"""The class activation map methods and their rules, independent of any model.

- :data:`METHODS`, :data:`BACKENDS` and :func:`check_options`: the method names, the libraries
  that may compute ``gradcam`` and which combinations are valid (tf-explain computes 2D Grad-CAM
  only).
- :func:`cam_formula`: the Grad-CAM, HiResCAM and LayerCAM formulas on activations and gradients
  at one layer, as :class:`pipeline.explain.gradcam.Explainer` computes ``hirescam`` and each
  layer of ``layercam-fusion``.
- :func:`fusion_layers`: the layers ``layercam-fusion`` reads, one per feature resolution.
- :func:`finer_layer` and :func:`blend`: ``gradcam-layercam``, Grad-CAM at the target layer
  blended with LayerCAM one feature resolution finer (their per-pixel mean).
- :func:`tf_keras_vis_classes`: tf-keras-vis's Grad-CAM, Grad-CAM++ and Score-CAM classes,
  imported without their deprecation warnings.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

METHODS = ("gradcam", "gradcam++", "scorecam", "hirescam", "layercam", "layercam-fusion", "gradcam-layercam")
#: Methods that read one target layer (``layercam-fusion`` reads several, :func:`fusion_layers`;
#: ``gradcam-layercam`` two, :func:`finer_layer`).
SINGLE_LAYER = ("gradcam", "gradcam++", "scorecam", "hirescam", "layercam")
#: Library computing ``gradcam``: ``auto`` = tf-explain in 2D, tf-keras-vis in 3D.
BACKENDS = ("auto", "tf-explain", "tf-keras-vis")


def check_options(method: str, backend: str, batch_size: int, max_n: int | None, spatial_rank: int) -> None:
    """Raises ValueError for an unknown method or backend, a backend that cannot compute
    ``method`` on a ``spatial_rank``-D model, or a bad ``batch_size`` / ``max_n``."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {list(METHODS)}. Received: method={method!r}")
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {list(BACKENDS)}. Received: backend={backend!r}")
    if backend == "tf-explain" and (method != "gradcam" or spatial_rank != 2):
        raise ValueError(f"backend 'tf-explain' computes 2D Grad-CAM only. Received: method={method!r} "
                         f"on a {spatial_rank}D model")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be an integer >= 1. Received: batch_size={batch_size!r}")
    if max_n is not None and (isinstance(max_n, bool) or not isinstance(max_n, int) or max_n < 1):
        raise ValueError(f"max_n must be None or an integer >= 1. Received: max_n={max_n!r}")


def cam_formula(acts: np.ndarray, grads: np.ndarray, rule: str) -> np.ndarray:
    """Class activation map at feature resolution, ``(n, *cells)``, before the ReLU.

    - ``gradcam``: ``sum_k mean(dS/dA_k) A_k`` (Selvaraju et al. 2017);
    - ``hirescam``: ``sum_k dS/dA_k * A_k`` element-wise (Draelos & Carin 2020): the gradients are
      not averaged over space, so the map shows where each feature moved the score, provably for a
      head of global average pooling + dense;
    - ``layercam``: ``sum_k relu(dS/dA_k) * A_k`` (Jiang et al. 2021).

    Args:
        acts, grads: ``(n, *cells, channels)``.
        rule: One of the three names above.
    """
    acts, grads = np.asarray(acts, np.float32), np.asarray(grads, np.float32)
    if rule == "gradcam":
        weights = grads.mean(axis=tuple(range(1, grads.ndim - 1)), keepdims=True)
        return (acts * weights).sum(axis=-1)
    if rule == "hirescam":
        return (acts * grads).sum(axis=-1)
    if rule == "layercam":
        return (acts * np.maximum(grads, 0.0)).sum(axis=-1)
    raise ValueError(f"rule must be 'gradcam', 'hirescam' or 'layercam'. Received: {rule!r}")


def resolution_groups(model: Any) -> dict[tuple[int, ...], str]:
    """The last layer of each feature resolution of ``model`` (cells per spatial axis -> layer
    name), ordered fine to coarse; the last layer in topological order wins within a resolution."""
    from pipeline.models.target_layer import spatial_layers

    last_of: dict[tuple[int, ...], str] = {}
    for name in spatial_layers(model):
        last_of[cells_of(model, name)] = name
    return dict(sorted(last_of.items(), key=lambda item: -int(np.prod(item[0]))))


def cells_of(model: Any, name: str) -> tuple[int, ...]:
    """Cells per spatial axis of layer ``name``'s output."""
    return tuple(int(d) for d in model.get_layer(name).output.shape[1:-1])


def fusion_layers(model: Any, layer: str, *, max_layers: int = 3) -> tuple[str, ...]:
    """The layers ``layercam-fusion`` reads: the last layer of each feature resolution from
    ``layer``'s resolution down to the coarsest, plus one finer resolution (LayerCAM's finer maps
    outline the object, the coarser ones find it), at most ``max_layers``, ordered fine to coarse.

    Args:
        model: The explanation view (functional).
        layer: The resolved target layer.
    """
    last_of = resolution_groups(model)
    groups = list(last_of)  # fine to coarse
    target = cells_of(model, layer)
    start = max(0, groups.index(target) - 1) if target in groups else 0
    chosen = [last_of[g] for g in groups[start:start + max_layers]]
    if target in groups and last_of[target] != layer:  # an explicit name inside a resolution group
        chosen[chosen.index(last_of[target])] = layer
    return tuple(chosen)


def finer_layer(model: Any, layer: str) -> str:
    """The last layer of the next finer feature resolution than ``layer``'s (``layer`` itself
    when it is already the finest), the LayerCAM layer of ``gradcam-layercam``.

    Args:
        model: The explanation view (functional).
        layer: The resolved target layer.
    """
    target = cells_of(model, layer)
    finer = [name for g, name in resolution_groups(model).items()
             if len(g) == len(target) and int(np.prod(g)) > int(np.prod(target))]
    return finer[-1] if finer else layer  # fine to coarse: the last finer one is the next


def blend(coarse: np.ndarray, fine: np.ndarray) -> np.ndarray:
    """``gradcam-layercam``: the per-pixel mean of two maps on the input grid, each scaled to a
    maximum of 1, rescaled to a maximum of 1 (all zero where neither map has evidence).

    Why: Grad-CAM at a coarse layer is class-discriminative and finds the lesion, but its cells
    are large; LayerCAM one resolution finer outlines structures, including ones the class does
    not rest on. The mean peaks where both agree, so the peak keeps Grad-CAM's choice of region
    and gains LayerCAM's detail, while the highlighted area stays as wide as the lesion.

    Mean, not the geometric mean (this method's first form, after Guided Grad-CAM's product):
    both point equally well, but the product of a peaked fine map shrinks the highlighted region
    to a few voxels. Pointing game / IoU of the two forms on the same maps (demo models, 10-view
    averages; the layers are the ones ``auto`` compares):

    - demo ct, an independent demo cohort (seed 1, 72 nodules, the locked model): mean 0.67 /
      0.20, geometric 0.67 / 0.12, Grad-CAM alone 0.51 / 0.14;
    - demo ct validation (11 nodules): 0.45 / 0.15 against 0.45 / 0.09;
    - LIDC-IDRI validation (54 nodules, Grad-CAM and LayerCAM both at ``conv1_relu``): 0.72 / 0.07
      against 0.65 / 0.05;
    - demo cxr validation (29 lesions, ``conv3``): 0.93 / 0.38 against 0.93 / 0.41.
    """
    from pipeline.explain.maps import normalize

    coarse, fine = np.asarray(coarse, np.float32), np.asarray(fine, np.float32)
    if coarse.shape != fine.shape:
        raise ValueError(f"maps to blend must have the same shape. Received: {coarse.shape} and {fine.shape}")
    return normalize((normalize(coarse) + normalize(fine)) / 2.0)


def tf_keras_vis_classes() -> tuple[Any, Any, Any]:
    """``Gradcam``, ``GradcamPlusPlus``, ``Scorecam`` (their modules import a deprecated scipy path)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from tf_keras_vis.gradcam import Gradcam
        from tf_keras_vis.gradcam_plus_plus import GradcamPlusPlus
        from tf_keras_vis.scorecam import Scorecam
    return Gradcam, GradcamPlusPlus, Scorecam
