"""Which state a station's unit is in, from its own answers: KeyOS on the debug link (booting,
onboarding, locked, unlocked: ``hil.link.state``), else the SAM-BA ROM on its serial port, else
keyos-boot's pages read by the camera (the profile's titles), else a dark panel (off). Nothing is
guessed: a unit that none of these can place raises."""

from __future__ import annotations

import enum

import numpy as np

from hil.lab.station import Station
from hil.flash.samba import Samba, SambaError
from hil.link.state import DeviceStateError, device_state
from hil.link.transport import LinkError

DARK_LEVEL = 16  # brightest pixel of a panel that is off, as the camera sees it (hil.link.state's level)


class UnitState(enum.Enum):
    BOOTING = "booting"
    ONBOARDING = "onboarding"
    LOCKED = "locked"
    UNLOCKED = "unlocked"
    BOOTLOADER_ERROR = "bootloader error page"
    BOOT_MENU = "Boot Menu"
    SAMBA = "SAM-BA"
    OFF = "off"


def unit_state(station: Station, timeout: float = 5.0) -> UnitState:
    if station.debug and not station.profile.link_missing(station.flavour):
        try:
            with station.client(timeout=timeout) as client:
                return UnitState(device_state(client, station.profile).value)
        except LinkError:
            pass  # no KeyOS answering: ask the ROM, then the screen
    if station.samba:
        try:
            with Samba.open(station.samba, timeout=timeout) as samba:
                samba.connect(timeout=timeout)
            return UnitState.SAMBA
        except SambaError:
            pass
    if station.camera:
        return _from_screen(station, timeout)
    raise DeviceStateError(f"station {station.name}: neither KeyOS nor the SAM-BA ROM answers, and no camera "
                           "shows the panel: the unit's state cannot be told")


def _from_screen(station: Station, timeout: float) -> UnitState:
    with station.open_camera() as camera:
        display = station.display(camera, frame_timeout=timeout)
        panel = display.rectified(fresh=True)[0]  # the panel alone: the jig and the room around it stay lit
        if np.percentile(panel, 99) < DARK_LEVEL:  # a percentile, so that sensor noise does not light it
            return UnitState.OFF
        text = display.read().text().casefold()
    titles = station.profile.bootloader_titles
    if titles["error"].casefold() in text:
        return UnitState.BOOTLOADER_ERROR
    if titles["menu"].casefold() in text:
        return UnitState.BOOT_MENU
    raise DeviceStateError(f"station {station.name}: no KeyOS or SAM-BA answers and the camera reads neither "
                           f"bootloader page ({text[:80]!r})")
