"""The farm inside pytest, on emulated stations: one station per worker with result labels, a station that
loses power mid-test quarantined and the test re-run on another, a lost lease making the rest broken."""

import json
import textwrap
from pathlib import Path

from farm_helpers import lab_in

from hil.report.allure import read_results


CONTROL = '''
import json, socket

from hil.emulator.launcher import control_endpoint

def control(endpoint, **cmd):
    host, port = endpoint.split(":")[1:]
    with socket.create_connection((host, int(port)), timeout=5) as s:
        s.sendall((json.dumps(cmd) + "\\n").encode())
        return json.loads(s.makefile().readline())
'''


def write_lab(path: Path, stations: int) -> Path:
    """The shipped lab moved into ``path`` (farm_helpers.lab_in), with only its first ``stations`` stations."""
    lab = lab_in(path)
    keep = [f"emu-{i}" for i in range(1, stations + 1)]
    lines = [ln for ln in lab.read_text().splitlines()
             if not ln.strip().startswith("emu-") or ln.strip().split(":")[0] in keep]
    lab.write_text("\n".join(lines) + "\n")
    return lab


def run(pytester, *args):
    return pytester.runpytest_subprocess("-p", "hil.pytest_farm", "--lab", str(pytester.path / "lab.yaml"),
                                         "--alluredir", str(pytester.path / "out"), "-p", "no:cacheprovider", *args)


def test_one_station_per_worker_labels_and_quarantine_respected(pytester):
    write_lab(pytester.path, 3)
    from hil.lab.quarantine import Quarantine
    Quarantine(pytester.path / "state").add("emu-3", "camera dark")
    pytester.makepyfile(test_s="""
        import pytest
        @pytest.mark.parametrize("i", range(4))
        def test_version(farm_station, i):
            with farm_station.client() as p:
                assert p.version() == "1.0.0"
    """)
    r = run(pytester, "-n", "2", "--farm-firmware", "abc123")
    r.assert_outcomes(passed=4)
    res = read_results(pytester.path / "out")
    assert res.problems == [] and len(res.records) == 4
    assert {x.station for x in res.records} == {"emu-1", "emu-2"}
    assert all(x.firmware == "abc123" and x.labels["serial"].startswith("EMU-") and x.profile == "prime-emulated"
               and x.labels["nodeid"].startswith("test_s.py::test_version[") for x in res.records)
    assert list(json.loads((pytester.path / "state" / "quarantine.json").read_text())) == ["emu-3"]


