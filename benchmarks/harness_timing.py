"""Where a lab run's time goes, from pytest's own hooks: a plugin for the benchmarks, and the arithmetic that
turns what it records into a breakdown of the stations' time.

The plugin is loaded into the run's pytest (controller and every xdist worker) with ``-p harness_timing``
and ``benchmarks/`` on ``PYTHONPATH``; with ``HIL_TIMING_DIR`` set, each process writes one JSON file there
when its session ends: when collection finished, each test's protocol span with its setup/call/teardown durations,
the self-time of each of its fixtures' set-up, the time spent in the farm's health check, and the process's own CPU.
Nothing in hil/ knows about it. Fixtures are told apart by name only (`LEASE_FIXTURES`); the health check is
``hil.lab.health.check``, wrapped where the farm calls it.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from collections.abc import Iterable
from pathlib import Path

import pytest

DIR_ENV = "HIL_TIMING_DIR"
LEASE_FIXTURES = {"farm_station", "_farm_guard"}  # lease the worker's station, check it is still ours
CATEGORIES = ("start-up+collection", "leasing", "health check", "device prep", "test bodies",
              "teardown+evidence", "reporting", "wait:first test", "wait:between", "wait:idle station",
              "wait:session end")


def cpu_seconds(usage: resource.struct_rusage) -> float:
    return usage.ru_utime + usage.ru_stime


class Timing:
    """One pytest process's record (written once at the end, so timing itself costs no I/O mid-run)."""

    def __init__(self, out: Path) -> None:
        self.out = out
        self.record: dict = {"worker": os.environ.get("PYTEST_XDIST_WORKER", "controller"), "pid": os.getpid(),
                             "collected": None, "tests": []}
        self.current: dict | None = None
        self.stack: list[list[float]] = []  # per running fixture setup: [start, time spent in nested setups]
        self.health = 0.0

    def wrap_health(self) -> None:
        """Time the lab's health check (called inside the lease fixture) without touching hil/."""
        health = sys.modules.get("hil.lab.health")  # loaded by the farm plugin under --lab
        check = getattr(health, "check", None)
        if callable(check):
            def timed(*args, _check=check, **kwargs):
                start = time.perf_counter()
                try:
                    return _check(*args, **kwargs)
                finally:
                    self.health += time.perf_counter() - start
            health.check = timed
            self.record["health_timed"] = True

    @pytest.hookimpl(trylast=True)
    def pytest_configure(self, config: pytest.Config) -> None:
        self.wrap_health()

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        self.record.update(collected=time.time(), cpu_collected=cpu_seconds(resource.getrusage(resource.RUSAGE_SELF)))

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_protocol(self, item: pytest.Item, nextitem):
        self.health = 0.0
        self.current = {"start": time.time(), "setup": 0.0, "call": 0.0, "teardown": 0.0, "lease": 0.0,
                        "fixtures": {}}
        yield
        test, self.current = self.current, None
        test.update(stop=time.time(), health=self.health)
        self.record["tests"].append(test)

    @pytest.hookimpl(hookwrapper=True)
    def pytest_fixture_setup(self, fixturedef, request):
        self.stack.append([time.perf_counter(), 0.0])
        yield
        start, nested = self.stack.pop()
        took = time.perf_counter() - start
        if self.stack:
            self.stack[-1][1] += took
        if self.current is not None:
            fixtures = self.current["fixtures"]
            fixtures[fixturedef.argname] = fixtures.get(fixturedef.argname, 0.0) + took - nested
            if fixturedef.argname in LEASE_FIXTURES:
                self.current["lease"] += took - nested

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if self.current is not None:  # in the process that ran the test, not reports relayed to the controller
            self.current[report.when] += report.duration

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        """Written here, inside xdist's wrapper that reports the worker finished: a worker may be stopped
        before its unconfigure."""
        self.write(end=time.time(), cpu=cpu_seconds(resource.getrusage(resource.RUSAGE_SELF)))

    def write(self, **more) -> None:
        self.record.update(more)
        (self.out / f"{self.record['worker']}-{os.getpid()}.json").write_text(json.dumps(self.record))


def pytest_configure(config: pytest.Config) -> None:
    out = os.environ.get(DIR_ENV)
    if out:
        config.pluginmanager.register(Timing(Path(out)), "harness-timing")


