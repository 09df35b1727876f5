"""The emulated Prime's usb-debug endpoint, driven over real TCP with raw frames (keyos.md §5.1)."""

from __future__ import annotations

import datetime
import hashlib
import re
import struct
import time

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from emulator_raw import RawLink

from hil.emulator.build import Build
from hil.emulator.keyos import LOCK_SCREEN
from hil.emulator.launcher import Device
from hil.emulator.prime import Prime
from hil.emulator.tcp import DebugServer
from hil.emulator.ui import PIN_KEYS
from hil.link import protocol as p
from hil.link.protocol import Cmd, LaunchStatus, Status
from hil.machine import scaled

BITCOIN = "0x426974636f696e2057616c6c65740000"
SEED_VAULT = "0x53656564205661756c74000000000000"  # no own emulated UI: shows what is typed
UNKNOWN = "0x" + "ee" * 16


def _device(flavour: str) -> Device:
    """A Prime with only its debug endpoint (the launcher tests start the full set)."""
    prime = Prime(index=1, seed=1, build=Build(flavour=flavour), boot_seconds=0)
    device = Device(prime, {})
    server = DebugServer()
    device.endpoints.update([server.start(prime)])
    device.running.append(server)
    return device


@pytest.fixture
def production():
    device = _device("production")
    yield device
    device.stop()


@pytest.fixture
def development():
    device = _device("development")
    yield device
    device.stop()


def swipe_to_pad(link: RawLink) -> None:
    """Up from the lock screen's swipe hint, past KeyOS's 80 px threshold: the PIN pad shows."""
    assert link.request(p.swipe(240, 760, 240, 460, 300, 10)).status == Status.OK


def unlock_by_taps(link: RawLink, pin: str = "123456") -> None:  # PIN_KEYS: the layout of seeds 0 and 1
    swipe_to_pad(link)
    for key in [*pin, "enter"]:
        assert link.request(p.tap(*PIN_KEYS[key])).status == Status.OK


# ---------------------------------------------------------------- production rules


def test_production_locked_refuses_screen_and_input_with_locked(production):
    with RawLink(production.endpoints["debug"]) as link:
        for body in (p.request(Cmd.SCREENSHOT), p.tap(10, 10), p.power_btn(False), p.input_text("1"),
                     p.close_app(5), p.launch_app(BITCOIN), p.load_app_begin(BITCOIN)):
            assert link.request(body).status == Status.LOCKED, body[0]
        assert any("rejected: device is locked" in line for line in link.logs)
    with production.prime.lock:
        assert production.prime.is_locked()  # nothing above got through to the PIN pad


def test_production_refuses_samba_kernel_and_set_time_even_unlocked(production):
    with production.prime.lock:
        assert production.prime.login("123456")
    with RawLink(production.endpoints["debug"]) as link:
        for body in (p.request(Cmd.REBOOT_SAMBA), p.kernel_cmd("p"), p.set_system_time(1_800_000_000)):
            assert link.request(body).status == Status.ERR
        assert "debug: command 0x04 is not available in production firmware" in "\n".join(link.logs)
        assert link.request(p.request(Cmd.SCREENSHOT)).status == Status.OK


def test_production_allows_diagnostics_while_locked(production):
    with RawLink(production.endpoints["debug"]) as link:
        assert link.request(p.request(Cmd.GET_VERSION)) == p.Response(Status.OK, b"1.0.0")
        assert link.request(p.request(Cmd.GET_DEVELOPER_MODE)) == p.Response(Status.OK, b"\x01")
        listing = link.request(p.request(Cmd.GET_PROCESS_LIST))
        assert listing.status == Status.OK and listing.payload.startswith(b"PROC ")
        now = p.parse_u64(link.request(p.request(Cmd.GET_SYSTEM_TIME)).payload, "time")
        assert abs(now - datetime.datetime.now().timestamp()) < 60


def test_screenshot_is_bgra_of_the_panel(production):
    with production.prime.lock:
        production.prime.login("123456")
        expected = production.prime.framebuffer().getpixel((5, 500))  # launcher background
    with RawLink(production.endpoints["debug"]) as link:
        shot = link.request(p.request(Cmd.SCREENSHOT))
    assert shot.status == Status.OK and len(shot.payload) == 480 * 800 * 4 == 1_536_000
    offset = (500 * 480 + 5) * 4
    r, g, b, a = expected
    assert r != b and shot.payload[offset:offset + 4] == bytes([b, g, r, a])


