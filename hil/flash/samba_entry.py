"""Into SAM-BA: the one way every caller takes the unit to its boot ROM monitor (the flasher, first contact's
``back_to_samba``). REBOOT_SAMBA over the debug link where the build answers it (usb-debug dispatch; production
refuses it, keyos.md §5.1), else a press of the station's route into the ROM: its jig
(`hil.stimuli.boot_menu.flasher_route`: the CD pads on a production bootloader, the Boot Menu on a development
one) or a person. It lives with the flasher, which needs it; the presses it is given live with the stimuli.
Out of SAM-BA: `leave_samba`, the monitor's reset, for those who wait for KeyOS themselves.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

from hil.errors import ConfigError, InfrastructureError
from hil.flash.samba import Samba, SambaError
from hil.link.client import DeviceError
from hil.link.transport import LinkError


class SambaUnreachable(InfrastructureError):
    """Nothing can take the unit into SAM-BA: no REBOOT_SAMBA answered, and no jig or person to press the route."""


def reach_samba(link: Callable[[], contextlib.AbstractContextManager] | None, press: Callable[[], None] | None) -> None:
    """REBOOT_SAMBA over ``link`` where its build answers it, else ``press``. Nothing here waits for the monitor;
    a jig that cannot press the route says why (`ConfigError`), after why REBOOT_SAMBA did not do."""
    why = "no debug link configured"
    if link is not None:
        try:
            with link() as client:
                client.reboot_to_samba()
            return
        except DeviceError as e:
            why = f"the device refused REBOOT_SAMBA ({e})"
        except LinkError as e:
            why = f"no REBOOT_SAMBA: debug link unavailable ({e})"
    if press is None:
        raise SambaUnreachable(f"cannot put the device in SAM-BA mode: {why}; production builds need the station's "
                               f"CD relay, development ones its relay and robot: wire the station's jig "
                               f"(docs/firmware.md), or have a person take it there")
    try:
        press()
    except ConfigError as e:
        raise ConfigError(f"{why}; {e}") from None


def leave_samba(port: str, timeout: float) -> Samba:
    """The monitor on ``port``, reset to boot what the eMMC holds. The caller closes it only once KeyOS answers:
    the reset is never answered, and a bench's ser2net drops the last bytes of a client that hangs up at once
    (see `hil.flash.flasher.Flasher`)."""
    samba = Samba.open(port, timeout=timeout)
    try:
        samba.connect(timeout=timeout)
        samba.reboot_to_normal()
    except SambaError:
        samba.close()
        raise
    return samba
