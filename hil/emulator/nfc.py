"""The emulated Prime's NFC controller (ST25R95 in KeyOS) on nfcpy's ``udp`` driver.

Card emulation as KeyOS's ``os/nfc/src/atsama5d2.rs`` does it: NFC-A, ATQA 0x0400, SAK 0x20
(ISO 14443-4), a random 4-byte UID starting 0x08 per session, ISO-DEP blocks (I-blocks with
chaining, R(NAK), S(DESELECT)), then APDUs: SELECT of the FIDO AID answers ``U2F_V2``, other
AIDs 6A81; NFCCTAP_MSG (80 10) carries CTAP2 to :mod:`hil.emulator.ctap2`; responses longer than
96 bytes are chained with 61XX and fetched by GET RESPONSE (00 C0) or NFCCTAP_GETRESPONSE (80 11);
other classes 6E00, other instructions 6D00. A session ends on DESELECT, RF off, or 5 s without a
command (APDU_TRANSACTION_TIMEOUT).

Between card sessions the controller also polls as an NFC-A reader, the way an NFC Forum discovery
loop alternates listen and poll: a Type 4 tag that the harness presents is read (NDEF application
D2760000850101, CC file E103, NDEF file), logged and shown on the display. The udp "air" is one port:
whoever listens binds it, whoever polls sends to it.
"""

from __future__ import annotations

import hashlib
import os
import socket
import threading
import weakref

import nfc
import nfc.clf
import nfc.tag
import ndef

from hil.emulator.ctap2 import Authenticator
from hil.stimuli.isodep import serve_card

FIDO_AID = bytes.fromhex("A0000006472F0001")
CHUNK = 96  # ISO7816_APDU_CHAINING_CHUNK_SIZE in KeyOS
NFCCTAP_MSG, NFCCTAP_GETRESPONSE, GET_RESPONSE, SELECT = 0x10, 0x11, 0xC0, 0xA4
SW_OK = b"\x90\x00"
SW_FUNCTION_NOT_SUPPORTED, SW_WRONG_LENGTH = b"\x6A\x81", b"\x67\x00"
SW_CLA_NOT_SUPPORTED, SW_INS_NOT_SUPPORTED, SW_CORRUPTED = b"\x6E\x00", b"\x6D\x00", b"\x62\x81"
SESSION_IDLE_S = 5.0  # APDU_TRANSACTION_TIMEOUT
LISTEN_S = 1.0


_RUNNING: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()  # prime -> its EmulatedNfc


def control(prime, request: dict) -> dict:
    """The control endpoint's ``nfc`` request: ``field_loss`` true|false (every card session drops mid-exchange)."""
    dev = _RUNNING.get(prime)
    if dev is None:
        raise ValueError("this Prime has no NFC running")
    if "field_loss" in request:
        if not isinstance(request["field_loss"], bool):
            raise ValueError("nfc 'field_loss' must be true or false")
        dev.field_loss = request["field_loss"]
    return {"field_loss": dev.field_loss, "sessions": dev.sessions[-10:]}


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("0.0.0.0", 0))
        return s.getsockname()[1]


class FidoApplet:
    """The APDU layer of KeyOS's NFC server: FIDO applet selection, NFCCTAP, 96-byte response chaining."""

    def __init__(self, authenticator: Authenticator):
        self.ctap = authenticator
        self.remaining = b""

    def apdu(self, c: bytes) -> bytes:
        if len(c) < 4:
            return SW_CORRUPTED
        cla, ins, p1, p2 = c[:4]
        data = _apdu_data(c)
        if data is None:
            return SW_CORRUPTED
        if cla == 0x00 and ins == SELECT:
            return b"U2F_V2" + SW_OK if data == FIDO_AID else SW_FUNCTION_NOT_SUPPORTED
        if (cla, ins) in ((0x00, GET_RESPONSE), (0x80, NFCCTAP_GETRESPONSE)):
            resp, self.remaining = self.remaining, b""
            return self._chain(resp) if resp else SW_WRONG_LENGTH
        if cla == 0x80 and ins == NFCCTAP_MSG:
            if not data:
                return SW_WRONG_LENGTH
            return self._chain(self.ctap.process(data[0], data[1:]) + SW_OK)
        if cla not in (0x00, 0x80):
            return SW_CLA_NOT_SUPPORTED
        return SW_INS_NOT_SUPPORTED

    def _chain(self, resp: bytes) -> bytes:
        if len(resp) - 2 > CHUNK:
            self.remaining = resp[CHUNK:]
            left = len(self.remaining) - 2
            return resp[:CHUNK] + bytes([0x61, 0 if left > 255 else left])
        return resp


