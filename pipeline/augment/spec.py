"""Validation and normalisation of augmentation specs (lists of ``{"transform": ..., "p": ...}``)."""

from __future__ import annotations

import json
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

from pipeline.augment.catalog import CROPS_3D, SIZED_TO_INPUT, allowed_for

_PLACEHOLDER_SIZE = (64, 64)
_BINARY_FILLS = (None, 0, 1)


def validate_spec(spec: Sequence[Mapping[str, Any]], *, kind: str, key: str) -> list[dict]:
    """Check an augmentation spec and return a normalised, JSON-serialisable copy.

    Each entry names an albumentations class (``transform``), its probability (``p``, filled
    with the class default when absent) and its keyword arguments (lists where albumentations
    expects ranges). Every entry is instantiated to check its arguments; unknown arguments (which
    albumentations only warns about) are errors.

    Args:
        spec: Transform specs, applied in order.
        kind: "2d" or "3d"; selects :data:`ALLOWED_2D` or :data:`ALLOWED_3D`.
        key: Params path of the spec, used in error messages (e.g. ``tasks.cxr.train.augment``).

    Returns:
        A new list of new dicts: ``{"transform": name, "p": float, **kwargs}`` with tuples
        turned into lists.

    Raises:
        ValueError: Naming ``key[index]``: not a mapping, unknown transform, arguments
            albumentations rejects, or arguments we fix ourselves (``mask_interpolation``;
            ``size`` of ``RandomResizedCrop``; a non-binary ``fill_mask``).
    """
    allowed = allowed_for(kind)
    if isinstance(spec, (str, bytes, Mapping)) or not isinstance(spec, Sequence):
        raise ValueError(f"{key} must be a list of transform specs. Received: {spec!r}")
    return [_validate_entry(entry, allowed=allowed, where=f"{key}[{i}]") for i, entry in enumerate(spec)]


def make_transform(name: str, kwargs: Mapping[str, Any]) -> Any:
    """Instantiate ``albumentations.<name>(**kwargs)`` with lists turned into tuples."""
    import albumentations as A

    return getattr(A, name)(**{k: _as_tuples(v) for k, v in kwargs.items()})


def transform_kwargs(entry: Mapping[str, Any]) -> dict[str, Any]:
    """Keyword arguments of a normalised spec entry (everything but ``transform``)."""
    return {k: v for k, v in entry.items() if k != "transform"}


def _validate_entry(entry: Any, *, allowed: tuple[str, ...], where: str) -> dict:
    if not isinstance(entry, Mapping):
        raise ValueError(f"{where} must be a mapping with a 'transform' key. Received: {entry!r}")
    name = entry.get("transform")
    if name not in allowed:
        raise ValueError(f"{where}.transform must be one of {list(allowed)}. Received: {name!r}")
    kwargs = transform_kwargs(entry)
    _check_fixed_arguments(name, kwargs, where)
    transform = _instantiate(name, kwargs, where)
    rest = {k: _as_lists(v) for k, v in kwargs.items() if k != "p"}
    normalised = {"transform": name, "p": float(transform.p), **rest}
    try:
        json.dumps(normalised)
    except TypeError as exc:
        raise ValueError(f"{where} must hold only JSON values. Received: {entry!r}") from exc
    return normalised


def _check_fixed_arguments(name: str, kwargs: Mapping[str, Any], where: str) -> None:
    if "mask_interpolation" in kwargs:
        raise ValueError(f"{where}.mask_interpolation is fixed to nearest neighbour (masks stay binary). "
                         f"Received: {kwargs['mask_interpolation']!r}")
    if name in SIZED_TO_INPUT and "size" in kwargs:
        raise ValueError(f"{where}.size is set to the input size automatically; remove it. "
                         f"Received: {kwargs['size']!r}")
    if kwargs.get("fill_mask") not in _BINARY_FILLS:
        raise ValueError(f"{where}.fill_mask must be one of {list(_BINARY_FILLS)} (masks are 0/1). "
                         f"Received: {kwargs['fill_mask']!r}")
    if name == "CoarseDropout3D" and kwargs.get("fill_mask") is not None:
        raise ValueError(f"{where}.fill_mask is not supported for CoarseDropout3D (the mask is left "
                         f"unchanged; albumentations 2.0.8 ignores fill_mask for 3D masks). "
                         f"Received: {kwargs['fill_mask']!r}")
    if name in CROPS_3D and kwargs.get("pad_if_needed"):
        raise ValueError(f"{where}.pad_if_needed must stay false: every 3D crop is padded back to the "
                         f"input shape by a PadIfNeeded3D. Received: {kwargs['pad_if_needed']!r}")


def _instantiate(name: str, kwargs: Mapping[str, Any], where: str) -> Any:
    trial = dict(kwargs)
    if name in SIZED_TO_INPUT:
        trial["size"] = _PLACEHOLDER_SIZE
    try:
        with warnings.catch_warnings():
            # albumentations only warns about unknown or deprecated arguments.
            warnings.simplefilter("error")
            return make_transform(name, trial)
    except Exception as exc:  # any albumentations complaint (pydantic, TypeError, warning) is a spec error
        shown = ", ".join(f"{k}={v!r}" for k, v in kwargs.items())
        message = " ".join(str(exc).split())
        raise ValueError(f"{where}: {name}({shown}) is invalid: {message}") from exc


def _as_tuples(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return tuple(_as_tuples(v) for v in value)
    if isinstance(value, Mapping):
        return {k: _as_tuples(v) for k, v in value.items()}
    return value


def _as_lists(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return [_as_lists(v) for v in value]
    if isinstance(value, Mapping):
        return {k: _as_lists(v) for k, v in value.items()}
    if hasattr(value, "item") and callable(value.item):  # numpy scalars
        return value.item()
    return value
