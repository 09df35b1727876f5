"""The emulated jig relay board: a Devantech USB-RLY02 on a pty, relay 1 wired across the Prime's
power button, relay 2 across its CD pads. Each edge of relay 1 is an edge of the button
(``Prime.power_button``): the Prime decides what a press means (KeyOS: long from 1000 ms; the PMIC: off
after 10 s; keyos-boot: clicks at the logo open the Boot Menu). Relay 2 closed is the pads shorted: the
boot ROM that powers on then skips the eMMC and starts SAM-BA (KeyOS DEVELOPMENT.md, "Recovering a Bricked
Device"), the one way into SAM-BA a production unit has."""

from __future__ import annotations

from hil.emulator.pty import PtyDevice

MODULE_ID, FIRMWARE = 10, 1  # USB-RLY02
POWER_BUTTON, CD_PADS = 0x01, 0x02  # relay 1, relay 2 (state bits)
CD_PADS_CHANNEL = 2  # what the emulated bench announces as its station's ``cd_relay``


class EmulatedRelay(PtyDevice):
    name = "relay"

    def __init__(self):
        super().__init__()
        self.prime = None
        self.states = 0
        self._pending_set = False

    def start(self, prime) -> tuple[str, str]:
        self.prime = prime
        return "relay", self.start_pty()

    def on_bytes(self, data: bytes) -> None:
        for b in data:
            if self._pending_set:  # 0x5C is followed by the new state byte
                self._pending_set = False
                self._apply(b)
            elif b == 0x5A:
                self.write(bytes([MODULE_ID, FIRMWARE]))
            elif b == 0x5B:
                self.write(bytes([self.states]))
            elif b == 0x5C:
                self._pending_set = True
            elif b == 0x64:
                self._apply(0x03)
            elif b == 0x6E:
                self._apply(0x00)
            elif 0x65 <= b <= 0x66:
                self._apply(self.states | 1 << (b - 0x65))
            elif 0x6F <= b <= 0x70:
                self._apply(self.states & ~(1 << (b - 0x6F)))
            # anything else: the board ignores it, as the real one does

    def _apply(self, states: int) -> None:
        was, self.states = self.states, states & 0x03
        with self.prime.lock:
            self.prime.cd_pads_shorted = bool(self.states & CD_PADS)
            if (was ^ self.states) & POWER_BUTTON:
                self.prime.power_button(down=bool(self.states & POWER_BUTTON))
