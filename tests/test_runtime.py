"""pipeline asks TensorFlow for its oneDNN CPU kernels unless the user chose otherwise."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

_PROBE = (
    "import os, sys\n"
    "import pipeline\n"
    "print(os.environ.get('TF_ENABLE_ONEDNN_OPTS'), 'tensorflow' in sys.modules)\n"
)


def _probe(env_value: str | None, code: str = _PROBE) -> str:
    env = {k: v for k, v in os.environ.items() if k != "TF_ENABLE_ONEDNN_OPTS"}
    if env_value is not None:
        env["TF_ENABLE_ONEDNN_OPTS"] = env_value
    return subprocess.run([sys.executable, "-c", code], env=env, check=True,
                          capture_output=True, text=True).stdout.strip()


def test_import_sets_onednn_before_tensorflow_loads():
    # importing pipeline must not import TensorFlow (else the flag would come too late)
    assert _probe(None) == "1 False"


@pytest.mark.parametrize("value", ["0", "1"])
def test_user_choice_is_kept(value):
    assert _probe(value) == f"{value} False"


def test_too_late_after_tensorflow_is_reported():
    code = ("import sys, types, os\n"
            "sys.modules['tensorflow'] = types.ModuleType('tensorflow')\n"
            "from pipeline._runtime import prefer_onednn\n"
            "print(prefer_onednn(), os.environ.get('TF_ENABLE_ONEDNN_OPTS'))\n")
    assert _probe(None, code) == "False None"
    assert _probe("1", code) == "False 1"
