"""Tiny models and images for the explain tests (built in-process, no weights downloaded).

``region_model`` is constructed, not trained: its output depends only on bright pixels (> 0.5)
inside the region ``REGION`` (everything outside is cropped away and zero-padded back), so a
faithful map of a "square" image peaks on the square inside the region and ignores the bright
distractor square outside it.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import layers

#: Per spatial axis: (start, stop) of the region the region model sees, of the square inside it
#: and of the distractor square outside it, for a 2D 32x32 or 3D 16x16x16 input.
GEOMETRY = {
    2: {"size": 32, "region": (4, 20), "square": (8, 12), "distractor": (22, 28)},
    3: {"size": 16, "region": (2, 10), "square": (4, 8), "distractor": (11, 15)},
}


def _ops(rank: int):
    if rank == 2:
        return (layers.Conv2D, layers.MaxPooling2D, layers.GlobalAveragePooling2D, layers.Cropping2D,
                layers.ZeroPadding2D)
    return (layers.Conv3D, layers.MaxPooling3D, layers.GlobalAveragePooling3D, layers.Cropping3D,
            layers.ZeroPadding3D)


def small_cnn(rank: int = 2, *, size: int = 32, n_outputs: int = 1, activation: str = "sigmoid",
              seed: int = 0) -> keras.Model:
    """Random-weight conv net: conv(8) → max-pool 2 → conv(16) ``last`` → GAP → dense ``predictions``."""
    conv, pool, gap, _, _ = _ops(rank)
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((size,) * rank + (1,), name="image")
    x = conv(8, 3, padding="same", activation="relu", name="first")(inputs)
    x = pool(2, name="pool")(x)
    x = conv(16, 3, padding="same", activation="relu", name="last")(x)
    x = gap(name="head_pool")(x)
    return keras.Model(inputs, layers.Dense(n_outputs, activation=activation, name="predictions")(x))


def region_model(rank: int = 2) -> keras.Model:
    """Sigmoid classifier: ~0.98 when a bright square lies inside ``REGION``, ~0.02 otherwise."""
    conv, _, gap, crop, pad = _ops(rank)
    avg_pool = layers.AveragePooling2D if rank == 2 else layers.AveragePooling3D
    geo = GEOMETRY[rank]
    start, stop = geo["region"]
    margins = ((start, geo["size"] - stop),) * rank
    inputs = keras.Input((geo["size"],) * rank + (1,), name="image")
    x = pad(margins, name="outside_zeroed")(crop(margins, name="region_only")(inputs))
    bright = conv(1, 1, activation="relu", name="bright")
    x = avg_pool(2, name="pool")(bright(x))  # average, so every bright pixel counts
    features = conv(4, 3, padding="same", activation="relu", name="features")
    x = gap(name="head_pool")(features(x))
    dense = layers.Dense(1, activation="sigmoid", name="predictions")
    model = keras.Model(inputs, dense(x))
    bright.set_weights([np.ones((1,) * rank + (1, 1), np.float32), np.array([-0.5], np.float32)])
    features.set_weights([np.full((3,) * rank + (1, 4), 1 / 3**rank, np.float32), np.zeros(4, np.float32)])
    # GAP of one filter for the square: (square voxels / 2**rank pooled cells) * 0.5 / cells.
    cells = (geo["size"] // 2) ** rank
    square_cells = ((geo["square"][1] - geo["square"][0]) // 2) ** rank
    gap_value = square_cells * 0.5 / cells
    dense.set_weights([np.full((4, 1), 8.0 / (4 * gap_value), np.float32), np.array([-4.0], np.float32)])
    return model


def square_images(rank: int = 2, n: int = 4, *, seed: int = 0, square: bool = True) -> np.ndarray:
    """Noise in [0, 0.45) with a bright distractor square outside the region, and (``square``)
    a bright square inside it; float32 ``(n, *size, 1)``."""
    geo = GEOMETRY[rank]
    rng = np.random.default_rng(seed)
    images = rng.uniform(0.0, 0.45, (n,) + (geo["size"],) * rank + (1,)).astype(np.float32)
    images[(slice(None), *(slice(*geo["distractor"]),) * rank)] = 1.0
    if square:
        images[(slice(None), *(slice(*geo["square"]),) * rank)] = 1.0
    return images


def box(rank: int, name: str) -> tuple[slice, ...]:
    """Index of the ``square`` / ``distractor`` / ``region`` box in a ``(*spatial)`` map."""
    return (slice(*GEOMETRY[rank][name]),) * rank
