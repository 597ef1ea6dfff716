"""ROAD's noisy linear imputation: fill removed pixels (voxels) from their neighbours.

Rong et al., "A Consistent and Efficient Evaluation Strategy for Attribution Methods", ICML 2022.
The ``"road"`` fill of the deletion test (:mod:`pipeline.explain.faithfulness`,
:mod:`pipeline.explain.masking`): removed pixels are interpolated from their neighbours, so
scattered random pixels are restored almost perfectly and only compact removed regions lose
their content, and the filled image stays in the image's distribution (unlike a constant fill).
"""

from __future__ import annotations

import itertools

import numpy as np

#: ROAD's noise: standard deviation of the noise added to imputed pixels, as a share of the
#: image's per-channel standard deviation (the paper's 0.01 on standardised inputs).
ROAD_NOISE = 0.01


def noisy_linear_imputation(images: np.ndarray, removed: np.ndarray, *, noise: float = ROAD_NOISE,
                            rng: np.random.Generator | None = None) -> np.ndarray:
    """ROAD's noisy linear imputation (Rong et al., ICML 2022): fill removed pixels from their neighbours.

    Every removed pixel (voxel) takes the weighted mean of its 8 (2D) or 26 (3D) in-bounds
    neighbours, weight 1 / (number of axes the neighbour is offset along): 1 across a face,
    1/2 along an edge, 1/3 at a corner (ROAD's 1/6 and 1/12 in 2D, up to normalisation).
    Removed neighbours are unknowns too, so all removed pixels of a batch are solved at once as
    one sparse symmetric positive definite system (``diag(W) x_u - W_uu x_u = W_uk x_k``,
    block-diagonal over images; conjugate gradients, Jacobi-preconditioned). A linear ramp with
    a hole is restored exactly, and, unlike a constant fill, neither the removed pixels' values
    nor the removal pattern's edges stand out. Then Gaussian noise of ``noise`` times the
    image's per-channel standard deviation is added (ROAD: 0.01 on standardised inputs) and
    the result clipped to the image's per-channel range, so imputed values stay in
    distribution. An image with every pixel removed gets its per-channel mean.

    Args:
        images: ``(M, *spatial, C)``, 2D or 3D spatial axes.
        removed: ``(M, *spatial)`` bool, True = replace.
        noise: Noise standard deviation as a share of each image's channel std (0 = none).
        rng: Noise source (required when ``noise > 0`` and something is removed).

    Returns:
        float32 copy of ``images`` with the removed pixels imputed.

    Raises:
        ValueError: Mismatched shapes or negative ``noise``.
    """
    images = np.array(images, dtype=np.float32, order="C")  # C order: ``flat`` below is a view
    removed = np.asarray(removed, dtype=bool)
    if images.ndim not in (4, 5) or removed.shape != images.shape[:-1]:
        raise ValueError(f"images must be (M, *spatial, C) with 2D/3D spatial axes, removed (M, *spatial). "
                         f"Received: images.shape={images.shape}, removed.shape={removed.shape}")
    if not noise >= 0.0:
        raise ValueError(f"noise must be >= 0. Received: noise={noise!r}")
    original = images.copy()
    spatial_axes = tuple(range(1, images.ndim - 1))
    everything = removed.all(axis=spatial_axes)
    if everything.any():
        images[everything] = original[everything].mean(axis=spatial_axes, keepdims=True)
    solve = removed & ~everything.reshape((-1,) + (1,) * len(spatial_axes))
    flat = images.reshape(-1, images.shape[-1])
    unknown = np.flatnonzero(solve)
    if unknown.size:
        flat[unknown] = _solve_imputation(solve, flat, unknown)
        images = flat.reshape(images.shape)
    if noise > 0.0 and removed.any():
        if rng is None:
            raise ValueError("rng is required when noise > 0")
        std = original.std(axis=spatial_axes, keepdims=True)
        images += np.where(removed[..., None], noise * std * rng.standard_normal(images.shape,
                                                                                  dtype=np.float32), 0.0)
    low = original.min(axis=spatial_axes, keepdims=True)
    high = original.max(axis=spatial_axes, keepdims=True)
    return np.where(removed[..., None], np.clip(images, low, high), original).astype(np.float32)


