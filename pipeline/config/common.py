"""What every params model shares: the frozen, closed pydantic base and :class:`ParamsError`."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from pipeline.errors import UserInputError


class ParamsError(UserInputError, ValueError):
    """A param is missing, unknown or has a bad value. The message names the key."""


class Frozen(BaseModel):
    """Base of every params model: unknown keys are errors, values are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)
