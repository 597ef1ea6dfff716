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
