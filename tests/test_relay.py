"""The power-button relay client against the emulated USB-RLY02 pty."""

import os
import threading
import time
import tty
import types

import pytest

from hil.emulator.relay import EmulatedRelay
from hil.errors import InfrastructureError
from hil.stimuli.relay import PowerButtonRelay, RelayError


class FakePrime:
    def __init__(self):
        self.lock = threading.RLock()
        self.presses = []

    def press_power(self, long):
        self.presses.append(long)

    def power_button(self, down):  # the emulated relay reports edges; a hold of 1 s or more is long
        if down:
            self._down_at = time.monotonic()
        else:
            self.press_power(time.monotonic() - self._down_at >= 1.0)


@pytest.fixture
def board():
    prime, relay = FakePrime(), EmulatedRelay()
    _, path = relay.start(prime)
    yield prime, relay, path
    relay.stop()


def test_short_and_long_presses_reach_the_power_button(board):
    prime, _, path = board
    with PowerButtonRelay.open(path) as relay:
        assert relay.module == "USB-RLY02 v1"
        relay.press()
        relay.press(long=True, hold_ms=1100)
    assert prime.presses == [False, True]


def test_relay_that_does_not_switch_is_broken(board):
    prime, relay, path = board
    with PowerButtonRelay.open(path) as client:
        relay._apply = lambda states: None  # welded contacts / no coil supply
        with pytest.raises(RelayError, match="relay 1 did not close"):
            client.press()
    assert prime.presses == []


def test_wrong_device_on_the_port_is_refused(board):
    _, relay, path = board
    relay.write = lambda data, w=relay.write: w(bytes([0x42, 1]) if len(data) == 2 else data)
    with pytest.raises(RelayError, match="module id 66, not a Devantech relay board"):
        PowerButtonRelay.open(path)


def test_silent_board_times_out():
    master, slave = os.openpty()
    tty.setraw(slave)
    try:
        with pytest.raises(InfrastructureError, match="did not answer command 0x5A"):
            PowerButtonRelay.open(os.ttyname(slave))
    finally:
        os.close(master)
        os.close(slave)


def test_a_loaded_host_waits_longer_for_the_answer(monkeypatch):
    """The board answers at once, but a host with more work than cores reads it late: the answer's
    deadline grows with the load, as the harness's other host-side deadlines do (hil.machine)."""
    import hil.machine
    import hil.stimuli.relay as relay_mod

    clock = [0.0]
    monkeypatch.setattr(relay_mod, "time", types.SimpleNamespace(monotonic=lambda: clock[0]))  # the relay's clock only
    monkeypatch.setattr(hil.machine, "factor", lambda: 3.0)

    class LatePort:  # each read takes a second of the host's time; the state byte is read in the fifth
        reads = 0

        def reset_input_buffer(self):
            pass

        def write(self, data):
            pass

        def read(self, n):
            clock[0] += 1.0
            self.reads += 1
            return b"\x01" if self.reads == 5 else b""

    assert PowerButtonRelay(LatePort(), timeout=2.0).closed() is True
