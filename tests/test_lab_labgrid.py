"""A two-bench lab on labgrid, all on loopback: a labgrid coordinator, per bench a `hil bridge` with an
emulated Prime behind it and a labgrid exporter publishing it; places made by `hil lab sync`. The suites
run across both benches with `-n auto`, and the faults of issue 8 are injected: a place kicked by
another user, a bridge that stops answering, a worker that dies holding a lease, an exporter killed
with -9, a coordinator restart. Every wait is bounded and every process is stopped at teardown.

Where network namespaces can be made (root), each bench is a namespace with its own address, joined to
this host (the controller, running the coordinator and pytest) by a veth pair on a bridge; the emulated
Prime listens on the bench's own loopback, so only its bridge reaches it. Elsewhere every "host" is
127.0.0.1. labgrid's coordinator cannot bind port 0 and report it, so its port is a free one picked just
before it starts.
"""

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path

import pytest
import yaml
from filelock import FileLock
from typer.testing import CliRunner

from hil.lab import labgrid, place_flash, places
from hil.machine import scaled
from hil.lab.cli import app as farm_app
from hil.lab.lab_cli import lab_app
from hil.lab.lease import NoStationFree
from hil.report.allure import read_results

# One worker holds the module's lab (one coordinator, two benches) and runs its tests in order; the nightly
# test, the longest, is a group of its own: its worker brings up a lab of its own on another 10.x.0 net.
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("labgrid")]
ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
NETS_LOCK = Path(tempfile.gettempdir()) / "hil-labgrid-nets.lock"
BENCHES = {"bench1": "b1s1", "bench2": "b2s1"}


def free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def wait_for(what: str, ok, timeout: float, every: float = 0.3):
    timeout = scaled(timeout)  # seconds on an idle machine
    deadline = time.monotonic() + timeout
    while True:
        got = ok()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(every)


class Hosts:
    """The bench hosts: network namespaces `hil<pid>b<n>` at 10.<x>.0.1<n>, this host at 10.<x>.0.1 on a
    bridge; or all on 127.0.0.1 where `ip netns` is not available."""

    def __init__(self) -> None:
        pid = os.getpid() % 100000
        self.bridge = f"hbr{pid}"
        self.ns: dict[str, str] = {}
        self.controller = "127.0.0.1"
        self.bench = {b: "127.0.0.1" for b in BENCHES}
        try:
            self._ip("link", "add", self.bridge, "type", "bridge")
        except (OSError, subprocess.CalledProcessError):
            return  # no namespaces here: loopback
        try:
            with FileLock(NETS_LOCK):  # a net no other lab holds (two xdist workers, or checkouts, start one at once)
                used = subprocess.run(["ip", "-4", "addr"], capture_output=True, text=True, timeout=10).stdout
                self.net = f"10.{next((x for x in range(150, 250) if f'inet 10.{x}.0.' not in used), 150)}.0"
                self._ip("addr", "add", f"{self.net}.1/24", "dev", self.bridge)
            self._ip("link", "set", self.bridge, "up")
            for i, bench in enumerate(BENCHES, 1):
                ns, veth = f"hil{pid}b{i}", f"hv{pid}b{i}"
                self._ip("netns", "add", ns)
                self.ns[bench] = ns
                self._ip("link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns)
                self._ip("link", "set", veth, "master", self.bridge, "up")
                self._ip("-n", ns, "addr", "add", f"{self.net}.1{i}/24", "dev", "eth0")
                self._ip("-n", ns, "link", "set", "eth0", "up")
                self._ip("-n", ns, "link", "set", "lo", "up")
                self.bench[bench] = f"{self.net}.1{i}"
            self.controller = f"{self.net}.1"
        except BaseException:
            self.remove()
            raise

    @staticmethod
    def _ip(*args: str) -> None:
        subprocess.run(["ip", *args], check=True, capture_output=True, timeout=10)

    def on(self, bench: str | None, args: list[str]) -> list[str]:
        return ["ip", "netns", "exec", self.ns[bench], *args] if bench in self.ns else args

    def remove(self) -> None:
        for ns in self.ns.values():  # deleting a namespace deletes its end of the veth pair, and so the pair
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=10)
        subprocess.run(["ip", "link", "del", self.bridge], capture_output=True, timeout=10)