# ---------------------------------------------------------------- the benchmarks' side


def run_pytest(cmd: list[str], cwd: Path, timing: Path, base: dict[str, str],
               **env: str) -> tuple[subprocess.CompletedProcess, float, float, float]:
    """pytest (``cmd`` loads ``-p harness_timing``) in the environment ``base`` (a suite run's:
    `hil.lab.nightly.suite_env`) plus ``env``, writing its records into ``timing``: its result, start and end (epoch
    seconds), and the CPU of its process tree (it and its xdist workers, all reaped when it returns)."""
    path = os.pathsep.join(filter(None, [str(Path(__file__).parent), base.get("PYTHONPATH")]))
    env = {**base, **env, DIR_ENV: str(timing), "PYTHONPATH": path}
    cpu = cpu_seconds(resource.getrusage(resource.RUSAGE_CHILDREN))
    t0 = time.time()
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env=env)
    t_end = time.time()
    return proc, t0, t_end, cpu_seconds(resource.getrusage(resource.RUSAGE_CHILDREN)) - cpu


def read_records(directory: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(directory.glob("*.json"))]


def breakdown(records: Iterable[dict], t0: float, t_end: float) -> dict:
    """The stations' time (one worker = one station, from the run's start ``t0`` to its end ``t_end``) split
    into `CATEGORIES`, in seconds, plus the test count, the CPU of controller and workers, the workers' CPU
    after their start-up (``steady_cpu``: what running the tests costs, start-up apart) and the tests' spans.

    Per worker: start-up+collection until its collection finished; leasing = self-time of the lease fixtures
    less the health check inside them; device prep = the rest of setup; reporting = a test's protocol span
    beyond its three phases (log reports, Allure writing, labels); waits = before the first test (the
    controller checks the workers' collections and hands out tests), between tests, and after its last test:
    idle station (until the last test of the whole run ends, on another station) and session end (from then
    until pytest has exited: session teardown, the workers' shutdown, reports, the interpreter's exit).
    ``fixtures``: each fixture's self-time in set-up (the lease fixtures apart), summed over the stations: what
    device prep is made of."""
    totals = dict.fromkeys(CATEGORIES, 0.0)
    out = {"stations": 0, "tests": 0, "controller_cpu": 0.0, "workers_cpu": 0.0, "steady_cpu": 0.0, "test_span": 0.0,
           "fixtures": {}}
    records = list(records)
    stops = [t["stop"] for rec in records if rec["worker"] != "controller" for t in rec["tests"]]
    last_stop = max(stops, default=t_end)
    for rec in records:
        if rec["worker"] == "controller":
            out["controller_cpu"] += rec.get("cpu", 0.0)
            continue
        out["stations"] += 1
        out["workers_cpu"] += rec.get("cpu", 0.0)
        out["steady_cpu"] += rec.get("cpu", 0.0) - rec.get("cpu_collected", rec.get("cpu", 0.0))
        tests = sorted(rec["tests"], key=lambda t: t["start"])
        out["tests"] += len(tests)
        ready = rec["collected"] if rec["collected"] is not None else t_end
        totals["start-up+collection"] += ready - t0
        cursor = ready
        for i, t in enumerate(tests):
            totals["wait:between" if i else "wait:first test"] += max(0.0, t["start"] - cursor)
            lease = max(0.0, t["lease"] - t["health"])
            totals["leasing"] += lease
            totals["health check"] += t["health"]
            totals["device prep"] += max(0.0, t["setup"] - lease - t["health"])
            for name, took in t.get("fixtures", {}).items():
                if name not in LEASE_FIXTURES:
                    out["fixtures"][name] = out["fixtures"].get(name, 0.0) + took
            totals["test bodies"] += t["call"]
            totals["teardown+evidence"] += t["teardown"]
            totals["reporting"] += max(0.0, (t["stop"] - t["start"]) - t["setup"] - t["call"] - t["teardown"])
            out["test_span"] += t["stop"] - t["start"]
            cursor = max(cursor, t["stop"])
        totals["wait:idle station"] += max(0.0, min(last_stop, t_end) - cursor)
        totals["wait:session end"] += max(0.0, t_end - max(cursor, last_stop))
    return {**out, "seconds": totals}
