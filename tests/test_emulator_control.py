"""Faults and power on demand through the emulator's control endpoint, seen on the debug link."""

from __future__ import annotations

import json
import socket
import struct
import time

import pytest
from emulator_raw import RawLink, address

from hil.emulator.build import Build
from hil.emulator.control import ControlServer
from hil.emulator.prime import Prime
from hil.emulator.tcp import DebugServer
from hil.link import protocol as p
from hil.link.protocol import Cmd, Status

VERSION = p.request(Cmd.GET_VERSION)


class Control:
    def __init__(self, endpoint: str):
        self.sock = socket.create_connection(address(endpoint), timeout=5)
        self.file = self.sock.makefile("rwb")

    def raw(self, line: bytes) -> dict:
        self.file.write(line + b"\n")
        self.file.flush()
        return json.loads(self.file.readline())

    def __call__(self, cmd: str, **args) -> dict:
        reply = self.raw(json.dumps({"cmd": cmd, **args}).encode())
        assert reply["ok"], reply
        return reply

    def close(self) -> None:
        self.file.close()
        self.sock.close()


@pytest.fixture
def emu():
    prime = Prime(index=1, seed=3, build=Build(flavour="development"), boot_seconds=0)
    servers = [DebugServer(), ControlServer()]
    endpoints = dict(s.start(prime) for s in servers)
    control = Control(endpoints["control"])
    yield endpoints["debug"], control
    control.close()
    for server in servers:
        server.stop()


def test_status(emu):
    _, control = emu
    status = control("status")
    assert status["serial"] == "EMU-0301" and status["locked"] and status["powered"]
    assert status["attempts_remaining"] == 10 and status["flavour"] == "development"


def test_bad_requests_are_answered_not_fatal(emu):
    _, control = emu
    assert control.raw(b"not json")["ok"] is False
    assert "unknown control command" in control.raw(b'{"cmd": "explode"}')["error"]
    assert control.raw(b'{"cmd": "delay", "seconds": -1}')["ok"] is False
    assert control.raw(b'[1, 2]')["ok"] is False
    assert control("status")["ok"]


def test_drop_closes_the_link(emu):
    debug, control = emu
    with RawLink(debug, timeout=2) as link:
        assert link.request(VERSION).status == Status.OK
        control("drop")
        assert link.closed_by_peer()
    with RawLink(debug) as link:  # no lasting harm: the next connection works
        assert link.request(VERSION).status == Status.OK


def test_garbage_before_the_next_response(emu):
    debug, control = emu
    with RawLink(debug) as link:
        link.request(VERSION)
        control("garbage", hex="ffffffff")
        link.send(VERSION)
        with pytest.raises(p.ProtocolError, match="exceeds"):
            link.response()


def test_truncated_frame_then_close(emu):
    debug, control = emu
    with RawLink(debug) as link:
        link.request(VERSION)
        control("truncate")
        link.send(p.request(Cmd.SCREENSHOT))
        length = struct.unpack("<I", link.read_exact(4))[0]
        assert length == 2 + 1_536_000
        with pytest.raises(ConnectionError, match="closed after"):
            link.read_exact(length)


def test_stall_mid_frame_goes_silent(emu):
    debug, control = emu
    with RawLink(debug, timeout=1) as link:
        link.request(VERSION)
        control("stall")
        link.send(VERSION)
        length = struct.unpack("<I", link.read_exact(4))[0]
        with pytest.raises(TimeoutError):
            link.read_exact(length)
        control("drop")  # the test's way out; a host would give up on its own timeout
        assert link.closed_by_peer()


def test_delay_slows_every_response_until_cleared(emu):
    debug, control = emu
    with RawLink(debug) as link:
        link.request(VERSION)
        control("delay", seconds=0.3)
        start = time.monotonic()
        assert link.request(VERSION).status == Status.OK
        assert time.monotonic() - start >= 0.3
        control("clear")
        start = time.monotonic()
        link.request(VERSION)
        assert time.monotonic() - start < 0.3


def test_power_cut_and_power_on(emu):
    debug, control = emu
    link = RawLink(debug, timeout=2)
    link.request(p.swipe(240, 760, 240, 460, 300, 10))  # up from the lock screen's hint to its PIN pad
    link.request(p.input_text("123456\n"))
    assert not control("status")["locked"]
    control("power_cut")
    assert link.closed_by_peer()
    with RawLink(debug, timeout=2) as dead:
        assert dead.closed_by_peer()  # nothing on the bus without power
    control("power_on")
    status = control("status")
    assert status["powered"] and status["locked"]
    with RawLink(debug) as link:
        assert link.request(VERSION).status == Status.OK


def test_reboot_relocks_and_drops(emu):
    debug, control = emu
    link = RawLink(debug, timeout=2)
    link.request(p.swipe(240, 760, 240, 460, 300, 10))
    link.request(p.input_text("123456\n"))
    assert not control("status")["locked"]
    control("reboot")
    assert link.closed_by_peer() and control("status")["locked"]


def test_developer_mode_switch(emu):
    debug, control = emu
    control("developer_mode", on=False)
    assert control("status")["developer_mode"] is False
    with RawLink(debug) as link:  # a development build keeps its interface
        assert link.request(VERSION).status == Status.OK