class Lab:
    def __init__(self, path: Path) -> None:
        self.dir = path
        self.hosts = Hosts()
        self.address = f"{self.hosts.controller}:{free_port(self.hosts.controller)}"
        self.url = f"labgrid://{self.address}"
        self.procs: dict[str, subprocess.Popen] = {}
        self.groups: list[int] = []  # every process group started, also of processes restarted since
        self.lab = path / "lab.yaml"
        self.lab.write_text(textwrap.dedent(f"""\
            name: two-benches
            state_dir: {path / 'state'}
            profiles_dir: {ROOT / 'device_profiles'}
            signoff_criteria: {ROOT / 'signoff_criteria.emulated.yaml'}
            signing_key: {{path: {path / 'key.pem'}, generate: true}}
            coordinator: {self.url}
            benches:
              bench1: {{host: {self.hosts.bench['bench1']}}}
              bench2: {{host: {self.hosts.bench['bench2']}}}
            stations:
              b1s1: {{profile: prime-emulated, bench: bench1, emulated: {{seed: 1}}}}
              b2s1: {{profile: prime-emulated, bench: bench2, emulated: {{seed: 2}}}}
              b2s2: {{profile: prime-emulated, bench: bench2, emulated: {{seed: 3, flavour: production}}}}
            """))
        self.env = {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}", "LG_COORDINATOR": self.address}

    def start(self, name: str, args: list[str], cwd: Path | None = None, bench: str | None = None) -> subprocess.Popen:
        """A process on the controller, or on `bench` (`ip netns exec` execs it: the pid is the process's)."""
        log = (self.dir / f"{name}.log").open("ab")
        self.procs[name] = subprocess.Popen(self.hosts.on(bench, args), cwd=cwd or self.dir, stdout=log, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL, env=self.env,
                                            start_new_session=True)  # stop() ends the exporters' ser2net with them
        log.close()
        self.groups.append(self.procs[name].pid)
        return self.procs[name]

    def start_coordinator(self) -> None:
        (self.dir / "coordinator").mkdir(exist_ok=True)
        self.start("coordinator", [str(BIN / "labgrid-coordinator"), "-l", self.address], self.dir / "coordinator")
        host, port = self.address.split(":")

        def listening():
            try:
                socket.create_connection((host, int(port)), timeout=1).close()
                return True
            except OSError:
                return False

        wait_for("the coordinator to listen", listening, 30)

    def exporter_yaml(self, bench: str) -> Path:
        return self.dir / f"exporter-{bench}.yaml"

    def start_exporter(self, bench: str) -> None:
        self.start(f"exporter-{bench}", [str(BIN / "labgrid-exporter"), "-c", self.address, "-n", bench,
                                         "--hostname", self.hosts.bench[bench], str(self.exporter_yaml(bench))],
                   bench=bench)

    def up(self) -> None:
        self.start_coordinator()
        for bench in BENCHES:
            self.start(f"bridge-{bench}", [sys.executable, "-m", "hil.lab.bridge", bench, "--lab", str(self.lab),
                                           "--exporter-config", str(self.exporter_yaml(bench))], bench=bench)
        for bench in BENCHES:
            wait_for(f"the bridge of {bench}", lambda b=bench: self.exporter_yaml(b).exists(), 120)
            self.start_exporter(bench)
        r = CliRunner().invoke(lab_app, ["sync", "--lab", str(self.lab)])
        assert r.exit_code == 0, r.output
        self.wait_resources()

    def coordinator(self) -> labgrid.Coordinator:
        return labgrid.Coordinator(self.address)

    def wait_resources(self, timeout: float = 40, coord: labgrid.Coordinator | None = None) -> None:
        """Both benches' resources are on the coordinator (restarting an exporter that exited, as
        systemd's Restart=always does on a bench host). `coord`: this process's open session, if any
        (labgrid's coordinator takes one session per process)."""
        def ready():
            for bench in BENCHES:
                if self.procs[f"exporter-{bench}"].poll() is not None:
                    self.start_exporter(bench)
            try:
                c = coord or self.coordinator()
            except labgrid.CoordinatorUnavailable:
                return False
            try:
                c.refresh()
                entries = [c.resources.get(b, {}).get(s, {}).get("debug") for b, s in BENCHES.items()]
                return all(e is not None and e.data.get("avail") for e in entries)
            finally:
                if coord is None:
                    c.close()

        wait_for("both exporters' resources", ready, timeout, every=1.0)

    def held(self) -> dict:
        c = self.coordinator()
        try:
            c.refresh()
            return {"acquired": {n: p.acquired for n, p in c.places.items() if p.acquired},
                    "reservations": [r.owner for r in c.reservations()],
                    "tags": {n: dict(p.tags) for n, p in c.places.items()},
                    "comments": {n: p.comment for n, p in c.places.items()}}
        finally:
            c.close()

    def stop(self) -> None:
        for group in reversed(self.groups):  # an exporter killed with -9 left its ser2net in its group
            for sig in (signal.SIGCONT, signal.SIGTERM):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(group, sig)
        for p in self.procs.values():
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(p.pid, signal.SIGKILL)
                p.wait()


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    lab = Lab(tmp_path_factory.mktemp("lab"))
    try:
        lab.up()
        yield lab
    finally:
        try:
            lab.stop()
        finally:
            lab.hosts.remove()


