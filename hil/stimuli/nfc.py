"""The lab's NFC reader, through nfcpy: ``usb:04e6:5591`` (a PN533 reader, hil.stimuli.nfc_readers) on a bench, ``udp:127.0.0.1:PORT`` against
the emulated Prime.

Two roles. As a reader it activates the Prime's ISO-DEP card emulation (NFC-A, ISO 14443-4) and
exchanges APDUs with it (:class:`IsoDepSession`, used by :mod:`hil.stimuli.ctap_nfc`). As a card it
presents an NFC Forum Type 4 tag holding an NDEF message (built with ndeflib) for the Prime's reader
to read (:meth:`NfcReader.present_tag`); nfcpy only emulates Type 3 tags, and the Prime polls only
NFC-A, so the Type 4 card side is written here on ``clf.listen`` and :mod:`hil.stimuli.isodep`.
A reader that stops answering, or a field that drops in the middle of an exchange, raises
:class:`NfcFieldLost`: an infrastructure fault, never a device verdict, and never a hang.
"""

from __future__ import annotations

import logging
import os
import struct
import time
from dataclasses import dataclass, field

import ndef

from hil import schemes
from hil.errors import ConfigError, InfrastructureError
from hil.stimuli.isodep import ATS, serve_card

log = logging.getLogger(__name__)
NDEF_AID = bytes.fromhex("D2760000850101")
CC_FILE, NDEF_FILE = 0xE103, 0xE104
NDEF_FILE_SIZE = 0x0800
SW_OK, SW_NOT_FOUND, SW_WRONG_P1P2, SW_INS = b"\x90\x00", b"\x6A\x82", b"\x6B\x00", b"\x6D\x00"
BLOCK_TRIES = 6  # nfcpy sends an ISO-DEP block once and retries it at most 5 times (IsoDepInitiator.n_retry_*)


class NfcError(InfrastructureError):
    """The NFC reader could not do its job."""


class NfcFieldLost(NfcError):
    """The RF link broke or the other side went silent in the middle of an exchange."""


class NoCardFound(NfcError):
    """No ISO-DEP card answered in time (the Prime is not on the reader, or NFC is off)."""


def ndef_message(text: str | None = None, uri: str | None = None, raw: list[tuple[str, bytes]] = ()) -> bytes:
    """An NDEF message from a Text record, a URI record and raw (type, payload) records, in that order."""
    records: list[ndef.Record] = []
    if text is not None:
        records.append(ndef.TextRecord(text, "en"))
    if uri is not None:
        records.append(ndef.UriRecord(uri))
    for rtype, payload in raw:
        try:
            records.append(ndef.Record(rtype, "", payload))
        except (ValueError, TypeError, ndef.EncodeError) as e:
            raise ConfigError(f"raw NDEF record type {rtype!r} is not valid ({e}); use e.g. 'urn:nfc:ext:example.com:t'")
    if not records:
        raise ConfigError("an NDEF tag needs at least one record (--text, --uri or --raw)")
    message = b"".join(ndef.message_encoder(records))
    if len(message) + 2 > NDEF_FILE_SIZE:
        raise ConfigError(f"NDEF message of {len(message)} bytes exceeds the tag's {NDEF_FILE_SIZE - 2}-byte file")
    return message


class Type4Tag:
    """NFC Forum Type 4 tag (mapping 2.0) APDU side: NDEF application, CC file, NDEF file."""

    def __init__(self, message: bytes):
        cc = struct.pack(">HBHH", 15, 0x20, 0x00FF, 0x00FF) + struct.pack(">BBHHBB", 4, 6, NDEF_FILE, NDEF_FILE_SIZE,
                                                                          0x00, 0x00)
        self.files = {CC_FILE: bytearray(cc),
                      NDEF_FILE: bytearray((struct.pack(">H", len(message)) + message).ljust(NDEF_FILE_SIZE, b"\0"))}
        self.selected_app = False
        self.current: int | None = None
        self.read_to = 0  # how far into the NDEF file the reader has read

    @property
    def message(self) -> bytes:
        f = self.files[NDEF_FILE]
        return bytes(f[2:2 + struct.unpack(">H", f[:2])[0]])

    @property
    def fully_read(self) -> bool:
        return self.read_to >= 2 + len(self.message)

    def apdu(self, c: bytes) -> bytes:
        if len(c) < 4:
            return SW_WRONG_P1P2
        _, ins, p1, p2 = c[:4]
        data = c[5:5 + c[4]] if len(c) > 5 else b""
        if ins == 0xA4:
            if p1 == 0x04:
                self.selected_app = data == NDEF_AID
                return SW_OK if self.selected_app else SW_NOT_FOUND
            fid = int.from_bytes(data, "big") if len(data) == 2 else -1
            if self.selected_app and fid in self.files:
                self.current = fid
                return SW_OK
            return SW_NOT_FOUND
        if ins in (0xB0, 0xD6) and self.current is not None:
            f, off = self.files[self.current], (p1 << 8) | p2
            if ins == 0xB0:
                le = (c[4] if len(c) == 5 else 0) or 256
                if self.current == NDEF_FILE:
                    self.read_to = max(self.read_to, off + le)
                return bytes(f[off:off + le]) + SW_OK
            if self.current != NDEF_FILE or off + len(data) > len(f):
                return SW_WRONG_P1P2
            f[off:off + len(data)] = data
            return SW_OK
        return SW_INS


