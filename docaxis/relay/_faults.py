"""Fault points for crash tests (off unless an operator or a test turns one on).

``DOCAXIS_FAULT=<point>`` makes the node kill itself with SIGKILL when it reaches that
point of the pipeline; ``DOCAXIS_FAULT_ONCE=<file>`` makes it happen only once (the file
is created just before the kill, so the restarted node runs normally). Points:

* ``after-commit`` — the package is in the store, nothing is handed over yet;
* ``after-publish`` — the next node has it (confirmed), the outbox row is not marked sent;
* ``while-consuming`` — a hop message is being processed, not yet committed or acked.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

FAULT_POINTS = ("after-commit", "after-publish", "while-consuming")


def fault_point(name: str) -> None:
    """Die here (SIGKILL: no cleanup, no flush) if ``DOCAXIS_FAULT`` names this point."""
    if os.environ.get("DOCAXIS_FAULT") != name:
        return
    once = os.environ.get("DOCAXIS_FAULT_ONCE")
    if once:
        marker = Path(once)
        if marker.exists():
            return
        marker.touch()
    os.kill(os.getpid(), signal.SIGKILL)
