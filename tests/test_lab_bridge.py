"""`hil bridge` in-process against an emulated Prime, and the lab's places as code, without labgrid
processes: the lease handshake, one client at a time, a client dropped when its lease ends, frames
relayed unchanged; tags, the exporter YAML and the labgrid:// URL."""

import socket
import time
from types import SimpleNamespace

import pytest
import yaml

from hil.lab.bridge import StationBridge
from hil.link.bridge import BridgeTransport, HELLO, recv_frame
from hil.emulator.build import Build
from hil.emulator.launcher import start_device
from hil.errors import ConfigError
from hil.lab import exporter, labgrid, places
from hil.lab.config import LabConfig
from hil.lab.station import Station
from hil.link import protocol
from hil.link.client import PrimeClient
from hil.link.resolve import transport_for
from hil.profile import profile_named, PROFILES_DIR
from hil.link.transport import LinkClosed


@pytest.fixture(scope="module")
def device():
    d = start_device(1, 0, Build(flavour="development"), boot_seconds=0)
    yield d
    d.stop()


class Lease:
    """Stands in for the coordinator: which token holds the place right now."""

    def __init__(self, token="GOODTOKEN1"):
        self.token = token

    def __call__(self, place, token):
        if self.token is None:
            return f"place {place} is not acquired; reserve and acquire it first"
        return None if token == self.token else f"place {place} is held by x/y under another lease token"


@pytest.fixture
def bridge(device):
    lease = Lease()
    profile = profile_named("prime-emulated")
    b = StationBridge("b1s1", lambda: transport_for(device.endpoints["debug"], profile), lease, recheck=0.3).start()
    b.lease = lease
    yield b
    b.stop()


def client(bridge, token, timeout=5.0):
    profile = profile_named("prime-emulated")
    return PrimeClient(BridgeTransport("127.0.0.1", bridge.port, token), pixel_order=profile.screenshot_byte_order,
                       home_button=profile.touch.home_button.centre, timeout=timeout)


def test_lease_holder_gets_the_device_and_frames_pass_unchanged(bridge):
    with client(bridge, "GOODTOKEN1") as p:
        assert p.version() == "1.0.0"
        shot = p.screenshot()  # a 1.5 MB frame relayed whole
        assert shot.size == (protocol.WIDTH, protocol.HEIGHT)
    with client(bridge, "GOODTOKEN1") as p:  # the next client right after the last one left
        assert p.version() == "1.0.0"


@pytest.mark.parametrize("token, reason", [("WRONG", "under another lease token"), (None, "no lease token; set LG_TOKEN")])
def test_a_client_without_the_lease_is_refused(bridge, token, reason):
    with pytest.raises(LinkClosed, match=reason), client(bridge, token):
        pass


def test_a_client_that_skips_the_handshake_is_refused(bridge):
    with socket.create_connection(("127.0.0.1", bridge.port), timeout=5) as s:
        s.sendall(protocol.stream_frame(bytes([protocol.Cmd.GET_VERSION])))
        assert recv_frame(s).startswith(b"DENIED expected `HIL-LEASE <token>` first")
        assert s.recv(1) == b""


def test_one_client_at_a_time(bridge):
    with client(bridge, "GOODTOKEN1") as p:
        p.version()
        with pytest.raises(LinkClosed, match="busy: another client holds the link"), client(bridge, "GOODTOKEN1"):
            pass
        assert p.version() == "1.0.0"


def test_the_client_is_dropped_when_the_lease_ends(bridge):
    with client(bridge, "GOODTOKEN1") as p:
        assert p.version() == "1.0.0"
        bridge.lease.token = None  # kicked by another user
        time.sleep(1.0)
        with pytest.raises(LinkClosed, match="closed the connection"):
            p.version()
    with pytest.raises(LinkClosed, match="is not acquired"), client(bridge, "GOODTOKEN1"):
        pass


