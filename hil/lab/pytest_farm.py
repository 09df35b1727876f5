"""The farm inside pytest: `--lab FILE` leases one station per xdist worker, health-checks it before its
first test, quarantines it when it fails, and re-runs on another station a test that an infrastructure
fault interrupted, recording each attempt. Every result is labelled with the station, device serial,
profile and firmware.

Loaded by hil/plugin.py (`pytest_plugins`); the plugin's `station` fixture is `farm_station` when
`--lab` is given. Only tests that use a station lease anything.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import time
import uuid
from pathlib import Path

import pytest

from hil.errors import ConfigError, HilError, InfrastructureError
from hil.lab import health
from hil.lab.config import LabConfig, load_lab
from hil.lab.lease import FileLease, FileLeases, Holder, LeaseLost, NoStationFree
from hil.lab.quarantine import Quarantine
from hil.lab.station import Station, bring_up
from hil.report.allure import attach_json

INFRA_FAULT = pytest.StashKey[str]()  # set on an item whose last attempt hit an InfrastructureError
FARM = pytest.StashKey["Farm"]()
ATTEMPT = pytest.StashKey[int]()
RERUN = "rerun"  # report outcome of an attempt that was re-run: neither passed nor failed


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("hil-farm", "prime-hil farm (stations from a lab file)")
    group.addoption("--lab", default=None, metavar="FILE", help="lab_config.yaml: lease one station per xdist worker")
    group.addoption("--farm-firmware", default=None, metavar="SHA256",
                    help="identity of the build the stations run (a label on every result)")
    group.addoption("--farm-reruns", type=int, default=1, metavar="N",
                    help="re-runs on another station of a test an infrastructure fault interrupted (default 1)")
    group.addoption("--farm-lease-timeout", type=float, default=30.0, metavar="S",
                    help="how long a worker waits for a free station (default 30)")
    group.addoption("--farm-events", default=None, metavar="FILE",
                    help="append one JSON line per finished test attempt (the nightly's progress bar)")


def pytest_configure(config: pytest.Config) -> None:
    if config.getoption("lab"):
        from hil.lab import labgrid  # issue 8: --lab labgrid://HOST:PORT[?tag=value] leases labgrid places

        try:
            lab = None if labgrid.is_url(config.getoption("lab")) else load_lab(config.getoption("lab"))
            config.stash[FARM] = labgrid.LabgridFarm(config, config.getoption("lab")) if lab is None else Farm(config, lab)
        except ConfigError as e:
            raise pytest.UsageError(str(e)) from None
        config.add_cleanup(config.stash[FARM].close)
    if config.getoption("farm_events") and not hasattr(config, "workerinput"):
        config.pluginmanager.register(EventLog(config.getoption("farm_events")), "hil-farm-events")


@pytest.hookimpl(optionalhook=True, tryfirst=True)  # before xdist's own (the CPU count)
def pytest_xdist_auto_num_workers(config: pytest.Config) -> int | None:
    """`-n auto` on a labgrid lab: one worker per free matching place (issue 8)."""
    from hil.lab import labgrid

    lab = config.getoption("lab")
    if not labgrid.is_url(lab):
        return None
    try:
        return labgrid.auto_workers(lab)
    except HilError as e:
        raise pytest.UsageError(f"-n auto: {e}") from None


def run_id(config: pytest.Config) -> str:
    workerinput = getattr(config, "workerinput", None)
    if workerinput is not None:
        return workerinput["testrunuid"]
    return os.environ.get("PYTEST_XDIST_TESTRUNUID") or uuid.uuid4().hex


class Farm:
    """This process's share of the lab: at most one leased, live, healthy station at a time."""

    def __init__(self, config: pytest.Config, lab: LabConfig) -> None:
        self.config, self.lab = config, lab
        self.leases = FileLeases(lab.state_dir)
        self.quarantine = Quarantine(lab.state_dir)
        self.worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
        self.holder = Holder.me(self.worker, run_id(config))
        self.firmware: str | None = config.getoption("farm_firmware")
        self.lease: FileLease | None = None
        self.station: Station | None = None
        self.version: str | None = None
        self.lost: str | None = None  # why this worker has no station any more
        self._up = contextlib.ExitStack()
        self._last: dict[str, str] = {}

    def _order(self, exclude: set[str]) -> list[str]:
        """Free candidates, starting at this worker's index so workers spread over the lab."""
        names = [n for n in self.lab.stations if n not in exclude]
        bad = self.quarantine.entries()
        names = [n for n in names if n not in bad]
        idx = int(self.worker[2:]) if self.worker.startswith("gw") and self.worker[2:].isdigit() else 0
        return names[idx % len(names):] + names[:idx % len(names)] if names else []

    def current(self) -> Station:
        """The worker's station, leasing and health-checking one at first use."""
        if self.lost:
            raise LeaseLost(self.lost)
        if self.station is not None:
            try:
                self.lease.check()
            except LeaseLost as e:
                self.lost = f"{e} (the rest of {self.worker}'s tests are broken)"
                self.drop()
                raise
            return self.station
        return self._take(exclude=set())

    def _take(self, exclude: set[str], timeout: float | None = None) -> Station:
        timeout = self.config.getoption("farm_lease_timeout") if timeout is None else timeout
        deadline = time.monotonic() + timeout
        while True:
            candidates = self._order(exclude)
            if not candidates:
                bad = self.quarantine.entries()
                why = "; ".join(f"{n}: {e.reason}" for n, e in bad.items()) or "none configured"
                raise NoStationFree(f"no station left for {self.worker} (excluded {sorted(exclude) or 'none'}; "
                                    f"quarantined: {why})")
            lease = self.leases.acquire_any(candidates, self.holder, timeout=max(0.0, deadline - time.monotonic()))
            try:
                station = self._up.enter_context(bring_up(self.lab, lease.station))
                report = power_cycled_if_unhealthy(station, health.check(station))
            except BaseException:
                self._up.close()
                lease.release()
                raise
            if report.ok:
                self.lease, self.station, self.version = lease, station, report.version
                return station
            self.quarantine.add(lease.station, f"health check failed: {report.reason}", by=str(self.holder))
            self._up.close()
            lease.release()
            exclude = exclude | {lease.station}

    def replace_after_fault(self, fault: str) -> health.Health | None:
        """After an infrastructure fault: quarantine the station if it is now unhealthy, then move to
        another station; back to the same one only if it is healthy and no other is free. Returns the
        health check of the faulted station (evidence for the interrupted attempt)."""
        station, lease = self.station, self.lease
        if station is None or lease is None:
            return None
        report = power_cycled_if_unhealthy(station, health.check(station))
        if not report.ok:
            self.quarantine.add(station.name, f"{fault}; then health check failed: {report.reason}", by=str(self.holder))
        self.drop()
        try:  # a healthy station is not worth waiting for another: take a free one now or stay
            self._take(exclude={station.name}, timeout=None if not report.ok else 0.0)
        except NoStationFree:
            if not report.ok:
                raise
            self._take(exclude=set())
        return report

    def drop(self) -> None:
        self._last = self.labels() or self._last
        self._up.close()
        if self.lease is not None:
            self.lease.release()
        self.lease = self.station = None

    def labels(self) -> dict[str, str]:
        """Where the test runs; after the station was lost, where it last ran."""
        st = self.station
        if st is None:
            return dict(self._last)
        return {"station": st.name, "serial": st.serial or "unknown", "profile": st.profile.name,
                "firmware": self.firmware or f"version:{self.version}",
                "version": self.version or "unknown"}  # measured: what the unit answered to GET_VERSION

    def close(self) -> None:
        self.drop()


