"""Starting emulated Primes as a process: endpoint lines, several devices, clean stops, clear failures."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys

import pytest
from emulator_raw import RawLink

from hil.emulator.launcher import EmulatorDied, EmulatorProcess, EmulatorTimeout, control_endpoint
from hil.errors import InfrastructureError
from hil.link import protocol as p
from hil.link.protocol import Cmd, Status


def test_two_devices_each_on_their_own_ports():
    with EmulatorProcess(count=2, seed=4, flavour="development", version="1.2.3") as emu:
        first, second = emu.devices
        assert [first["serial"], second["serial"]] == ["EMU-0401", "EMU-0402"]  # seed, then index
        assert {"serial", "debug", "usb_port", "control", "profile"} <= first.keys()
        assert first["profile"] == "prime-emulated"
        ports = {d[k] for d in emu.devices for k in ("debug", "control", "usb_port")}
        assert len(ports) == 6  # each unit on its own USB port path (BUS-1 of its own emulated controller)
        assert all(re.fullmatch(r"\d+-1", d["usb_port"]) for d in emu.devices)
        for device in emu.devices:
            with RawLink(device["debug"]) as link:
                assert link.request(p.request(Cmd.GET_VERSION)) == p.Response(Status.OK, b"1.2.3")
            assert control_endpoint(device["debug"]) == device["control"]
        process = emu._proc
    assert process.returncode == 0  # SIGTERM is a clean stop
    with pytest.raises(LookupError, match="no emulator started by this process"):
        control_endpoint(first["debug"])  # a stopped emulator's control endpoint is forgotten


def test_bad_option_is_a_died_error_with_stderr():
    with pytest.raises(EmulatorDied, match="flavour") as info:
        EmulatorProcess(flavour="beta").start()
    assert isinstance(info.value, InfrastructureError)


def test_timeout_is_not_a_death():
    emu = EmulatorProcess(timeout=0.001)
    with pytest.raises(EmulatorTimeout):
        emu.start()
    assert not emu.alive()  # stopped on the way out


def test_sigint_stops_cleanly():
    proc = subprocess.Popen([sys.executable, "-m", "hil.emulator", "--count", "1", "--seed", "2"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        device = json.loads(proc.stdout.readline())
        assert device["serial"] == "EMU-0201"
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=10) == 0
        assert b"Traceback" not in proc.stderr.read()
    finally:
        proc.kill()
        proc.wait()
