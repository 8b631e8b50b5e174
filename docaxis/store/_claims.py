"""Who owes a hand-over: a token per process, and whether that process still runs.

A token is ``host:pid:start`` — the process's start time (clock ticks since boot, from
``/proc``) tells a live process from a later one that reused its pid. Liveness can only be
judged for processes of this host; elsewhere (or without ``/proc``) it is unknown.
"""

from __future__ import annotations

import functools
import os
import socket


def _start_ticks(pid: int) -> str | None:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as stat:
            return stat.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


@functools.cache
def _host() -> str:
    return socket.gethostname()


def process_token() -> str:
    """This process's claimant token (computed per call: a forked child gets its own)."""
    pid = os.getpid()
    return f"{_host()}:{pid}:{_start_ticks(pid) or '?'}"


def is_alive(token: str | None) -> bool | None:
    """Whether the process behind ``token`` still runs: True, False, or None (unknown —
    another host, no ``/proc``, or no token at all)."""
    if not token:
        return None
    parts = token.rsplit(":", 2)
    if len(parts) != 3 or parts[0] != _host() or parts[2] == "?":
        return None
    try:
        pid = int(parts[1])
    except ValueError:
        return None
    return _start_ticks(pid) == parts[2]