RECOVERY_SECONDS = 90.0  # a power-cycled Prime boots KeyOS well within this


def power_cycled_if_unhealthy(station: Station, report: health.Health) -> health.Health:
    """The recovery step before quarantine: a unit that failed its health check, on a station with a
    ``hub_port``, is power-cycled through uhubctl and checked again until healthy or out of time. Returns
    the last check; an unhealthy one names the power cycle, so the quarantine reason tells what was tried."""
    if report.ok or station.hub_port is None:
        return report
    from hil.stimuli.hub_port import HubPort

    try:
        HubPort(station.hub_port).cycle()
    except HilError as e:
        return dataclasses.replace(report, note=f"power cycle failed: {e}")
    deadline = time.monotonic() + RECOVERY_SECONDS
    while True:
        again = health.check(station)
        if again.ok or time.monotonic() > deadline:
            return dataclasses.replace(again, note="after a power cycle of hub port " + station.hub_port)
        time.sleep(1.0)


@pytest.fixture(scope="session")
def farm_station(request: pytest.FixtureRequest) -> Station:
    """The station leased by this worker. Session-scoped so the plugin's session fixtures can build on it;
    after an infrastructure fault it is finalized (with everything built on it) and set up again on the
    worker's next station."""
    farm = request.config.stash.get(FARM, None)
    if farm is None:
        raise pytest.UsageError("farm_station needs --lab FILE")
    return farm.current()


@pytest.fixture(autouse=True)
def _farm_guard(request: pytest.FixtureRequest) -> None:
    """Before each test on a station: the lease is still ours, else the test is broken. (Results are
    labelled in `pytest_runtest_protocol`; a lost station's broken result still names it.)"""
    farm = request.config.stash.get(FARM, None)
    if farm is None or not uses_station(request.fixturenames):
        return
    request.getfixturevalue("farm_station")
    farm.current()


def uses_station(fixturenames) -> bool:
    """`station` is the plugin's fixture; with --lab it is the leased `farm_station`."""
    return bool({"farm_station", "station"} & set(fixturenames))


