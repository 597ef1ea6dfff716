"""The whole params.yaml (:class:`Params`: ``base`` and ``tasks``), read by :func:`load_params`.

Validation errors become one :class:`ParamsError` whose message names the full key path.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import Field, ValidationError, field_validator

from pipeline.config.common import Frozen, ParamsError
from pipeline.config.task import TaskParams


class BaseParams(Frozen):
    """Settings shared by every task."""

    seed: int = 42
    #: Key for salted pseudonyms. ``env:NAME`` reads it from an environment variable, which is
    #: how real data should be run: the salt must not be committed next to real data.
    salt: str = Field(min_length=1)

    def resolved_salt(self) -> str:
        """The salt value, reading ``env:NAME`` from the environment."""
        if self.salt.startswith("env:"):
            name = self.salt[4:]
            value = os.environ.get(name, "")
            if not value:
                raise ParamsError(f"base.salt reads environment variable {name!r}, which is unset "
                                  "or empty. Set it, or put a literal salt in params.yaml.")
            return value
        return self.salt


class Params(Frozen):
    """The whole params.yaml."""

    base: BaseParams
    tasks: dict[str, Any]

    def task(self, name: str) -> TaskParams:
        """Return the validated params of task ``name``.

        Raises:
            ParamsError: Unknown task (lists the known ones) or invalid task params.
        """
        if name not in self.tasks:
            raise ParamsError(f"task must be one of {sorted(self.tasks)}. Received: {name!r}")
        raw = self.tasks[name]
        if not isinstance(raw, dict):
            raise ParamsError(f"tasks.{name} must be a mapping. Received: {raw!r}")
        try:
            return TaskParams.model_validate({"name": name, **raw})
        except ValidationError as exc:
            raise ParamsError(_format_errors(exc, prefix=f"tasks.{name}")) from None

    @field_validator("tasks")
    @classmethod
    def _task_names(cls, value: dict[str, Any]) -> dict[str, Any]:
        if not value:
            raise ValueError("at least one task is required")
        for name in value:
            if not re.fullmatch(r"[a-z][a-z0-9_]*", str(name)):
                raise ValueError(
                    f"task names must match [a-z][a-z0-9_]* (they become folder and DVC stage "
                    f"names). Received: {name!r}"
                )
        return value


def _format_errors(exc: ValidationError, *, prefix: str) -> str:
    lines = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"] if "[" not in str(p) and not str(p).startswith("function-"))
        key = ".".join(p for p in (prefix, loc) if p)
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "is not a known key (check spelling; see README, params reference)"
        elif err["type"] == "missing":
            msg = "is required"
        elif err["type"] == "literal_error":
            msg = f"{msg}. Received: {err.get('input')!r}"
        elif "Received" not in msg and "input" in err:
            msg = f"{msg}. Received: {err['input']!r}"
        lines.append(f"{key} {msg}")
    # Keep the message short: identical keys from union branches are reported once.
    return "; ".join(dict.fromkeys(lines))


def load_params(path: str | os.PathLike[str] = "params.yaml") -> Params:
    """Read and validate ``params.yaml``.

    Raises:
        ParamsError: The file is missing, not YAML, or the top level is invalid.
    """
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ParamsError(f"params file not found: {path}") from None
    except yaml.YAMLError as exc:
        raise ParamsError(f"{path} is not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise ParamsError(f"{path} must hold a mapping with 'base' and 'tasks'")
    try:
        params = Params.model_validate(raw)
    except ValidationError as exc:
        raise ParamsError(_format_errors(exc, prefix="")) from None
    for name in params.tasks:  # fail early on any bad task, not only the one being run
        params.task(name)
    return params
