"""The one base of every error wavtune reports to a user.

Each stage raises its own subclass (``ManifestError``, ``ConfigError``, ``RunError``, ...), and
each message names the file, row or key at fault and the fix; the CLI catches this one type and
prints the message without a traceback. Subclasses also derive from the builtin they have
always been (``ValueError``, ``RuntimeError``) so callers that catch those keep working.
"""

from __future__ import annotations


class WavtuneError(Exception):
    """A problem with the user's input, files or settings, explained in the message."""
