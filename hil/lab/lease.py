"""Leases: which process may drive which station, so two pytest-xdist workers never share a Prime.

A lease is a `filelock` on `<state>/leases/<station>.lock` plus `<station>.holder.json` that names the
holder (host, pid, xdist worker, test run). One lock object per station per process (a second FileLock
on the same path in the same process would wait on itself). A lease can be lost while held: the
holder file rewritten by `hil farm` or the lock file removed. `check()` notices and raises `LeaseLost`,
which is an infrastructure fault: the worker's remaining tests are broken, never passed.

`Lease` is the interface the farm uses; a labgrid place reservation (issue 8) is another implementation.
"""

from __future__ import annotations

import json
import os
import socket
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Protocol

from filelock import FileLock, Timeout

from hil.errors import InfrastructureError


class LeaseLost(InfrastructureError):
    """The station was taken away from this worker mid-run."""


class NoStationFree(InfrastructureError):
    """Every matching station is leased by someone else or quarantined."""


@dataclass(frozen=True)
class Holder:
    host: str
    pid: int
    worker: str
    run_id: str
    since: float = field(default_factory=time.time)

    @classmethod
    def me(cls, worker: str, run_id: str) -> Holder:
        return cls(socket.gethostname(), os.getpid(), worker, run_id)

    def __str__(self) -> str:
        return f"{self.worker} (pid {self.pid} on {self.host}, run {self.run_id})"


class Lease(Protocol):
    station: str
    holder: Holder

    def check(self) -> None:
        """Raise `LeaseLost` when the station is no longer held by us."""

    def release(self) -> None: ...


_LOCKS: dict[Path, FileLock] = {}  # the one lock object per station file in this process


def _lock_for(path: Path) -> FileLock:
    if path not in _LOCKS:
        _LOCKS[path] = FileLock(path, thread_local=False)
    return _LOCKS[path]


class FileLease:
    """A held station lease on one host."""

    def __init__(self, station: str, lock: FileLock, holder_file: Path, holder: Holder) -> None:
        self.station, self.holder = station, holder
        self._lock, self._holder_file = lock, holder_file
        self._inode = os.fstat(lock._context.lock_file_fd).st_ino  # noqa: SLF001 (filelock exposes no getter)

    def check(self) -> None:
        if not self._lock.is_locked:
            raise LeaseLost(f"station {self.station}: lease already released by {self.holder}")
        try:
            if os.stat(self._lock.lock_file).st_ino != self._inode:
                raise LeaseLost(f"station {self.station}: its lock file was replaced; the lease of {self.holder} is lost")
            now = read_holder(self._holder_file)
        except FileNotFoundError:
            raise LeaseLost(f"station {self.station}: its lease was cleared; {self.holder} no longer holds it") from None
        if now != self.holder:
            raise LeaseLost(f"station {self.station}: taken over by {now}; {self.holder} lost it")

    def release(self) -> None:
        if not self._lock.is_locked:
            return
        try:
            if read_holder(self._holder_file) == self.holder:
                self._holder_file.unlink()
        except (FileNotFoundError, ValueError):
            pass
        self._lock.release(force=True)


def read_holder(path: Path) -> Holder:
    try:
        return Holder(**json.loads(path.read_text()))
    except (json.JSONDecodeError, TypeError) as e:
        raise ValueError(f"{path}: not a lease holder record ({e})") from None


class FileLeases:
    """The leases of one lab, kept in `<state_dir>/leases`."""

    def __init__(self, state_dir: Path) -> None:
        self.dir = Path(state_dir) / "leases"
        self.dir.mkdir(parents=True, exist_ok=True)

    def _paths(self, station: str) -> tuple[Path, Path]:
        return self.dir / f"{station}.lock", self.dir / f"{station}.holder.json"

    def acquire(self, station: str, holder: Holder, timeout: float = 0) -> FileLease:
        """Take `station` or raise `NoStationFree` naming who has it."""
        lock_path, holder_file = self._paths(station)
        lock = _lock_for(lock_path)
        if lock.is_locked:
            raise NoStationFree(f"station {station} is already leased in this process")
        try:
            lock.acquire(timeout=timeout)
        except Timeout:
            raise NoStationFree(f"station {station} is leased by {self.holder(station) or 'another process'}") from None
        tmp = holder_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(holder)))
        tmp.replace(holder_file)
        return FileLease(station, lock, holder_file, holder)

    def acquire_any(self, stations: list[str], holder: Holder, timeout: float) -> FileLease:
        """The first free station of `stations`, waiting up to `timeout` seconds for one to free up."""
        deadline = time.monotonic() + timeout
        while True:
            for name in stations:
                try:
                    return self.acquire(name, holder)
                except NoStationFree:
                    continue
            if time.monotonic() >= deadline:
                held = "; ".join(f"{s}: {self.holder(s) or 'busy'}" for s in stations) or "none offered"
                raise NoStationFree(f"no station free after {timeout:.0f}s ({held})")
            time.sleep(0.2)

    def holder(self, station: str) -> Holder | None:
        """Who holds `station` now, or None; a stale holder file (holder released) is not a holder."""
        lock_path, holder_file = self._paths(station)
        probe = _lock_for(lock_path)
        if probe.is_locked:  # held by this very process
            try:
                return read_holder(holder_file)
            except (FileNotFoundError, ValueError):
                return None
        try:
            probe.acquire(timeout=0)
        except Timeout:
            try:
                return read_holder(holder_file)
            except (FileNotFoundError, ValueError):
                return None
        probe.release()
        return None

    def clear(self, station: str) -> Holder | None:
        """Take the lease away from its holder (an operator's decision); its next check() fails."""
        _, holder_file = self._paths(station)
        was = self.holder(station)
        holder_file.unlink(missing_ok=True)
        return was
