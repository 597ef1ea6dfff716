"""tf.distribute on CPU: MirroredStrategy over 2 logical CPUs, MultiWorkerMirroredStrategy with two
local processes, and a training process killed with SIGKILL that resumes from its last epoch."""

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


def test_mirrored_strategy_on_two_logical_cpus(tmp_path, tiny_data):
    res = subprocess.run(_cmd(tiny_data, tmp_path, {"strategy": "mirrored", "epochs": 1}, logical_cpus=2),
                         cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    card = read_card(tmp_path / "model")
    assert card["replicas"] == 2 and card["global_batch_size"] == 16  # 8 per replica
    assert card["params"]["lr_scaling"] == "linear"


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
