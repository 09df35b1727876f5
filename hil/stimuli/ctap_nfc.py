"""CTAP2 over NFC to the Prime: a python-fido2 ``CtapDevice`` on an nfcpy ISO-DEP session, so
``fido2.ctap2.Ctap2`` and ``Fido2Client`` run against a Prime exactly as against any NFC key.

Framing as KeyOS serves it (``os/nfc/src/atsama5d2.rs``): SELECT the FIDO AID A0000006472F0001
(answer ``U2F_V2``), then each CTAP2 request in one NFCCTAP_MSG APDU (80 10 00 00, short Lc: KeyOS
takes no command chaining, so a request over 255 bytes is refused here before it is sent), the response
in 96-byte pieces fetched with GET RESPONSE while the status word is 61XX.  A card that never stops
saying 61XX is cut off at :data:`MAX_RESPONSE` bytes or ``response_timeout`` seconds (:class:`EndlessResponse`).
KeyOS asks for user presence without blocking: it shows the prompt and answers USER_ACTION_PENDING
until the user has answered, and the platform re-sends the same request. :meth:`call` does that
re-sending, reports ``STATUS.UPNEEDED`` once through ``on_keepalive``, and honours ``event`` (cancel).
Status words other than 9000/61XX raise :class:`ApduError` with the status word kept.
"""

from __future__ import annotations

import struct
import time
from threading import Event

from fido2.ctap import STATUS, CtapDevice, CtapError
from fido2.hid import CAPABILITY, CTAPHID

from hil.errors import InfrastructureError
from hil.machine import scaled
from hil.stimuli.nfc import IsoDepSession, NfcError

FIDO_AID = bytes.fromhex("A0000006472F0001")
NFCCTAP_MSG = 0x10
USER_ACTION_PENDING = 0x23
# Each block is waited for this long on an idle host, scaled with the load when a device is opened, not only
# the frame waiting time the card's ATS states (FWI 10: 309 ms on the emulated card): a CTAP2 answer (a key
# pair, a signature) on a loaded host takes longer, and nfcpy's R(NAK) retries then cross the late answer and
# end in a protocol error (NfcFieldLost on the good build).  A field really lost is still reported within
# nfc.BLOCK_TRIES such waits (a bench bridge waits for that).
APDU_TIMEOUT = 1.0
MAX_RESPONSE = 64 * 1024  # far above any CTAP2 response KeyOS sends (its CBOR messages fit in a few KiB)
SW_MEANING = {0x6A81: "function not supported", 0x6A82: "file or application not found", 0x6700: "wrong length",
              0x6D00: "instruction not supported", 0x6E00: "class not supported", 0x6281: "corrupted data",
              0x6F00: "unspecified checking error"}


class ApduError(CtapError):
    """The card answered with a status word that is not success; the word is kept in ``sw``."""

    def __init__(self, sw: int, what: str):
        super().__init__(CtapError.ERR.OTHER)
        self.sw = sw
        self.args = (f"{what}: SW {sw:04X} ({SW_MEANING.get(sw, 'unknown status')})",)


class PresenceTimeout(InfrastructureError):
    """The Prime kept asking for user presence past our deadline and never timed the prompt out itself."""


class EndlessResponse(NfcError):
    """The card kept asking to be fetched from (SW 61XX) past the size or time bound of one response."""


class CtapNfcDevice(CtapDevice):
    def __init__(self, session: IsoDepSession, poll_interval: float = 0.1, presence_deadline: float = 60.0,
                 response_timeout: float = 10.0):
        self.session = session
        self.response_timeout = response_timeout
        self.poll_interval = poll_interval
        self.presence_deadline = presence_deadline
        self.apdu_timeout = scaled(APDU_TIMEOUT)
        self._capabilities = CAPABILITY(0)
        try:
            data, sw = self.session.apdu(b"\x00\xA4\x04\x00" + bytes([len(FIDO_AID)]) + FIDO_AID + b"\x00",
                                         self.apdu_timeout)
            if sw != 0x9000:
                raise ApduError(sw, "SELECT of the FIDO applet")
            self.select_response = data
            self.call(CTAPHID.CBOR, b"\x04")  # probe CTAP2 with getInfo, as fido2.pcsc does
        except BaseException:
            session.close()  # the reader is released whatever went wrong
            raise
        self._capabilities |= CAPABILITY.CBOR

    @property
    def capabilities(self) -> int:
        return self._capabilities

    def _exchange(self, apdu: bytes) -> bytes:
        deadline = time.monotonic() + self.response_timeout
        data, sw = self.session.apdu(apdu, self.apdu_timeout)
        while sw >> 8 == 0x61:  # more data: KeyOS hands it out in 96-byte pieces
            if len(data) > MAX_RESPONSE or time.monotonic() > deadline:
                raise EndlessResponse(
                    f"card on {self.session.where}: the response to APDU {apdu[:4].hex()} was still "
                    f"asking to be fetched (SW {sw:04X}) after {len(data)} bytes "
                    f"(limits: {MAX_RESPONSE} bytes, {self.response_timeout:g} s); the card is misbehaving")
            more, sw = self.session.apdu(b"\x00\xC0\x00\x00" + bytes([sw & 0xFF]), self.apdu_timeout)
            data += more
        if sw != 0x9000:
            raise ApduError(sw, f"APDU {apdu[:4].hex()}")
        return data

    def call(self, cmd: int, data: bytes = b"", event: Event | None = None, on_keepalive=None) -> bytes:
        if cmd != CTAPHID.CBOR:
            raise CtapError(CtapError.ERR.INVALID_COMMAND)
        if len(data) > 255:
            raise CtapError(CtapError.ERR.REQUEST_TOO_LARGE)
        apdu = struct.pack(">BBBBB", 0x80, NFCCTAP_MSG, 0x00, 0x00, len(data)) + data + b"\x00"
        deadline = time.monotonic() + self.presence_deadline
        told = False
        while True:
            resp = self._exchange(apdu)
            if not resp or resp[0] != USER_ACTION_PENDING:
                return resp
            if on_keepalive and not told:
                on_keepalive(STATUS.UPNEEDED)
                told = True
            if event is not None and event.wait(self.poll_interval):
                raise CtapError(CtapError.ERR.KEEPALIVE_CANCEL)
            if event is None:  # ISO-DEP is command/response: the card cannot say when the user answered
                time.sleep(self.poll_interval)
            if time.monotonic() > deadline:
                raise PresenceTimeout(f"the Prime still wanted user presence after {self.presence_deadline:.0f} s")

    def close(self) -> None:
        self.session.close()

    @classmethod
    def list_devices(cls):
        return iter(())  # a Prime is reached through a station's reader (NfcReader.connect), not enumerated