def test_developer_mode_off_removes_the_interface_on_production(production):
    link = RawLink(production.endpoints["debug"], timeout=2)
    assert link.request(p.request(Cmd.GET_VERSION)).status == Status.OK
    with production.prime.lock:
        production.prime.set_developer_mode(False)
    assert link.closed_by_peer()
    with RawLink(production.endpoints["debug"], timeout=2) as again:
        assert again.closed_by_peer()  # accepted and dropped: no vendor interface on the bus


def test_developer_mode_off_keeps_the_interface_on_development(development):
    with development.prime.lock:
        development.prime.set_developer_mode(False)
    with RawLink(development.endpoints["debug"]) as link:
        assert link.request(p.request(Cmd.GET_VERSION)).status == Status.OK
        assert link.request(p.close_app(5)).status == Status.ERR  # CLOSE_APP itself needs Developer Mode


# ---------------------------------------------------------------- development build: the full command set


def test_unlock_by_taps_then_launch_close_and_list(development):
    with RawLink(development.endpoints["debug"]) as link:
        assert link.request(p.launch_app(BITCOIN)).status == Status.LOCKED  # every build checks the lock
        unlock_by_taps(link)
        pid, status = p.parse_launch(link.request(p.launch_app(BITCOIN)).payload)
        assert status == LaunchStatus.LAUNCHED and pid > 1
        assert p.parse_launch(link.request(p.launch_app(BITCOIN)).payload) == (pid, LaunchStatus.ALREADY_RUNNING)
        assert p.parse_launch(link.request(p.launch_app(UNKNOWN)).payload) == (0, LaunchStatus.APP_ID_NOT_FOUND)
        listing = link.request(p.request(Cmd.GET_PROCESS_LIST)).payload.decode()
        assert re.search(rf"^R {pid} \d+ gui-app-bitcoin \S+ \d+ \d+ \d+$", listing, re.M)
        assert link.request(p.close_app(pid)).status == Status.OK
        assert f"R {pid} " not in link.request(p.request(Cmd.GET_PROCESS_LIST)).payload.decode()
        assert link.request(p.close_app(pid)).status == Status.ERR
        assert link.request(p.close_app(1)).status == Status.ERR  # the kernel is not an app
        assert any(f"launched pid={pid}" in line or f"Launched pid={pid}" in line for line in link.logs)


def test_compact_process_list_shape(development):
    with RawLink(development.endpoints["debug"]) as link:
        lines = link.request(p.request(Cmd.GET_PROCESS_LIST)).payload.decode().splitlines()
    count = int(lines[0].split()[1])
    assert lines[0] == f"PROC {count}" and len(lines) == count + 2
    assert all(re.fullmatch(r"R \d+ \d+ \S+ [RjcqbwfzZ.]+ \d+ \d+ \d+", row) for row in lines[1:-1])
    assert re.fullmatch(r"SUM \d+ \d+ \d+", lines[-1])
    assert lines[1].startswith("R 1 0 kernel ")


def test_kernel_commands(development):
    with RawLink(development.endpoints["debug"]) as link:
        apps = link.request(p.kernel_cmd("a")).payload.decode()
        assert LOCK_SCREEN.app_id.hex() in apps and "gui-app-lock-screen" in apps
        table = link.request(p.kernel_cmd("p")).payload.decode()
        assert table.startswith(" pid | ppid | process ") and "RAM Usage:" in table
        assert "KeyOS Kernel Debug" in link.request(p.kernel_cmd("h")).payload.decode()
        assert link.request(p.kernel_cmd("s")).payload.decode().startswith("Servers in use:")
        assert "PID 1 kernel:" in link.request(p.kernel_cmd("P")).payload.decode()
        for char in "imcok":
            assert link.request(p.kernel_cmd(char)).payload, char  # every documented command prints
        assert link.request(bytes([Cmd.KERNEL_CMD]) + b"x") == p.Response(Status.OK, b"")  # unknown: prints nothing
        assert link.request(bytes([Cmd.KERNEL_CMD]) + b"pp").status == Status.ERR


def test_text_input_reaches_the_focused_app(development):
    with RawLink(development.endpoints["debug"]) as link:
        swipe_to_pad(link)
        assert link.request(p.input_text("123456\n")).status == Status.OK  # the PIN pad takes digits
        link.request(p.launch_app(SEED_VAULT))
        link.request(p.input_text("héllo"))
    with development.prime.lock:
        assert development.prime.ui.front().typed == "héllo"


