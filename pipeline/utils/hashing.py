"""Salted pseudonyms and content digests."""

from __future__ import annotations

import hashlib
import hmac
import os


def pseudonym(value: str, *, salt: str, prefix: str = "", length: int = 16) -> str:
    """Return a stable pseudonym for ``value``: HMAC-SHA256 keyed with ``salt``, hex-truncated.

    The same value and salt always give the same pseudonym; without the salt the original value
    cannot be recovered or confirmed by hashing guesses.

    Args:
        value: The identifier to hide (patient ID, path, ...).
        salt: Secret key; a param, never committed together with real data.
        prefix: Prepended to the digest, e.g. ``"P"`` for patients.
        length: Number of hex characters kept (16 = 64 bits, collision-safe for any cohort).
    """
    if not salt:
        raise ValueError("pseudonym salt must be a non-empty string. Received: ''")
    digest = hmac.new(salt.encode("utf-8"), value.encode("utf-8"), hashlib.sha256).hexdigest()
    return f"{prefix}{digest[:length]}"


def file_sha256(path: str | os.PathLike[str]) -> str:
    """Hex SHA-256 of a file's bytes, read in 1 MiB blocks (bounded memory)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
