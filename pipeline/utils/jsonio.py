"""Reading the JSON files the stages write (metrics, cards, faithfulness)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def read_json(path: Path) -> dict[str, Any]:
    """The JSON object in ``path`` (UTF-8)."""
    return json.loads(Path(path).read_text(encoding="utf-8"))