def _apdu_data(c: bytes) -> bytes | None:
    """Command data of a short APDU (case 1-4); None if the length bytes do not add up."""
    if len(c) <= 5:
        return b""
    lc = c[4]
    if lc == 0 or len(c) not in (5 + lc, 6 + lc):
        return None
    return c[5:5 + lc]


class EmulatedNfc:
    """The NFC peripheral: ``start(prime) -> ("nfc", "udp:127.0.0.1:PORT")``, ``stop()``."""

    name = "nfc"

    def __init__(self):
        self.port = free_udp_port()
        self.prime = None
        self.applet: FidoApplet | None = None
        self.field_loss = False  # fault: drop every session mid-exchange
        self.sessions: list[str] = []
        self.tags: list[list[ndef.Record]] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, prime) -> tuple[str, str]:
        self.prime = prime
        _RUNNING[prime] = self
        master = hashlib.sha256(f"fido-master:{prime.seed}:{prime.serial}".encode()).digest()  # deterministic per seed
        self.applet = FidoApplet(Authenticator(prime, master))
        self._thread = threading.Thread(target=self._run, name="emu-nfc", daemon=True)
        self._thread.start()
        return "nfc", f"udp:127.0.0.1:{self.port}"

    def stop(self) -> None:
        self._stop.set()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:  # end a session or listen at once
            s.sendto(b"RFOFF", ("127.0.0.1", self.port))
        if self._thread:
            self._thread.join(LISTEN_S + 3)

    def _run(self) -> None:
        with nfc.ContactlessFrontend(f"udp:127.0.0.1:{self.port}") as clf:
            while not self._stop.is_set():
                if not self._radio_on():
                    self._stop.wait(0.2)  # powered off or no KeyOS: the ST25R95 neither listens nor polls
                    continue
                self._listen_once(clf)
                if not self._stop.is_set():
                    self._poll_once(clf)

    def _radio_on(self) -> bool:
        with self.prime.lock:
            return bool(self.prime.powered and self.prime.keyos_running)

    # ------------------------------------------------------------ card emulation (FIDO)

    def _listen_once(self, clf) -> None:
        target = nfc.clf.LocalTarget("106A")
        target.sens_res = bytearray.fromhex("0400")
        target.sdd_res = bytearray(b"\x08" + os.urandom(3))
        target.sel_res = bytearray.fromhex("20")
        activated = clf.listen(target, LISTEN_S)
        if activated is None or not activated.tt4_cmd or activated.tt4_cmd[0] != 0xE0:
            return
        self._log("INFO:nfc: NFC external reader Field Detected")
        self.applet.remaining = b""  # response chaining state lives for one session, as in KeyOS
        handler = self.applet.apdu
        if self.field_loss:
            handler = self._lose_field
        ended = serve_card(clf, handler, SESSION_IDLE_S)
        self.sessions.append(ended)
        self._log(f"INFO:nfc: card emulation session ended: {ended}")

    def _lose_field(self, apdu: bytes) -> bytes:
        raise nfc.clf.BrokenLinkError("field lost (fault injected)")

    # ------------------------------------------------------------ reader mode (NDEF)

    def _poll_once(self, clf) -> None:
        try:
            target = clf.sense(nfc.clf.RemoteTarget("106A"), iterations=1)
            tag = nfc.tag.activate(clf, target) if target is not None else None
            if tag is None or tag.ndef is None:
                return
            records = list(tag.ndef.records)
        except (nfc.clf.CommunicationError, nfc.tag.TagCommandError, ndef.DecodeError) as e:
            self._log(f"WARN:nfc: NDEF read failed: {e}")
            return
        finally:
            clf.device.mute()  # RF off: the tag may go, and the air is free for the next listen
        self.tags.append(records)
        self._show(records)

    def _show(self, records: list) -> None:
        lines = [_describe(r) for r in records] or ["(empty NDEF message)"]
        for line in lines:
            self._log(f"INFO:nfc: NDEF record {line}")
        with self.prime.lock:
            self.prime.ui.show_modal("NFC Tag", "\n".join(lines), ["OK"], lambda answer: None)

    def _log(self, line: str) -> None:
        with self.prime.lock:
            self.prime.log(line)


def _describe(record) -> str:
    if isinstance(record, ndef.TextRecord):
        return f"text: {record.text}"
    if isinstance(record, ndef.UriRecord):
        return f"uri: {record.iri}"
    return f"{record.type}: {len(record.data)} bytes"