def test_vanished_station_rerun_elsewhere_then_lost_lease(pytester):
    """emu-1 loses power mid-test: quarantined, the test re-runs on emu-2 with the session fixtures built
    on the station rebuilt there; then the lease is taken away and the rest of the tests are broken."""
    write_lab(pytester.path, 2)
    pytester.makeconftest("""
        import pytest

        @pytest.fixture(scope="session")
        def station(request):  # like hil/plugin.py: the leased station, taken dynamically
            return request.getfixturevalue("farm_station")

        @pytest.fixture(scope="session")
        def session_link(station):
            with station.client() as p:  # the one debug client of the session
                yield station.name, p
    """)
    pytester.makepyfile(test_v=CONTROL + textwrap.dedent(f"""
        from hil.lab.lease import FileLeases

        def test_power_cut(session_link, station):
            name, p = session_link
            if name == "emu-1":
                control(control_endpoint(station.debug), cmd="power_cut")  # the link is gone when the reply comes
            assert p.version() == "1.0.0"

        def test_no_frame_on_a_healthy_station(session_link, tmp_path_factory):
            # the station stays healthy: after its session client is closed it passes the health check, and
            # with no other station left the test runs again on it
            from hil.errors import InfrastructureError
            once = tmp_path_factory.getbasetemp() / "once"
            if not once.exists():
                once.touch()
                raise InfrastructureError("camera gave no frame")

        def test_next(session_link):
            assert session_link[0] == "emu-2"
            FileLeases({str(pytester.path / 'state')!r}).clear("emu-2")

        def test_after_lost(farm_station):
            pass
    """))
    r = run(pytester, "-n", "1", "--farm-events", str(pytester.path / "events.jsonl"))
    r.assert_outcomes(passed=3, errors=1)
    assert "2 rerun" in r.stdout.str() and "its lease was cleared" in r.stdout.str()
    q = json.loads((pytester.path / "state" / "quarantine.json").read_text())
    assert list(q) == ["emu-1"] and "health check failed: link:" in q["emu-1"]["reason"]
    res = read_results(pytester.path / "out")
    attempts = res.by_test()["test_v.py::test_power_cut"]
    assert [(a.station, a.attempt, a.status) for a in attempts] == [("emu-1", 1, "broken"), ("emu-2", 2, "passed")]
    assert attempts[0].labels.get("retried") == "true" and "retried" not in attempts[1].labels
    evidence = json.loads((pytester.path / "out" / attempts[0].attachments[-1]).read_text())
    assert evidence["station"] == "emu-1" and evidence["healthy"] is False
    assert evidence["next station"]["station"] == "emu-2"
    assert res.final()["test_v.py::test_after_lost"].status == "broken"
    events = [json.loads(line) for line in (pytester.path / "events.jsonl").read_text().splitlines()]
    assert [(e["nodeid"], e["attempt"], e["retried"]) for e in events if e["event"] == "finished"] == [
        ("test_v.py::test_power_cut", 1, True), ("test_v.py::test_power_cut", 2, False),
        ("test_v.py::test_no_frame_on_a_healthy_station", 1, True),
        ("test_v.py::test_no_frame_on_a_healthy_station", 2, False),
        ("test_v.py::test_next", 1, False), ("test_v.py::test_after_lost", 1, False)]


def test_a_check_that_failed_then_broke_in_teardown_is_not_rerun(pytester):
    """The call failed (the device's answer), then teardown hit an infrastructure fault: that failure is the
    result, never erased by a re-run that passes (review of s27: it decided GO)."""
    write_lab(pytester.path, 1)
    pytester.makepyfile(test_f="""
        import pytest
        from hil.errors import InfrastructureError

        @pytest.fixture
        def teardown_hits_link(farm_station, tmp_path_factory):
            yield
            mark = tmp_path_factory.getbasetemp() / "teardown-once"
            if not mark.exists():
                mark.touch()
                raise InfrastructureError("link lost while closing the probe (teardown)")

        def test_security_check(teardown_hits_link, tmp_path_factory):
            mark = tmp_path_factory.getbasetemp() / "call-once"
            if not mark.exists():
                mark.touch()
                assert False, "the device granted the seed without a prompt"
    """)
    r = run(pytester, "-n", "1")
    r.assert_outcomes(failed=1, errors=1)  # no "rerun"
    attempts = read_results(pytester.path / "out").by_test()["test_f.py::test_security_check"]
    assert [(a.attempt, a.status) for a in attempts] == [(1, "failed")]


def test_tests_start_longest_first_by_the_labs_last_run(pytester):
    """The lab's recorded durations order the run (never-timed tests first, then longest first); the run's
    own durations are merged back, keeping those of tests it did not run; a corrupt record is a usage error."""
    write_lab(pytester.path, 1)
    state = pytester.path / "state"
    state.mkdir()
    record = state / "durations.json"
    record.write_text(json.dumps({"test_s.py::test_short": 1.0, "test_s.py::test_long": 50.0,
                                  "test_other.py::test_gone": 7.0}))
    pytester.makepyfile(test_s="""
        def test_short(): pass
        def test_long(): pass
        def test_new(): pass
    """)
    r = run(pytester, "-v", "-p", "no:randomly")
    ran = [ln.split()[0] for ln in r.stdout.lines if ln.startswith("test_s.py::") and "PASSED" in ln]
    assert ran == ["test_s.py::test_new", "test_s.py::test_long", "test_s.py::test_short"]
    after = json.loads(record.read_text())
    assert after["test_other.py::test_gone"] == 7.0
    assert {"test_s.py::test_new", "test_s.py::test_long", "test_s.py::test_short"} <= set(after)
    assert after["test_s.py::test_long"] < 50.0  # measured now, not the old figure

    before = json.loads(record.read_text())  # under xdist the workers order and the controller records
    r = run(pytester, "-n", "1", "--farm-events", str(pytester.path / "events.jsonl"))
    r.assert_outcomes(passed=3)
    finished = [json.loads(ln)["nodeid"] for ln in (pytester.path / "events.jsonl").read_text().splitlines()
                if json.loads(ln)["event"] == "finished"]
    assert finished == sorted(finished, key=lambda t: -before[t])
    assert json.loads(record.read_text()) != before

    record.write_text("{not json")
    r = run(pytester)
    assert r.ret == 4 and "durations.json: corrupt test durations" in r.stderr.str() + r.stdout.str()


