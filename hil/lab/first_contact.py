"""First contact with a Prime whose only tty is its SAM-BA boot ROM (03eb:6124, keyos.md §10): flash the
build given (or boot what its eMMC holds), then wait for KeyOS to enumerate on the same USB port path
and take its debug interface there; and the way back, KeyOS to the ROM's tty on that port path. A unit
changes USB identity between SAM-BA and KeyOS but not its port path (sysfs ``busnum``/``devpath``),
which is how a station is pinned."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from hil.errors import ConfigError, InfrastructureError
from hil.lab.station import Station
from hil.flash import cosign2
from hil.flash.flasher import Flasher, boot_policy, load_firmware
from hil.flash.samba import SambaError
from hil.flash.samba_entry import leave_samba
from hil.link.resolve import BUS_PORT, SambaRom, open_client, rom_tty, usb_id
from hil.link.usb import host_sysfs
from hil.link.transport import LinkError


class KeyOsDidNotEnumerate(InfrastructureError):
    """The unit left SAM-BA but no KeyOS debug interface answered on its port path in time."""


class RomDidNotEnumerate(InfrastructureError):
    """The unit was sent to SAM-BA (REBOOT_SAMBA or its jig) but no ROM tty appeared on its port path in time."""


def back_to_samba(port: str, station: Station, timeout: float = 60.0) -> SambaRom:
    """The unit at USB port path ``port`` into its ROM, then the ROM's tty on that same path (as sysfs shows
    it: the ttyACM node numbers may change, the port path does not). REBOOT_SAMBA where the build answers
    it; else the station's jig by its route (`hil.stimuli.boot_menu.route`: the CD pads on a production
    bootloader, whose Boot Menu has no SAM-BA entry; the Boot Menu on a development one)."""
    from hil.flash.samba_entry import reach_samba
    from hil.stimuli.boot_menu import flasher_route

    try:
        with flasher_route(station) as press:
            reach_samba(lambda: open_client(f"usb:{port}", station.profile, station=station), press)
    except ConfigError as e:
        raise ConfigError(f"usb:{port}: {e}") from None
    sysfs, deadline = host_sysfs(station.profile.usb.backend), time.monotonic() + timeout
    while time.monotonic() < deadline:
        tty = rom_tty(port, sysfs, station.profile.usb.samba)
        if tty is not None:
            return SambaRom(f"{tty}: the SAM-BA ROM at {port}", tty, port)
        time.sleep(0.1)  # the unit is still re-enumerating
    raise RomDidNotEnumerate(f"usb:{port}: no SAM-BA ROM ({station.profile.usb.samba}) on USB port {port} within "
                             f"{timeout:g} s of asking for it")


def keyos_enumerated(port: str, station: Station, timeout: float) -> Callable[[], None]:
    """The wait for what a unit without the debug link shows once it has left SAM-BA and booted: KeyOS's USB
    identity (the profile's ids, not the ROM's) on its port path ``port``, as `Flasher.flash` takes it
    (``booted``: run while the monitor's port is still open, so that the unanswered reset is not lost with a
    hang-up). It proves the bootloader booted KeyOS, not which build: that is the health check's version."""
    usb = station.profile.usb

    def wait() -> None:
        sysfs, deadline, seen = host_sysfs(usb.backend), time.monotonic() + timeout, None
        while time.monotonic() < deadline:
            seen = usb_id(port, sysfs)
            if seen in (usb.keyos, usb.legacy):
                return
            time.sleep(0.1)  # the unit is still resetting or re-enumerating
        raise KeyOsDidNotEnumerate(f"usb:{port}: KeyOS ({usb.keyos}) did not enumerate on USB port {port} within "
                                   f"{timeout:g} s of the reset out of SAM-BA (last seen there: {seen or 'nothing'})")
    return wait


def keyos_booted(station: Station, timeout: float) -> Callable[[], None] | None:
    """For a flash without the debug link (``hil flash``, the nightly): the wait for KeyOS enumerating on the
    unit's USB port path (the station's ``usb_port``, or its ``usb:BUS-PORT`` link), which `Flasher.flash` runs
    before it lets go of the monitor's port (a bench's ser2net drops a client's last bytes, the reset, when it
    hangs up at once). None where the station names no port path: nothing then tells that the unit left SAM-BA."""
    kind, _, where = (station.debug or "").partition(":")
    port = station.usb_port or (where if kind == "usb" and BUS_PORT.fullmatch(where) else None)
    return keyos_enumerated(port, station, timeout) if port else None


def take_over(rom: SambaRom, station: Station, applet: bytes, keys: cosign2.KeySet, *,
              firmware: Path | None = None, flavour: str | None = None, timeout: float = 60.0) -> str:
    """Bring the unit on ``rom``'s tty to KeyOS; returns ``usb:BUS-PORT``, its debug link."""
    device = f"usb:{rom.port}"

    def link():
        return open_client(device, station.profile, station=station)

    if firmware is not None:
        image = load_firmware(firmware, keys, boot_policy(station.profile.boots(flavour)))
        Flasher(rom.tty, applet, keys, link=link, timeout=timeout).flash(image, force=True)  # waits for its version
        return device
    try:
        samba = leave_samba(rom.tty, timeout)  # sambuca flash.rs: BSC_CR then RSTC_CR, boots what the eMMC holds
    except SambaError as e:
        raise KeyOsDidNotEnumerate(f"{rom.tty}: the SAM-BA monitor did not answer ({e})") from None
    deadline, seen = time.monotonic() + timeout, "nothing"
    with samba:
        while time.monotonic() < deadline:
            try:
                with link() as client:
                    client.version()
                return device
            except LinkError as e:
                seen = str(e)
            time.sleep(0.25)
    raise KeyOsDidNotEnumerate(f"{rom.tty}: no KeyOS debug interface on USB port {rom.port} within {timeout:g} s "
                               f"of leaving SAM-BA (last: {seen})")