def test_system_time_set_and_range(development):
    with RawLink(development.endpoints["debug"]) as link:
        assert link.request(p.set_system_time(1_800_000_000)).status == Status.LOCKED
        unlock_by_taps(link)
        assert link.request(p.set_system_time(1_800_000_000)).status == Status.OK
        now = p.parse_u64(link.request(p.request(Cmd.GET_SYSTEM_TIME)).payload, "time")
        assert 1_800_000_000 <= now < 1_800_000_060
        assert link.request(p.set_system_time(0)).status == Status.ERR
        assert link.request(p.set_system_time(1 << 33)).status == Status.ERR


def _publisher_certificate() -> tuple[bytes, str]:
    """A code-signing publisher certificate (secp256k1) and its fingerprint: sha256 of the compressed key."""
    key = ec.generate_private_key(ec.SECP256K1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Example Publisher")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(True, False, False, False, False, False, False, False, False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]), critical=False)
            .sign(key, hashes.SHA256()))
    compressed = key.public_key().public_bytes(serialization.Encoding.X962,
                                               serialization.PublicFormat.CompressedPoint)
    return cert.public_bytes(serialization.Encoding.PEM), hashlib.sha256(compressed).hexdigest()


def test_install_certificate_checks_fingerprint(development):
    pem, fingerprint = _publisher_certificate()
    with RawLink(development.endpoints["debug"]) as link:
        assert link.request(p.install_certificate(fingerprint, pem)).status == Status.LOCKED
        unlock_by_taps(link)
        assert link.request(p.install_certificate("0" * 64, pem)).status == Status.ERR
        assert link.request(p.install_certificate(fingerprint, pem)).status == Status.OK
        count = link.request(p.request(Cmd.GET_ALLOWED_PUBLISHER_COUNT))
        assert p.parse_publisher_count(count.payload) == (1, 1)


def _sideload(link: RawLink, app_id: str, files: dict[str, bytes]) -> list[Status]:
    statuses = [link.request(p.load_app_begin(app_id)).status]
    for path, data in files.items():
        statuses.append(link.request(p.load_app_file_begin(len(data), path)).status)
        for i in range(0, len(data), p.MAX_CHUNK):
            statuses.append(link.request(p.load_app_chunk(data[i:i + p.MAX_CHUNK])).status)
    statuses.append(link.request(p.request(Cmd.LOAD_APP_END)).status)
    return statuses


def test_sideload_installs_but_unsigned_app_does_not_launch(development):
    app_id = "0x" + "12" * 16
    manifest = b'{"appName": {"en": "Sideloaded"}, "appId": "%s"}' % app_id.encode()
    with RawLink(development.endpoints["debug"]) as link:
        unlock_by_taps(link)
        assert _sideload(link, app_id, {"manifest.json": manifest, "app.elf": b"\x7fELF" + bytes(70000)}) == \
            [Status.OK] * 7
        assert p.parse_launch(link.request(p.launch_app(app_id)).payload) == (0, LaunchStatus.SIGNATURE_REJECTED)
    with development.prime.lock:
        assert development.prime.keyos.apps[bytes.fromhex("12" * 16)].name == "Sideloaded"


def test_sideload_rules(development):
    with RawLink(development.endpoints["debug"]) as link:
        assert link.request(p.load_app_begin(BITCOIN)).status == Status.LOCKED
        unlock_by_taps(link)
        assert link.request(p.load_app_chunk(b"x")).status == Status.ERR  # no session
        assert link.request(p.load_app_begin(BITCOIN)).status == Status.OK
        for bad in (b"../escape", b"/abs", b"a//b", b"dir/", b"./x", b"x" * 504):
            assert link.request(bytes([Cmd.LOAD_APP_FILE_BEGIN]) + struct.pack("<Q", 1) + bad).status == Status.ERR
        assert link.request(p.load_app_file_begin(2, "app.elf")).status == Status.OK
        assert link.request(p.load_app_chunk(b"abc")).status == Status.ERR  # more than announced
        assert link.request(p.request(Cmd.LOAD_APP_END)).status == Status.ERR  # file incomplete
        assert _sideload(link, "0x" + "34" * 16, {"app.elf": b"x"})[-1] == Status.ERR  # no manifest.json


# ---------------------------------------------------------------- framing and bad input


def test_malformed_requests_get_err_and_the_link_stays_up(development):
    with RawLink(development.endpoints["debug"]) as link:
        assert link.request(bytes([Cmd.SWIPE]) + bytes(10)).status == Status.ERR
        assert link.request(bytes([Cmd.SWIPE]) + bytes(12)).status == Status.ERR
        assert link.request(b"\x10").status == Status.ERR  # retired command byte
        assert link.request(bytes([Cmd.LAUNCH_APP]) + bytes(15)).status == Status.ERR
        assert link.request(bytes([Cmd.INPUT_TEXT]) + b"\xff\xfe").status == Status.ERR
        link.send(b"")  # an empty request is ignored
        assert link.request(p.request(Cmd.GET_VERSION)).status == Status.OK