@pytest.fixture
def idle(lab):
    """Each test starts and ends with no lease and no reservation left."""
    assert lab.held()["acquired"] == {}
    yield lab
    state = wait_for("the lab to be idle", lambda: (s := lab.held())["acquired"] == {} and not s["reservations"]
                     and s, 10)
    assert state


def run(pytester, lab, *args, tags="board=prime&flavour=development"):
    return pytester.runpytest_subprocess("-p", "hil.pytest_farm", "--lab", f"{lab.url}?{tags}",
                                         "--alluredir", str(pytester.path / "out"), "-p", "no:cacheprovider",
                                         "-p", "no:randomly", *args, timeout=scaled(240))


def test_suites_run_across_both_benches_with_n_auto(pytester, idle, monkeypatch):
    monkeypatch.setenv("PATH", idle.env["PATH"])
    pytester.makepyfile(test_s="""
        import pytest
        from hil.link.protocol import HEIGHT, WIDTH

        @pytest.mark.parametrize("i", range(4))
        def test_through_the_bridge(farm_station, i):
            with farm_station.client() as p:
                assert p.version() == "1.0.0"
                assert p.screenshot().size == (WIDTH, HEIGHT)

        def test_camera_through_the_bridge(farm_station):
            from hil.vision.camera import Camera

            with Camera(farm_station.camera) as cam:
                assert cam.grab(10).ndim == 3
    """)
    r = run(pytester, idle, "-n", "auto")
    r.assert_outcomes(passed=5)
    assert "created: 2/2 workers" in r.stdout.str()
    res = read_results(pytester.path / "out")
    assert res.problems == [] and len(res.records) == 5
    assert {(x.labels["bench"], x.labels["place"]) for x in res.records} == {("bench1", "b1s1"), ("bench2", "b2s1")}
    serials = {"b1s1": "EMU-0101", "b2s1": "EMU-0201"}  # each bench's emulator has its own seed
    assert all(x.station == x.labels["place"] and x.labels["serial"] == serials[x.station] for x in res.records)