def test_the_endpoint_stays_when_the_unit_re_enumerates(device):
    """The bridge finds the unit by USB port path for each client, so a reboot changes nothing outside."""
    profile = profile_named("prime-emulated")
    local = Station.from_endpoints("b1s1", profile, device.endpoints)
    port = device.endpoints["usb_port"]  # the emulated host's own port path (another test's unit may hold 1-1)
    b = StationBridge("b1s1", lambda: transport_for(f"usb:{port}", profile, local), Lease()).start()
    try:
        with client(b, "GOODTOKEN1") as p:
            assert p.version() == "1.0.0"
            device.prime.reboot()
            with pytest.raises(LinkClosed):  # never hidden: the client's link dies with the unit's
                p.version()
        deadline = time.monotonic() + 10
        while True:
            try:
                with client(b, "GOODTOKEN1") as p:
                    assert p.version() == "1.0.0"
                break
            except LinkClosed:
                assert time.monotonic() < deadline, "the unit did not come back behind the same endpoint"
                time.sleep(0.3)
    finally:
        b.stop()


def test_the_camera_is_relayed_to_lease_holders_only(device):
    import urllib.error
    import urllib.request

    from hil.lab.bridge import CameraRelay
    from hil.vision.camera import Camera

    lease = Lease()
    relay = CameraRelay("b1s1", device.endpoints["camera"], lease, recheck=0.3).start()
    try:
        assert relay.url.endswith("/stream.mjpg")
        with Camera(device.endpoints["camera"], open_timeout=10) as cam:
            direct = cam.grab(10)
        with Camera(f"{relay.url}?lease=GOODTOKEN1", open_timeout=10) as cam:
            assert cam.grab(10).shape == direct.shape
        for query, reason in (("?lease=WRONG", "under another lease token"), ("", "no lease token")):
            with pytest.raises(urllib.error.HTTPError) as e:
                urllib.request.urlopen(relay.url + query, timeout=5)
            assert e.value.code == 403 and reason in e.value.reason
        with urllib.request.urlopen(f"{relay.url}?lease=GOODTOKEN1", timeout=5) as stream:
            assert stream.headers["Content-Type"].startswith("multipart/x-mixed-replace")
            stream.read(1000)
            lease.token = None  # kicked: the stream being watched ends
            deadline = time.monotonic() + 10
            while stream.read1(65536):
                assert time.monotonic() < deadline, "the relay kept streaming after the lease ended"
    finally:
        relay.stop()


def test_a_hung_bridge_is_a_broken_link_not_a_wait_forever():
    with socket.create_server(("127.0.0.1", 0)) as silent:  # accepts, never answers
        t0 = time.monotonic()
        tr = BridgeTransport("127.0.0.1", silent.getsockname()[1], "T")
        tr.connect_timeout = 1.0
        with pytest.raises(LinkClosed, match="did not answer the lease handshake within 1 s"):
            tr.open()
        assert time.monotonic() - t0 < 5
    assert HELLO == b"HIL-LEASE "


# ------------------------------------------------------------------------------ robot, relay and NFC on a bench


@pytest.fixture
def bench(monkeypatch):
    """A production unit whose robot, relay and NFC reader are served by lease-checked bench endpoints."""
    from hil.lab.bridge import NfcService, SerialBridge
    from hil.stimuli.relay import PowerButtonRelay
    from hil.stimuli.robot import StylusRobot

    d = start_device(1, 3, Build(flavour="production"), boot_seconds=0)
    d.prime.power_on()
    lease = Lease()
    served = {"robot": SerialBridge("b1s1", "robot", d.endpoints["robot"], StylusRobot.baudrate, lease, recheck=0.3),
              "relay": SerialBridge("b1s1", "relay", d.endpoints["relay"], PowerButtonRelay.baudrate, lease,
                                    recheck=0.3),
              "nfc": NfcService("b1s1", d.endpoints["nfc"], lease, recheck=0.3)}
    for endpoint in served.values():
        endpoint.start()
    monkeypatch.setenv("LG_TOKEN", "GOODTOKEN1")
    d.lease, d.bench = lease, {k: e.device for k, e in served.items()}
    yield d
    for endpoint in served.values():
        endpoint.stop()
    d.stop()


def bench_touch(d):
    from hil.stimuli.relay import PowerButtonRelay
    from hil.stimuli.robot import StylusRobot
    from hil.stimuli.touch import RobotTouch
    from tests.test_robot import bench_calibration

    profile = profile_named("prime-emulated")
    robot = StylusRobot.open(d.bench["robot"], bench_calibration())
    relay = PowerButtonRelay.open(d.bench["relay"])
    t = RobotTouch(robot, relay, profile.touch.home_button.centre)
    keys = d.prime.ui.lock_screen.keys  # the emulator's own layout for its seed
    t.pin_pad = SimpleNamespace(keys=keys, enter=keys["enter"])
    return t, robot, relay


