"""The farm inside pytest: `--lab FILE` leases one station per xdist worker, health-checks it before its
first test, quarantines it when it fails, and re-runs on another station a test that an infrastructure
fault interrupted, recording each attempt. Every result is labelled with the station, device serial,
profile and firmware.

Loaded by hil/plugin.py (`pytest_plugins`); the plugin's `station` fixture is `farm_station` when
`--lab` is given. Only tests that use a station lease anything.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from hil.errors import ConfigError, HilError, InfrastructureError
from hil.lab import labgrid
from hil.lab import places
from hil.lab.config import load_lab
from hil.lab.durations import Durations, longest_first
from hil.lab.farm import Farm, FileStations
from hil.lab.lease import Holder
from hil.lab.station import Station
from hil.report.allure import attach_json
from hil.report.plan import session_id

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
    lab = config.getoption("lab")
    if lab:
        worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
        holder = Holder.me(worker, session_id(config))
        try:  # issue 8: --lab labgrid://HOST:PORT[?tag=value] leases labgrid places
            if labgrid.is_url(lab):
                leases = places.PlaceLeases(lab, worker)
            else:
                cfg = load_lab(lab)
                leases = FileStations(cfg, holder)
                config.pluginmanager.register(LongestFirst(Durations(cfg.state_dir)), "hil-farm-schedule")
                if getattr(config.option, "maxschedchunk", False) is None:  # xdist's --dist load, not chosen
                    config.option.maxschedchunk = 1  # else its first chunks hand the longest tests to one station
            config.stash[FARM] = Farm(leases, holder, config.getoption("farm_firmware"),
                                      config.getoption("farm_lease_timeout"))
        except ConfigError as e:
            raise pytest.UsageError(str(e)) from None
        config.add_cleanup(config.stash[FARM].close)
    if config.getoption("farm_events") and not hasattr(config, "workerinput"):
        config.pluginmanager.register(EventLog(config.getoption("farm_events")), "hil-farm-events")


@pytest.hookimpl(trylast=True)  # after the session's fixtures, the station's clients among them, are torn down
def pytest_sessionfinish(session: pytest.Session) -> None:
    """The station is let go as the session ends, before xdist tells the controller this worker finished: from
    then the controller gives a worker 5 s to exit before execnet interrupts it (SIGINT, then os._exit), so a
    release left to the config's cleanup (kept for a run that ends before its session) could be cut short on a
    loaded host, leaving a labgrid place held."""
    farm = session.config.stash.get(FARM, None)
    if farm is not None:
        farm.close()


@pytest.hookimpl(optionalhook=True, tryfirst=True)  # before xdist's own (the CPU count)
def pytest_xdist_auto_num_workers(config: pytest.Config) -> int | None:
    """`-n auto` on a labgrid lab: one worker per free matching place (issue 8)."""
    lab = config.getoption("lab")
    if not labgrid.is_url(lab):
        return None
    try:
        return places.auto_workers(lab)
    except HilError as e:
        raise pytest.UsageError(f"-n auto: {e}") from None


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
    """Run the test; after an infrastructure fault that interrupted it (the first phase that failed raised
    it; not a lost lease), move to another station and run it again. The interrupted attempt is logged with
    outcome `rerun` and kept in Allure as a retry."""
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
        again = interrupted(reports) and attempt <= reruns and not farm.lost and not _is_lost(fault)
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


def interrupted(reports: list[pytest.TestReport]) -> bool:
    """Whether an infrastructure fault is what failed the attempt: its first failing phase raised one. A check
    that failed on its own (its call) and then broke in teardown failed: a re-run's pass must not erase that."""
    first = next((rep for rep in reports if rep.failed), None)
    return first is not None and any(name == "infrastructure" for name, _ in first.user_properties)


def _is_lost(fault: str) -> bool:
    return fault.startswith(("LeaseLost", "NoStationFree"))


def pytest_report_teststatus(report: pytest.TestReport):
    if report.outcome == RERUN:
        return RERUN, "R", ("RERUN", {"yellow": True})
    return None


class LongestFirst:
    """Tests start longest first by the lab's last run (hil.lab.durations), so no station sits idle at the
    end while another finishes the long ones; the controller records this run's durations at the end."""

    def __init__(self, durations: Durations) -> None:
        self.durations = durations
        self.seconds: dict[str, float] = {}

    @pytest.hookimpl(trylast=True)
    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        try:
            known = self.durations.load()
        except ConfigError as e:
            raise pytest.UsageError(str(e)) from None
        order = {nodeid: n for n, nodeid in enumerate(longest_first([i.nodeid for i in items], known))}
        items.sort(key=lambda i: order[i.nodeid])

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self.seconds[report.nodeid] = self.seconds.get(report.nodeid, 0.0) + report.duration

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if not hasattr(session.config, "workerinput"):
            self.durations.record(self.seconds)


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