def test_a_place_kicked_by_another_user_is_broken_then_rerun_elsewhere(pytester, idle, monkeypatch):
    monkeypatch.setenv("PATH", idle.env["PATH"])
    monkeypatch.setenv("LG_COORDINATOR", idle.address)
    pytester.makepyfile(test_k="""
        import os, subprocess

        from hil.machine import scaled

        def test_first(farm_station):
            subprocess.run(["labgrid-client", "-p", farm_station.name, "release", "--kick"], check=True, timeout=scaled(60),
                           env={**os.environ, "LG_USERNAME": "operator"}, capture_output=True)

        def test_second(farm_station):
            with farm_station.client() as p:
                assert p.version() == "1.0.0"
    """)
    r = run(pytester, idle, "-n", "1")
    r.assert_outcomes(passed=2)
    assert "1 rerun" in r.stdout.str()
    first, second = read_results(pytester.path / "out").by_test()["test_k.py::test_second"]
    assert (first.status, second.status) == ("broken", "passed")
    assert first.station != second.station
    bench = first.labels["bench"]
    assert f"PlaceLost: bench {bench}, place {first.station}: taken away" in first.message
    assert "now acquired by nobody" in first.message


def test_a_bridge_that_stops_answering_quarantines_its_place(pytester, idle, monkeypatch):
    pids = {BENCHES[b]: idle.procs[f"bridge-{b}"].pid for b in BENCHES}
    monkeypatch.setenv("BRIDGE_PIDS", json.dumps(pids))
    monkeypatch.setenv("MARK", str(pytester.path / "stopped"))
    pytester.makepyfile(test_h="""
        import json, os, signal

        def test_device(farm_station):
            if not os.path.exists(os.environ["MARK"]):  # first attempt: the bench's bridge hangs
                open(os.environ["MARK"], "w").write(farm_station.name)
                os.kill(json.loads(os.environ["BRIDGE_PIDS"])[farm_station.name], signal.SIGSTOP)
            with farm_station.client() as p:
                assert p.version() == "1.0.0"
    """)
    try:
        r = run(pytester, idle, "-n", "1")
    finally:
        for pid in pids.values():
            os.kill(pid, signal.SIGCONT)
    hung = (pytester.path / "stopped").read_text()
    r.assert_outcomes(passed=1)
    first, second = read_results(pytester.path / "out").by_test()["test_h.py::test_device"]
    assert (first.station, first.status, second.status) == (hung, "broken", "passed") and second.station != hung
    assert "did not answer the lease handshake" in first.message
    state = idle.held()
    assert "health" not in state["tags"][hung]
    assert state["comments"][hung].startswith("quarantined: ")
    assert f"health check failed on bench {first.labels['bench']}" in state["comments"][hung]
    # the quarantined place is out of `-n auto`, and readmit brings it back
    assert places.auto_workers(f"{idle.url}?board=prime&flavour=development") == 1
    out = CliRunner().invoke(farm_app, ["readmit", hung, "--lab", idle.url])  # = hil lab readmit
    assert out.exit_code == 0 and f"{hung}: readmitted (was: quarantined: " in out.output
    assert idle.held()["tags"][hung]["health"] == "ok"


