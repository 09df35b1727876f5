"""A serial relay board wired across the Prime's power button (Devantech USB-RLY02 command set).

Devantech's USB-RLY02/16/16L boards take single-byte commands over their USB serial port: 0x5A
version (replies module id, firmware version), 0x5B relay states (replies one byte, bit n-1 = relay n),
0x64/0x6E all on/off, 0x65+n-1 relay n on, 0x6F+n-1 relay n off. The board can report its relay
states, so every switch is read back: a relay that did not close is a broken station, never a
pressed button. Hold times follow the usb-debug POWER_BTN (200 ms short, 3000 ms long; KeyOS calls
a press long from 1000 ms, keyos.md §2.3).
"""

from __future__ import annotations

import time

import serial

from hil.errors import InfrastructureError
from hil.machine import scaled
from hil.stimuli.serial_instrument import SerialInstrument

GET_VERSION, GET_STATES = 0x5A, 0x5B
RELAY_ON, RELAY_OFF = 0x65, 0x6F  # + (channel - 1)
MODULE_IDS = {10: "USB-RLY02", 9: "USB-RLY16", 15: "USB-RLY16L"}
SHORT_MS, LONG_MS = 200, 3000


class RelayError(InfrastructureError):
    """The relay board did not answer or did not switch."""


class PowerButtonRelay(SerialInstrument):
    """One relay channel across the power button; every switch is read back from the board."""

    what, error, baudrate, read_timeout = "power relay board", RelayError, 19200, 0.1

    def __init__(self, port: serial.SerialBase, channel: int = 1, timeout: float = 2.0):
        if not 1 <= channel <= 8:
            raise ValueError(f"relay channel {channel} is not 1..8")
        self.port, self.channel, self.timeout = port, channel, timeout
        self.module = ""

    def bring_up(self) -> None:
        """Check it is a relay board and start with the button released."""
        self.identify()
        self.set(False)

    def _ask(self, cmd: int, n: int) -> bytes:
        limit = scaled(self.timeout)  # the board answers at once; a loaded lab host reads it late
        try:
            self.port.reset_input_buffer()
            self.port.write(bytes([cmd]))
            got = b""
            deadline = time.monotonic() + limit
            while len(got) < n and time.monotonic() < deadline:
                got += self.port.read(n - len(got))
        except (serial.SerialException, OSError) as e:
            raise RelayError(f"power relay board lost: {e}") from None
        if len(got) < n:
            raise RelayError(f"power relay board did not answer command 0x{cmd:02X} within {limit:.0f} s")
        return got

    def identify(self) -> str:
        module_id, firmware = self._ask(GET_VERSION, 2)
        if module_id not in MODULE_IDS:
            raise RelayError(f"device answered as module id {module_id}, not a Devantech relay board "
                             f"({', '.join(MODULE_IDS.values())}); check the relay port in lab_config.yaml")
        self.module = f"{MODULE_IDS[module_id]} v{firmware}"
        return self.module

    def sibling(self, channel: int) -> PowerButtonRelay:
        """Another relay of the same board on the same open port (the jig's relay across the CD pads)."""
        return type(self)(self.port, channel, self.timeout)

    def closed(self) -> bool:
        return bool(self._ask(GET_STATES, 1)[0] >> (self.channel - 1) & 1)

    def set(self, closed: bool) -> None:
        try:
            self.port.write(bytes([(RELAY_ON if closed else RELAY_OFF) + self.channel - 1]))
        except (serial.SerialException, OSError) as e:
            raise RelayError(f"power relay board lost: {e}") from None
        if self.closed() != closed:
            raise RelayError(f"relay {self.channel} did not {'close' if closed else 'open'}; check the board's supply")

    def press(self, long: bool = False, hold_ms: int | None = None) -> None:
        """Hold the power button for ``hold_ms`` (default: 200 ms short, 3000 ms long), then let go."""
        self.set(True)
        try:
            time.sleep((hold_ms if hold_ms is not None else LONG_MS if long else SHORT_MS) / 1000)
        finally:
            self.set(False)
