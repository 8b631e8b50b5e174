"""Who owes a hand-over: a token per process, whether that process still runs, and its
lease.

A token is ``host:space:pid:start``. ``space`` names the kernel and process namespace the
pid belongs to (the boot id and the pid namespace), so that two containers with the same
hostname — or the same host after a reboot — are never taken for one another; ``start``
(clock ticks since boot, from ``/proc``) tells a live process from a later one that
reused its pid. :func:`is_alive` can prove a process dead only from inside its own
namespace; everywhere else the **lease** decides: each process renews a row in the
database every few seconds (``Store.renew_lease``), and a token whose lease is older than
the node's ``lease`` setting belongs to a process that is gone or hung.
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


@functools.cache
def _space() -> str:
    """This kernel boot and pid namespace ("?" where /proc does not say)."""
    try:
        with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as boot:
            boot_id = boot.read().strip()[:8]
        namespace = os.stat("/proc/self/ns/pid").st_ino
    except OSError:
        return "?"
    return f"{boot_id}-{namespace}"


def token_for(pid: int) -> str:
    """The claimant token of process ``pid`` of this namespace."""
    return f"{_host()}:{_space()}:{pid}:{_start_ticks(pid) or '?'}"


def process_token() -> str:
    """This process's claimant token (computed per call: a forked child gets its own)."""
    return token_for(os.getpid())


def is_alive(token: str | None) -> bool | None:
    """Whether the process behind ``token`` still runs: True, False, or None (unknown —
    another host or namespace, no ``/proc``, a token of before namespaces, no token)."""
    if not token:
        return None
    parts = token.rsplit(":", 3)
    if (len(parts) != 4 or parts[0] != _host() or parts[1] != _space() or parts[1] == "?"
            or parts[3] == "?"):
        return None
    try:
        pid = int(parts[2])
    except ValueError:
        return None
    return _start_ticks(pid) == parts[3]
