"""The arithmetic of benchmarks/harness_timing.py (the breakdown farm.py and lab50.py print) and the fake debug
link of benchmarks/lab50.py, on made-up records: no run, no clock."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from harness_timing import CATEGORIES, breakdown  # noqa: E402
from lab50 import VERSION, reply  # noqa: E402

from hil.link import protocol  # noqa: E402
from hil.link.protocol import Cmd, Status  # noqa: E402


def record(start, stop, setup, call, teardown, lease=0.0, health=0.0):
    return {"start": start, "stop": stop, "setup": setup, "call": call, "teardown": teardown, "lease": lease,
            "health": health}


RECORDS = [
    {"worker": "controller", "collected": None, "tests": [], "cpu": 3.0},
    # t0 = 0, run ends at 20: collected at 4, first test 5..9 (setup 3 of which lease 2.5 incl. health 2),
    # second 10..12, then idle until the end
    {"worker": "gw0", "collected": 4.0, "cpu": 5.0, "cpu_collected": 1.5,
     "tests": [record(10.0, 12.0, setup=0.5, call=1.0, teardown=0.25),
               record(5.0, 9.0, setup=3.0, call=0.5, teardown=0.25, lease=2.5, health=2.0)]},
    {"worker": "gw1", "collected": 6.0, "cpu": 4.0, "tests": [record(6.0, 18.0, setup=1.0, call=10.0, teardown=0.5)]},
]


def test_breakdown_splits_each_stations_time_into_categories_that_add_up_to_stations_times_wall():
    run = breakdown(RECORDS, t0=0.0, t_end=20.0)
    secs = run["seconds"]
    assert set(secs) == set(CATEGORIES)
    assert sum(secs.values()) == pytest.approx(2 * 20.0)
    assert (run["stations"], run["tests"]) == (2, 3)
    assert (run["controller_cpu"], run["workers_cpu"]) == (3.0, 9.0)
    assert run["steady_cpu"] == pytest.approx(3.5)  # gw1 recorded no CPU at collection: no steady share known
    assert run["test_span"] == pytest.approx(4.0 + 2.0 + 12.0)
    assert secs["start-up+collection"] == pytest.approx(4.0 + 6.0)
    assert secs["health check"] == pytest.approx(2.0)
    assert secs["leasing"] == pytest.approx(0.5)  # the lease fixture's self-time less the health check inside it
    assert secs["device prep"] == pytest.approx(0.5 + 0.5 + 1.0)  # setup less lease and health
    assert secs["test bodies"] == pytest.approx(11.5)
    assert secs["teardown+evidence"] == pytest.approx(1.0)
    assert secs["reporting"] == pytest.approx(0.25 + 0.25 + 0.5)  # protocol span beyond its three phases
    assert secs["wait:first test"] == pytest.approx(1.0)
    assert secs["wait:between"] == pytest.approx(1.0)
    # after its last test gw0 idles until gw1's last test ends (12..18), then both wait for the session's end
    assert secs["wait:idle station"] == pytest.approx(6.0)
    assert secs["wait:session end"] == pytest.approx(2.0 + 2.0)


def test_a_worker_that_never_finished_collecting_counts_as_start_up_to_the_end():
    run = breakdown([{"worker": "gw0", "collected": None, "tests": []}], t0=0.0, t_end=7.0)
    assert run["seconds"]["start-up+collection"] == 7.0
    assert sum(run["seconds"].values()) == 7.0


def test_the_fake_link_answers_in_the_real_wire_format():
    answer = protocol.decode_frame(reply(protocol.request(Cmd.GET_VERSION)))
    assert answer.status is Status.OK and protocol.parse_version(answer.payload) == VERSION.decode()
    shot = protocol.decode_frame(reply(protocol.request(Cmd.SCREENSHOT)))
    assert protocol.decode_screenshot(shot.payload, "BGRA").size == (protocol.WIDTH, protocol.HEIGHT)
    assert protocol.decode_frame(reply(protocol.request(Cmd.REBOOT_SAMBA))).status is Status.ERR
    assert protocol.decode_frame(reply(b"\xee")).status is Status.ERR  # not a command: refused, not a crash


def test_device_prep_is_told_by_fixture_with_the_lease_fixtures_apart():
    rec = record(0.0, 3.0, setup=2.0, call=1.0, teardown=0.0, lease=0.5)
    rec["fixtures"] = {"prime": 1.25, "farm_station": 0.5, "display": 0.25}
    again = record(3.0, 4.0, setup=0.5, call=0.5, teardown=0.0)
    again["fixtures"] = {"prime": 0.5}
    run = breakdown([{"worker": "gw0", "collected": 0.0, "tests": [rec, again]}], t0=0.0, t_end=4.0)
    assert run["fixtures"] == {"prime": 1.75, "display": 0.25}
