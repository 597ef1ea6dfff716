"""Process-wide TensorFlow settings that must be in place before TensorFlow is imported.

oneDNN: TensorFlow's x86 wheels enable their oneDNN CPU kernels by default only on CPUs with
AVX-512 VNNI/BF16/AMX. On AVX2-only machines (many AMD EPYC cloud cores) they fall back to
Eigen, whose 3D convolutions are far slower: measured on a 2-core AMD EPYC (AVX2, FMA, no
AVX-512), one training step of the demo's 3D ResNet-18 (width 16, 8 x 32x64x64) took 2.45 s
with Eigen and 0.36 s with oneDNN (6.8x), a 2D ResNet-18 (width 32, 16 x 128x128) 0.31 s vs
0.22 s (1.4x); ``bench/onednn.py`` reproduces this. So we ask for oneDNN unless the user chose
(``TF_ENABLE_ONEDNN_OPTS=0`` keeps Eigen). oneDNN sums in another order, so results can differ
from Eigen's in the last bits; a run is still reproducible on one machine.
"""

from __future__ import annotations

import os
import sys

ONEDNN_ENV = "TF_ENABLE_ONEDNN_OPTS"


def prefer_onednn() -> bool:
    """Default ``TF_ENABLE_ONEDNN_OPTS`` to 1 unless set; True if it takes effect.

    It cannot take effect once TensorFlow is imported (the flag is read at import), which is
    reported by returning False; the user's explicit value is never overridden.
    """
    if ONEDNN_ENV in os.environ:
        return os.environ[ONEDNN_ENV] == "1" and "tensorflow" not in sys.modules
    if "tensorflow" in sys.modules:
        return False
    os.environ[ONEDNN_ENV] = "1"
    return True
