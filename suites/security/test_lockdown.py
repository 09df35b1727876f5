"""Lockdown of the debug interface (keyos.md §5.1): a production build refuses REBOOT_SAMBA, KERNEL_CMD and
SET_SYSTEM_TIME; on production the interface exists only with Developer Mode; and KeyOS has no network stack.

Which checks run is decided by the flavour the station (or ``--flavour``) declares, never by the behaviour
under test: a production build that answers like a development one fails here, it does not skip."""

from __future__ import annotations

import re
import time

import pytest

from hil import probe as P
from hil.link.client import CommandRefused, DeviceError, ResponseTimeout
from hil.link.state import DeviceStateError
from hil.link.protocol import LaunchStatus
from hil.link.transport import LinkClosed, LinkError
from hil.machine import scaled
from hil.vision.controls import wait_control
from security_helpers import BITCOIN_APP, SETTINGS_APP, manifest_for, waited

pytestmark = [pytest.mark.security, pytest.mark.lockdown]

NETWORK_SERVERS = ("os/net", "os/network", "os/tcp", "os/udp", "os/dns", "os/wifi", "os/ethernet", "os/http")
NETWORK_NAME = re.compile(r"\b(net|network|tcp|udp|dns|wifi|ethernet|http)\b")
SERVER_ROW = re.compile(r"^\s*\d+\s*\|\s*\d+\s*\|\s*(.*?)\s*\|\s*([0-9a-f]{32})\s*$", re.MULTILINE)
DEVELOPER_MODE = "Developer Mode"  # assumed: gui-app-settings' row label (its screens are not indexed in full)
REENUMERATE_S = 10.0  # a unit whose interface came back takes this long at most to answer again (idle host)
SETTLE_S = 5.0  # a tap on the toggle takes effect within this (idle host; each wait scales it with the load)


def test_build_answers_as_its_declared_flavour(device_under_test):
    dut = device_under_test
    if not dut.declared:
        pytest.skip("nothing declares the build flavour (a desk run without --flavour): nothing to compare with")
    assert dut.observed == dut.flavour, (f"{dut.client.device} is declared a {dut.flavour} build but answers "
                                         f"KERNEL_CMD like a {dut.observed} one: its lockdown is broken")


@pytest.mark.production_only
def test_production_refuses_kernel_commands(prime):
    for char in "tpsam":
        with pytest.raises(DeviceError):
            prime.kernel_cmd(char)


@pytest.mark.production_only
def test_production_refuses_setting_the_clock(prime):
    now = prime.system_time()
    with pytest.raises(CommandRefused):  # Err by the allow-list (Locked while locked also refuses)
        prime.set_system_time(now + 86400 * 400)
    assert abs(prime.system_time() - now) < 60, "the refused SET_SYSTEM_TIME still moved the clock"


U32_MAX = 0xFFFF_FFFF


@pytest.mark.development_only  # a production build refuses SET_SYSTEM_TIME outright
def test_clock_takes_exactly_the_rtc_range(prime):
    """SET_SYSTEM_TIME rejects 0 and values above u32::MAX (``os/usb-debug/src/dispatch.rs``, keyos.md §10 "Lock
    rules"), leaving the clock alone, and takes u32::MAX itself; the clock is put back after."""
    now, since = prime.system_time(), time.monotonic()
    refused, moved, top = {}, {}, None
    try:
        for second in (0, U32_MAX + 1):
            try:
                prime.set_system_time(second)
                refused[second] = False
            except CommandRefused:
                refused[second] = True
            moved[second] = abs(prime.system_time() - (now + time.monotonic() - since)) > 60
        prime.set_system_time(U32_MAX)
        top = prime.system_time()
    finally:
        prime.set_system_time(now + round(time.monotonic() - since))
    assert refused == {0: True, U32_MAX + 1: True} and not any(moved.values()), \
        f"outside the RTC range, SET_SYSTEM_TIME refused {refused} and moved the clock {moved}"
    assert U32_MAX <= top < U32_MAX + 60, f"the clock set to u32::MAX reads {top}"


