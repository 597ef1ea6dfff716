"""The README's benchmark commands run (on tiny sizes) and print the figures the issues quote.

These are smoke runs: speed is measured by running the scripts at their defaults (README, issue
notes), never asserted here."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow

#: script[:variant] -> (tiny arguments, regexes its output must match)
RUNS = {
    "ingest": (["--patients", "6", "--repeat", "2", "--rounds", "1"],
               [r"ratio \d+\.\d\dx \(no fixed goal; ceiling \d+\.\d\dx\)",
                r"memory ratio 2x / 1x: main \d+\.\d\d"]),
    "ingest:small": (["--size", "28", "--files", "12", "--repeat", "1", "--rounds", "2"],
                     [r"1x \(12 files\) +bare loop +\d+\.\d files/s \| stage +\d+\.\d files/s \| "
                      r"ratio \d+\.\d\dx \(goal >= 1\.0x; ceiling \d+\.\d\dx\)",
                      r"best of 2 interleaved rounds"]),
    "decoders": (["--patients", "6"], [r"ms/file"]),
    "explain": (["--width", "16", "--size", "32", "--images", "4", "--batch", "2", "--repeats", "1"],
                [r"speed-up \(a\) / \(b\)\s+\d+\.\d x",
                 r"Grad-CAM / fwd\+bwd \(goal <= 1\.3x\)\s+\d+\.\d\d x"]),
    "explain3d": (["--volumes", "2", "--shape", "8", "16", "16", "--width", "4", "--repeats", "1"],
                  [r"gradcam .* ratio tf-keras-vis / compiled \d+\.\d x", r"layercam .* max \|difference\|"]),
    # one worker: in a process that imported TensorFlow every pool spawns fresh interpreters
    # (~1.5 s each, 8 pools); the pooled path has its own tests (tests/stages/test_predict_batch.py)
    "optimizer": (["--tasks", "cxr", "--size", "32", "--rounds", "1", "--steps", "1"],
                  [r"first step keras / fused = \d+\.\d\dx \(goal >= 2x\)",
                   r"later step keras / fused = \d+\.\d\dx \(goal ~1\)"]),
    "predict": (["--patients", "4", "--pages", "1", "--models", "no-such-folder", "--image-size", "32",
                 "--volume-shape", "16", "32", "32", "--workers", "1"],
                [r"predict --no-pages +\d+\.\d studies/s",
                 r"predict / min\(ingest, forward\) = \d+\.\d\dx \(goal ~1\)"]),
    "road": (["--volumes", "2", "--shape", "8", "16", "16", "--width", "4", "--repeats", "1"],
             [r"ratio road / mean = \d+\.\d\dx",
              r"\(c\) noisy_linear_imputation, random mask +\d+\.\d ms per volume"]),
    "train_input": (["--steps", "3", "--batch", "4", "--size", "32"],
                    [r"pipeline share of step time: \d+\.\d%", r"bfloat16/float32 = \d+\.\d\d"]),
}


#: Runs scripts in one interpreter (one TensorFlow import for all), each as
#: ``__main__`` with its own argv, between markers. With ``eager``, TensorFlow functions run
#: eagerly, as in the test processes (tests/conftest.py): smoke runs of tiny sizes, where tracing
#: a training step costs more than the steps (the figures they print are not measurements).
_ONE_PROCESS = """
import runpy, sys, json
import tensorflow as tf
tf.config.run_functions_eagerly(sys.argv[2] == "eager")
for script, args in json.loads(sys.argv[1]):
    print(f"@@@ {script}", flush=True)
    path = f"bench/{script.split(':')[0]}.py"
    sys.argv = [path, *args]
    runpy.run_path(path, run_name="__main__")
    print(f"@@@ end {script}", flush=True)