def test_robot_relay_and_nfc_work_through_the_bench(bench):
    """The production lane's instruments on another host: the robot types the PIN, a WebAuthn registration
    runs over the bench's reader and is confirmed by a robot tap, a tag is presented, the relay locks."""
    from fido_helpers import register_over_nfc

    from hil.stimuli.nfc import ndef_message, reader
    from tests.test_nfc_e2e import button, robot_unlock, wait_modal

    assert all(url.startswith("bridge:127.0.0.1:") for url in bench.bench.values())
    touch, robot, relay = bench_touch(bench)
    with robot, relay:
        assert bench.prime.is_locked()
        robot_unlock(touch)
        assert not bench.prime.is_locked()

        def confirm():
            wait_modal(bench.prime, "Confirm Registration")
            touch.tap(*button(bench.prime, "Confirm"))

        server, state, out = register_over_nfc(bench.bench["nfc"], confirm)
        assert "error" not in out, out.get("error")
        assert server.register_complete(state, out["response"]).is_user_present()
        result = reader(bench.bench["nfc"]).present_tag(ndef_message(text="hello from bench1"), timeout=10)
        assert result.read and result.records[0].text == "hello from bench1"
        wait_modal(bench.prime, "NFC Tag")
        touch.power()
        assert bench.prime.is_locked()


def test_bench_instruments_refuse_a_client_without_the_lease(bench, monkeypatch):
    from hil.stimuli.nfc import NfcError, reader
    from hil.stimuli.relay import PowerButtonRelay, RelayError
    from hil.stimuli.robot import RobotError, StylusRobot
    from tests.test_robot import bench_calibration

    monkeypatch.setenv("LG_TOKEN", "WRONG")
    refused = "bridge refused the link: place b1s1 is held by x/y under another lease token"
    with pytest.raises(RobotError, match=f"cannot open stylus robot at {bench.bench['robot']}: {refused}"):
        StylusRobot.open(bench.bench["robot"], bench_calibration())
    with pytest.raises(RelayError, match=f"cannot open power relay board at {bench.bench['relay']}: {refused}"):
        PowerButtonRelay.open(bench.bench["relay"])
    with pytest.raises(NfcError, match=f"NFC reader at {bench.bench['nfc']}: {refused}"):
        reader(bench.bench["nfc"]).connect(5)
    monkeypatch.delenv("LG_TOKEN")
    with pytest.raises(RelayError, match="no lease token; set LG_TOKEN"):
        PowerButtonRelay.open(bench.bench["relay"])


def test_an_instrument_is_cut_off_when_the_lease_ends(bench):
    from hil.stimuli.nfc import NfcFieldLost, reader
    from hil.stimuli.relay import PowerButtonRelay, RelayError

    with PowerButtonRelay.open(bench.bench["relay"]) as relay:
        assert not relay.closed()
        session = reader(bench.bench["nfc"]).connect(10)
        bench.lease.token = None  # kicked by another user
        time.sleep(1.0)
        with pytest.raises(RelayError, match="lost|did not answer"):
            relay.closed()
        with pytest.raises(NfcFieldLost, match="closed the link|lost during apdu"):
            session.apdu(bytes.fromhex("00A4040008A0000006472F0001"))
        session.close()


def test_a_field_lost_on_the_bench_is_a_field_lost_here(bench):
    from hil.emulator import control
    from hil.stimuli.ctap_nfc import CtapNfcDevice
    from hil.stimuli.nfc import NfcFieldLost, reader

    control.apply(bench.prime, {"cmd": "nfc", "field_loss": True})
    with pytest.raises(NfcFieldLost, match="NFC field lost"):
        CtapNfcDevice(reader(bench.bench["nfc"]).connect(timeout=10))


