"""Class activation maps (Grad-CAM, Grad-CAM++, Score-CAM) for 2D and 3D classifiers, in batches.

Which library computes what:

- ``gradcam`` in 2D: tf-explain (``GradCAM.get_gradients_and_filters`` on a whole batch, compiled
  once with ``tf.function``, then ``GradCAM.generate_ponderated_output``), called with
  ``use_guided_grads=False``: the published Grad-CAM weights are the spatial mean of the raw
  gradients. tf-explain's "guided" option first zeroes negative gradients and inactive units,
  which is another method, and it multiplies float32 masks with the gradients, which fails for
  16-bit feature maps.
- ``gradcam++`` and ``scorecam`` (2D and 3D): tf-keras-vis, whose code reduces over all spatial
  axes. tf-explain is 2D-only: ``ponderate_output`` averages the gradients over axes ``(0, 1)`` of
  one ``(H, W, C)`` map; given a ``(D, H, W, C)`` map it averages over D and H only and silently
  returns a wrong map (weights varying along W), its layer inference looks for 4D outputs via
  ``layer.output_shape`` (gone in Keras 3) and its display resizes with ``cv2.resize`` (2D).
- ``gradcam`` in 3D, ``layercam`` (2D and 3D) and ``hirescam``: our compiled gradient pass (one
  ``tf.function`` per explainer and layer set) and the published formula
  (:func:`pipeline.explain.cam_rules.cam_formula`, a weighted sum over channels). Why not
  tf-keras-vis here: it takes its gradients eagerly, which costs 6-8x more per batch on a CPU
  (11 demo CT volumes at ``conv2_block2_out``: 1.7 s against 0.2 s), and ``explain.methods: auto``
  computes these maps for every candidate layer on 10 views of every validation case. The
  tests check both paths against each other and against the formulas;
  ``backend="tf-keras-vis"`` still computes Grad-CAM and LayerCAM with tf-keras-vis.

All methods run on :func:`pipeline.explain.view.explanation_model` (float32 copy, logits), read
the same target layer (:func:`pipeline.models.target_layer.resolve_target_layer`), return maps
at feature resolution, and share one upsampling and normalisation
(:mod:`pipeline.explain.maps`): float32 ``(N, *spatial)`` in [0, 1] on the input's grid, 1 = the
strongest evidence for the class in that image, all zero where there is none.

Score definitions: Grad-CAM and Grad-CAM++ differentiate the class logit. Grad-CAM++ (as
implemented by tf-keras-vis) scales its terms by ``exp(score)``, which overflows for logits above
~88; the score passed is ``logit - stop_gradient(logit)``, which has the logit's gradient and
``exp(score) = 1``, a per-image positive factor that the normalisation removes anyway. Score-CAM
weights channels by the class *probability* of the masked inputs; tf-keras-vis takes a softmax of
the model output, so for sigmoid outputs the copy emits the two logits ``(0, z_c)``, whose
softmax is ``(1 - sigmoid(z_c), sigmoid(z_c))``.

The method and backend names, their checks, the formulas this module computes itself (HiResCAM,
LayerCAM fusion) and the layers LayerCAM fusion reads are in :mod:`pipeline.explain.cam_rules`.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from pipeline.explain.averaged import view_averaged_maps
from pipeline.explain.cam_rules import (
    blend,
    cam_formula,
    check_options,
    finer_layer,
    fusion_layers,
    tf_keras_vis_classes,
)
from pipeline.explain.ensemble import average_maps, common_layer
from pipeline.explain.maps import to_input_grid
from pipeline.explain.scores import ClassIndex, n_outputs, resolve_class_index
from pipeline.explain.view import explanation_model, output_activation
from pipeline.models.target_layer import AUTO, resolve_target_layer
from pipeline.rules import check_tta_mode

DEFAULT_MAX_N = 32


class Explainer:
    """One model prepared for explanation: target layer, float32/logit copy, compiled gradients.

    Preparing costs a model clone (about a second for a ResNet-50); reuse the instance for many
    images. The wrapped model is not modified.

    An ensemble (:func:`pipeline.models.build_ensemble`, ``train.folds >= 2``) is explained
    member by member and its map is the mean of theirs (:mod:`pipeline.explain.ensemble`):
    ``members`` holds one explainer per member, the target layer is resolved inside each member
    and ``layer`` is that member-level name.

    Args:
        model: A functional ``keras.Model`` with one input ``(batch, H, W, C)`` or
            ``(batch, D, H, W, C)`` and one output ``(batch, K)``.
        layer: Target layer: ``"auto"`` or a name (see :func:`resolve_target_layer`).
        backbone: Optional registry backbone name (from the model card) for ``"auto"``.

    Raises:
        ValueError: Not a 2D/3D single-input model, or a bad layer name.
    """

    def __init__(self, model: Any, *, layer: str = AUTO, backbone: str | None = None) -> None:
        from pipeline.models.ensemble import ensemble_members

        if len(model.inputs) != 1 or len(model.inputs[0].shape) not in (4, 5) or len(model.outputs) != 1:
            raise ValueError(f"model must have one 2D (N, H, W, C) or 3D (N, D, H, W, C) input and one "
                             f"output. Received: inputs={[t.shape for t in model.inputs]}, "
                             f"outputs={[t.shape for t in model.outputs]}")
        self.model = model
        self.spatial_rank = len(model.inputs[0].shape) - 2
        members = ensemble_members(model) or ()
        self.members = tuple(Explainer(m, layer=layer, backbone=backbone) for m in members)
        if self.members:
            self.view = None  # each member has its own
            self._layer = common_layer([m.layer for m in self.members])
            return
        self.view = explanation_model(model)
        self._layer = resolve_target_layer(self.view, layer, backbone=backbone)
        self._activation = output_activation(model)

    @property
    def layer(self) -> str:
        """Name of the target layer (fixed: the compiled gradient function reads it)."""
        return self._layer

    def maps(self, images: np.ndarray, *, method: str = "gradcam", class_index: ClassIndex = None,
             batch_size: int = 16, max_n: int | None = DEFAULT_MAX_N, backend: str = "auto",
             tta: str = "none") -> np.ndarray:
        """Heatmaps for ``images``; see :func:`compute_maps` for the arguments."""
        check_options(method, backend, batch_size, max_n, self.spatial_rank)
        check_tta_mode(tta)
        images = _check_images(self.model, images)
        classes = resolve_class_index(self.model, images, class_index, batch_size=batch_size)
        if method == "gradcam-layercam":  # two maps of the same class and views, then blended
            options = {"class_index": classes, "batch_size": batch_size, "max_n": max_n, "tta": tta}
            return blend(self.maps(images, method="gradcam", backend=backend, **options),
                        self.finer.maps(images, method="layercam", **options))
        if tta != "none":  # the class chosen on the original image, explained on every view
            return view_averaged_maps(
                lambda batch: self.maps(batch, method=method, class_index=classes, batch_size=batch_size,
                                        max_n=max_n, backend=backend), images, tta)
        if self.members:  # the ensemble's class, explained by every member
            return average_maps([m.maps(images, method=method, class_index=classes, batch_size=batch_size,
                                        max_n=max_n, backend=backend) for m in self.members])
        out = np.zeros(images.shape[:-1], np.float32)
        cams = self._engine(method, backend, batch_size, max_n)
        step = 1 if method == "scorecam" else batch_size  # Score-CAM picks channels per image
        for c, rows in _class_batches(classes, step):
            out[rows] = to_input_grid(cams(images[rows], c), images.shape[1:-1])
        return out

    def shares_pass(self, method: str) -> bool:
        """Whether ``method`` (default backend) is a formula of the compiled gradient pass at the
        target layer (:meth:`_own`, as :meth:`_engine` routes it): HiResCAM, LayerCAM, and
        Grad-CAM in 3D."""
        if self.members:
            return False
        engine = self._engine(method, "auto", 1, None)
        return isinstance(engine, functools.partial) and engine.func == self._own

    def shared_maps(self, images: np.ndarray, methods: tuple[str, ...], *, batch_size: int = 16,
                    tta: str = "none") -> dict[str, np.ndarray]:
        """``{method: maps(images, method=method, ...)}`` for methods that :meth:`shares_pass`,
        from one gradient pass per batch and view instead of one per method (the same maps:
        the formulas read the same activations and gradients). ``explain.methods: auto`` scores
        HiResCAM, LayerCAM and (3D) Grad-CAM at every candidate layer: a third of the passes.

        Raises:
            ValueError: A method that does not share the pass, or bad images or options.
        """
        if not methods or not all(self.shares_pass(m) for m in methods):
            raise ValueError(f"methods must be formulas of the compiled gradient pass (hirescam, layercam; "
                             f"gradcam in 3D) of a single model. Received: {list(methods)}")
        check_tta_mode(tta)
        images = _check_images(self.model, images)
        classes = resolve_class_index(self.model, images, None, batch_size=batch_size)

        def stacked(batch: np.ndarray) -> np.ndarray:  # (len(methods) * n, *spatial)
            out = np.zeros((len(methods), *batch.shape[:-1]), np.float32)
            for c, rows in _class_batches(classes, batch_size):
                (acts,), (grads,) = self.activations_and_gradients(batch[rows], c, (self.layer,))
                for m, method in enumerate(methods):
                    out[m, rows] = to_input_grid(cam_formula(acts, grads, method), batch.shape[1:-1])
            return out.reshape(-1, *batch.shape[1:-1])

        maps = view_averaged_maps(stacked, images, tta).reshape(len(methods), *images.shape[:-1])
        return dict(zip(methods, maps, strict=True))

    def _engine(self, method: str, backend: str, batch_size: int,
                max_n: int | None) -> Callable[[np.ndarray, int], np.ndarray]:
        """The function computing ``method`` for one batch of one class (module docstring, "Which
        library computes what")."""
        tf_explain = backend == "tf-explain" or (backend == "auto" and self.spatial_rank == 2)
        if method == "gradcam" and tf_explain:
            return self._gradcam_tf_explain
        if method == "scorecam":
            return functools.partial(self._scorecam, batch_size=batch_size, max_n=max_n)
        if method == "layercam-fusion":
            return self._fusion
        if method == "hirescam" or (backend == "auto" and method in ("gradcam", "layercam")):
            return functools.partial(self._own, rule=method)
        return functools.partial(self._tf_keras_vis, variant=method)

    def _gradcam_tf_explain(self, images: np.ndarray, class_index: int) -> np.ndarray:
        """Grad-CAM of one batch through tf-explain's batch functions; ``(n, h, w)``."""
        from tf_explain.core.grad_cam import GradCAM

        outputs, grads = self._tf_explain_gradients(images, class_index)
        return np.stack([cam.numpy() for cam in GradCAM.generate_ponderated_output(outputs, grads)])

    @functools.cached_property
    def _tf_explain_function(self) -> Any:
        import tensorflow as tf
        from tf_explain.core.grad_cam import GradCAM

        view, layer = self.view, self.layer

        @tf.function(reduce_retracing=True)
        def gradients(images, class_index):  # a scalar tensor: one trace serves every class
            with warnings.catch_warnings():  # tf-explain passes [model.inputs] (nested list)
                warnings.filterwarnings("ignore", message="The structure of `inputs`")
                return GradCAM.get_gradients_and_filters(view, images, layer, class_index, False)

        return gradients

    def _tf_explain_gradients(self, images: np.ndarray, class_index: int) -> tuple[Any, Any]:
        import tensorflow as tf

        return self._tf_explain_function(tf.constant(images), tf.constant(class_index, tf.int32))

    def _tf_keras_vis(self, images: np.ndarray, class_index: int, *, variant: str) -> np.ndarray:
        """Grad-CAM, Grad-CAM++ or LayerCAM of one batch through tf-keras-vis;
        ``(n, *feature_spatial)``."""
        import tensorflow as tf

        gradcam, gradcam_plus_plus, _ = tf_keras_vis_classes()

        def score(output):
            logit = output[:, class_index]
            return logit - tf.stop_gradient(logit)  # gradient of the logit, exp(score) == 1

        if variant == "layercam":
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                from tf_keras_vis.layercam import Layercam
            tool = Layercam(self.view, clone=False)
        else:
            tool = (gradcam_plus_plus if variant == "gradcam++" else gradcam)(self.view, clone=False)
        cam = tool(score, tf.constant(images), penultimate_layer=self.layer,
                   seek_penultimate_conv_layer=False, expand_cam=False, normalize_cam=False)
        return np.asarray(cam, np.float32)

    @functools.cached_property
    def finer(self) -> Explainer:
        """The explainer of the next finer feature resolution (``gradcam-layercam``'s LayerCAM)."""
        view = self.members[0].view if self.members else self.view
        return Explainer(self.model, layer=finer_layer(view, self.layer))

    @functools.cached_property
    def fusion_layers(self) -> tuple[str, ...]:
        """Layers fused by ``layercam-fusion``: see :func:`pipeline.explain.cam_rules.fusion_layers`."""
        return fusion_layers(self.view, self.layer)

    @functools.cache  # noqa: B019 (one traced function per layer set, lives with the explainer)
    def _gradient_function(self, layers: tuple[str, ...]) -> Any:
        """``f(images, class_index) -> (activations, gradients)`` of the class logit at ``layers``."""
        import keras
        import tensorflow as tf

        tap = keras.Model(self.view.inputs, [self.view.get_layer(n).output for n in layers]
                          + [self.view.outputs[0]])

        @tf.function(reduce_retracing=True)
        def gradients(images, class_index):
            with tf.GradientTape() as tape:
                *acts, logits = tap(images, training=False)
                score = tf.gather(logits, class_index, axis=1)
            return acts, tape.gradient(score, acts)

        return gradients

    def activations_and_gradients(self, images: np.ndarray, class_index: int,
                                  layers: tuple[str, ...]) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """Feature maps at ``layers`` and the gradients of the class logit with respect to them,
        float32 ``(n, *cells, channels)`` each (one forward and backward pass)."""
        import tensorflow as tf

        acts, grads = self._gradient_function(tuple(layers))(
            tf.constant(images), tf.constant(class_index, tf.int32))
        return [np.asarray(a, np.float32) for a in acts], [np.asarray(g, np.float32) for g in grads]

    def _own(self, images: np.ndarray, class_index: int, *, rule: str) -> np.ndarray:
        """Grad-CAM, HiResCAM or LayerCAM (``rule``) at the target layer, from one compiled gradient pass."""
        (acts,), (grads,) = self.activations_and_gradients(images, class_index, (self.layer,))
        return cam_formula(acts, grads, rule)

    def _fusion(self, images: np.ndarray, class_index: int) -> np.ndarray:
        """LayerCAM at each of :attr:`fusion_layers`, each ReLU'd, upsampled to the input grid and
        normalised to its own maximum, then averaged (and returned on the input grid, which the
        shared normalisation leaves as it is)."""
        layers = self.fusion_layers
        acts, grads = self.activations_and_gradients(images, class_index, layers)
        shape = images.shape[1:-1]
        maps = [to_input_grid(cam_formula(a, g, "layercam"), shape) for a, g in zip(acts, grads, strict=True)]
        return np.mean(maps, axis=0)

    def _scorecam(self, images: np.ndarray, class_index: int, *, batch_size: int,
                  max_n: int | None) -> np.ndarray:
        """Score-CAM (Faster Score-CAM with ``max_n`` channels) of one image; ``(1, *feature_spatial)``."""
        *_, scorecam = tf_keras_vis_classes()
        model, target = self._scorecam_model(class_index)
        channels = int(self.view.get_layer(self.layer).output.shape[-1])
        tool = scorecam(model, clone=False)
        with warnings.catch_warnings():  # tf-keras-vis passes [inputs] (a list) to predict
            warnings.filterwarnings("ignore", message="The structure of `inputs`")
            cam = tool(lambda output: output[:, target], images, penultimate_layer=self.layer,
                       seek_penultimate_conv_layer=False, batch_size=batch_size,
                       max_N=None if max_n is None else min(max_n, channels),
                       expand_cam=False, normalize_cam=False)
        return np.asarray(cam, np.float32)

    @functools.cache  # noqa: B019 (one small model per class, lives as long as the explainer)
    def _scorecam_model(self, class_index: int) -> tuple[Any, int]:
        """The copy whose softmax is the class probability, and the output to read."""
        import keras

        if self._activation == "sigmoid" or (self._activation == "linear" and n_outputs(self.view) == 1):
            dense = keras.layers.Dense(2, use_bias=False, dtype="float32", name="scorecam_logits")
            model = keras.Model(self.view.inputs, dense(self.view.outputs[0]))
            kernel = np.zeros((n_outputs(self.view), 2), np.float32)
            kernel[class_index, 1] = 1.0  # softmax((0, z_c)) = (1 - sigmoid(z_c), sigmoid(z_c))
            dense.set_weights([kernel])
            target = 1
        else:  # softmax over the logits is the class probability; a new Model shares the layers
            model, target = keras.Model(self.view.inputs, self.view.outputs), class_index
        # tf-keras-vis calls model.predict with the default progress bar; silence it.
        model.predict = functools.partial(model.predict, verbose=0)
        return model, target


def compute_maps(model: Any, images: np.ndarray, *, method: str = "gradcam", layer: str = AUTO,
                 class_index: ClassIndex = None, batch_size: int = 16, max_n: int | None = DEFAULT_MAX_N,
                 backbone: str | None = None, backend: str = "auto", tta: str = "none") -> np.ndarray:
    """Class activation maps at the input's resolution.

    Args:
        model: Trained classifier (2D or 3D, float32 or mixed precision, flat or nested), or an
            ensemble of such (the mean of its members' maps, :mod:`pipeline.explain.ensemble`).
        images: float32 ``(N, H, W, C)`` or ``(N, D, H, W, C)`` in the model's input range.
        method: One of :data:`pipeline.explain.cam_rules.METHODS`.
        layer: ``"auto"`` (last spatial layer before the head) or a layer name.
        class_index: Output explained: None = positive class (binary) / predicted class; an
            int; or one int per image.
        batch_size: Images per gradient pass (Grad-CAM/Grad-CAM++), masked inputs per forward
            pass (Score-CAM, which handles one image at a time).
        max_n: Score-CAM only: channels used per image (the ``max_n`` with the largest spatial
            variance, "Faster Score-CAM"); None = all channels (one forward pass each).
        backbone: Registry backbone name for ``layer="auto"`` (optional).
        backend: Grad-CAM library: ``"auto"`` (tf-explain 2D, tf-keras-vis 3D), ``"tf-explain"``
            (2D only) or ``"tf-keras-vis"``. Other methods always use tf-keras-vis.
        tta: ``none``, or the views the map is averaged over (``flip``, ``shift``,
            ``flip_shift``; :mod:`pipeline.explain.averaged`), the class fixed on the original.

    Returns:
        float32 ``(N, H, W)`` or ``(N, D, H, W)`` in [0, 1] (see :mod:`pipeline.explain.maps`).

    Raises:
        ValueError: Unknown method/backend, bad layer, class index, batch size or image shape.
    """
    explainer = Explainer(model, layer=layer, backbone=backbone)
    return explainer.maps(images, method=method, class_index=class_index, batch_size=batch_size,
                          max_n=max_n, backend=backend, tta=tta)


def _class_batches(classes: np.ndarray, step: int) -> Iterator[tuple[int, np.ndarray]]:
    """``(class, rows)``: the images of each class in batches of at most ``step`` (one gradient
    pass each)."""
    for c in np.unique(classes):
        rows_of_class = np.flatnonzero(classes == c)
        for start in range(0, len(rows_of_class), step):
            yield int(c), rows_of_class[start:start + step]


def _check_images(model: Any, images: np.ndarray) -> np.ndarray:
    images = np.asarray(images, np.float32)
    expected = tuple(model.inputs[0].shape[1:])
    if images.ndim != len(expected) + 1 or any(
            e is not None and e != s for e, s in zip(expected, images.shape[1:], strict=True)):
        raise ValueError(f"images must have shape (N, {', '.join(str(e) for e in expected)}) for model "
                         f"{model.name!r}. Received: images.shape={images.shape}")
    return images