def test_a_worker_that_dies_holding_a_lease_is_reaped(pytester, idle):
    code = textwrap.dedent(f"""
        import os
        from hil.lab import labgrid, places
        os.environ["LG_USERNAME"] = places.identity("gw0")
        lease = places.PlaceLease(labgrid.Coordinator({idle.address!r}), {{"bench": "bench1", "health": "ok"}}, 30)
        print(lease.place, flush=True)
        os.kill(os.getpid(), 9)
    """)
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=scaled(60), cwd=ROOT)
    assert p.returncode == -9 and p.stdout.strip() == "b1s1", p.stderr
    state = idle.held()
    assert state["acquired"]["b1s1"].split("/")[1].startswith("hil-gw0-")  # left behind by the dead worker
    c = idle.coordinator()
    try:
        with pytest.raises(NoStationFree, match="no place with tags bench=bench1 health=ok free within 1 s"):
            places.PlaceLease(c, {"bench": "bench1", "health": "ok"}, 1)
    finally:
        c.close()
    pytester.makepyfile(test_n="def test_n(farm_station):\n    pass\n")
    r = run(pytester, idle, "-n", "auto")
    r.assert_outcomes(passed=1)
    assert "created: 1/1 worker" in r.stdout.str()  # -n auto = free places (one left), not the CPU count
    out = CliRunner().invoke(lab_app, ["reap", "--lab", str(idle.lab)])
    assert out.exit_code == 0, out.output
    assert "b1s1: released (held by" in out.output and "whose process is gone" in out.output
    assert "cancelled (owner" in out.output
    assert idle.held()["acquired"] == {}
    again = CliRunner().invoke(lab_app, ["reap", "--lab", str(idle.lab)])
    assert again.output.strip() == "nothing to reap"


def test_an_exporter_killed_with_9_orphans_the_place(idle):
    c = idle.coordinator()
    try:
        lease = places.PlaceLease(c, {"station": "b2s1", "health": "ok"}, 10)
        try:
            lease.check()
            idle.procs["exporter-bench2"].kill()
            idle.procs["exporter-bench2"].wait(10)

            def orphaned():
                try:
                    lease.check()
                except labgrid.PlaceLost as e:
                    return str(e)
                return None

            msg = wait_for("the guard to notice", orphaned, 20)
            assert msg.startswith("bench bench2, place b2s1: resource b2s1/") and "orphaned" in msg
            idle.wait_resources(coord=c)  # the bench's systemd restarts the exporter; the place is whole again
            wait_for("the place to recover", lambda: orphaned() is None, 20)
        finally:
            lease.release()
    finally:
        c.close()


