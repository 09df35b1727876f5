"""Which NFC readers can do what the bench needs, from nfcpy's own drivers (nfcpy 1.0, ``nfc/clf/*.py``).

The bench uses a reader two ways: as a reader of the Prime's ISO-DEP card emulation (FIDO CTAP2; nfcpy
``sense_tta`` + ISO-DEP activation) and as a Type 4 tag presented to the Prime (``listen_tta`` with a
Type 4A activation). Per driver:
- ``pn531``, ``pn532``, ``pn533`` (``pn53x.listen_tta``) and ``rcs380``: both. The chip (or the driver)
  answers RATS itself, so the first command the harness sees is an I-block, and the UID must be 4 bytes
  starting 08h (a random UID, as the Prime's own card emulation uses);
- ``rcs956`` (Sony RC-S330/360/370): reader only ("A Type 4A Tag activation is not supported");
- ``acr122`` (ACS ACR122U): reader only (its firmware hides the PN532's target mode: ``listen_tta``
  raises UnsupportedTargetError);
- ``udp`` (nfcpy's loopback, the emulated bench): both; RATS arrives as the first command.
A reader that cannot do a mode is refused when the lab file is loaded, with one that can.
"""

from __future__ import annotations

import re

from hil.errors import ConfigError

READER, TAG = "read the Prime's card", "present a tag"
MODES = {"pn531": {READER, TAG}, "pn532": {READER, TAG}, "pn533": {READER, TAG}, "rcs380": {READER, TAG},
         "rcs956": {READER}, "acr122": {READER}, "udp": {READER, TAG}}
CAN_DO_BOTH = "a PN533 reader such as the Identive SCL3711 (usb:04e6:5591) or a Sony RC-S380 (usb:054c:06c1)"


def driver_of(path: str) -> str | None:
    """The nfcpy driver a device path selects, or None where only opening it would tell (usb:BUS:DEV,
    a bench's reader behind ``bridge:``)."""
    if path.startswith("udp"):
        return "udp"
    if m := re.fullmatch(r"tty:[^:]+:(\w+)", path):
        return m.group(1)
    if m := re.fullmatch(r"usb:([0-9a-fA-F]{4}):([0-9a-fA-F]{4})", path):
        from nfc.clf.device import usb_device_map

        return usb_device_map.get((int(m.group(1), 16), int(m.group(2), 16)))
    return None


def check_reader(path: str, needs: frozenset[str] = frozenset({READER, TAG})) -> None:
    """Refuse a reader whose nfcpy driver cannot do every mode in ``needs``, naming one that can."""
    driver = driver_of(path)
    if driver is None:
        return
    missing = sorted(needs - MODES.get(driver, set()))
    if missing:
        raise ConfigError(f"NFC reader {path} (nfcpy driver {driver}) cannot {' or '.join(missing)}; "
                          f"use {CAN_DO_BOTH}")
