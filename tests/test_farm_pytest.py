"""The farm inside pytest, on emulated stations: one station per worker with result labels, a station that
loses power mid-test quarantined and the test re-run on another, a lost lease making the rest broken."""

import json
import textwrap
from pathlib import Path

import pytest

from hil.report.allure import read_results

ROOT = Path(__file__).resolve().parents[1]

CONTROL = '''
import json, socket

def control(endpoint, **cmd):
    host, port = endpoint.split(":")[1:]
    with socket.create_connection((host, int(port)), timeout=5) as s:
        s.sendall((json.dumps(cmd) + "\\n").encode())
        return json.loads(s.makefile().readline())
'''


def write_lab(path: Path, stations: int) -> Path:
    text = (ROOT / "lab_config.yaml").read_text()
    for key, val in (("state_dir: .hil", f"state_dir: {path / 'state'}"),
                     ("profiles_dir: device_profiles", f"profiles_dir: {ROOT / 'device_profiles'}"),
                     ("path: .hil/keys", f"path: {path / 'keys'}")):
        text = text.replace(key, val)
    keep = [f"emu-{i}" for i in range(1, stations + 1)]
    lines = [ln for ln in text.splitlines() if not ln.strip().startswith("emu-") or ln.strip().split(":")[0] in keep]
    (path / "lab.yaml").write_text("\n".join(lines) + "\n")
    return path / "lab.yaml"


def run(pytester, *args):
    return pytester.runpytest_subprocess("-p", "hil.farm.pytest_farm", "--lab", str(pytester.path / "lab.yaml"),
                                         "--alluredir", str(pytester.path / "out"), "-p", "no:cacheprovider", *args)


def test_one_station_per_worker_and_labels(pytester):
    write_lab(pytester.path, 2)
    pytester.makepyfile(test_s="""
        import os, pytest
        @pytest.mark.parametrize("i", range(4))
        def test_version(farm_station, i):
            with farm_station.client() as p:
                assert p.version() == "1.0.0"
            print("WORKER", os.environ.get("PYTEST_XDIST_WORKER"), farm_station.name)
    """)
    r = run(pytester, "-n", "2", "--farm-firmware", "abc123")
    r.assert_outcomes(passed=4)
    res = read_results(pytester.path / "out")
    assert res.problems == [] and len(res.records) == 4
    assert {x.station for x in res.records} == {"emu-1", "emu-2"}
    assert all(x.firmware == "abc123" and x.labels["serial"].startswith("EMU-") and x.profile == "prime-emulated"
               for x in res.records)
    assert not (pytester.path / "state" / "quarantine.json").exists()


def test_station_that_vanishes_is_quarantined_and_test_rerun(pytester):
    write_lab(pytester.path, 2)
    pytester.makepyfile(test_v=CONTROL + textwrap.dedent("""
        def test_power_cut(farm_station):
            if farm_station.name == "emu-1":
                control(farm_station.control, cmd="power_cut")
            with farm_station.client() as p:
                assert p.version() == "1.0.0"

        def test_after(farm_station):
            assert farm_station.name == "emu-2"
    """))
    r = run(pytester, "-n", "1", "--farm-events", str(pytester.path / "events.jsonl"))
    r.assert_outcomes(passed=2)
    assert "1 rerun" in r.stdout.str()
    q = json.loads((pytester.path / "state" / "quarantine.json").read_text())
    assert list(q) == ["emu-1"] and "health check failed: link:" in q["emu-1"]["reason"]
    attempts = read_results(pytester.path / "out").by_test()["test_v::test_power_cut"]
    assert [(a.station, a.attempt, a.status) for a in attempts] == [("emu-1", 1, "broken"), ("emu-2", 2, "passed")]
    assert attempts[0].labels.get("retried") == "true" and "retried" not in attempts[1].labels
    events = [json.loads(line) for line in (pytester.path / "events.jsonl").read_text().splitlines()]
    assert [(e["nodeid"], e["attempt"], e["retried"]) for e in events if e["event"] == "finished"][:2] == [
        ("test_v.py::test_power_cut", 1, True), ("test_v.py::test_power_cut", 2, False)]


def test_lost_lease_makes_the_rest_broken(pytester):
    write_lab(pytester.path, 1)
    pytester.makepyfile(test_l=f"""
        from hil.farm.lease import FileLeases

        def test_first(farm_station):
            FileLeases({str(pytester.path / 'state')!r}).clear(farm_station.name)

        def test_second(farm_station):
            pass

        def test_third(farm_station):
            pass
    """)
    r = run(pytester)
    r.assert_outcomes(passed=1, errors=2)
    assert "its lease was cleared" in r.stdout.str()
    statuses = {x.test_id: x.status for x in read_results(pytester.path / "out").records}
    assert statuses == {"test_l::test_first": "passed", "test_l::test_second": "broken", "test_l::test_third": "broken"}


def test_quarantined_station_is_skipped(pytester):
    write_lab(pytester.path, 2)
    from hil.farm.quarantine import Quarantine
    Quarantine(pytester.path / "state").add("emu-1", "camera dark")
    pytester.makepyfile(test_q="""
        def test_where(farm_station):
            assert farm_station.name == "emu-2"
    """)
    run(pytester).assert_outcomes(passed=1)