def test_nightly_leases_the_benches_and_reports_on_the_controller(tmp_path, idle, monkeypatch):
    """`hil nightly` with a coordinator in the lab file: the places flashed at once, each under its own labgrid
    lease (a stand-in flasher, as in test_nightly.py), the suites across both benches, reports on the
    controller; a place a worker quarantines during the suites is among the summary's broken stations, and
    in run.json before the sign-off reads it: the criteria forbid broken stations, so it is a no-go (issue 13)."""
    import hil.lab.nightly as job
    import typer
    from farm_helpers import signed_build, stand_in_suites

    from hil.lab.cli import nightly
    from hil.report import signoff

    lab = tmp_path / "nightly.yaml"
    lab.write_text("".join(x for x in idle.lab.read_text().splitlines(keepends=True) if "b2s2" not in x)
                   + textwrap.dedent(f"""\
        reports_dir: {tmp_path / 'reports'}
        suites: [{tmp_path / 'suites'}]
        samba_applet: {ROOT / 'firmware' / 'emulated' / 'sdmmc-applet.bin'}
        """))
    flashed = stand_in_suites(tmp_path)
    flashed_over = []
    together = threading.Barrier(2, timeout=scaled(30))  # both places in the flasher at once, or the nightly fails
    # (b2s2, the production place, is not in this lab file)

    def standin(lab_cfg, build, flavour="production"):
        def flash(station, progress):
            together.wait()
            with station.client() as p:  # through the bench's bridge, under this place's own lease
                assert p.version() == "1.0.0"
            flashed_over.append(station.debug)
            (flashed / station.name).write_bytes(build.read_bytes())
            progress(0.5)
            return True
        return flash

    monkeypatch.setattr(job, "samba_flasher", standin)
    suites = job.run_suites

    def suites_then_a_worker_quarantines(*args, **kw):
        code = suites(*args, **kw)
        coord = idle.coordinator()
        try:
            places.quarantine(coord, "b2s1", "health check failed on bench bench2: stand-in")
        finally:
            coord.close()
        return code

    monkeypatch.setattr(job, "run_suites", suites_then_a_worker_quarantines)
    monkeypatch.setenv("PATH", idle.env["PATH"])
    build = signed_build(tmp_path / "good.bin", b'{"keyos": "emulated", "defects": []}')
    app = typer.Typer()
    app.command()(nightly)
    try:
        r = CliRunner().invoke(app, ["--firmware", str(build), "--lab", str(lab), "--timeout", str(scaled(300)),
                                     "--flavour", "development"])
    finally:
        coord = idle.coordinator()
        try:
            places.readmit(coord, "b2s1")
        finally:
            coord.close()
    assert r.exit_code == 1, r.output
    assert "sign-off: NO-GO" in r.output and "broken station(s) b2s1: quarantined: health check failed" in r.output
    night = sorted((tmp_path / "reports" / "nightly").iterdir())[-1]
    meta = json.loads((night / "run.json").read_text())
    assert meta["finished"] and meta["flashed"] == {"b1s1": "flashed", "b2s1": "flashed"}
    assert list(meta["broken_stations"]) == ["b2s1"]
    assert "health check failed on bench bench2: stand-in" in meta["broken_stations"]["b2s1"]
    assert len(flashed_over) == 2 and {d.split(":")[1] for d in flashed_over} == set(idle.hosts.bench.values())
    for f in ("summary.html", "diff.txt", "diff.json", "signoff/signoff.pdf"):
        assert (night / f).is_file(), f
    key = signoff.load_public(idle.dir / "key.pem")
    assert signoff.verify(night / "signoff", key)["decision"] == "no-go"
    records = read_results(night / "allure-results").records
    assert len(records) == 2 and all(x.status == "passed" for x in records)
    assert all(x.labels["place"] == x.station and x.labels["bench"] in BENCHES for x in records)
    assert all(x.firmware != "?" and not x.firmware.startswith("version:") for x in records)
    # the places say what they run now, and `hil lab sync` from the lab file keeps that
    tag = place_flash.build_tag(meta["firmware"]["hash"])
    out = CliRunner().invoke(lab_app, ["sync", "--lab", str(idle.lab)])
    assert out.exit_code == 0, out.output
    tags = idle.held()["tags"]
    assert {n: (tags[n]["flavour"], tags[n].get("build")) for n in ("b1s1", "b2s1")} == \
        {"b1s1": ("development", tag), "b2s1": ("development", tag)}

    # `--lab labgrid://HOST:PORT?tags` with a lab file of no bench stations: the places come from the URL
    from types import SimpleNamespace

    from hil.lab.config import load_lab

    plain = load_lab(lab).model_copy(update={"stations": {}, "coordinator": f"{idle.url}?bench=bench2"})
    run = SimpleNamespace(meta={"broken_stations": {}, "firmware": {"version": "1.0.0"}})
    together = threading.Barrier(1)
    plain = plain.model_copy(update={"coordinator": f"{idle.url}?station=b2s1"})
    assert list(place_flash.flash_places(plain, standin(plain, build), run, lambda n, f: None, "development", tag)) == \
        ["b2s1"]
    assert run.meta["flashed"] == {"b2s1": "flashed"}


def test_a_coordinator_restart_loses_the_lease_then_the_lab_recovers(idle):
    c = idle.coordinator()
    try:
        lease = places.PlaceLease(c, {"bench": "bench1", "health": "ok"}, 10)
        idle.procs["coordinator"].terminate()
        idle.procs["coordinator"].wait(15)
        idle.start_coordinator()
        with pytest.raises(labgrid.PlaceLost, match="bench bench1, place b1s1: lost the labgrid coordinator"):
            lease.check()
        lease.release()  # the coordinator is a new one: nothing to release, no error
    finally:
        c.close()
    state = idle.held()
    assert state["acquired"] == {} and state["tags"]["b1s1"]["health"] == "ok"  # places persist, leases do not
    idle.wait_resources(60)
    c = idle.coordinator()
    try:
        lease = places.PlaceLease(c, {"bench": "bench1", "health": "ok"}, 20)
        lease.check()
        lease.release()
    finally:
        c.close()


