"""The health check on an emulated station: all checks pass on a good one; a covered camera and a dead link
fail with the reason; `hil farm health --quarantine` records it."""

from pathlib import Path

import pytest

from hil.emulator.launcher import control_endpoint
from hil.lab import health
from hil.lab.config import load_lab
from hil.lab.station import bring_up

ROOT = Path(__file__).resolve().parents[1]


def control(endpoint, **cmd):
    import json
    import socket

    host, port = endpoint.split(":")[1:]
    with socket.create_connection((host, int(port)), timeout=5) as s:
        s.sendall((json.dumps(cmd) + "\n").encode())
        return json.loads(s.makefile().readline())


@pytest.fixture(scope="module")
def station():
    with bring_up(load_lab(), "emu-1") as st:
        yield st


def test_healthy_station(station):
    report = health.check(station)
    assert report.ok and report.version == "1.0.0", report
    assert {c.name: c.ok for c in report.checks} == {"link": True, "camera": True, "nfc": True}


def test_covered_camera_fails(station):
    assert control(control_endpoint(station.debug), cmd="camera", fault="covered")["ok"]
    try:
        report = health.check(station)
    finally:
        control(control_endpoint(station.debug), cmd="camera", fault=None)
    assert not report.ok
    assert [c.name for c in report.checks if c.ok is False] == ["camera"]
    assert "camera:" in report.reason


def test_missing_resource_is_skipped_not_passed(station):

    report = health.check(station.model_copy(update={"nfc": None, "camera": None}))
    assert [(c.name, c.ok) for c in report.checks] == [("link", True), ("camera", None), ("nfc", None)]


def test_dead_link_fails(station):
    assert control(control_endpoint(station.debug), cmd="power_cut")["ok"]
    try:
        report = health.check(station, timeout=2)
    finally:
        control(control_endpoint(station.debug), cmd="power_on")
    link = next(c for c in report.checks if c.name == "link")
    assert link.ok is False and not report.ok and report.version is None


def test_a_build_without_the_debug_link_is_not_asked_for_it(station):
    """A production build may lack usb-debug (xtask --production-firmware): the link check is skipped with
    that reason and never tried (the link here would answer; it must not be asked)."""

    from hil.profile import profile_named

    rev_b = profile_named("prime-rev-b")
    report = health.check(station.model_copy(update={"profile": rev_b, "flavour": "production", "debug": "tcp:127.0.0.1:1"}))
    link = next(c for c in report.checks if c.name == "link")
    assert link.ok is None and "has no debug link" in link.detail and report.version is None
