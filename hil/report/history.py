"""The nightly history (one JSON line per finished night in `reports/history.jsonl`) and the diff of a
night against the one before: new failures, fixed, flaky (one test, different outcomes on a retry or
across stations), broken stations.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from hil.errors import ConfigError
from hil.report.allure import Results

FAILING = ("failed", "broken")


@dataclass(frozen=True)
class Night:
    run_id: str
    started: float
    finished: float
    lab: str
    firmware: dict[str, str]
    tests: dict[str, dict]  # test id -> {"status", "suite", "outcomes": [[station, attempt, status], ...]}
    broken_stations: dict[str, str]  # station -> reason
    problems: list[str] = field(default_factory=list)

    @classmethod
    def from_results(cls, results: Results, *, run_id: str, started: float, finished: float, lab: str,
                     firmware: dict[str, str], broken_stations: dict[str, str]) -> Night:
        tests = {}
        for tid, attempts in results.by_test().items():
            last = attempts[-1]
            tests[tid] = {"status": last.status, "suite": last.suite,
                          "outcomes": [[r.station, r.attempt, r.status] for r in attempts]}
        return cls(run_id, started, finished, lab, firmware, tests, broken_stations, list(results.problems))


@dataclass(frozen=True)
class Diff:
    previous: str | None
    new_failures: dict[str, str]  # test -> status now
    fixed: list[str]
    flaky: dict[str, list]  # test -> its outcomes
    broken_stations: dict[str, str]
    still_failing: list[str]
    totals: dict[str, int]

    def text(self) -> str:
        lines = [f"against {self.previous or 'no previous night'}: "
                 + ", ".join(f"{n} {k}" for k, n in self.totals.items())]
        for title, items in (("new failures", [f"{t} ({s})" for t, s in self.new_failures.items()]),
                             ("fixed", self.fixed),
                             ("flaky", [f"{t}: " + ", ".join(f"{st or '-'}#{a} {s}" for st, a, s in o)
                                        for t, o in self.flaky.items()]),
                             ("broken stations", [f"{s}: {r}" for s, r in self.broken_stations.items()]),
                             ("still failing", self.still_failing)):
            lines.append(f"{title}: {len(items)}")
            lines += [f"  {i}" for i in items]
        return "\n".join(lines)


def diff(previous: Night | None, night: Night) -> Diff:
    """Against the previous night. On the same build a changed verdict (passed <-> failed) is flaky, not a
    regression or a fix; a broken attempt is the lab's, so it never makes a test flaky across nights."""
    before = previous.tests if previous else {}
    same_build = previous is not None and previous.firmware.get("hash") == night.firmware.get("hash")
    new, fixed, still, flaky = {}, [], [], {}
    for tid, t in sorted(night.tests.items()):
        was = before.get(tid, {}).get("status")
        if same_build and {was, t["status"]} == {"passed", "failed"}:
            flaky[tid] = before[tid]["outcomes"] + t["outcomes"]
            continue
        if t["status"] in FAILING:
            if was in FAILING:
                still.append(tid)
            else:
                new[tid] = t["status"]
        elif t["status"] == "passed" and was in FAILING:
            fixed.append(tid)
        if len({s for _, _, s in t["outcomes"] if s != "skipped"}) > 1:
            flaky[tid] = t["outcomes"]
    totals = {s: sum(1 for t in night.tests.values() if t["status"] == s) for s in ("passed", "failed", "broken", "skipped")}
    return Diff(previous.run_id if previous else None, new, fixed, flaky, dict(night.broken_stations), still, totals)


class History:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def nights(self) -> list[Night]:
        if not self.path.exists():
            return []
        out = []
        for n, line in enumerate(self.path.read_text().splitlines(), 1):
            if not line.strip():
                continue
            try:
                out.append(Night(**json.loads(line)))
            except (json.JSONDecodeError, TypeError) as e:
                raise ConfigError(f"{self.path}:{n}: corrupt history record ({e}); remove that line") from None
        return out

    def last(self, before: str | None = None) -> Night | None:
        """The latest night other than run `before`."""
        nights = [n for n in self.nights() if n.run_id != before]
        return nights[-1] if nights else None

    def append(self, night: Night) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a") as f:
            f.write(json.dumps(asdict(night)) + "\n")
