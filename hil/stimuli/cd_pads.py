"""Into SAM-BA by the CD pads: a relay of the station's jig shorts them while the unit powers on, and the
SAMA5D2's boot ROM then starts its SAM-BA monitor instead of booting the eMMC (KeyOS ``DEVELOPMENT.md``,
"Recovering a Bricked Device": short the contact left of "CD" with the left one of the other pair, hold
power 10 s to reboot, remove the short once the screen is blank).

It is the one way into SAM-BA a production unit has: its Boot Menu has no SAM-BA entry
(``boot/keyos-boot/src/menu_page.rs``; ``boot_common::enter_sam_ba_mode`` is itself
``cfg(not(feature = "production"))``) and its usb-debug refuses REBOOT_SAMBA (keyos.md §5.1). It needs
no robot and no camera: the ROM acts before any bootloader runs, whatever the eMMC holds.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from hil.stimuli.relay import PowerButtonRelay


def enter_samba(pads: PowerButtonRelay, power_cycle: Callable[[], None], hold_s: float) -> None:
    """Short the pads (``pads``: the relay across them), ``power_cycle`` the unit (the power button's 10 s hold
    and click), keep the short ``hold_s`` past the power-on click (the profile's ``cd_pads_hold_s``), let go."""
    pads.set(True)
    try:
        power_cycle()
        time.sleep(hold_s)  # a physical hold: no link answers while the ROM decides, nothing to poll
    finally:
        pads.set(False)
