"""tf.distribute on CPU: MirroredStrategy over 2 logical CPUs (the trainer, then EMA and FusedAdamW
on other models in the same process), MultiWorkerMirroredStrategy with two local processes, and a
training process killed with SIGKILL that resumes from its last epoch."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pipeline.train.card import read_card

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def _cmd(data: Path, out: Path, train: dict, logical_cpus: int = 1) -> list[str]:
    args = {"data": str(data), "out": str(out), "train": train, "logical_cpus": logical_cpus}
    return [sys.executable, "-m", "tests.train.runner", json.dumps(args)]


def _env(**extra: str) -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "2", **extra}
    env.pop("TF_CONFIG", None)
    env.update(extra)
    return env


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


#: One process with two logical CPUs for every MirroredStrategy check (a TensorFlow import each):
#: the trainer, then tests/train/test_ema.py's EMA and FusedAdamW checks on other models under
#: ``make_strategy("mirrored")`` again. That second call used to create a second
#: ``MirroredStrategy``, whose collective instance keys collided with the first's (tensorflow#62790,
#: "Shape mismatch in the collective instance 100"): a notebook kernel or ``bench/real_data.py``
#: could not train twice in one process. Now it reuses the first.
MIRRORED = """
import json, sys
from pathlib import Path
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from pipeline.train.distribute import make_strategy
from pipeline.train.trainer import train
from tests.train.test_ema import mirrored_checks
from tests.train.test_trainer import make_task
data, out = Path(sys.argv[1]), Path(sys.argv[2])
train(make_task(strategy="mirrored", epochs=1), data_dir=data, model_dir=out / "model",
      live_dir=out / "live", backup_root=out / "backup", seed=3)
print(json.dumps(mirrored_checks(make_strategy("mirrored"), out / "ema")))
"""


@pytest.fixture(scope="module")
def mirrored(tmp_path_factory, tiny_data) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("mirrored")
    res = subprocess.run([sys.executable, "-c", MIRRORED, str(tiny_data), str(out)], cwd=ROOT, env=_env(),
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    return out, json.loads(res.stdout.strip().splitlines()[-1])


def test_mirrored_strategy_on_two_logical_cpus(mirrored):
    out, report = mirrored
    card = read_card(out / "model")
    assert card["replicas"] == 2 and card["global_batch_size"] == 16  # 8 per replica
    assert card["params"]["lr_scaling"] == "linear"
    assert report["replicas"] == 2  # and the later trainings in the process ran (tensorflow#62790)


def test_ema_and_fused_adamw_under_mirrored_strategy(mirrored):
    """The averages are what validation, the checkpoint and the saved model see; FusedAdamW (the
    trainer's AdamW) equals Keras' AdamW traced under the strategy, a schedule's rate reaching the
    update per replica."""
    from tests.train.test_ema import EPOCHS

    _, report = mirrored
    assert all(report["val_loss_is_ema"]) and len(report["val_loss_is_ema"]) == EPOCHS
    assert report["saved_is_ema"] and not report["saved_is_raw"]
    assert report["fused_vs_keras"] < 1e-5 and report["fused_moved"] > 0.1


def _params_file(path: Path, **train_kw) -> Path:
    """A params.yaml holding the tiny task (what `python -m pipeline train --params` reads)."""
    import yaml

    from tests.train.test_trainer import make_task

    task = make_task(**train_kw).model_dump(mode="json", exclude={"name"})
    path.write_text(yaml.safe_dump({"base": {"seed": 3, "salt": "s"}, "tasks": {"tiny": task}}))
    return path


def test_multi_worker_strategy_with_two_local_processes(tmp_path, tiny_data):
    """The README's multi-machine command (`TF_CONFIG=... python -m pipeline train ...`), with the
    two "machines" as two local processes."""
    ports = _free_ports(2)
    cluster = {"worker": [f"localhost:{p}" for p in ports]}
    params = _params_file(tmp_path / "params.yaml", strategy="auto", epochs=1)
    procs = []
    for index in range(2):
        tf_config = json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})
        out = tmp_path / f"w{index}"
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "pipeline", "train", "--task", "tiny", "--params", str(params),
             "--data", str(tiny_data), "--out", str(out / "model"), "--live", str(out / "live"),
             "--backup", str(out / "backup")],
            cwd=ROOT, env=_env(TF_CONFIG=tf_config), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True))
    outputs = [p.communicate(timeout=600) for p in procs]
    for proc, (_, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, err[-3000:]
        assert "2 replica(s)" in err
    chief = read_card(tmp_path / "w0" / "model")
    assert chief["replicas"] == 2 and chief["global_batch_size"] == 16
    assert not (tmp_path / "w1" / "model" / "model.keras").exists()  # only the chief writes


def test_killed_run_resumes_from_last_completed_epoch(tmp_path, tiny_data):
    train = {"epochs": 4, "width": 16}
    proc = subprocess.Popen(_cmd(tiny_data, tmp_path, train), cwd=ROOT, env=_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    seen = []
    deadline = time.time() + 600
    for line in proc.stdout:  # kill -9 right after epoch 2 has been reported (and backed up)
        seen.append(line)
        if line.startswith("Epoch 3/4") or time.time() > deadline:
            break
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert any(line.startswith("Epoch 2/4") for line in seen), "".join(seen)[-2000:]
    assert not (tmp_path / "model" / "model.keras").exists()
    res = subprocess.run(_cmd(tiny_data, tmp_path, train), cwd=ROOT, env=_env(), capture_output=True,
                         text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    epochs = [line.split()[1] for line in res.stdout.splitlines() if line.startswith("Epoch ")]
    assert epochs[0] in ("2/4", "3/4") and "1/4" not in epochs  # resumed, not restarted
    assert read_card(tmp_path / "model")["epochs_run"] == 4
