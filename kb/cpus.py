"""How many CPUs this process may run on: the one answer for every pool that sizes itself by the machine."""

from __future__ import annotations

import os


def usable_cpus() -> int:
    """The CPUs this process may run on, at least 1: its affinity where the OS has one (a container pinned to 2 of a
    host's 64 cores gets 2, where os.cpu_count() says 64), else os.cpu_count()."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1
