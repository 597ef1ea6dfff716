"""TensorFlow's CPU kernels with and without oneDNN, side by side, on the demo's models.

``pipeline`` sets ``TF_ENABLE_ONEDNN_OPTS=1`` unless the user set it (``pipeline/_runtime.py``):
TensorFlow's wheels turn oneDNN on by default only on CPUs with AVX-512 VNNI/BF16/AMX, and on
AVX2-only machines the Eigen fallback is several times slower for 3D convolutions. The flag is
read when TensorFlow is imported, so each setting runs in its own subprocess::

    python bench/onednn.py [--steps 5]

Prints, per model, the mean training-step and inference time for each setting and their ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

_CHILD = r"""
import json, sys, time
import numpy as np
from pipeline.models import build_model
kind, steps = sys.argv[1], int(sys.argv[2])
rng = np.random.default_rng(0)
if kind == "3d":
    model = build_model(kind="3d", backbone="resnet18_3d", input_shape=(32, 64, 64, 1),
                        n_outputs=1, activation="sigmoid", base_width=16)
    x = rng.random((8, 32, 64, 64, 1), dtype=np.float32)
else:
    model = build_model(kind="2d", backbone="resnet18", input_shape=(128, 128, 1),
                        n_outputs=1, activation="sigmoid", base_width=32)
    x = rng.random((16, 128, 128, 1), dtype=np.float32)
y = (rng.random((len(x), 1)) > 0.5).astype(np.float32)
model.compile(optimizer="adam", loss="binary_crossentropy")
for _ in range(2):
    model.train_on_batch(x, y)
    model.predict_on_batch(x)
start = time.perf_counter()
for _ in range(steps):
    model.train_on_batch(x, y)
train = (time.perf_counter() - start) / steps
start = time.perf_counter()
for _ in range(steps):
    model.predict_on_batch(x)
infer = (time.perf_counter() - start) / steps
print(json.dumps({"train": train, "infer": infer}))
"""


def run(kind: str, onednn: str, steps: int) -> dict:
    env = {**os.environ, "TF_ENABLE_ONEDNN_OPTS": onednn, "TF_CPP_MIN_LOG_LEVEL": "2"}
    out = subprocess.run([sys.executable, "-c", _CHILD, kind, str(steps)], env=env, cwd=ROOT,
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def cpu_flags() -> str:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return "unknown"
    flags = next((line.split(":", 1)[1].split() for line in text.splitlines()
                  if line.startswith("flags")), [])
    wanted = [f for f in flags if f.startswith("avx512") or f in ("avx2", "fma", "amx_tile")]
    return " ".join(sorted(set(wanted))) or "none of avx2/avx512"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=5, help="timed steps per measurement")
    args = parser.parse_args()
    print(f"CPU flags: {cpu_flags()}; cores: {os.cpu_count()}")
    print(f"{'model':<34}{'step':<8}{'Eigen (s)':>10}{'oneDNN (s)':>12}{'speed-up':>10}")
    models = {"3d": "resnet18_3d w16, 8x32x64x64", "2d": "resnet18 w32, 16x128x128"}
    for kind, name in models.items():
        eigen, onednn = run(kind, "0", args.steps), run(kind, "1", args.steps)
        for step in ("train", "infer"):
            print(f"{name:<34}{step:<8}{eigen[step]:>10.3f}{onednn[step]:>12.3f}"
                  f"{eigen[step] / onednn[step]:>9.2f}x")


if __name__ == "__main__":
    main()