def test_oversized_length_closes_the_connection(development):
    with RawLink(development.endpoints["debug"], timeout=2) as link:
        link.sock.sendall(struct.pack("<I", p.MAX_FRAME + 1))
        assert link.closed_by_peer()
    with RawLink(development.endpoints["debug"]) as link:
        assert link.request(p.request(Cmd.GET_VERSION)).status == Status.OK


def test_one_client_at_a_time(development):
    with RawLink(development.endpoints["debug"]) as first:
        assert first.request(p.request(Cmd.GET_VERSION)).status == Status.OK
        with RawLink(development.endpoints["debug"], timeout=2) as second:
            assert second.closed_by_peer()
        assert first.request(p.request(Cmd.GET_VERSION)).status == Status.OK


def test_a_long_swipe_holds_only_its_own_host(development):
    """A 65.5 s swipe holds the link (KeyOS acks after the gesture) but not the device, and once its host
    hangs up the next host is served: it is not turned away until the swipe would have ended."""
    prime = development.prime
    first = RawLink(development.endpoints["debug"])
    first.send(p.swipe(240, 700, 240, 100, 0xFFFF, 10))
    wait_for(lambda: any("debug: swipe (240,700) -> (240,100) duration=65535ms" in line
                         for line in prime.logs_since(0)[0]), "the swipe to start")
    assert prime.lock.acquire(timeout=30)  # the screen, camera and control go on meanwhile
    prime.lock.release()
    first.close()

    def served() -> RawLink | None:
        try:
            link = RawLink(development.endpoints["debug"], timeout=30)
            if link.request(p.request(Cmd.GET_VERSION)).status == Status.OK:
                return link
        except ConnectionError:
            pass  # still turned away as the one claimed interface
        return None

    with wait_for(served, "the next host to be served (the swipe lasts 65.5 s)") as second:
        assert "WARN:usb_debug: debug: host left during a gesture; it lands now" in second.logs


def wait_for(found, what: str, deadline_s: float = 30.0):
    """Poll for an event of the emulator's (its threads run on their own); fail after a generous deadline."""
    end = time.monotonic() + scaled(deadline_s)
    while not (result := found()):
        assert time.monotonic() < end, f"timed out waiting for {what}"
        time.sleep(0.02)
    return result


def test_logs_arrive_on_connect_and_before_the_response(development):
    with RawLink(development.endpoints["debug"]) as link:
        link.request(p.request(Cmd.GET_PROCESS_LIST))
        assert any(f"booting on {development.prime.serial}" in line for line in link.logs)  # the ring's backlog
        assert link.logs[-1] == "INFO:usb_debug: debug: get process list 't'"


class BootChain:
    """A stand-in for the SAM-BA peripheral's boot chain: records what the Prime asks of it."""

    def __init__(self, boots: bool):
        self.boots = boots
        self.calls: list[str] = []

    def boot(self) -> bool:
        self.calls.append("boot")
        return self.boots

    def screen(self):
        return None

    def touch(self, x: int, y: int) -> None:
        self.calls.append("touch")

    def enter_samba(self) -> None:
        self.calls.append("enter_samba")


def test_reboot_samba_acks_then_leaves_keyos(development):
    chain = BootChain(boots=True)
    with development.prime.lock:
        development.prime.firmware = chain
    with RawLink(development.endpoints["debug"], timeout=2) as link:
        assert link.request(p.request(Cmd.REBOOT_SAMBA)).status == Status.OK
        assert link.closed_by_peer()
    with development.prime.lock:  # held from the link's drop until the boot ROM runs
        assert chain.calls == ["enter_samba"]
    with RawLink(development.endpoints["debug"], timeout=2) as link:
        assert link.closed_by_peer()  # no KeyOS, no vendor interface
    with development.prime.lock:
        development.prime.power_on()
        assert development.prime.keyos_running and chain.calls == ["enter_samba", "boot"]


def test_no_keyos_when_the_boot_chain_refuses(development):
    prime = development.prime
    with prime.lock:
        prime.firmware = BootChain(boots=False)
        prime.reboot()
        assert not prime.keyos_running and not prime.keyos.processes and not prime.debug_available()
        prime.touch(240, 400)
        assert prime.firmware.calls == ["boot", "touch"]
