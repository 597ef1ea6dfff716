"""Training-recipe variants on a real dataset folder, side by side in one run.

Runs the pipeline's own stage functions (``run_ingest`` once, then ``train`` and
``run_evaluate`` per variant and seed) on a dataset folder in the labels.csv contract, e.g. the
real sets in ``../shared/data``. The base task is the demo task of the same kind in
``params.yaml`` (``cxr`` for 2D, ``ct`` for 3D) with the dataset's source and labels, plus
``--ingest``/``--train`` overrides. Prints, per variant: validation AUROC of the chosen epoch,
test AUROC and accuracy with their 95% patient-level bootstrap intervals, epochs run, seconds per
epoch, and the paired difference in test AUROC against the ``current`` variant (same test
patients, one bootstrap over both, so the interval is about the difference itself). With
``--explain`` each variant also runs the explain stage with the task's explain settings (the
demo's ``auto`` method and layer, chosen on val) and reports, on the test cases with masks, the
pointing game and IoU with their intervals and chance level, and the reported method's deletion
win rate and flag (``--explain-settings`` overrides the explain section). A variant that
differs from another only in how it is evaluated (``tta``) reuses its model and explanations.

Variants (each is ``current`` plus one change; ``proposed`` is the new defaults together):

- ``current``: the recipe before real-data tuning (checkpoint on the first best val AUROC, no
  EMA, no class balancing, mild augmentation, no TTA);
- ``defaults``: the demo task's settings in this checkout's params.yaml (no pins);
- ``recommended``: ``defaults`` without the demo's time-budget pin ``folds: 1``, i.e. what a task
  gets from this checkout for real data (``train.folds: auto``: 3 fold models below 1000
  training patients);
- ``ckpt``, ``ema``, ``balance``, ``strong_aug``, ``tta``, ``folds``: one change each;
- ``guidance``: weakly supervised localization (``train.mask_guidance: 0.3`` at ``auto:4``),
  only meaningful where the dataset has masks; compare it with ``--explain``;
- ``proposed``: all the changes that were kept;
- ``--define NAME=BASE:JSON``: any other combination, e.g. ``long=proposed:{"train": {"epochs": 40}}``.

A variant whose keys this checkout does not know is reported as unavailable, not run.

Usage::

    python bench/real_data.py --dataset ../shared/data/covid_cxr --labels other,covid \\
        --train '{"epochs": 15}' --variants current,ckpt,ema,balance,strong_aug,tta,proposed
    python bench/real_data.py --dataset ../shared/data/lidc_nodules --labels benign,malignant \\
        --ingest '{"volume_shape": [16, 48, 48], "target_spacing": [1.0, 0.7, 0.7], "min_slices": 2}'
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

#: The recipe before real-data tuning, pinned so later default changes do not move the baseline.
CURRENT = {"train": {"checkpoint": "auroc", "ema": False, "class_balance": "none",
                     "augment_preset": "mild", "folds": 1, "mask_guidance": 0.0,
                     "mask_guidance_layer": "auto:8"},
           "evaluate": {"tta": "none"}}
#: One change each against CURRENT.
CHANGES = {
    "ckpt": {"train": {"checkpoint": "auroc_then_loss"}},
    "ema": {"train": {"ema": True}},
    "balance": {"train": {"class_balance": "auto"}},
    "strong_aug": {"train": {"augment_preset": "strong"}},
    "tta": {"evaluate": {"tta": "flip_shift"}},
    "folds": {"train": {"folds": 3}},
    "guidance": {"train": {"mask_guidance": 0.3, "mask_guidance_layer": "auto:4"}},
    # resolution and capacity (2D): guidance for CPUs
    "res64": {"ingest": {"image_size": [64, 64]}},
    "res224": {"ingest": {"image_size": [224, 224]}},
    "wide": {"train": {"width": 64}},
}
#: The changes kept as defaults (update with the measured ablation).
PROPOSED = ("ckpt", "ema", "strong_aug", "tta")


def merge(base: dict[str, Any], change: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for section, values in change.items():
        out.setdefault(section, {}).update(values)
    return out


def known_keys(change: dict[str, Any]) -> dict[str, Any]:
    """``change`` without the keys this checkout's params do not have (pins of features that
    came later: without the feature the old behaviour is what runs anyway)."""
    from pipeline.config import EvaluateParams, TrainParams

    fields = {"train": TrainParams.model_fields, "evaluate": EvaluateParams.model_fields}
    return {section: {k: v for k, v in values.items() if section not in fields or k in fields[section]}
            for section, values in change.items()}


#: Variants defined on the command line (``--define NAME=BASE:JSON``): BASE's document plus JSON.
DEFINED: dict[str, tuple[str, dict[str, Any]]] = {}


def variant_doc(name: str, base: dict[str, Any]) -> dict[str, Any] | None:
    """The task document of a variant, or None for an unknown variant name."""
    if name in DEFINED:
        parent, change = DEFINED[name]
        doc = variant_doc(parent, base)
        return None if doc is None else merge(doc, change)
    if name == "defaults":
        return copy.deepcopy(base)
    if name == "recommended":
        doc = copy.deepcopy(base)
        doc.get("train", {}).pop("folds", None)  # the demo's budget pin; the default is auto
        return doc
    pinned = merge(base, known_keys(CURRENT))
    if name == "current":
        return pinned
    if name == "proposed":
        for change in PROPOSED:
            pinned = merge(pinned, CHANGES[change])
        return pinned
    return merge(pinned, CHANGES[name]) if name in CHANGES else None


def base_task(kind: str, source: Path, labels: list[str], ingest: dict, train: dict,
              explain: dict | None = None) -> dict[str, Any]:
    import yaml

    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    doc = copy.deepcopy(params["tasks"]["cxr" if kind == "2d" else "ct"])
    doc["data"] = {"source": str(source)}
    doc["labels"] = labels
    doc["ingest"] = {**doc.get("ingest", {}), **ingest}
    doc["train"] = {**doc.get("train", {}), **train}
    doc["explain"] = {**doc.get("explain", {}), **(explain or {})}
    doc.setdefault("evaluate", {})["bootstrap"] = doc.get("evaluate", {}).get("bootstrap", 1000)
    return doc


def validate(name: str, doc: dict[str, Any]) -> Any:
    from pipeline.config import TaskParams

    return TaskParams.model_validate({"name": name, **doc})


def paired_auroc_difference(a_csv: Path, b_csv: Path, positive: str, *, seed: int
                            ) -> tuple[float, float, float]:
    """Test AUROC of ``a`` minus ``b`` with a 95% patient-level paired bootstrap interval."""
    from pipeline.evaluate.bootstrap import bootstrap
    from pipeline.evaluate.metrics import BinaryStats
    from pipeline.evaluate.predictions import read_predictions

    a, b = read_predictions(a_csv), read_predictions(b_csv)
    ta = [i for i, s in enumerate(a.splits) if s == "test"]
    index_b = {sid: i for i, sid in enumerate(b.sample_ids)}
    tb = [index_b[a.sample_ids[i]] for i in ta]
    col = a.label_names.index(positive)
    y = np.array([a.labels[i] == positive for i in ta])
    sa, sb = a.probs[ta, col], b.probs[tb, col]
    stats_a = BinaryStats(y, sa, sa >= 0.5)
    stats_b = BinaryStats(y, sb, sb >= 0.5)

    def diff(w: np.ndarray) -> dict[str, np.ndarray]:
        return {"d": stats_a(w)["auroc"] - stats_b(w)["auroc"]}

    est = bootstrap(diff, [a.patients[i] for i in ta], n_boot=1000, seed=seed)["d"]
    return est.value, est.low, est.high


#: Trained models by (train-relevant params, seed): variants that differ only in how they are
#: evaluated (TTA) reuse the same model, so their comparison is about evaluation alone.
_TRAINED: dict[tuple[str, int], tuple[Path, Any, float]] = {}
#: Explanations by (model key, explain params): such variants share them too.
_EXPLAINED: dict[tuple[str, int, str], Path] = {}


def run_variant(name: str, task: Any, data: Path, out: Path, seed: int, *, explain: bool = False
                ) -> dict[str, Any]:
    from pipeline.evaluate.run import run_evaluate
    from pipeline.explain.run import run_explain
    from pipeline.train.trainer import train

    run_dir = out / f"{name}_s{seed}"
    key = (task.model_dump_json(exclude={"evaluate", "explain", "report"}), seed)
    if key not in _TRAINED:
        start = time.time()
        result = train(task, data_dir=data, model_dir=run_dir / "model", live_dir=None,
                       backup_root=run_dir / "backup", seed=seed)
        _TRAINED[key] = (run_dir / "model", result, time.time() - start)
    model_dir, result, train_s = _TRAINED[key]
    metrics_path = run_dir / "metrics.json"
    explain_dir = None
    if explain:
        explain_key = (*key, task.explain.model_dump_json())
        if explain_key not in _EXPLAINED:
            run_explain(task, data_dir=data, model_dir=model_dir, out_dir=run_dir / "explain", seed=seed)
            _EXPLAINED[explain_key] = run_dir / "explain"
        explain_dir = _EXPLAINED[explain_key]
    run_evaluate(task, data_dir=data, model_dir=model_dir, explain_dir=explain_dir,
                 out_dir=run_dir / "eval", metrics_path=metrics_path, seed=seed)
    m = json.loads(metrics_path.read_text())
    epochs = max(1, int(result.epochs_run))
    return {"variant": name, "seed": seed, "val_auroc": result.val_metrics.get("auroc", float("nan")),
            "test": m["test"], "explain": m.get("explain", {}), "epochs": epochs,
            "s_per_epoch": train_s / epochs, "train_s": train_s,
            "predictions": run_dir / "eval" / "predictions.csv"}


def localization_text(row: dict[str, Any]) -> str:
    """``pointing [CI] (chance) | IoU [CI] | method @ layer, deletion win rate (flag)`` of a run
    with ``--explain``; dashes where the test cases have no masks."""
    test, ex = row["test"], row.get("explain") or {}
    method = (ex.get("methods") or ["?"])[0]
    deletion = ex.get(method) or {}
    win = deletion.get("win_rate")
    faithful = (f"{method} @ {ex.get('layer', '?')}, deletion win {win:.2f}"
                + (" FLAGGED" if deletion.get("flag") else "")) if win is not None else "-"
    if "pointing_game" not in test:
        return f"- | - | {faithful}"
    return (f"{fmt_ci(test, 'pointing_game')} ({test.get('pointing_game_chance', float('nan')):.3f}) | "
            f"{fmt_ci(test, 'iou')} | {faithful}")


def fmt_ci(test: dict[str, float], key: str) -> str:
    return f"{test[key]:.3f} [{test[f'{key}_ci_low']:.3f}, {test[f'{key}_ci_high']:.3f}]"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dataset", type=Path, required=True, help="folder with labels.csv")
    ap.add_argument("--labels", required=True, help="class names, comma-separated; the last is positive")
    ap.add_argument("--kind", choices=("auto", "2d", "3d"), default="auto")
    ap.add_argument("--ingest", default="{}", help="JSON overrides of the ingest section")
    ap.add_argument("--train", default="{}", help="JSON overrides of the train section")
    ap.add_argument("--variants", default="current,ckpt,ema,balance,strong_aug,tta,proposed")
    ap.add_argument("--seeds", default="0", help="comma-separated training seeds")
    ap.add_argument("--out", type=Path, default=None, help="work folder (default: a temp folder)")
    ap.add_argument("--explain", action="store_true",
                    help="also explain each variant and report localization on the test masks")
    ap.add_argument("--explain-settings", default="{}",
                    help="JSON overrides of the explain section (default: the demo task's, auto)")
    ap.add_argument("--define", action="append", default=[], metavar="NAME=BASE:JSON",
                    help="an extra variant: BASE (a variant name) plus JSON section overrides, e.g. "
                         "long=proposed:'{\"train\": {\"epochs\": 40}}'")
    args = ap.parse_args(argv)
    for item in args.define:
        name, _, rest = item.partition("=")
        parent, _, change = rest.partition(":")
        DEFINED[name] = (parent, json.loads(change or "{}"))

    import tempfile

    from pipeline.ingest import run_ingest

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    labels = args.labels.split(",")
    kind = args.kind
    if kind == "auto":
        first = (args.dataset / "labels.csv").read_text().splitlines()[1].split(",")[0]
        kind = "3d" if first.endswith((".nii", ".nii.gz")) or (args.dataset / first).is_dir() else "2d"
    base = base_task(kind, args.dataset.resolve(), labels, json.loads(args.ingest), json.loads(args.train),
                     json.loads(args.explain_settings))
    out = args.out or Path(tempfile.mkdtemp(prefix="real_data_"))
    source = args.dataset.resolve()

    def ingested(task: Any) -> Path:
        """Ingest once per distinct ingest setting (resolution variants get their own)."""
        import hashlib

        from pipeline.dataset.layout import InterimLayout

        digest = hashlib.sha256(task.ingest.model_dump_json().encode()).hexdigest()[:10]
        data = out / f"interim_{digest}"
        if not InterimLayout(data).manifest.exists():
            summary = run_ingest(task, source=source, out_dir=data, seed=42, salt="bench-real-data",
                                 workers=None)
            print(f"ingest: {summary.samples} samples, {summary.quarantined_rows} rows quarantined "
                  f"{summary.reasons}, per split {summary.per_split}", flush=True)
        return data

    ingested(validate("bench", variant_doc("defaults", base)))
    seeds = [int(s) for s in args.seeds.split(",")]
    rows: list[dict[str, Any]] = []
    for name in args.variants.split(","):
        doc = variant_doc(name, base)
        try:
            task = validate("bench", doc) if doc is not None else None
        except ValueError as exc:
            print(f"{name}: unavailable in this checkout ({str(exc).splitlines()[0][:160]})", flush=True)
            continue
        if task is None:
            print(f"{name}: unknown variant", flush=True)
            continue
        for seed in seeds:
            row = run_variant(name, task, ingested(task), out, seed, explain=args.explain)
            rows.append(row)
            print(f"{name} seed {seed}: val AUROC {row['val_auroc']:.3f}, test AUROC "
                  f"{fmt_ci(row['test'], 'auroc')}, {row['epochs']} epochs, "
                  f"{row['s_per_epoch']:.1f} s/epoch", flush=True)
    report(rows, labels[-1], args.dataset.name, explain=args.explain)
    print(f"work folder: {out}")
    return 0


def report(rows: list[dict[str, Any]], positive: str, dataset: str, *, explain: bool = False) -> None:
    print(f"\n## {dataset}: test metrics (95% patient-level bootstrap CIs)\n")
    print("| variant | seed | val AUROC | test AUROC | test accuracy | dAUROC vs current [95% CI] "
          "| epochs | s/epoch |")
    print("|---|---|---|---|---|---|---|---|")
    baseline = {r["seed"]: r for r in rows if r["variant"] == "current"}
    for r in rows:
        ref = baseline.get(r["seed"])
        if ref is None or r is ref:
            delta = "-"
        else:
            d, lo, hi = paired_auroc_difference(r["predictions"], ref["predictions"], positive,
                                                seed=r["seed"])
            delta = f"{d:+.3f} [{lo:+.3f}, {hi:+.3f}]"
        print(f"| {r['variant']} | {r['seed']} | {r['val_auroc']:.3f} | {fmt_ci(r['test'], 'auroc')} | "
              f"{fmt_ci(r['test'], 'accuracy')} | {delta} | {r['epochs']} | {r['s_per_epoch']:.1f} |")
    by_variant: dict[str, list[float]] = {}
    for r in rows:
        by_variant.setdefault(r["variant"], []).append(r["test"]["auroc"])
    if "current" in by_variant:
        ref = float(np.mean(by_variant["current"]))
        print("\nmean test AUROC over seeds, ratio to current:")
        for name, values in by_variant.items():
            ratio = f"{np.mean(values) / ref:.3f}x" if ref > 0 else "n/a"
            print(f"  {name:<12} {np.mean(values):.3f}  ({ratio})")
    if explain:
        print(f"\n## {dataset}: localization on the test cases with masks (95% CIs; chance in brackets)\n")
        print("| variant | seed | pointing game (chance) | IoU | reported method, deletion |")
        print("|---|---|---|---|---|")
        for r in rows:
            print(f"| {r['variant']} | {r['seed']} | {localization_text(r)} |")


if __name__ == "__main__":
    raise SystemExit(main())
