"""``bridge:HOST:PORT``: the NFC reader of a bench host, reached through its `hil bridge` (the ``nfc.bridge``
address scheme of `hil.schemes`), with `NfcReader`'s calls. nfcpy runs on the bench next to the reader.
"""

from __future__ import annotations

import contextlib
import json
import socket
import time

from hil.link import protocol
from hil.link.bridge import LeaseRefused, address, current_token, present_lease, recv_frame
from hil.stimuli import nfc
from hil.stimuli.nfc import NfcError, TagResult


class RemoteNfcReader:
    """The NFC reader of a bench host through its bridge (`bridge:HOST:PORT`), with `NfcReader`'s calls.
    Each call is one request frame (JSON) and one answer; the bench's answer is untrusted input."""

    margin = 10.0  # seconds the bench may take beyond the operation's own timeout

    def __init__(self, device: str) -> None:
        self.path = device
        self.host, self.port = address(device)

    def _open(self) -> socket.socket:
        try:
            sock = socket.create_connection((self.host, self.port), timeout=5.0)
        except OSError as e:
            raise NfcError(f"cannot reach the NFC reader at {self.path}: {e.strerror or e}") from None
        try:
            present_lease(sock, current_token(), 5.0)
        except LeaseRefused as e:
            sock.close()
            raise NfcError(f"NFC reader at {self.path}: {e}") from None
        return sock

    def call(self, sock: socket.socket, request: dict, timeout: float | None) -> dict:
        """One operation on the bench; its errors come back as the same `NfcError` classes."""
        wait = (timeout if timeout is not None else 5.0) + self.margin
        try:
            sock.sendall(protocol.stream_frame(json.dumps(request).encode()))
            body = recv_frame(sock, 1 << 16, time.monotonic() + wait)
        except TimeoutError:
            raise nfc.NfcFieldLost(f"NFC reader at {self.path} did not answer {request['op']} within {wait:g} s") from None
        except (OSError, protocol.ProtocolError) as e:
            raise nfc.NfcFieldLost(f"NFC reader at {self.path} lost during {request['op']}: {e}") from None
        if body is None:
            raise nfc.NfcFieldLost(f"NFC reader at {self.path} closed the link during {request['op']} "
                                   "(lease ended, or the bridge stopped)")
        try:
            answer = json.loads(body)
            if "error" in answer:
                kind = {c.__name__: c for c in (nfc.NfcError, nfc.NfcFieldLost, nfc.NoCardFound)}[answer["error"]]
                raise kind(str(answer["message"]))
            if not isinstance(answer["ok"], dict):
                raise TypeError("ok is not an object")
            return answer["ok"]
        except (ValueError, KeyError, TypeError) as e:
            raise nfc.NfcError(f"NFC reader at {self.path} sent garbage ({e.__class__.__name__}: {e}): "
                               f"{body[:80]!r}") from None

    def connect(self, timeout: float = 5.0) -> RemoteIsoDepSession:
        sock = self._open()
        try:
            got = self.call(sock, {"op": "connect", "timeout": timeout}, timeout)
            try:
                identifier = bytes.fromhex(got["identifier"])
            except (KeyError, TypeError, ValueError) as e:
                        raise NfcError(f"NFC reader at {self.path} sent garbage for connect: {e}") from None
        except BaseException:
            sock.close()
            raise
        return RemoteIsoDepSession(self, sock, identifier)

    def present_tag(self, message: bytes, timeout: float = 10.0, uid: bytes | None = None):
        with contextlib.closing(self._open()) as sock:
            got = self.call(sock, {"op": "present_tag", "message": message.hex(), "timeout": timeout,
                                   "uid": uid.hex() if uid else None}, timeout)
        try:
            return TagResult(bool(got["read"]), bytes.fromhex(got["message"]), [str(a) for a in got["apdus"]])
        except (KeyError, TypeError, ValueError) as e:
            raise NfcError(f"NFC reader at {self.path} sent garbage for present_tag: {e}") from None


class RemoteIsoDepSession:
    """An activated ISO-DEP card on a bench's reader: `IsoDepSession`'s calls, one round trip each."""

    def __init__(self, reader: RemoteNfcReader, sock: socket.socket, identifier: bytes) -> None:
        self.reader, self.sock, self.where, self.identifier = reader, sock, reader.path, identifier

    def apdu(self, command: bytes, timeout: float | None = None) -> tuple[bytes, int]:
        """``timeout`` per block, as `IsoDepSession.apdu`; the bench's nfcpy may wait it out on every try of a
        block before it reports a lost field, so the answer is waited for that long (and the bridge's margin)."""
        bench_s = None if timeout is None else nfc.BLOCK_TRIES * timeout
        got = self.reader.call(self.sock, {"op": "apdu", "command": bytes(command).hex(), "timeout": timeout}, bench_s)
        try:
            sw = got["sw"]
            if not isinstance(sw, int) or not 0 <= sw <= 0xFFFF:
                raise ValueError(f"status word {sw!r}")
            return bytes.fromhex(got["data"]), sw
        except (KeyError, TypeError, ValueError) as e:
            raise NfcError(f"NFC reader at {self.where} sent garbage for an APDU: {e}") from None

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()
