"""Subprocess entry point for distribution and kill/resume tests.

Usage: python -m tests.train.runner '<json>' with keys data, out, train (dict), logical_cpus.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def main() -> None:
    args = json.loads(sys.argv[1])
    import tensorflow as tf

    if args.get("logical_cpus", 1) > 1:
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * args["logical_cpus"])
    from pipeline.train.trainer import train
    from tests.train.test_trainer import make_task

    out = Path(args["out"])
    result = train(make_task(**args["train"]), data_dir=Path(args["data"]), model_dir=out / "model",
                   live_dir=out / "live", backup_root=out / "backup", seed=3)
    print("RESULT", json.dumps({"replicas": result.replicas, "epochs": result.epochs_run}), flush=True)


if __name__ == "__main__":
    main()
