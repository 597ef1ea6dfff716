"""The resume journal: an append-only record of the chunks of studies a predict run finished.

``<out>/.predict/journal.jsonl`` holds one JSON line of header (what the run's results depend
on: the model's hash, the decision and explanation settings, the list of inputs) and then one
line per finished chunk, with a row per study (its prediction or its rejection). Each chunk line
is written whole, flushed and fsynced before the next chunk starts, and carries a checksum of its
rows, so a run killed at any moment leaves at most one torn last line, which the next run drops.

A rerun with the same header skips the chunks in the journal; a different header means another
run's results would be mixed in, so :meth:`Journal.open` refuses (:class:`JournalMismatch`)
unless told to discard it. Rows hold no paths or header values: only pseudonymous ids,
probabilities and reasons.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

FORMAT = "medvision-predict-journal"
VERSION = 1


class JournalMismatch(ValueError):
    """The output folder holds an unfinished run made with other model, settings or inputs."""


def _checksum(rows: Sequence[Mapping[str, Any]]) -> str:
    return hashlib.sha256(_dumps(rows).encode()).hexdigest()[:16]


def _dumps(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=False)


class Journal:
    """An open journal: the finished rows (position -> row) and an append handle.

    Use :meth:`open`; close with :meth:`close` (or as a context manager).
    """

    def __init__(self, path: Path, header: Mapping[str, Any], chunks: dict[int, list[dict[str, Any]]]):
        self.path = path
        self.header = dict(header)
        self.chunks = chunks
        self._fh = path.open("a", encoding="utf-8")

    @classmethod
    def open(cls, path: Path, header: Mapping[str, Any], *, restart: bool = False) -> Journal:
        """Open ``path`` for a run described by ``header``, resuming what it records.

        Args:
            path: The journal file (created with its folder if missing).
            header: JSON-ready description of everything the results depend on.
            restart: Discard a journal whose header differs instead of refusing.

        Raises:
            JournalMismatch: The journal was written for another header (message says which
                parts differ and how to proceed).
        """
        header = {"format": FORMAT, "version": VERSION, **header}
        path.parent.mkdir(parents=True, exist_ok=True)
        recorded, chunks, valid_bytes = _read(path)
        if recorded is not None and recorded != json.loads(_dumps(header)):
            if not restart:
                raise JournalMismatch(_mismatch_message(path, recorded, header, chunks))
            log.warning("predict: discarding an unfinished run's journal (%d chunks) as asked",
                        len(chunks))
            recorded, chunks, valid_bytes = None, {}, 0
        if recorded is None:
            _write_header(path, header)
        else:
            with path.open("r+b") as fh:  # drop a torn last line before appending
                fh.truncate(valid_bytes)
        return cls(path, header, chunks)

    @property
    def rows(self) -> dict[int, dict[str, Any]]:
        """Every finished study's row, by position."""
        return {row["position"]: row for rows in self.chunks.values() for row in rows}

    def append(self, chunk: int, rows: Sequence[Mapping[str, Any]]) -> None:
        """Record a finished chunk (durable when this returns)."""
        rows = [dict(r) for r in rows]
        self._fh.write(_dumps({"chunk": chunk, "rows": rows, "check": _checksum(rows)}) + "\n")
        self._fh.flush()
        os.fsync(self._fh.fileno())
        self.chunks[chunk] = json.loads(_dumps(rows))

    def close(self) -> None:
        self._fh.close()

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _read(path: Path) -> tuple[dict[str, Any] | None, dict[int, list[dict[str, Any]]], int]:
    """``(header, chunks, bytes of valid lines)``; a torn or corrupt line ends the journal."""
    if not path.is_file():
        return None, {}, 0
    header, chunks, valid = None, {}, 0
    with path.open("rb") as fh:
        for line in fh:
            entry = _parse(line)
            if entry is None:
                break
            if header is None:
                if entry.get("format") != FORMAT:
                    break
                header = entry
            elif entry.get("check") == _checksum(entry.get("rows", [])):
                chunks[int(entry["chunk"])] = entry["rows"]
            else:
                break
            valid += len(line)
    return header, chunks, valid


def _parse(line: bytes) -> dict[str, Any] | None:
    if not line.endswith(b"\n"):
        return None
    try:
        entry = json.loads(line)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None
    return entry if isinstance(entry, dict) else None


def _write_header(path: Path, header: Mapping[str, Any]) -> None:
    """Start a fresh journal (atomically: a reader sees the old one or the new header)."""
    from pipeline.utils.atomic import write_text

    write_text(path, _dumps(header) + "\n")


def _mismatch_message(path: Path, recorded: Mapping[str, Any], header: Mapping[str, Any],
                      chunks: Mapping[int, Any]) -> str:
    header = json.loads(_dumps(header))  # as recorded: JSON types
    differ = sorted(k for k in set(recorded) | set(header) if recorded.get(k) != header.get(k))
    done = sum(len(rows) for rows in chunks.values())
    return (f"{path.parent.parent} holds an unfinished predict run ({done} studies done) made with a "
            f"different {', '.join(differ)}: rerun with the same model, inputs and options to resume "
            "it, or pass --restart (restart=True) to discard it, or choose another --out")
