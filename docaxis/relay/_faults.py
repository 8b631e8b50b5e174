"""Fault points for crash tests (off unless an operator or a test turns one on).

``DOCAXIS_FAULT=<point>`` makes the node kill itself with SIGKILL when it reaches that
point of the pipeline; ``DOCAXIS_FAULT_ONCE=<file>`` makes it happen only once (the file
is created just before the kill, so the restarted node runs normally). Points:

* ``after-commit`` — the package is in the store, nothing is handed over yet;
* ``after-publish`` — the next node has it (confirmed), the outbox row is not marked sent;
* ``while-consuming`` — a hop message is being processed, not yet committed or acked;
* ``after-uplink-commit`` — a package polled from a VXP axis is committed, the axis has
  not been told (``updateStatus``).
* ``api-commit`` — API submissions answered from the intake journal are about to be
  logged in the store (with ``DOCAXIS_FAULT_RAISE``: their transaction fails).

``DOCAXIS_FAULT_RAISE=<point>`` makes the node raise :class:`InjectedFault` (an
unexpected ``RuntimeError``) there instead — once per ``DOCAXIS_FAULT_ONCE`` file as
above. Points: ``check`` (parse, validate, verify), ``plan`` (routing, authorization),
``commit`` (the store transaction of one package).
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

FAULT_POINTS = ("after-commit", "after-publish", "while-consuming", "after-uplink-commit",
                "check", "plan", "commit", "api-commit", "mid-transfer", "mid-reassembly")


class InjectedFault(RuntimeError):
    """An unexpected exception a test asked for (``DOCAXIS_FAULT_RAISE``)."""


def fault_point(name: str) -> None:
    """Die here (SIGKILL: no cleanup, no flush) if ``DOCAXIS_FAULT`` names this point;
    raise :class:`InjectedFault` if ``DOCAXIS_FAULT_RAISE`` does."""
    kill = os.environ.get("DOCAXIS_FAULT") == name
    if not kill and os.environ.get("DOCAXIS_FAULT_RAISE") != name:
        return
    once = os.environ.get("DOCAXIS_FAULT_ONCE")
    if once:
        marker = Path(once)
        if marker.exists():
            return
        marker.touch()
    if kill:
        os.kill(os.getpid(), signal.SIGKILL)
    raise InjectedFault(f"fault injected at {name!r}")
