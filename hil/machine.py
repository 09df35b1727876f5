"""How busy this machine is: a factor that the host-side deadlines scale by.

A deadline set on an idle machine runs out on a loaded one although nothing is wrong (the nightly's
workers, the emulators and the test run share the same cores).  The factor is the larger of two views:
a short CPU-bound probe, run once per process (its wall-clock time over the CPU time it got), and the
one-minute load average per core, read at every use, because a machine that was quiet when a process
started may be busy an hour later.  Idle, that is 1; with two busy processes per core it is about 2.
It never shortens a deadline, and it is capped so that a real hang is still reported in bounded time.
"""

from __future__ import annotations

import functools
import hashlib
import os
import time

PROBE_CPU_S = 0.05  # CPU time the probe spends (well above the clock's resolution)
MAX_FACTOR = 8.0


def factor() -> float:
    """This process's factor now: its probe, or the current load per core if that is higher."""
    return min(MAX_FACTOR, max(probe(), load_per_core()))


@functools.cache
def probe() -> float:
    """The probe, measured on first use."""
    return measure()


def load_per_core() -> float:
    """The one-minute load average over the cores this process may run on (0 where the OS has none)."""
    try:
        return os.getloadavg()[0] / len(os.sched_getaffinity(0))
    except OSError:
        return 0.0


def measure() -> float:
    """Wall time over CPU time of a short CPU-bound probe, between 1 and ``MAX_FACTOR``."""
    wall0, cpu0 = time.perf_counter(), time.thread_time()
    block = bytes(64 * 1024)
    while time.thread_time() - cpu0 < PROBE_CPU_S:
        hashlib.sha256(block).digest()
    measured = (time.perf_counter() - wall0) / (time.thread_time() - cpu0)
    return min(MAX_FACTOR, max(1.0, measured))


def scaled(seconds: float) -> float:
    """``seconds`` measured on an idle machine, as long as they take here."""
    return seconds * factor()