"""


def _run_scripts(order: list[list], *, eager: bool) -> str:
    """stdout of ``_ONE_PROCESS`` over ``[[script, args], ...]`` (asserting it succeeded)."""
    import json

    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    mode = "eager" if eager else "graph"
    res = subprocess.run([sys.executable, "-c", _ONE_PROCESS, json.dumps(order), mode], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=1800)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-3000:]
    return res.stdout


def _real_data_args(work: Path) -> list[str]:
    """bench/real_data.py on a tiny folder made here (never ../shared/data in tests)."""
    from tests.builders import make_mixed_2d_folder

    folder = make_mixed_2d_folder(work / "ds", n_patients=16)
    # two methods at one layer, not the demo's auto choice among 17 candidates over 10 views
    # (tests/stages/test_explain_evaluate.py tests that choice, traced): eagerly, like the smoke
    return ["--dataset", str(folder), "--labels", "normal,opacity", "--variants", "current,tta,nonsense",
            "--ingest", '{"image_size": [32, 32], "max_quarantine_fraction": 0.2}',
            "--train", '{"epochs": 1, "width": 8, "batch_size": 8}', "--out", str(work / "work"),
            "--explain", "--explain-settings",
            '{"methods": ["gradcam", "layercam"], "layer": "last", "deletion_random": 2}']


@pytest.fixture(scope="module")
def smoke(tmp_path_factory) -> tuple[dict[str, str], Path]:
    """Every script of RUNS, then bench/real_data.py, in one process: each script's output."""
    work = tmp_path_factory.mktemp("bench")
    order = [[script, RUNS[script][0]] for script in sorted(RUNS)] + [["real_data", _real_data_args(work)]]
    stdout = _run_scripts(order, eager=True)
    sections = {script: stdout.split(f"@@@ {script}\n", 1)[1].split(f"@@@ end {script}", 1)[0]
                for script, _ in order}
    return sections, work


def test_bench_scripts_run_and_print_their_ratios(smoke):
    sections, _ = smoke
    for script, (_, patterns) in RUNS.items():
        for pattern in patterns:
            assert re.search(pattern, sections[script]), f"{script}: {pattern!r} not in:\n{sections[script]}"


def test_real_data_bench_runs_variants_on_a_dataset_folder(smoke):
    sections, work = smoke
    out = sections["real_data"]
    assert re.search(r"ingest: 32 samples, 3 rows quarantined", out)
    assert re.search(r"\| current \| 0 \| \d\.\d{3} \| \d\.\d{3} \[\d\.\d{3}, \d\.\d{3}\] \|", out), out
    # tta only changes evaluation: it reuses the trained model, and is compared with it pairwise
    assert re.search(r"\| tta \| 0 \| .* \| [+-]\d\.\d{3} \[[+-]\d\.\d{3}, [+-]\d\.\d{3}\] \|", out), out
    assert len(list((work / "work").glob("*/model/model.keras"))) == 1
    assert "nonsense: unknown variant" in out
    assert re.search(r"tta\s+\d\.\d{3}  \((\d\.\d{3}x|n/a)\)", out)  # n/a: baseline AUROC 0
    # --explain: localization on the test masks, with the reported method's deletion check
    table = out.split("localization on the test cases with masks", 1)[1]
    ci = r"\d\.\d{3} \[\d\.\d{3}, \d\.\d{3}\]"
    row = rf"\| current \| 0 \| {ci} \(\d\.\d{{3}}\) \| {ci} \| [a-z+-]+ @ \S+, deletion win \d\.\d\d"
    assert re.search(row, table), table
    assert re.search(r"\| tta \| 0 \| .* gradcam @ ", table), table  # the model's explanations, shared
    assert not (work / "work" / "tta_s0" / "explain").exists()


def test_real_data_guidance_variant_is_current_plus_mask_guidance():
    sys.path.insert(0, str(ROOT))
    import bench.real_data as rd

    base = rd.base_task("2d", ROOT, ["normal", "opacity"], {}, {})
    doc = rd.variant_doc("guidance", base)
    task = rd.validate("bench", doc)
    current = rd.validate("bench", rd.variant_doc("current", base))
    assert task.train.mask_guidance == 0.3 and task.train.mask_guidance_layer == "auto:4"
    plain = task.train.model_copy(update={"mask_guidance": 0.0, "mask_guidance_layer": "auto:8"})
    assert plain == current.train


def test_benchmarks_use_only_public_names_of_the_pipeline():
    import ast

    bench = Path(__file__).resolve().parents[1] / "bench"
    private = []
    for path in sorted(bench.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("pipeline"):
                private += [f"{path.name}: {node.module}.{a.name}" for a in node.names
                            if a.name.startswith("_")]
    assert not private
