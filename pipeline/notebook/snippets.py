"""From a notebook back to params.yaml: validated train variants, ``dvc exp run -S`` commands and
augmentation YAML to paste.

A notebook's changes are only worth keeping if the pipeline can rerun them, so every helper here
validates against the same params models as ``dvc repro`` and emits text in the form DVC and
params.yaml accept (the ``-S`` values use the Hydra override grammar DVC parses them with).
"""

from __future__ import annotations

import math
import os
import re
import shlex
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pipeline.config import Params, TaskParams

_PLAIN = re.compile(r"[A-Za-z_][A-Za-z0-9_\-]*")
_RESERVED = frozenset({"null", "true", "false", "inf", "nan"})


def with_train_changes(task: TaskParams, changes: Mapping[str, Any]) -> TaskParams:
    """``task`` with some ``train`` keys changed, validated exactly like params.yaml.

    Args:
        task: Validated task params.
        changes: ``{train key: new value}``, e.g. ``{"dropout": 0.0, "epochs": 3}``.

    Returns:
        New task params (``task`` is not modified).

    Raises:
        pipeline.config.ParamsError: Unknown key or bad value, naming ``tasks.<task>.train.<key>``.
    """
    raw = task.model_dump(mode="json", exclude={"name"})
    raw["train"] = {**raw["train"], **dict(changes)}
    # model_construct skips validation of the wrapper only: .task() validates the task itself and
    # words errors as params.yaml keys.
    return Params.model_construct(tasks={task.name: raw}).task(task.name)


def changed_train_params(base: TaskParams, variant: TaskParams) -> dict[str, Any]:
    """The ``train`` keys whose values differ between two tasks (JSON values, in key order)."""
    a, b = base.train.model_dump(mode="json"), variant.train.model_dump(mode="json")
    return {k: b[k] for k in b if a.get(k) != b[k]}


def dvc_exp_command(task_name: str, changes: Mapping[str, Any], *, section: str = "train",
                    params_path: str | os.PathLike[str] | None = None) -> str:
    """The ``dvc exp run`` command that reruns the pipeline with ``changes`` applied.

    Args:
        task_name: The task (``tasks.<task_name>`` in params.yaml).
        changes: ``{key: value}`` within the section; values are JSON-like (None, bool, numbers,
            strings, lists and mappings, nested).
        section: Section of the task (``train``, ``evaluate``, ``explain``, ...).
        params_path: params.yaml; keys it does not hold yet get Hydra's ``+`` (append) prefix,
            without which DVC refuses them. Without it every key is assumed present.

    Returns:
        One shell line, e.g. ``dvc exp run -S tasks.cxr.train.dropout=0.0``, each argument
        shell-quoted where needed.

    Raises:
        ValueError: Empty ``changes``, or a value that is not JSON-like (or a non-finite float).
    """
    if not changes:
        raise ValueError("changes must name at least one key. Received: {}")
    present = _present_keys(params_path, task_name, section)
    args = ["dvc", "exp", "run"]
    for key, value in changes.items():
        prefix = "+" if present is not None and key not in present else ""
        args += ["-S", f"{prefix}tasks.{task_name}.{section}.{key}={hydra_value(value)}"]
    return shlex.join(args)


def hydra_value(value: Any) -> str:
    """``value`` in the Hydra override grammar (what ``dvc exp run -S key=VALUE`` parses).

    Raises:
        ValueError: Not None/bool/int/float/str/list/tuple/mapping, a non-finite float, a string
            with ``${`` (an interpolation to DVC) or a mapping key that is not a plain name.
    """
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"values must be finite numbers. Received: {value!r}")
        return repr(value)
    if isinstance(value, str):
        return _hydra_string(value)
    if isinstance(value, Mapping):
        bad = [k for k in value if not isinstance(k, str) or not _PLAIN.fullmatch(k)]
        if bad:
            raise ValueError(f"mapping keys must be plain names. Received: {bad}")
        return "{" + ",".join(f"{k}:{hydra_value(v)}" for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(hydra_value(v) for v in value) + "]"
    raise ValueError(f"values must be None, bool, numbers, strings, lists or mappings. "
                     f"Received: {type(value).__name__} {value!r}")


def _hydra_string(value: str) -> str:
    """A plain word as is, anything else single-quoted. In Hydra's quoted strings a backslash
    escapes only a quote or the backslashes before one (or before the closing quote), so exactly
    those runs are doubled; other backslashes stay literal."""
    if "${" in value:
        raise ValueError(f"strings must not contain '${{' (DVC and OmegaConf read it as an "
                         f"interpolation). Received: {value!r}")
    if _PLAIN.fullmatch(value) and value.lower() not in _RESERVED:
        return value
    escaped = re.sub(r"(\\*)('|$)", lambda m: m.group(1) * 2 + ("\\'" if m.group(2) else ""), value)
    return f"'{escaped}'"


def _present_keys(params_path: str | os.PathLike[str] | None, task_name: str,
                  section: str) -> set[str] | None:
    if params_path is None:
        return None
    import yaml

    doc = yaml.safe_load(Path(params_path).read_text(encoding="utf-8")) or {}
    block = ((doc.get("tasks") or {}).get(task_name) or {}).get(section) or {}
    return set(block) if isinstance(block, dict) else set()


def task_augment_spec(task: TaskParams) -> list[dict[str, Any]]:
    """The augmentation list training uses: ``train.augment``, or the kind's list of
    ``train.augment_preset`` (:data:`pipeline.augment.PRESETS`) when it is null.
    Validated and normalised (probabilities filled in)."""
    from pipeline.augment import resolve_spec

    return resolve_spec(task.train.augment, preset=task.train.augment_preset, kind=task.kind,
                        key=f"tasks.{task.name}.train")


def augment_yaml(task_name: str, spec: Sequence[Mapping[str, Any]], *, kind: str) -> str:
    """The params.yaml block that sets a task's augmentation list, one transform per line.

    Args:
        task_name: The task.
        spec: Transform specs (validated here, as training would).
        kind: ``"2d"`` or ``"3d"``.

    Returns:
        YAML text from ``tasks:`` down to ``augment:`` and its entries; paste it over the
        task's ``train.augment`` line.

    Raises:
        ValueError: An invalid spec (naming ``tasks.<task>.train.augment[i]``).
    """
    import yaml

    from pipeline.augment import validate_spec

    entries = validate_spec(spec, kind=kind, key=f"tasks.{task_name}.train.augment")
    lines = ["tasks:", f"  {task_name}:", "    train:", "      augment:" + ("" if entries else " []")]
    for entry in entries:
        flow = yaml.safe_dump(entry, default_flow_style=True, sort_keys=False, width=1 << 16).strip()
        lines.append(f"        - {flow}")
    return "\n".join(lines) + "\n"
