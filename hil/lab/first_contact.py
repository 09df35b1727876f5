"""First contact with a Prime whose only tty is its SAM-BA boot ROM (03eb:6124, keyos.md §10): flash the
build given (or boot what its eMMC holds), then wait for KeyOS to enumerate on the same USB port path
and take its debug interface there. A unit changes USB identity between SAM-BA and KeyOS but not its
port path, which is how a station is pinned."""

from __future__ import annotations

import time
from pathlib import Path

from hil.errors import InfrastructureError
from hil.lab.station import Station
from hil.flash import cosign2
from hil.flash.flasher import Flasher, boot_policy, load_firmware
from hil.flash.samba import Samba, SambaError
from hil.link.resolve import SambaRom, open_client
from hil.link.transport import LinkError


class KeyOsDidNotEnumerate(InfrastructureError):
    """The unit left SAM-BA but no KeyOS debug interface answered on its port path in time."""


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
        with Samba.open(rom.tty, timeout=timeout) as samba:
            samba.connect(timeout=timeout)
            samba.reboot_to_normal()  # sambuca flash.rs: BSC_CR then RSTC_CR, boots what the eMMC holds
    except SambaError as e:
        raise KeyOsDidNotEnumerate(f"{rom.tty}: the SAM-BA monitor did not answer ({e})") from None
    deadline, seen = time.monotonic() + timeout, "nothing"
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
