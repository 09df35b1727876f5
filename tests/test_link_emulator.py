"""The TCP link and the client end to end against the emulated Prime, including its faults on demand
(garbage, cut frames, silence, slowness, a dropped link): each gives a clear error, nothing hangs."""

import json
import socket
import time

import pytest

from hil.emulator.launcher import EmulatorProcess
from hil.lab.station import Station
from hil.link.client import DeviceError, PrimeClient, ResponseTimeout
from hil.link.protocol import LaunchStatus
from hil.link.resolve import open_client
from hil.profile import profile_named
from hil.lab.pin_guard import PinGuard, unlock_over_link
from hil.link.state import DeviceStateError, bring_home, detect_flavour, is_locked, wait_ready
from hil.link.tcp import TcpTransport
from hil.link.transport import LinkClosed

BITCOIN_APP = "0x426974636f696e2057616c6c65740000"


@pytest.fixture(scope="module")
def emulator():
    with EmulatorProcess(count=1, seed=3, flavour="development") as emu:
        yield emu.devices[0]


def control(emulator, **request):
    host, port = emulator["control"].removeprefix("tcp:").rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=5) as s:
        s.sendall(json.dumps(request).encode() + b"\n")
        reply = json.loads(s.makefile().readline())
    assert reply["ok"], reply
    return reply


@pytest.fixture
def station(emulator):
    yield Station.from_endpoints("emu", profile_named(emulator["profile"]), emulator)
    control(emulator, cmd="clear")


@pytest.fixture
def prime(station):
    with open_client(station.debug, station.profile, timeout=10.0) as client:
        yield client


def test_queries(prime):
    assert prime.version() == "1.0.0"
    assert prime.developer_mode() is True
    assert abs(prime.system_time() - time.time()) < 60
    assert "kernel" in prime.process_list()


def test_flavour_and_lock_state_from_the_device(prime, station):
    assert detect_flavour(prime, station.profile) == "development"
    bring_home(prime, station.profile, "development",
               lambda touch: unlock_over_link(prime, "123456", PinGuard(station.name)))
    assert is_locked(prime) is False
    result = prime.launch_app(BITCOIN_APP)
    assert result.status in (LaunchStatus.LAUNCHED, LaunchStatus.ALREADY_RUNNING)
    prime.close_app(result.pid)
    with pytest.raises(DeviceError):
        prime.close_app(result.pid)  # gone now


def test_screenshot_is_the_lit_display(prime):
    shot = prime.screenshot()
    assert shot.size == (480, 800) and shot.mode == "RGBA"
    assert shot.convert("L").getextrema()[1] > 100


def test_logs_keep_flowing_between_commands(prime, station):
    prime.version()
    records = list(prime.logs(timeout=0.5))
    assert any(f"booting on {station.serial}" in r for r in records), records[-5:]


def assert_lost(prime, exc, *words):
    assert isinstance(exc, LinkClosed)
    for w in (prime.device, *words):
        assert w in str(exc), str(exc)
    assert not prime.transport.is_open


def test_garbage_on_the_wire(prime, emulator):
    control(emulator, cmd="garbage", hex="ffffffff")
    with pytest.raises(LinkClosed) as e:
        prime.version()
    assert_lost(prime, e.value, "GET_VERSION", "limit")


def test_garbage_that_looks_like_a_frame(prime, emulator):
    control(emulator, cmd="garbage", hex="0300000009ff01")
    with pytest.raises(LinkClosed) as e:
        prime.version()
    assert_lost(prime, e.value, "GET_VERSION", "unknown frame kind 0x09")


def test_truncated_response(prime, emulator):
    control(emulator, cmd="truncate")
    with pytest.raises(LinkClosed) as e:
        prime.screenshot()
    assert_lost(prime, e.value, "SCREENSHOT", "mid-frame")


def test_device_goes_silent_mid_frame(station, emulator):
    control(emulator, cmd="stall")
    host, port = station.debug.removeprefix("tcp:").rsplit(":", 1)
    prime = PrimeClient(TcpTransport(host, int(port), stall_timeout=0.5), pixel_order="BGRA",
                        home_button=(100, 910), timeout=3.0)
    with prime:
        t0 = time.monotonic()
        with pytest.raises(LinkClosed) as e:
            prime.screenshot()
        assert time.monotonic() - t0 < 3
    assert_lost(prime, e.value, "SCREENSHOT", "stopped sending mid-frame")


def test_slow_device_times_out(station, emulator):
    control(emulator, cmd="delay", seconds=0.8)
    with open_client(station.debug, station.profile, timeout=0.3) as prime:
        with pytest.raises(ResponseTimeout) as e:
            prime.version()
    assert_lost(prime, e.value, "GET_VERSION", "no response within 0.3 s")
    time.sleep(0.8)  # the device is still busy with the abandoned request; one client at a time


def test_dropped_link_is_not_reconnected(prime, emulator):
    prime.version()
    control(emulator, cmd="drop")  # the link is gone when the reply comes
    with pytest.raises(LinkClosed) as e:
        prime.version()
    assert_lost(prime, e.value, "GET_VERSION", "closed the connection")
    with pytest.raises(LinkClosed, match="link is closed"):
        prime.version()


def test_a_second_client_is_turned_away(prime, station):
    prime.version()
    with pytest.raises(LinkClosed, match="closed the connection"):  # on open (its drain) or the first command
        with open_client(station.debug, station.profile, timeout=1.0) as second:
            second.version()
    assert prime.version() == "1.0.0"


def wait_for(emulator, key: str, value, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while control(emulator, cmd="status")[key] != value:
        assert time.monotonic() < deadline, f"emulator status {key} never became {value!r}"
        time.sleep(0.02)


def test_a_late_answer_is_not_taken_for_the_next_command(station, emulator):
    """The simulator keeps an answer its client never read for the next client (sim.rs)."""
    control(emulator, cmd="late")
    with open_client(station.debug, station.profile, timeout=0.3) as first:
        with pytest.raises(ResponseTimeout):
            first.system_time()
    wait_for(emulator, "held_replies", 1)
    with open_client(station.debug, station.profile, timeout=10.0) as second:
        wait_for(emulator, "held_replies", 0)  # the old answer is on its way to the new client
        assert second.version() == "1.0.0"
        assert second.stale_replies == 1


def test_an_answer_sent_twice_closes_the_link(prime, emulator):
    control(emulator, cmd="twice")
    assert prime.developer_mode() is True
    with pytest.raises(LinkClosed) as e:
        prime.version()
    assert "no command outstanding" in str(e.value)
    with pytest.raises(LinkClosed, match="link is closed"):
        prime.version()



def test_onboarding_reads_as_onboarding_and_gets_no_pin(station, emulator):
    """gui-server answers Locked during onboarding, as on the lock screen; the process list tells them apart."""
    from hil.link.state import State, bring_home, device_state

    from hil.provisioning import TEST_PIN

    control(emulator, cmd="onboarding")
    try:
        with open_client(station.debug, station.profile, timeout=10.0) as prime:
            wait_ready(prime)
            assert device_state(prime, station.profile) is State.ONBOARDING
            with pytest.raises(DeviceStateError, match="onboarding runs"):
                bring_home(prime, station.profile, "development",
                           lambda touch: unlock_over_link(prime, TEST_PIN, PinGuard(station.name)))
        assert control(emulator, cmd="status")["attempts_remaining"] == 10
    finally:
        control(emulator, cmd="provision", pin=TEST_PIN)
    with open_client(station.debug, station.profile, timeout=10.0) as prime:
        wait_ready(prime)
        assert device_state(prime, station.profile) is State.LOCKED
