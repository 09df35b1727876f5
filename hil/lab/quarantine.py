"""Quarantine: stations taken out of service with the reason, until they are readmitted.

An operator's quarantine (`hil farm quarantine`) lasts until an operator readmits the station; one a
fault caused (a failed health check, bring-up or flash) is lifted by the next nightly when the station
passes its health check then.

Persisted as `<state_dir>/quarantine.json`, updated under a file lock with an atomic replace, so
several workers quarantining at once lose nothing and a crash leaves either the old or the new file.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from filelock import FileLock

from hil.errors import ConfigError


_THREADS: dict[Path, threading.Lock] = {}
OPERATOR = "operator"  # `by` of a person's quarantine


@dataclass(frozen=True)
class Entry:
    station: str
    reason: str
    since: float
    by: str

    @property
    def by_operator(self) -> bool:
        return self.by == OPERATOR


class Quarantine:
    def __init__(self, state_dir: Path) -> None:
        self.path = Path(state_dir) / "quarantine.json"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = FileLock(self.path.with_suffix(".json.lock"), thread_local=False, is_singleton=True)
        self._threads = _THREADS.setdefault(self.path, threading.Lock())  # the file lock is re-entrant in-process

    def entries(self) -> dict[str, Entry]:
        try:
            raw = json.loads(self.path.read_text())
            return {name: Entry(**e) for name, e in raw.items()}
        except FileNotFoundError:
            return {}
        except (json.JSONDecodeError, TypeError, AttributeError) as e:
            raise ConfigError(f"{self.path}: corrupt quarantine list ({e}); fix or delete it") from None

    def get(self, station: str) -> Entry | None:
        return self.entries().get(station)

    def add(self, station: str, reason: str, by: str | None = None) -> Entry:
        entry = Entry(station, reason, time.time(), by or f"{os.getpid()}@{socket.gethostname()}")
        with self._threads, self._lock:
            entries = self.entries()
            entries[station] = entry
            self._write(entries)
        return entry

    def remove(self, station: str) -> Entry | None:
        with self._threads, self._lock:
            entries = self.entries()
            gone = entries.pop(station, None)
            self._write(entries)
        return gone

    def _write(self, entries: dict[str, Entry]) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps({n: asdict(e) for n, e in sorted(entries.items())}, indent=2))
        tmp.replace(self.path)
