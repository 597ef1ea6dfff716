from __future__ import annotations

import keras
import pytest


@pytest.fixture
def bfloat16_policy():
    """Build models under ``mixed_bfloat16``; the previous global policy is restored afterwards."""
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy(previous)


@pytest.fixture(params=["mixed_bfloat16", "mixed_float16"])
def mixed_policy(request):
    """Build models under each mixed-precision policy: ``mixed_float16`` is the GPU default
    (TF's CPU kernels run it too, slowly), ``mixed_bfloat16`` the CPU/TPU one."""
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(request.param)
    try:
        yield request.param
    finally:
        keras.mixed_precision.set_global_policy(previous)