def _solve_imputation(removed: np.ndarray, flat: np.ndarray, unknown: np.ndarray) -> np.ndarray:
    """Values ``(len(unknown), C)`` of the removed pixels: the neighbour-mean system's solution.

    The system is built on each image's grid framed by one outside pixel, where every neighbour
    of a removed pixel is an index away: per neighbour offset, one lookup of what it is (a
    removed pixel's row, known, or outside) and dense sums, no bounds masks or scattered adds
    (2.5x faster than that on the demo's 32 x 64 x 64 volumes, the same matrix and right-hand
    side to the bit: known neighbours add ``weight * value``, the others an exact 0).
    """
    from scipy import sparse
    from scipy.sparse.linalg import LinearOperator, cg
    from threadpoolctl import threadpool_limits

    n, channels = unknown.size, flat.shape[1]
    framed = (removed.shape[0], *(size + 2 for size in removed.shape[1:]))
    inner = (slice(None), *(slice(1, -1) for _ in removed.shape[1:]))
    code = np.full(framed, -2, np.int64)  # -2: outside the image
    rows_of = np.full(removed.size, -1, np.int64)  # -1: a known pixel
    rows_of[unknown] = np.arange(n)
    code[inner] = rows_of.reshape(removed.shape)
    known = np.zeros((*framed, channels), np.float32)
    known[inner] = np.where(removed[..., None], np.float32(0.0), flat.reshape(*removed.shape, channels))
    code, known = code.reshape(-1), known.reshape(-1, channels)
    coords = np.unravel_index(unknown, removed.shape)
    at = np.ravel_multi_index((coords[0], *(c + 1 for c in coords[1:])), framed)
    strides = np.cumprod((1, *framed[:0:-1]))[:-1][::-1]  # flat-index step per spatial axis
    diag = np.zeros(n, np.float64)
    rhs = np.zeros((n, channels), np.float64)
    rows, cols, vals = [], [], []
    for offset in _offsets(removed.ndim - 1):
        weight = 1.0 / sum(map(abs, offset))
        neighbour = at + int(np.dot(offset, strides))
        what = code[neighbour]
        diag += weight * (what != -2)
        is_unknown = what >= 0
        rows.append(np.flatnonzero(is_unknown))
        cols.append(what[is_unknown])
        vals.append(np.full(rows[-1].size, -weight))
        rhs += weight * known[neighbour]  # float32 products, as weight * flat[...] gives
    rows.append(np.arange(n))
    cols.append(np.arange(n))
    vals.append(diag)
    system = sparse.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                               shape=(n, n))
    jacobi = LinearOperator((n, n), matvec=lambda v: v / diag, dtype=np.float64)
    out = np.empty_like(rhs)
    # CG's vector dot products are far too small for BLAS threads; on a busy machine the threads
    # made them ~1000x slower (20 ms per 13k-element dot on 2 loaded cores).
    with threadpool_limits(limits=1, user_api="blas"):
        for c in range(rhs.shape[1]):
            b = np.ascontiguousarray(rhs[:, c])
            out[:, c], info = cg(system, b, x0=b / diag, rtol=1e-6, atol=0.0, maxiter=10 * n, M=jacobi)
            if info:  # pragma: no cover - the system is SPD; a direct solve if CG ever stalls
                out[:, c] = sparse.linalg.spsolve(system.tocsc(), b)
    return out


def _offsets(ndim: int) -> list[tuple[int, ...]]:
    """The 8 (2D) or 26 (3D) neighbour offsets, in :func:`itertools.product` order."""
    return [o for o in itertools.product((-1, 0, 1), repeat=ndim) if any(o)]
