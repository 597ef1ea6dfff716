"""What every params model shares: the frozen, closed pydantic base and :class:`ParamsError`."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

from pipeline.errors import UserInputError
from pipeline.rules import check_tta_mode


class ParamsError(UserInputError, ValueError):
    """A param is missing, unknown or has a bad value. The message names the key."""


class Frozen(BaseModel):
    """Base of every params model: unknown keys are errors, values are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def tta_mode(value: Any) -> Any:
    """``value`` if it is a TTA mode (``evaluate.tta``, ``explain.tta``), else a ValueError without
    the ``tta`` prefix (pydantic's message names the key path)."""
    try:
        return check_tta_mode(value)
    except ValueError as exc:
        raise ValueError(str(exc).removeprefix("tta ")) from None
