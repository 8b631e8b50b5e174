"""The ``docaxis`` command (click). Commands hold no logic a library call should hold."""

from docaxis.cli._main import cli, main

__all__ = ["cli", "main"]
