"""Mixed precision: choose and apply a Keras dtype policy.

``auto`` picks ``mixed_float16`` on a CUDA GPU of compute capability >= 7.0 (tensor cores; Keras
adds dynamic loss scaling), ``mixed_bfloat16`` where bfloat16 is native and float16 is not a
better fit (TPUs), and ``float32`` otherwise (CPUs: bfloat16 there depends on AMX/AVX512-BF16
kernels and is often slower; ``bench/train_input.py`` measures it; choose it explicitly).
The model's output layer is always float32 (see ``pipeline.models.heads``).
"""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger(__name__)

POLICIES = ("float32", "mixed_float16", "mixed_bfloat16")


def resolve_precision(name: str, *, devices: list[dict[str, Any]] | None = None) -> str:
    """Turn ``auto`` into a concrete policy name for this machine.

    Args:
        name: ``auto`` or one of :data:`POLICIES`.
        devices: For tests: ``[{"device_type": "GPU", "compute_capability": (8, 0)}, ...]``.
            Default: read from TensorFlow.

    Raises:
        ValueError: Unknown name.
    """
    if name in POLICIES:
        return name
    if name != "auto":
        raise ValueError(f"precision must be one of {['auto', *POLICIES]}. Received: {name!r}")
    devices = _devices() if devices is None else devices
    gpus = [d for d in devices if d.get("device_type") == "GPU"]
    if gpus and all(tuple(d.get("compute_capability") or (0, 0)) >= (7, 0) for d in gpus):
        return "mixed_float16"
    if any(d.get("device_type") == "TPU" for d in devices):
        return "mixed_bfloat16"
    return "float32"


def _devices() -> list[dict[str, Any]]:
    import tensorflow as tf

    out: list[dict[str, Any]] = []
    for dev in tf.config.list_physical_devices():
        info: dict[str, Any] = {"device_type": dev.device_type}
        if dev.device_type == "GPU":
            details = tf.config.experimental.get_device_details(dev)
            info["compute_capability"] = details.get("compute_capability")
        out.append(info)
    return out


def apply_precision(name: str) -> str:
    """Resolve ``name`` and set it as the global Keras dtype policy; return the policy name."""
    import keras

    policy = resolve_precision(name)
    keras.mixed_precision.set_global_policy(policy)
    log.info("precision policy: %s", policy)
    return policy
