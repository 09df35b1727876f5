"""How long each test took on the lab's last run, so the next run starts the longest first.

A farm run hands tests to stations in collection order; when the long ones (the firmware lane's power-button
holds) come last, every other station idles while one finishes them. Ordering by the last known duration,
longest first, is the classic longest-processing-time schedule. Tests never timed go first: they may be long.

Persisted as `<state_dir>/durations.json` (test id -> seconds of setup, call and teardown), merged under a
file lock with an atomic replace, so a run with `-k` keeps what it did not run.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from pathlib import Path

from filelock import FileLock

from hil.errors import ConfigError


class Durations:
    def __init__(self, state_dir: Path) -> None:
        self.path = Path(state_dir) / "durations.json"
        self._lock = FileLock(self.path.with_suffix(".json.lock"), thread_local=False)

    def load(self) -> dict[str, float]:
        try:
            raw = json.loads(self.path.read_text())
        except FileNotFoundError:
            return {}
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise ConfigError(f"{self.path}: corrupt test durations ({e}); delete it (the next run rewrites it)") from None
        if not isinstance(raw, dict) or not all(
                isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v >= 0
                for v in raw.values()):
            raise ConfigError(f"{self.path}: test durations must map test ids to seconds; delete it "
                              "(the next run rewrites it)")
        return {str(k): float(v) for k, v in raw.items()}

    def record(self, seconds: Mapping[str, float]) -> None:
        if not seconds:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._lock:
            merged = {**self.load(), **seconds}
            tmp = self.path.with_suffix(".tmp")
            tmp.write_text(json.dumps(dict(sorted(merged.items())), indent=1))
            tmp.replace(self.path)


def longest_first(ids: Iterable[str], seconds: Mapping[str, float]) -> list[str]:
    """`ids` by last duration, longest first; never-timed ids first of all, in their own order (the sort is
    stable, so ties keep collection order)."""
    return sorted(ids, key=lambda i: -seconds.get(i, math.inf))
