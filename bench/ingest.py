"""Ingest throughput and memory, side by side in one run.

Compares, over the same DICOM files (the cxr demo):

(a) a bare single-process loop: ``pydicom.dcmread(path).pixel_array`` per file, over every
    DICOM file the stage reads (the images and their segmentation masks);
(b) the ingest stage (``run_ingest``: decode, modality LUT, VOI, MONOCHROME1, resize, pad,
    uint8, memory-mapped store, manifest), with all cores, and with one worker (in process):
    how much more work per file the stage does than the bare loop, and how well it parallelises.

Prints files/s for both and the ratio (goal on 2 cores: >= 1.6x), then the peak memory of the
stage at 1x and 4x the files (goal: independent of dataset size). Usage::

    python bench/ingest.py [--patients 100] [--repeat 4]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def bare_loop(folder: Path, paths: list[str]) -> float:
    import pydicom

    start = time.perf_counter()
    for rel in paths:
        try:
            pydicom.dcmread(folder / rel).pixel_array  # noqa: B018
        except Exception:  # the demo's deliberately broken files
            pass
    return time.perf_counter() - start


def task_params(workers: int):
    from pipeline.config import load_params

    task = load_params(ROOT / "params.yaml").task("cxr")
    ingest = task.ingest.model_copy(update={"workers": workers, "max_quarantine_fraction": 1.0})
    return task.model_copy(update={"ingest": ingest})


def stage(folder: Path, out: Path, workers: int) -> float:
    from pipeline.ingest import run_ingest

    start = time.perf_counter()
    run_ingest(task_params(workers), source=folder, out_dir=out, seed=0, salt="bench", workers=workers)
    return time.perf_counter() - start


def replicate(folder: Path, dest: Path, times: int) -> Path:
    """``times`` hard-linked copies of the dataset under one labels.csv (distinct paths)."""
    dest.mkdir(parents=True)
    lines = (folder / "labels.csv").read_text().splitlines()
    out = [lines[0]]
    for k in range(times):
        for src in folder.rglob("*"):
            if src.is_file() and src.name != "labels.csv":
                target = dest / f"copy{k}" / src.relative_to(folder)
                target.parent.mkdir(parents=True, exist_ok=True)
                os.link(src, target)
        header = lines[0].split(",")
        for line in lines[1:]:
            cells = line.split(",")
            for col in ("path", "mask"):
                if col in header and cells[header.index(col)]:
                    cells[header.index(col)] = f"copy{k}/{cells[header.index(col)]}"
            out.append(",".join(cells))
    (dest / "labels.csv").write_text("\n".join(out) + "\n")
    return dest


def peak_memory(folder: Path, out: Path, workers: int) -> dict:
    """Run the stage in a fresh interpreter; report its peak RSS and its workers' peak RSS."""
    code = f"""
import resource, sys, json
sys.path.insert(0, {str(ROOT)!r})
from pathlib import Path
sys.argv = ['x']
import bench.ingest as b
b.stage(Path({str(folder)!r}), Path({str(out)!r}), {workers})
print(json.dumps({{"main_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "worker_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}}))
"""
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(res.stdout.strip().splitlines()[-1])


def listed_files(folder: Path) -> list[str]:
    """Every file labels.csv points at (``path`` and ``mask`` cells): what the stage reads."""
    lines = (folder / "labels.csv").read_text().splitlines()
    header = lines[0].split(",")
    columns = [header.index(c) for c in ("path", "mask") if c in header]
    return [cells[i] for cells in (line.split(",") for line in lines[1:]) for i in columns if cells[i]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=100, help="demo size (patients)")
    parser.add_argument("--repeat", type=int, default=4, help="dataset multiple for the memory check")
    args = parser.parse_args()

    from pipeline.dataset.tables import read_table  # noqa: F401  (warm imports before timing)
    from pipeline.demo import generate_demo

    workers = len(os.sched_getaffinity(0))
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        folder = tmp / "cxr"
        generate_demo("cxr", folder, seed=0, n_patients=args.patients)
        paths = listed_files(folder)
        n = len(paths)
        # Warm both sides' imports (decoder plugins; the stage's scikit-learn splitter) so the
        # figures are throughput, not one-off import time.
        bare_loop(folder, paths[:5])
        import sklearn.model_selection  # noqa: F401

        big = replicate(folder, tmp / "big", args.repeat)
        big_paths = listed_files(big)
        print(f"cores: {workers}; stage = run_ingest with {workers} worker processes (decode, modality "
              "LUT, VOI, MONOCHROME1, resize, pad, uint8, memory-mapped store, manifest, splits)")
        for name, data, files in ((f"1x ({n} files)", folder, paths),
                                  (f"{args.repeat}x ({len(big_paths)} files)", big, big_paths)):
            t_bare = bare_loop(data, files)
            t_stage = stage(data, tmp / f"out-{len(files)}", workers)
            t_one = stage(data, tmp / f"out1-{len(files)}", 1)
            print(f"{name:18s} bare loop {len(files) / t_bare:7.1f} files/s | stage "
                  f"{len(files) / t_stage:7.1f} files/s | ratio {t_bare / t_stage:.2f}x (goal >= 1.6x)")
            print(f"{'':18s} stage, 1 worker {len(files) / t_one:7.1f} files/s: per-file work "
                  f"{t_one / t_bare:.2f}x the bare loop's; {workers} workers = {t_one / t_stage:.2f}x "
                  "1 worker")

        m1 = peak_memory(folder, tmp / "m1", workers)
        m4 = peak_memory(big, tmp / "m4", workers)
        print(f"peak RSS at 1x ({n} files): main {m1['main_mb']:.0f} MiB, worker {m1['worker_mb']:.0f} MiB")
        print(f"peak RSS at {args.repeat}x ({n * args.repeat} files): main {m4['main_mb']:.0f} MiB, "
              f"worker {m4['worker_mb']:.0f} MiB")
        print(f"memory ratio {args.repeat}x / 1x: main {m4['main_mb'] / m1['main_mb']:.2f}, "
              f"worker {m4['worker_mb'] / m1['worker_mb']:.2f} (goal ~1.0)")


if __name__ == "__main__":
    main()