@pytest.mark.production_only
def test_production_refuses_reboot_to_samba(prime):
    with pytest.raises(DeviceError):
        prime.reboot_to_samba()
    assert prime.version()  # still KeyOS on the other end


def open_settings(prime, look, timeout: float = 10.0) -> tuple[int, int]:
    """Open Settings; where its Developer Mode row shows (found by its label, never a coordinate)."""
    status = prime.launch_app(SETTINGS_APP).status
    assert status in (LaunchStatus.LAUNCHED, LaunchStatus.ALREADY_RUNNING), f"Settings did not open: {status.name}"
    return wait_control(look, DEVELOPER_MODE, timeout)


def reopen(prime) -> None:
    """Reconnect on purpose, after the test itself took the interface away and brought it back (the unit
    re-enumerates first); a link that stays down past the bound is raised."""
    prime.close()
    deadline = time.monotonic() + scaled(REENUMERATE_S)
    while True:
        try:
            prime.open()
            prime.version()
            return
        except LinkError:
            prime.close()
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def developer_mode_within(prime, wanted: bool) -> bool:
    """Poll GET_DEVELOPER_MODE until it answers ``wanted`` (a robot's tap lands a moment after it returns)."""
    deadline = time.monotonic() + scaled(SETTLE_S)
    while prime.developer_mode() is not wanted:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)
    return True


def link_gone_within(prime) -> bool:
    """Whether the interface leaves within SETTLE_S (answers until then, even "off", do not count). Gone is
    positive evidence: the link closed and a fresh open finds no interface. An answer that did not come in time
    proves nothing either way (broken), and a link that closed but opens again has not left."""
    deadline = time.monotonic() + scaled(SETTLE_S)
    try:
        while time.monotonic() < deadline:
            prime.developer_mode()
            time.sleep(0.2)
    except ResponseTimeout:
        raise
    except LinkClosed:
        prime.close()
        try:
            prime.open()
            prime.version()
        except LinkError:
            return True
        return False
    return False


@pytest.mark.production_only
def test_debug_interface_goes_away_without_developer_mode(prime, touch, look, device_under_test):
    """Developer Mode off in Settings (by touch, as a user would) removes the interface from a production
    unit; only the stylus robot can then turn it back on."""
    station = device_under_test.station
    if station.robot is None:
        pytest.skip(f"station {station.name} has no stylus robot: with Developer Mode off nothing could turn it on again")
    assert prime.developer_mode() is True
    toggle = open_settings(prime, look)
    touch.tap(*toggle)
    gone = link_gone_within(prime)
    if gone or prime.developer_mode() is False:  # turn it back on (a missed tap leaves it as it was)
        touch.tap(*toggle)  # the robot presses the glass; the link cannot
        reopen(prime)
    assert gone, f"the debug interface still answers {waited(SETTLE_S)} after Developer Mode was turned off"
    assert developer_mode_within(prime, True), "Developer Mode did not come back on"


@pytest.mark.development_only
def test_developer_mode_answer_follows_the_settings_toggle(prime, touch, look, station):
    """A development build keeps its interface with Developer Mode off and reports the toggle as it is."""
    if (why := station.profile.developer_mode_unreadable()) is not None:
        pytest.skip(why)
    assert prime.developer_mode() is True
    toggle = open_settings(prime, look)
    touch.tap(*toggle)
    turned_off = developer_mode_within(prime, False)
    if turned_off:
        touch.tap(*toggle)
    assert turned_off, f"GET_DEVELOPER_MODE still answers on {waited(SETTLE_S)} after Settings turned it off"
    assert developer_mode_within(prime, True), "Developer Mode did not come back on"