@pytest.mark.parametrize("answer, error", [
    (b"\xff not json", "sent garbage \\(UnicodeDecodeError"),
    (b'{"ok": {"identifier": 7}}', "sent garbage for connect"),
    (b'{"error": "SystemExit", "message": "x"}', "sent garbage \\(KeyError"),
    (None, "did not answer connect within"),
])
def test_garbage_from_a_bench_nfc_service_is_one_clear_error(monkeypatch, answer, error):
    """The bench is untrusted input: a bad answer, or none, is an NfcError naming the reader, never a hang."""
    import threading

    from hil.stimuli.nfc_bridge import RemoteNfcReader
    from hil.stimuli.nfc import NfcError

    monkeypatch.setenv("LG_TOKEN", "T")
    with socket.create_server(("127.0.0.1", 0)) as server:
        def serve():
            conn, _ = server.accept()
            with conn:
                recv_frame(conn)
                conn.sendall(protocol.stream_frame(b"OK b1s1"))
                recv_frame(conn)
                if answer is not None:
                    conn.sendall(protocol.stream_frame(answer))
                time.sleep(3)

        t = threading.Thread(target=serve, daemon=True)
        t.start()
        r = RemoteNfcReader(f"bridge:127.0.0.1:{server.getsockname()[1]}")
        r.margin = 0.5
        t0 = time.monotonic()
        with pytest.raises(NfcError, match=f"NFC reader at bridge:127.0.0.1:\\d+ .*{error}"):
            r.connect(timeout=0.5)
        assert time.monotonic() - t0 < 3


# ------------------------------------------------------------------------------ places as code


def lab(tmp_path, **stations) -> LabConfig:
    return LabConfig.model_validate({
        "signing_key": {"path": str(tmp_path / "k.pem")}, "source": tmp_path / "lab.yaml",
        "profiles_dir": str(PROFILES_DIR),
        "benches": {"bench1": {"host": "10.77.0.11"}, "bench2": {"host": "10.77.0.12"}},
        "stations": stations or {
            "b1s0": {"profile": "prime-rev-b", "bench": "bench1", "debug": "usb:1-2.3", "usb_port": "1-2.3",
                     "samba": "/dev/ttyACM0", "camera": "http://10.77.0.11:8080/stream.mjpg", "nfc": "usb:04e6:5591",
                     "robot": "/dev/serial/by-path/robot", "relay": "/dev/serial/by-path/relay", "cd_relay": 2,
                     "robot_calibration": {"points": [[[0, 0], [10, 20]], [[480, 0], [60, 20]], [[0, 800], [10, 100]]]},
                     "bridge_port": 7701, "tags": ["rev=b"]},
            "b2s0": {"profile": "prime-emulated", "bench": "bench2", "emulated": {"seed": 2}, "bridge_port": 7702},
        }})


def test_place_tags_from_the_lab_file(tmp_path):
    cfg = lab(tmp_path)
    assert places.place_tags(cfg, "b1s0") == {"rev": "b", "board": "prime", "nfc": "yes", "bench": "bench1",
                                               "station": "b1s0"}
    assert places.place_tags(cfg, "b2s0") == {"board": "prime", "flavour": "development", "nfc": "no",
                                               "bench": "bench2", "station": "b2s0"}


def test_bad_tags_and_unknown_bench_are_config_errors(tmp_path):
    cfg = lab(tmp_path, x={"profile": "prime-rev-b", "bench": "bench1", "debug": "usb:1-1", "usb_port": "1-1",
                          "tags": ["rev=B"]})
    with pytest.raises(ConfigError, match="station x: tags rev=B must be lowercase"):
        places.place_tags(cfg, "x")
    cfg = lab(tmp_path, y={"profile": "prime-rev-b", "bench": "bench9", "debug": "usb:1-1", "usb_port": "1-1"})
    with pytest.raises(ConfigError, match="bench 'bench9' is not under `benches`"):
        places.place_tags(cfg, "y")


