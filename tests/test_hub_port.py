"""Power: a hung unit is power-cycled through uhubctl (the emulator's stand-in switches its power) as the
recovery step before quarantine."""

import json
import os
import stat
import sys
from pathlib import Path

import pytest

from hil.emulator.launcher import EmulatorProcess
from tests.test_pin_guard import control
from hil.errors import ConfigError
from hil.stimuli.hub_port import HubPort, PowerCycleFailed

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def uhubctl_on_path(tmp_path, monkeypatch):
    exe = tmp_path / "bin" / "uhubctl"
    exe.parent.mkdir()
    exe.write_text(f"#!/bin/sh\nexec {sys.executable} -m hil.emulator.uhubctl \"$@\"\n")
    exe.chmod(exe.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{exe.parent}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("PYTHONPATH", str(ROOT))


def test_a_bad_spec_and_a_missing_uhubctl_say_what_to_fix(monkeypatch):
    with pytest.raises(ConfigError, match="HUB:PORT"):
        HubPort("1-2")
    monkeypatch.setenv("PATH", "")
    with pytest.raises(PowerCycleFailed, match="apt install uhubctl"):
        HubPort("1-2:3").cycle()


def test_a_hung_unit_is_power_cycled_instead_of_quarantined(pytester, uhubctl_on_path):
    with EmulatorProcess(count=1, flavour="development") as emu:
        d = emu.devices[0]
        hub = d["control"].split(":", 1)[1]  # the emulator's power switch answers as the hub
        (pytester.path / "lab.yaml").write_text(
            f"name: power-lab\nstate_dir: {pytester.path / 'state'}\nprofiles_dir: {ROOT / 'device_profiles'}\n"
            f"signoff_criteria: {ROOT / 'signoff_criteria.emulated.yaml'}\n"
            f"signing_key: {{path: {pytester.path / 'key.pem'}, generate: true}}\nstations:\n"
            f"  u1: {{profile: prime-emulated, debug: '{d['debug']}', usb_port: {d['usb_port']}, hub_port: '{hub}:1'}}\n")
        pytester.makepyfile(test_s=f"""
            import json, socket

            def test_hangs_the_unit_once(farm_station, request):
                marker = request.config.rootpath / "hung-once"
                if not marker.exists():  # first attempt: the unit stops answering mid-test
                    marker.write_text("x")
                    host, port = {d['control']!r}.split(":")[1:]
                    with socket.create_connection((host, int(port)), timeout=5) as s:
                        s.sendall(json.dumps({{"cmd": "power_cut"}}).encode() + b"\\n")
                        s.makefile().readline()
                with farm_station.client(timeout=2) as p:
                    assert p.version() == "1.0.0"
        """)
        r = pytester.runpytest_subprocess("-p", "hil.pytest_farm", "--lab", str(pytester.path / "lab.yaml"),
                                          "-p", "no:cacheprovider", "-rA")
        powered = control(d["control"], cmd="status")["powered"]
    out = r.stdout.str()
    assert powered and "1 passed" in out and "1 rerun" in out.lower(), out[-3000:]
    assert not (pytester.path / "state" / "quarantine.json").exists() or \
        json.loads((pytester.path / "state" / "quarantine.json").read_text()) == {}