def test_the_production_lane_runs_over_labgrid(pytester, idle, monkeypatch):
    """The production place (b2s2): locked, its debug link closed while locked. The smoke suite unlocks it
    with the bench's stylus robot and power relay, both through the bench's bridge under the worker's
    lease, and the health check at lease time activates the Prime's card through the bench's NFC reader."""
    monkeypatch.setenv("PATH", idle.env["PATH"])
    r = run(pytester, idle, str(ROOT / "suites" / "test_smoke.py"), "-n", "auto", tags="flavour=production")
    assert "created: 1/1 worker" in r.stdout.str()
    outcomes = r.parseoutcomes()
    assert outcomes.get("passed", 0) >= 5 and not outcomes.get("failed") and not outcomes.get("error"), outcomes
    res = read_results(pytester.path / "out")
    assert res.problems == [] and {(x.labels["bench"], x.station) for x in res.records} == {("bench2", "b2s2")}
    unlock = [x for x in res.records if x.name.startswith("test_unlock_with_the_pin_by_taps")]
    assert [x.status for x in unlock] == ["passed"]


def test_a_rejected_pin_blocks_the_unit_on_the_coordinator_for_every_host(pytester, idle, monkeypatch):
    """A wrong --pin on the production place b2s2 (typed by the bench's robot where its camera shows the
    keys): one attempt is spent, the run is broken, and the place is tagged pin=blocked and quarantined
    with the reason on the coordinator, where a worker in another process (as on another host) reads the
    block; `hil lab sync` keeps it and only readmit clears it. (b2s2's unit keeps its one failed attempt:
    no later test here uses it.)"""
    monkeypatch.setenv("PATH", idle.env["PATH"])
    pytester.makepyfile(test_p="""
        def test_on_the_unlocked_unit(prime):
            assert prime.version()
    """)
    r = run(pytester, idle, "-n", "1", "--pin", "999999", "--farm-lease-timeout", "5", tags="flavour=production")
    records = read_results(pytester.path / "out").records
    assert records and {x.status for x in records} == {"broken"}, r.stdout.str()[-3000:]
    first = records[0]
    assert first.station == "b2s2" and "one attempt used: 10 remaining before, 9 remaining after" in first.message
    state = idle.held()
    assert state["tags"]["b2s2"].get("pin") == "blocked" and "health" not in state["tags"]["b2s2"], state
    assert state["comments"]["b2s2"].startswith(f"{labgrid.QUARANTINED}PIN: ") and "rejected" in state["comments"]["b2s2"]

    other_host = textwrap.dedent(f"""\
        from hil.lab.labgrid import Coordinator
        from hil.lab.pin_guard import PlacePinGuard
        c = Coordinator({idle.address!r})
        try:
            print(PlacePinGuard(c, "b2s2").blocked())
        finally:
            c.close()
        """)
    seen = subprocess.run([sys.executable, "-c", other_host], capture_output=True, text=True, env=idle.env,
                          timeout=scaled(60))
    assert "rejected the test PIN" in seen.stdout, seen.stdout + seen.stderr
    assert CliRunner().invoke(lab_app, ["sync", "--lab", str(idle.lab)]).exit_code == 0
    assert idle.held()["tags"]["b2s2"].get("pin") == "blocked"  # the lab file cannot unblock it
    assert CliRunner().invoke(lab_app, ["readmit", "b2s2", "--lab", str(idle.lab)]).exit_code == 0
    tags = idle.held()["tags"]["b2s2"]
    assert "pin" not in tags and tags.get("health") == "ok"