def test_exporter_config_of_a_bench(tmp_path):
    cfg = lab(tmp_path)
    groups = yaml.safe_load(exporter.exporter_config(cfg, "bench1"))
    assert groups == {"b1s0": {
        "location": "bench1",
        "debug": {"cls": "PrimeDebugLink", "host": "10.77.0.11", "port": 7701},
        "station": {"cls": "PrimeStation", "profile": "prime-rev-b", "usb_port": "1-2.3", "serial": "",
                    "robot_calibration": "[[[0.0, 0.0], [10.0, 20.0]], [[480.0, 0.0], [60.0, 20.0]], "
                                         "[[0.0, 800.0], [10.0, 100.0]]]", "cd_relay": 2},
        "samba": {"cls": "USBSerialPort", "speed": 115200,
                  "match": {"@sys_name": "1-2.3", "ID_VENDOR_ID": "03eb", "ID_MODEL_ID": "6124"}},
        "camera": {"cls": "HTTPVideoStream", "url": "http://10.77.0.11:7702/stream.mjpg"},  # the bridge's relay
        "nfc": {"cls": "PrimeNfc", "host": "10.77.0.11", "port": 7703},  # the bridge's NFC service
        "robot": {"cls": "PrimeRobot", "host": "10.77.0.11", "port": 7704},
        "relay": {"cls": "PrimeRelay", "host": "10.77.0.11", "port": 7705}}}
    live = yaml.safe_load(exporter.exporter_config(cfg, "bench2", {"b2s0": {"port": 40001, "serial": "EMU-0001",
                                                                           "camera": "http://10.77.0.12:40002/stream.mjpg"}}))
    assert live["b2s0"]["debug"]["port"] == 40001 and live["b2s0"]["station"]["serial"] == "EMU-0001"
    assert live["b2s0"]["camera"] == {"cls": "HTTPVideoStream", "url": "http://10.77.0.12:40002/stream.mjpg"}
    assert "camera" not in yaml.safe_load(exporter.exporter_config(cfg, "bench2"))["b2s0"]
    with pytest.raises(ConfigError, match="no bench 'bench7'"):
        exporter.exporter_config(cfg, "bench7")


def places_of(exporter_yaml: str, bench: str, tags: dict) -> SimpleNamespace:
    """A coordinator's view of a bench whose exporter publishes `exporter_yaml`, every place acquired."""
    groups = yaml.safe_load(exporter_yaml)
    resources = {bench: {g: {r: SimpleNamespace(params={k: v for k, v in spec.items() if k != "cls"},
                                                 data={"avail": True})
                             for r, spec in res.items() if isinstance(spec, dict)} for g, res in groups.items()}}
    places = {g: SimpleNamespace(tags={**tags, "bench": bench}, acquired_resources=[
        (bench, g, spec["cls"], r) for r, spec in res.items() if isinstance(spec, dict)]) for g, res in groups.items()}
    return SimpleNamespace(places=places, resources=resources)


def test_a_place_becomes_a_station_with_every_bench_endpoint(tmp_path):
    coord = places_of(exporter.exporter_config(lab(tmp_path), "bench1"), "bench1", {"flavour": "production"})
    st = exporter.station_from_place(coord, "b1s0", "TOKEN7")
    assert (st.debug, st.nfc, st.robot, st.relay) == ("bridge:10.77.0.11:7701", "bridge:10.77.0.11:7703",
                                                      "bridge:10.77.0.11:7704", "bridge:10.77.0.11:7705")
    assert st.camera == "http://10.77.0.11:7702/stream.mjpg?lease=TOKEN7" and st.flavour == "production"
    assert st.robot_calibration == lab(tmp_path).stations["b1s0"].robot_calibration
    assert st.cd_relay == 2  # the relay board's channel across the CD pads: the place's way into SAM-BA
    coord.resources["bench1"]["b1s0"]["station"].params["robot_calibration"] = "[[1, 2"
    with pytest.raises(labgrid.PlaceLost, match="bench bench1, place b1s0: the exporter's robot_calibration is not "
                                                "valid .*; regenerate it with `hil lab exporter-config bench1`"):
        exporter.station_from_place(coord, "b1s0", "TOKEN7")
    coord.resources["bench1"]["b1s0"]["station"].params["robot_calibration"] = "[[[0, 0], [1, 1]]]"  # one point
    with pytest.raises(labgrid.PlaceLost, match=r"robot_calibration is not valid \(Tuple should have at least 3 "
                                                r"items after validation, not 1\); regenerate") as e:
        exporter.station_from_place(coord, "b1s0", "TOKEN7")
    assert "\n" not in str(e.value)


def test_lab_url():
    u = labgrid.LabUrl.parse("labgrid://10.0.0.1:20408?board=prime&flavour=development")
    assert u.address == "10.0.0.1:20408"
    assert u.tags == {"board": "prime", "flavour": "development", "health": "ok"}
    assert labgrid.LabUrl.parse("labgrid://ci-host").address == "ci-host:20408"
    with pytest.raises(ConfigError, match="must be lowercase"):
        labgrid.LabUrl.parse("labgrid://h:1?rev=B")
    with pytest.raises(ConfigError, match="expected labgrid://HOST:PORT"):
        labgrid.LabUrl.parse("labgrid://h:port")
    assert labgrid.is_url("labgrid://h:1") and not labgrid.is_url("lab_config.yaml")
