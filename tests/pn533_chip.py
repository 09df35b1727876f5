"""A PN533 at its USB frame level (NXP PN533 user manual §6.2: normal and extended information frames,
ACK, error frame), enough for nfcpy's own ``pn533`` driver to initialise and to act as a Type 4A target
(TgInitAsTarget, TgResponseToInitiator, TgGetInitiatorCommand), with a scripted reader on the air.

As the real chip does, it answers RATS itself: TgInitAsTarget returns the RATS, the driver answers it with
TgResponseToInitiator, and the first block the harness sees is the reader's first I-block.
"""

from __future__ import annotations

import errno
from collections import deque
from struct import pack, unpack

SOF = b"\x00\x00\xff"
ACK = b"\x00\x00\xff\x00\xff\x00"
ERROR_FRAME = b"\x00\x00\xff\x01\xff\x7f\x81\x00"
RELEASED = 0x29  # "the target has been released by its initiator"


def frame(data: bytes) -> bytes:
    if len(data) < 255:
        head = SOF + bytes([len(data), (256 - len(data)) & 0xFF])
    else:
        size = pack(">H", len(data))
        head = SOF + b"\xff\xff" + size + bytes([(256 - sum(size)) & 0xFF])
    return head + data + bytes([(256 - sum(data)) & 0xFF, 0])


def unframe(raw: bytes) -> bytes:
    assert raw.startswith(SOF), raw.hex()
    if raw[3:5] == b"\xff\xff":
        (n,) = unpack(">H", raw[5:7])
        data = raw[8:8 + n]
    else:
        data = raw[5:5 + raw[3]]
    assert sum(data + raw[5 + len(data) + (3 if raw[3:5] == b"\xff\xff" else 0):][:1]) & 0xFF == 0
    return data


class Pn533:
    """The chip. ``reader`` is the initiator on the air: called with each block the target sends (first
    the ATS), it returns the next block it sends, or None when it leaves the field."""

    def __init__(self, rats: bytes, reader) -> None:
        self.rats, self.reader = rats, reader
        self.out: deque[bytes] = deque()
        self.sent: list[bytes] = []  # what the target answered over the air
        self.pending: bytes | None = None  # the initiator's next block, once it has one

    # the nfcpy USB transport interface
    def write(self, raw: bytes) -> None:
        raw = bytes(raw)
        if raw == ACK:
            return  # a soft reset / command cancel
        data = unframe(raw)
        assert data[0] == 0xD4, data.hex()
        self.out.append(ACK)
        self.out.append(self.answer(data[1], data[2:]))

    def read(self, timeout: int) -> bytearray:
        if not self.out:
            raise OSError(errno.ETIMEDOUT, "no frame")
        return bytearray(self.out.popleft())

    def close(self) -> None:
        pass

    # the chip's commands
    def answer(self, cmd: int, data: bytes) -> bytes:
        reply = lambda body=b"": frame(bytes([0xD5, cmd + 1]) + body)  # noqa: E731
        if cmd == 0x00:  # Diagnose: the line test echoes
            return reply(data)
        if cmd == 0x02:  # GetFirmwareVersion: PN533 v2.7
            return reply(b"\x33\x02\x07\x07")
        if cmd in (0x12, 0x32):  # SetParameters, RFConfiguration
            return reply()
        if cmd == 0x06:  # ReadRegister: no EEPROM behind 0xA000; CIU registers read 0
            if data[:2] == b"\xa0\x00":
                return ERROR_FRAME
            return reply(b"\x00" + bytes(len(data) // 2))
        if cmd == 0x08:  # WriteRegister
            return reply(b"\x00")
        if cmd == 0x8C:  # TgInitAsTarget: activated at 106A by a reader whose first frame is RATS
            return reply(b"\x00" + self.rats)
        if cmd == 0x90:  # TgResponseToInitiator
            self.sent.append(bytes(data))
            self.pending = self.reader(bytes(data))
            return reply(b"\x00")
        if cmd == 0x88:  # TgGetInitiatorCommand
            if self.pending is None:
                return reply(bytes([RELEASED]))
            block, self.pending = self.pending, None
            return reply(b"\x00" + block)
        raise AssertionError(f"command {cmd:02X} is not emulated")