def _label(item: pytest.Item, farm: Farm, reports: list[pytest.TestReport]) -> None:
    """Label the attempt's result (still open in Allure until logfinish) with where it ran. A test skipped
    before it touched the station still gets the station it would have run on: every result names one."""
    import allure

    try:
        if farm.station is None and not farm.lost:
            farm.current()
    except InfrastructureError:
        pass
    labels = farm.labels()
    for name, value in {**labels, "attempt": str(item.stash.get(ATTEMPT, 1)), "nodeid": item.nodeid}.items():
        allure.dynamic.label(name, value)
        for rep in reports:
            rep.user_properties.append((name, value))


def _forget_station(item: pytest.Item) -> None:
    """Finalize the session's station fixtures and every fixture built on them (the plugin's one debug
    client among them: KeyOS serves one client at a time), so the next test builds them on the new station.
    The plugin's `station` takes `farm_station` dynamically, which pytest does not chain, so both go."""
    if not item._request:  # noqa: SLF001 (runtestprotocol drops it after each run)
        item._initrequest()  # noqa: SLF001
    for name in ("station", "farm_station"):
        defs = item.session._fixturemanager.getfixturedefs(name, item)  # noqa: SLF001 (no public API)
        if defs:
            defs[-1].finish(item._request)  # noqa: SLF001


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    outcome = yield
    if call.excinfo is not None and call.excinfo.errisinstance(InfrastructureError):
        item.stash[INFRA_FAULT] = f"{call.excinfo.typename}: {call.excinfo.value}"
        outcome.get_result().user_properties.append(("infrastructure", item.stash[INFRA_FAULT]))


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> bool | None:
    """Run the test; after an infrastructure fault (not a lost lease), move to another station and run
    it again. The interrupted attempt is logged with outcome `rerun` and kept in Allure as a retry."""
    farm = item.config.stash.get(FARM, None)
    if farm is None or not uses_station(getattr(item, "fixturenames", ())):
        return None
    from _pytest.runner import runtestprotocol

    reruns = item.config.getoption("farm_reruns")
    for attempt in range(1, reruns + 2):
        item.stash[ATTEMPT] = attempt
        if INFRA_FAULT in item.stash:
            del item.stash[INFRA_FAULT]
        item.ihook.pytest_runtest_logstart(nodeid=item.nodeid, location=item.location)
        reports = runtestprotocol(item, nextitem=nextitem, log=False)
        fault = item.stash.get(INFRA_FAULT, None)
        _label(item, farm, reports)
        again = fault is not None and attempt <= reruns and not farm.lost and not _is_lost(fault)
        if fault is not None and not _is_lost(fault):
            _forget_station(item)
        if again:
            try:
                checked = farm.replace_after_fault(fault)
            except InfrastructureError as e:
                farm.lost = f"after {fault}: {e}"
                again = False
            else:
                if checked is not None:
                    attach_json({"fault": fault, "station": checked.station, "healthy": checked.ok,
                                 "checks": [c.__dict__ for c in checked.checks], "next station": farm.labels()},
                                "health check after the fault")
        if again:
            import allure

            allure.dynamic.label("retried", "true")  # the result of this attempt is not the final one
        for rep in reports:
            if again and rep.failed:
                rep.outcome = RERUN  # type: ignore[assignment]
            rep.user_properties += [("attempt", attempt), ("retried", again)]
            item.ihook.pytest_runtest_logreport(report=rep)
        item.ihook.pytest_runtest_logfinish(nodeid=item.nodeid, location=item.location)
        if not again:
            return True
    return True


def _is_lost(fault: str) -> bool:
    return fault.startswith(("LeaseLost", "NoStationFree"))


def pytest_report_teststatus(report: pytest.TestReport):
    if report.outcome == RERUN:
        return RERUN, "R", ("RERUN", {"yellow": True})
    return None


# ---------------------------------------------------------------- the nightly's event record


def pytest_collection_finish(session: pytest.Session) -> None:
    if not hasattr(session.config, "workerinput"):
        _event(session.config, {"event": "collected", "total": len(session.items)})


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_node_collection_finished(node, ids) -> None:
    _event(node.config, {"event": "collected", "total": len(ids)})


class EventLog:
    """On the controller (xdist master or the only process): one JSON line per finished attempt."""

    def __init__(self, path: str) -> None:
        self.path = Path(path)

    def write(self, record: dict) -> None:
        with self.path.open("a") as f:
            f.write(json.dumps(record) + "\n")

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.when == "teardown":
            props = dict(report.user_properties)
            self.write({"event": "finished", "nodeid": report.nodeid, "attempt": props.get("attempt", 1),
                        "retried": bool(props.get("retried")), "station": props.get("station"), "time": time.time()})


def _event(config: pytest.Config, record: dict) -> None:
    log = config.pluginmanager.get_plugin("hil-farm-events")
    if log is not None:
        log.write(record)
