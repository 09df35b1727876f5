"""Fixtures of the security suites: the probe app, the lab's publisher identity, the capability matrix,
and reading the display (the station's camera where it has one, else a screenshot) to see prompts."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import allure
import pytest

from hil import probe as probe_mod
from hil.flash.manifest import CapabilityMatrix, load_capability_matrix, load_templates
from hil.link.client import PrimeClient
from security_helpers import ScreenReader


@pytest.fixture(scope="session")
def matrix(request) -> CapabilityMatrix:
    return load_capability_matrix(request.config.getoption("--capability-matrix"))


@pytest.fixture(scope="session")
def templates(request) -> dict:
    return load_templates(request.config.getoption("--permission-templates"))


@pytest.fixture(scope="session")
def nonce() -> str:
    """Per session: probe app ids never repeat across sessions, so old grants cannot leak in."""
    return os.urandom(6).hex()


@pytest.fixture
def probe_id(nonce, request) -> Callable[[str], str]:
    return lambda label="": probe_mod.probe_app_id(f"{request.node.nodeid}:{label}:{nonce}")


@pytest.fixture(scope="session")
def publisher(device_under_test) -> probe_mod.Publisher:
    return probe_mod.Publisher.create(device_under_test.client.system_time())


@pytest.fixture(scope="session")
def _installed_publishers() -> set[str]:
    return set()


@pytest.fixture
def probe(unlocked_prime: PrimeClient, publisher, _installed_publishers, request) -> probe_mod.Probe:
    """The probe app on the unlocked device, signed by the lab's publisher (installed once)."""
    if publisher.fingerprint not in _installed_publishers:
        unlocked_prime.install_certificate(publisher.fingerprint, publisher.pem)
        _installed_publishers.add(publisher.fingerprint)
    elf = Path(request.config.getoption("--probe-elf")).read_bytes()
    p = probe_mod.Probe(unlocked_prime, elf, publisher)
    yield p
    p.close_all()  # their prompts go with them
    probe_mod.drain(unlocked_prime)


@pytest.fixture
def screen(station, unlocked_prime, request) -> ScreenReader:
    """The display read by the session's camera (one stream per station, not one opened per test), else
    by screenshots."""
    camera = request.getfixturevalue("station_camera") if station.camera else None
    reader = ScreenReader(station, unlocked_prime, camera)
    yield reader
    reader.close()


@pytest.fixture
def deny_lines(station, request) -> bool:
    """Whether the kernel's deny lines come over the debug link on this profile (``kernel_log``). Where they
    go only to the serial console, the check relies on the AccessDenied results alone, and its report says so
    (an Allure attachment and a junit property, where the sign-off's reader and a CI will see it)."""
    if station.profile.kernel_log == "debug-link":
        return True
    note = (f"AccessDenied results only: profile {station.profile.name} sends the kernel's deny lines to its "
            "serial console, not the debug link")
    request.node.user_properties.append(("relies_on", note))
    allure.attach(note, name="relies on", attachment_type=allure.attachment_type.TEXT)
    return False