@pytest.mark.development_only
def test_developer_mode_off_refuses_sideload_and_certificates(prime, touch, look, station):
    """Developer Mode gates LOAD_APP_* and INSTALL_CERTIFICATE on every build (keyos.md §5.1, §9), not only
    the interface's presence on production: a development build keeps its link but must refuse both, at
    the first command (LOAD_APP_BEGIN), with nothing installed; and SET_SYSTEM_TIME, which moves what every
    certificate's validity is judged against, takes the same gate (os/usb-debug/src/dispatch.rs ``set_system_time``), as
    does CLOSE_APP (dispatch.rs ``close_app``: "rejected: Developer Mode is disabled"), asked to close an app started
    before the switch."""
    if (why := station.profile.developer_mode_unreadable()) is not None:
        pytest.skip(why)
    assert prime.developer_mode() is True
    stranger = P.Publisher.create(prime.system_time(), name="prime-hil developer-mode-off")
    before = prime.publisher_count()
    running = prime.launch_app(BITCOIN_APP)  # an app of every release (1.0.0 apps/), for CLOSE_APP to be asked about
    if running.status not in (LaunchStatus.LAUNCHED, LaunchStatus.ALREADY_RUNNING):
        raise DeviceStateError(f"{prime.device}: the Bitcoin app did not launch ({running.status.name}), nothing to close")
    toggle = open_settings(prime, look)  # the switch where the Settings screen shows it
    touch.tap(*toggle)
    if not developer_mode_within(prime, False):
        raise DeviceStateError(f"{prime.device}: Developer Mode did not turn off within {waited(SETTLE_S)}")
    refused: dict[str, str | None] = {}
    try:
        for what, call in [("LOAD_APP_BEGIN", lambda: prime.sideload(P.probe_app_id("developer-mode-off"),
                                                                     {"manifest.json": b"{}"})),
                           ("INSTALL_CERTIFICATE", lambda: prime.install_certificate(stranger.fingerprint, stranger.pem)),
                           ("SET_SYSTEM_TIME", lambda: prime.set_system_time(prime.system_time())),
                           ("CLOSE_APP", lambda: prime.close_app(running.pid))]:
            try:
                call()
                refused[what] = None
            except CommandRefused as e:
                refused[what] = e.command
    finally:
        touch.tap(*toggle)
    assert developer_mode_within(prime, True), "Developer Mode did not come back on"
    if refused["CLOSE_APP"]:
        prime.close_app(running.pid)
    assert all(what == command for what, command in refused.items()), \
        f"with Developer Mode off, the first command refused was (expected -> refused): {refused}"
    assert prime.publisher_count() == before, "a certificate was installed with Developer Mode off"


def test_no_network_server(probe, probe_id, templates):
    run = probe.run(manifest_for(probe_id(), "Net", {}, templates), [P.connect(s) for s in NETWORK_SERVERS])
    records = run.finish()
    assert [r["result"] for r in records] == ["ServerNotFound"] * len(NETWORK_SERVERS), records


def server_names(table: str) -> list[str]:
    """Each row of the kernel's 's' table as the process that serves it and, for a server whose id was
    made from its name (``SID::from_bytes(b"os/net")``), that name."""
    names = []
    for process, sid in SERVER_ROW.findall(table):
        names.append(process)
        text = bytes.fromhex(sid).rstrip(b"\0")
        if text.isascii() and text.decode().isprintable():
            names.append(text.decode())
    return names


@pytest.mark.development_only
def test_no_network_server_in_the_kernel_table(prime):
    names = server_names(prime.kernel_cmd("s"))
    assert names, "the kernel's 's' table lists no server rows (not even the OS's own): unreadable, not clean"
    assert not [n for n in names if NETWORK_NAME.search(n)], f"a network server is registered: {names}"
    processes = " ".join(prime.kernel_cmd("t").split())
    assert not NETWORK_NAME.search(processes), f"a network process runs: {processes}"
