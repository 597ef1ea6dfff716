"""Batch predict throughput, 2D and 3D, side by side with what it is made of.

Over the same demo studies (the cxr radiographs, the ct series), measures:

(a) ingest (``run_ingest``, all cores): the decoding and preprocessing predict repeats;
(b) the model's forward time per study (``predict_on_batch`` on the ingested grids, batches of
    predict's chunk size, after a warm-up call);
(c) ``run_predict --no-pages`` with all cores (inputs: the demo's labels.csv as a CSV of paths),
    and with pages on the first few studies (heatmaps and case pages).

Prints studies/s for each and the ratio of (c) to the rate the two parts allow when decoding
overlaps the model (``min(ingest rate, 1 / forward time)``; goal: close to 1) and to the serial
sum (``1 / (1 / ingest rate + forward time)``). The model is ``--models/<task>`` (e.g. the
``dvc repro`` outputs), else a small one trained here for a single epoch. Usage::

    python bench/predict.py [--patients 60] [--models models] [--pages 8] [--workers N]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def task_params(name: str, workers: int, tiny: bool, grid: dict | None = None):
    from pipeline.config import load_params

    task = load_params(ROOT / "params.yaml").task(name)
    update = {"workers": workers, "max_quarantine_fraction": 1.0}
    if tiny and grid:  # a stand-in model may take a smaller grid; a real model keeps its own
        update.update(grid)
    ingest = task.ingest.model_copy(update=update)
    update = {"ingest": ingest}
    if tiny:  # a stand-in model: same input grid, one short epoch
        update["train"] = task.train.model_copy(update={"epochs": 1, "weights": None, "folds": 1,
                                                        "width": 8, "early_stopping_patience": 0})
    return task.model_copy(update=update)


def timed(fn, *args, **kwargs) -> tuple[float, object]:
    start = time.perf_counter()
    out = fn(*args, **kwargs)
    return time.perf_counter() - start, out


def forward_seconds(model_dir: Path, data: Path, chunk: int) -> float:
    """Seconds per study of the model's forward pass on the ingested grids."""
    import numpy as np

    from pipeline.train.card import load_model

    model = load_model(model_dir)
    images = np.load(data / "images.npy", mmap_mode="r")
    batches = [np.asarray(images[i:i + chunk], np.float32) / np.float32(255)
               for i in range(0, len(images), chunk)]
    model.predict_on_batch(batches[0])  # warm-up (graph tracing)
    elapsed, _ = timed(lambda: [model.predict_on_batch(b) for b in batches])
    return elapsed / len(images)


def bench(name: str, args: argparse.Namespace, workers: int, tmp: Path) -> None:
    from pipeline.dataset.tables import read_table
    from pipeline.demo import generate_demo
    from pipeline.ingest import run_ingest
    from pipeline.predict import REJECTED, run_predict
    from pipeline.predict.run import DEFAULT_CHUNK

    folder = tmp / name
    generate_demo(name, folder, seed=0, n_patients=args.patients)
    model_dir = Path(args.models) / name
    grid = ({"image_size": (args.image_size,) * 2} if name == "cxr" and args.image_size else
            {"volume_shape": tuple(args.volume_shape)} if name == "ct" and args.volume_shape else None)
    task = task_params(name, workers, tiny=not (model_dir / "model_card.json").is_file(), grid=grid)
    t_ingest, summary = timed(run_ingest, task, source=folder, out_dir=tmp / f"{name}-data", seed=0,
                              salt="bench", workers=workers)
    n = summary.rows
    if not (model_dir / "model_card.json").is_file():
        from pipeline.train.trainer import train

        model_dir = tmp / f"{name}-model"
        train(task, data_dir=tmp / f"{name}-data", model_dir=model_dir, live_dir=None,
              backup_root=tmp / "backup", seed=0)
        print(f"{name}: no model in {args.models}; a stand-in was trained for 1 epoch (same input grid)")
    forward = forward_seconds(model_dir, tmp / f"{name}-data", DEFAULT_CHUNK[task.kind])
    listing = folder / "labels.csv"  # its 'path' column: a CSV of the studies
    run = lambda out, **kw: run_predict(model_dir, [listing], tmp / out, threshold=0.5, workers=workers,  # noqa: E731
                                        metrics_path=tmp / "none.json", **kw)
    run(f"{name}-warm", pages=False, chunk=4)  # warm imports and graph tracing
    t_predict, results = timed(run, f"{name}-pred", pages=False)
    ingest_rate, predict_rate = n / t_ingest, n / t_predict
    overlap = min(ingest_rate, 1.0 / forward)
    serial = 1.0 / (1.0 / ingest_rate + forward)
    print(f"{name} ({task.kind}, {n} studies, {len(results)} predicted, {workers} workers):")
    print(f"  ingest {ingest_rate:8.1f} studies/s | forward {forward * 1e3:7.1f} ms/study "
          f"({1.0 / forward:.1f}/s) | predict --no-pages {predict_rate:8.1f} studies/s")
    print(f"  predict / min(ingest, forward) = {predict_rate / overlap:.2f}x (goal ~1); "
          f"predict / serial sum = {predict_rate / serial:.2f}x")
    if args.pages:
        subset = tmp / f"{name}-subset.csv"
        rejected = {r["input"] for r in read_table(tmp / f"{name}-pred" / REJECTED)}
        readable = [line.split(",")[0] for k, line in enumerate(listing.read_text().splitlines()[1:])
                    if f"#{k + 1}" not in rejected]  # the demo's broken files would stop a 1-study run
        subset.write_text("path\n" + "".join(f"{folder / rel}\n" for rel in readable[:args.pages]))
        t_pages, paged = timed(run_predict, model_dir, [subset], tmp / f"{name}-pages", threshold=0.5,
                               workers=workers, metrics_path=tmp / "none.json")
        print(f"  with pages (heatmaps + case pages, {len(paged)} studies): "
              f"{len(paged) / t_pages:.2f} studies/s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=60, help="demo size (patients) per task")
    parser.add_argument("--models", default=str(ROOT / "models"), help="folder with cxr/ and ct/ models")
    parser.add_argument("--pages", type=int, default=8, help="studies predicted with pages (0: skip)")
    parser.add_argument("--tasks", default="cxr,ct", help="comma-separated demo tasks")
    parser.add_argument("--image-size", type=int, default=None,
                        help="2D grid side for a stand-in model (default: params.yaml's)")
    parser.add_argument("--volume-shape", type=int, nargs=3, default=None, metavar=("D", "H", "W"),
                        help="3D grid for a stand-in model (default: params.yaml's)")
    parser.add_argument("--workers", type=int, default=None,
                        help="decoding processes for ingest and predict (default: every core)")
    args = parser.parse_args()

    import logging

    logging.basicConfig(level=logging.WARNING)
    workers = args.workers or len(os.sched_getaffinity(0))
    print(f"cores: {len(os.sched_getaffinity(0))}, workers: {workers}")
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.tasks.split(","):
            bench(name, args, workers, Path(tmp))


if __name__ == "__main__":
    main()
