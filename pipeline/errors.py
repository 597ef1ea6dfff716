"""Errors about the user's input (params, dataset folder) rather than about the code.

The command line prints them as one line, without a traceback, and exits non-zero. Import-free,
so that :mod:`pipeline.config` and any library can raise them.
"""

from __future__ import annotations


class UserInputError(Exception):
    """Bad input that the user must fix; the message says what and where."""
