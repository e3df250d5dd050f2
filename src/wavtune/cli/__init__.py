"""The ``wavtune`` command line: the only place argv is read."""

from wavtune.cli.main import main

__all__ = ["main"]