@pytest.mark.xdist_group("nightly")  # with the module's: a group of its own, so it runs beside the others
@pytest.mark.timeout(900)  # its lab's bring-up, two flashes over ser2net and a suite: 5 min in CI, 12 at load 14
def test_hil_nightly_on_a_labgrid_url_reports_like_a_local_run(tmp_path, idle, monkeypatch):
    """`hil nightly --lab labgrid://HOST:PORT?bench=bench1`: the lab file supplies reports, suites, keys and
    criteria (here a stand-in for the repo's), the URL the places. b1s1 runs a development build; the
    nightly writes the production build through the bench's ser2net (the whole image over RFC2217),
    re-tags the place, and the lockdown suite runs on it by robot and relay. Then the reports are the
    local run's: results naming bench and place, history, diff, summary and a signed, verifiable sign-off.
    Last in the module: b1s1 stays on production."""
    import typer

    import hil.lab.config as config
    from hil.lab.cli import nightly
    from hil.report import signoff

    from farm_helpers import criteria_requiring

    lockdown = [c for claim in yaml.safe_load((ROOT / "suites" / "claims.yaml").read_text())["claims"]
                for cell in claim["cells"].values() for c in cell.get("checks", ()) if "/test_lockdown.py::" in c]
    criteria = criteria_requiring(tmp_path / "criteria.yaml", sorted(set(lockdown)))  # the suite this lab runs
    lab = tmp_path / "lab_config.yaml"
    lab.write_text(textwrap.dedent(f"""\
        name: two-benches
        state_dir: {tmp_path / 'state'}
        reports_dir: {tmp_path / 'reports'}
        profiles_dir: {ROOT / 'device_profiles'}
        suites: [{ROOT / 'suites' / 'security' / 'test_lockdown.py'}]
        signoff_criteria: {criteria}
        signing_key: {{path: {tmp_path / 'key.pem'}, generate: true}}
        firmware_keys: test
        samba_applet: {ROOT / 'firmware' / 'emulated' / 'sdmmc-applet.bin'}
        stations:                     # local stations, as in the repo's lab file; a labgrid URL leaves them out
          emu-1: {{profile: prime-rev-b, emulated: {{seed: 9}}}}
        """))
    monkeypatch.setattr(config, "DEFAULT_LAB", lab)
    monkeypatch.setenv("PATH", idle.env["PATH"])
    app = typer.Typer()
    app.command()(nightly)
    r = CliRunner().invoke(app, ["--lab", f"{idle.url}?bench=bench1", "--timeout", str(scaled(900))])
    assert (tmp_path / "reports" / "nightly").is_dir(), r.output
    night = sorted((tmp_path / "reports" / "nightly").iterdir())[-1]
    meta = json.loads((night / "run.json").read_text())
    log = night / "pytest.log"
    assert r.exit_code == 0, r.output + (log.read_text()[-3000:] if log.exists() else "(pytest never started)")
    assert "sign-off: GO" in r.output
    assert meta["flashed"] == {"b1s1": "flashed"} and meta["broken_stations"] == {}
    assert meta["profiles"] == ["prime-emulated"]
    tags = idle.held()["tags"]["b1s1"]
    assert (tags["flavour"], tags["build"]) == ("production", place_flash.build_tag(meta["firmware"]["hash"]))
    for f in ("summary.html", "diff.txt", "diff.json", "signoff/signoff.pdf"):
        assert (night / f).is_file(), f
    assert signoff.verify(night / "signoff", signoff.load_public(tmp_path / "key.pem"))["decision"] == "go"
    records = read_results(night / "allure-results").records
    assert records and all(x.labels["place"] == x.station == "b1s1" and x.labels["bench"] == "bench1"
                           for x in records)
    assert {x.status for x in records} <= {"passed", "skipped"} and "passed" in {x.status for x in records}
    assert (tmp_path / "reports" / "history.jsonl").read_text().count("\n") == 1