def test_a_station_is_health_checked_once_per_lease_not_per_test(pytester):
    write_lab(pytester.path, 1)
    pytester.makeconftest("""
        from hil.lab import health

        CHECKED = []
        _check = health.check

        def counted(station, *args, **kwargs):
            CHECKED.append(station.name)
            return _check(station, *args, **kwargs)

        health.check = counted

        def pytest_sessionfinish(session):
            (session.config.rootpath / "checked.txt").write_text(" ".join(CHECKED))
    """)
    pytester.makepyfile(test_h="""
        import pytest
        @pytest.mark.parametrize("i", range(3))
        def test_version(farm_station, i):
            with farm_station.client() as p:
                assert p.version() == "1.0.0"
    """)
    run(pytester).assert_outcomes(passed=3)
    assert (pytester.path / "checked.txt").read_text().split() == ["emu-1"]


def test_the_longest_tests_are_spread_over_the_stations_not_handed_to_the_first(pytester):
    """Longest first by the last run (hil.lab.durations), and xdist hands them out one at a time: its default
    first chunks (a quarter of each worker's share, consecutive) would give the four longest all to one worker."""
    write_lab(pytester.path, 2)
    ids = [f"test_l.py::test_t[{i}]" for i in range(40)]
    (pytester.path / "state").mkdir(exist_ok=True)
    (pytester.path / "state" / "durations.json").write_text(json.dumps({n: 100.0 - i for i, n in enumerate(ids)}))
    pytester.makepyfile(test_l="""
        import os, pytest
        @pytest.mark.parametrize("i", range(40))
        def test_t(i, request):
            with open(request.config.rootpath / "ran.txt", "a") as f:
                f.write(f"{i} {os.environ['PYTEST_XDIST_WORKER']}\\n")
    """)
    run(pytester, "-n", "2").assert_outcomes(passed=40)
    worker = dict(line.split() for line in (pytester.path / "ran.txt").read_text().splitlines())
    assert sorted(worker[str(i)] for i in range(4)) == ["gw0", "gw0", "gw1", "gw1"]


def test_a_worker_lets_go_of_its_station_before_it_reports_finished(pytester):
    """xdist's controller starts stopping a worker (5 s, then execnet interrupts it) once the worker reports its
    session finished; the station is released before that report, not in the cleanup after it."""
    write_lab(pytester.path, 1)
    pytester.makeconftest("""
        import pytest
        from hil.lab.lease import FileLeases

        @pytest.hookimpl(hookwrapper=True)  # as xdist's worker reports "finished": after every other implementation
        def pytest_sessionfinish(session):
            yield
            if hasattr(session.config, "workerinput"):
                holder = FileLeases(session.config.rootpath / "state").holder("emu-1")
                (session.config.rootpath / "held.txt").write_text(str(holder))
    """)
    pytester.makepyfile(test_r="""
        def test_version(farm_station):
            with farm_station.client() as p:
                assert p.version() == "1.0.0"
    """)
    run(pytester, "-n", "1").assert_outcomes(passed=1)
    assert (pytester.path / "held.txt").read_text() == "None"