@dataclass
class TagResult:
    """What happened to a presented tag: it was read, and what the Prime left in it."""

    read: bool
    message: bytes
    apdus: list[str] = field(default_factory=list)

    @property
    def records(self) -> list:
        return list(ndef.message_decoder(self.message))


class IsoDepSession:
    """An activated ISO-DEP card (the Prime): APDUs in, response data and status word out."""

    def __init__(self, clf, tag):
        self.clf, self.tag = clf, tag
        self.where, self.identifier = clf.device.path, bytes(tag.identifier)

    def apdu(self, command: bytes, timeout: float | None = None) -> tuple[bytes, int]:
        import nfc.clf
        import nfc.tag

        try:
            rsp = self.tag.transceive(bytes(command), timeout)
        except (nfc.tag.TagCommandError, nfc.clf.CommunicationError) as e:
            raise NfcFieldLost(f"NFC field lost mid-exchange with {self.where}: {e}; "
                               "the card stopped answering") from None
        if rsp is None or len(rsp) < 2:
            raise NfcFieldLost(f"card answered APDU {bytes(command[:4]).hex()} with {len(rsp or b'')} bytes, "
                               "no status word")
        return bytes(rsp[:-2]), int.from_bytes(rsp[-2:], "big")

    def close(self) -> None:
        self.clf.close()


def reader(path: str):
    """The station's reader: an nfcpy path on this host, or an address scheme's reader with the same calls
    (``bridge:HOST:PORT``: one on a bench host, ``hil.stimuli.nfc_bridge``)."""
    remote = schemes.opener("nfc", path)
    return remote(path) if remote is not None else NfcReader(path)


class NfcReader:
    """One reader at one nfcpy path; opens the frontend per operation, so nothing outlives a lost device."""

    def __init__(self, path: str):
        self.path = path

    def _frontend(self):
        import nfc

        try:
            return nfc.ContactlessFrontend(self.path)
        except (OSError, IOError) as e:
            raise NfcError(f"cannot open NFC reader {self.path}: {e}") from None

    def connect(self, timeout: float = 5.0) -> IsoDepSession:
        """Poll for the Prime's ISO-DEP card (NFC-A) and activate it (RATS/ATS)."""
        import nfc.clf
        import nfc.tag
        import nfc.tag.tt4

        clf = self._frontend()
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                target = clf.sense(nfc.clf.RemoteTarget("106A"), iterations=1)
                tag = nfc.tag.activate(clf, target) if target is not None else None
                if isinstance(tag, nfc.tag.tt4.Type4Tag):
                    log.info("ISO-DEP card %s on %s", tag.identifier.hex(), self.path)
                    return IsoDepSession(clf, tag)
                time.sleep(0.05)  # a card cannot announce itself: the reader polls the field for one
        except BaseException:
            clf.close()
            raise
        clf.close()
        raise NoCardFound(f"no ISO-DEP card answered on {self.path} within {timeout:.0f} s; "
                          "is the Prime on the reader with NFC enabled?")

    def present_tag(self, message: bytes, timeout: float = 10.0, uid: bytes | None = None) -> TagResult:
        """Be a Type 4 tag holding ``message`` until a reader has read it and let go (or ``timeout``)."""
        import nfc.clf

        card = Type4Tag(message)
        target = nfc.clf.LocalTarget("106A")
        target.sens_res = bytearray.fromhex("4400")
        target.sdd_res = bytearray(uid or b"\x08" + os.urandom(3))  # PN53x/RC-S380 take only a random 4-byte UID
        target.sel_res = bytearray.fromhex("20")
        target.rats_res = bytearray(ATS)  # where the chip answers RATS itself, with the harness's ATS
        apdus: list[str] = []

        def handler(c: bytes) -> bytes:
            apdus.append(c.hex())
            return card.apdu(c)

        deadline = time.monotonic() + timeout
        with self._frontend() as clf:
            while time.monotonic() < deadline:
                started = time.monotonic()
                activated = clf.listen(target, min(1.0, max(0.05, deadline - started)))
                if activated is None or not activated.tt4_cmd:
                    if time.monotonic() - started < 0.05:
                        time.sleep(0.05)  # the other side holds the air (port); wait for its turn
                    continue
                ended = serve_card(clf, handler, first=bytes(activated.tt4_cmd))  # RATS, or (PN53x) an I-block
                if card.fully_read:
                    return TagResult(True, card.message, apdus)
                if ended != "deselect":
                    raise NfcFieldLost(f"NFC field lost mid-exchange while presenting a tag on {self.path} "
                                       f"({ended}) after {len(apdus)} APDUs; the reader never finished reading")
        raise NfcError(f"no reader read the presented tag on {self.path} within {timeout:.0f} s")

