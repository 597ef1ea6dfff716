"""Errors raised by readers for input that must be quarantined rather than crash a stage."""

from __future__ import annotations


class InputRejected(Exception):
    """An input file (or series) cannot be used; the stage quarantines it.

    Args:
        reason: One line, human readable, with no header values (no PHI). Say what was
            expected and what was found, e.g. ``"no PixelData element (not an image)"``.
        code: A short machine-readable category, e.g. ``"not_dicom"``, ``"truncated"``,
            ``"missing_codec"``, so quarantine tables can be summarised.
    """

    def __init__(self, reason: str, *, code: str = "rejected") -> None:
        reason = " ".join(str(reason).split())  # one line, always
        super().__init__(reason)
        self.reason = reason
        self.code = code

    def __reduce__(self):  # picklable across process pools
        return (_rebuild, (self.reason, self.code))


def _rebuild(reason: str, code: str) -> InputRejected:
    return InputRejected(reason, code=code)
