"""FusedAdamW takes the steps Keras' AdamW takes (weights, moments, averages, step count), with
weight decay, exclusions, EMA, sparse and missing gradients, loss scaling and MirroredStrategy,
eagerly and traced; and its traced update is a fraction of AdamW's graph."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from pipeline.train.optimizer import FusedAdamW
from pipeline.train.schedule import warmup_cosine

# step 3 gives one variable no gradient on purpose (Keras warns, skips it, still averages it)
pytestmark = pytest.mark.filterwarnings("ignore:Gradients do not exist")
SHAPES = {"kernel": (3, 4), "bias": (4,), "table": (6, 2)}
STEPS = 6


def _variables() -> list[keras.Variable]:
    rng = np.random.default_rng(0)
    return [keras.Variable(rng.normal(size=shape).astype("float32"), name=name)
            for name, shape in SHAPES.items()]


def _gradients(step: int, *, sparse: bool) -> list:
    rng = np.random.default_rng(100 + step)
    grads = [tf.constant(rng.normal(size=shape).astype("float32")) for shape in SHAPES.values()]
    if sparse:  # an embedding-style gradient: two rows of the table
        rows = tf.constant([1, 4] if step % 2 else [0, 5])
        grads[2] = tf.IndexedSlices(tf.gather(grads[2], rows), rows, tf.constant(SHAPES["table"]))
    if step == 3:
        grads[0] = None  # no gradient this step: Keras skips its update but still averages it
    return grads


def _optimizer(cls, **kw):
    schedule = warmup_cosine(0.05, total_steps=STEPS, warmup_steps=2, min_lr_fraction=0.1)
    opt = cls(learning_rate=schedule, weight_decay=0.1, **kw)
    opt.exclude_from_weight_decay(var_names=["bias"])
    return opt


def _run(cls, *, graph: bool, sparse: bool = False, loss_scale: bool = False, **kw):
    variables = _variables()
    opt = _optimizer(cls, **kw)
    if loss_scale:
        opt = keras.optimizers.LossScaleOptimizer(opt, initial_scale=8.0)
    opt.build(variables)

    def step(grads):
        if loss_scale:  # LossScaleOptimizer expects scaled gradients
            grads = [None if g is None else opt.scale_loss(g) for g in grads]
        opt.apply([g for g in grads], variables)

    apply = tf.function(step) if graph else step
    for i in range(STEPS):
        apply(_gradients(i, sparse=sparse))
    return [v.numpy() for v in variables], {v.path.split("/", 1)[-1]: v.numpy() for v in opt.variables}


def _assert_same(fused, reference) -> None:
    (f_vars, f_state), (r_vars, r_state) = fused, reference
    for a, b in zip(f_vars, r_vars, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=2e-6)  # float32 rounding, see below
    assert f_state.keys() == r_state.keys()  # same variables: moments, averages, step count
    for key, value in f_state.items():
        np.testing.assert_allclose(value, r_state[key], rtol=1e-5, atol=2e-6, err_msg=key)


@pytest.mark.graph
@pytest.mark.parametrize("graph", [False, True], ids=["eager", "traced"])
@pytest.mark.parametrize("options", [
    {},
    {"use_ema": True, "ema_momentum": 0.8},
    {"use_ema": True, "ema_momentum": 0.8, "sparse": True},
    {"use_ema": True, "ema_momentum": 0.8, "loss_scale": True},
    {"amsgrad": True},  # not fused: Keras' own update
], ids=["plain", "ema", "sparse", "loss_scale", "amsgrad"])
def test_fused_steps_equal_keras_adamw(graph, options):
    fused = _run(FusedAdamW, graph=graph, **options)
    reference = _run(keras.optimizers.AdamW, graph=graph, **options)
    _assert_same(fused, reference)
    moved = fused[0][0] - _variables()[0].numpy()
    assert np.abs(moved).max() > 1e-3  # the steps really moved the weights


def test_closer_to_exact_adamw_than_keras():
    """The two differ by float32 rounding; against AdamW in float64 the fused kernel is closer."""
    schedule = warmup_cosine(0.05, total_steps=STEPS, warmup_steps=2, min_lr_fraction=0.1)
    exact = [v.numpy().astype(np.float64) for v in _variables()]
    m, v = [np.zeros_like(w) for w in exact], [np.zeros_like(w) for w in exact]
    for i in range(STEPS):
        lr = float(schedule(i))
        for j, g in enumerate(_gradients(i, sparse=False)):
            if g is None:
                continue
            g = g.numpy().astype(np.float64)
            w = exact[j]
            if j != 1:  # bias: excluded from weight decay
                w -= w * 0.1 * lr
            m[j] += (g - m[j]) * (1 - 0.9)
            v[j] += (g * g - v[j]) * (1 - 0.999)
            w -= m[j] * lr * np.sqrt(1 - 0.999 ** (i + 1)) / (1 - 0.9 ** (i + 1)) / (np.sqrt(v[j]) + 1e-7)
    fused, _ = _run(FusedAdamW, graph=False)
    reference, _ = _run(keras.optimizers.AdamW, graph=False)
    fused_err = max(np.abs(a - b).max() for a, b in zip(fused, exact, strict=True))
    keras_err = max(np.abs(a - b).max() for a, b in zip(reference, exact, strict=True))
    assert fused_err < 1e-6 and fused_err <= keras_err, (fused_err, keras_err)


def test_gradient_accumulation_goes_to_keras():
    fused = _run(FusedAdamW, graph=False, gradient_accumulation_steps=2, use_ema=True)
    reference = _run(keras.optimizers.AdamW, graph=False, gradient_accumulation_steps=2, use_ema=True)
    _assert_same(fused, reference)


def _graph_ops(cls, n_vars: int = 40) -> int:
    rng = np.random.default_rng(1)
    variables = [keras.Variable(rng.normal(size=(8, 8)).astype("float32")) for _ in range(n_vars)]
    opt = _optimizer(cls, use_ema=True)
    opt.build(variables)
    grads = [tf.TensorSpec((8, 8), tf.float32)] * n_vars
    graph = tf.function(lambda *g: opt.apply(list(g), variables)).get_concrete_function(*grads).graph
    return len(graph.get_operations())


@pytest.mark.graph
def test_traced_update_is_a_fraction_of_keras_graph():
    fused, reference = _graph_ops(FusedAdamW), _graph_ops(keras.optimizers.AdamW)
    assert fused < reference / 4, (fused, reference)
    assert fused / 40 < 20  # ops per variable: decay, Adam kernel, average


def test_config_round_trip_and_compiled_model_reload(tmp_path):
    opt = _optimizer(FusedAdamW, use_ema=True, ema_momentum=0.9)
    again = FusedAdamW.from_config(opt.get_config())
    assert again.get_config() == opt.get_config()
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    model.compile(optimizer=opt, loss="mse")
    model.fit(np.ones((4, 3), "float32"), np.ones((4, 1), "float32"), verbose=0)
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")  # compiled, registered class
    assert type(loaded.optimizer) is FusedAdamW
    assert int(loaded.optimizer.iterations.numpy()) == 1


# Under MirroredStrategy (2 logical CPUs, traced, with a schedule): tests/train/test_ema.py's
# subprocess also compares FusedAdamW with Keras' AdamW (one TensorFlow import for both).
