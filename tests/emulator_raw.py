"""A minimal usb-debug client over raw TCP for the emulator's own tests.

Written from keyos.md §5.1 with only ``hil.link.protocol`` (no harness client), so the tests check the
emulator against the wire format rather than against another part of the harness.
"""

from __future__ import annotations

import socket
import struct

from hil.link import protocol as p


def address(endpoint: str) -> tuple[str, int]:
    scheme, host, port = endpoint.split(":")
    assert scheme == "tcp", endpoint
    return host, int(port)


class RawLink:
    def __init__(self, endpoint: str, timeout: float = 5.0):
        self.sock = socket.create_connection(address(endpoint), timeout=timeout)
        self.sock.settimeout(timeout)
        self.records = p.LogRecords()
        self.logs: list[str] = []

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> RawLink:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def send(self, body: bytes) -> None:
        self.sock.sendall(struct.pack("<I", len(body)) + body)

    def read_exact(self, n: int) -> bytes:
        data = b""
        while len(data) < n:
            chunk = self.sock.recv(n - len(data))
            if not chunk:
                raise ConnectionError(f"closed after {len(data)} of {n} bytes")
            data += chunk
        return data

    def frame(self) -> p.Response | p.Log:
        length = p.stream_length(self.read_exact(4))
        return p.decode_frame(self.read_exact(length))

    def response(self) -> p.Response:
        """The next response frame, collecting log records on the way."""
        while True:
            frame = self.frame()
            if isinstance(frame, p.Response):
                return frame
            self.logs += self.records.feed(frame.data)

    def request(self, body: bytes) -> p.Response:
        self.send(body)
        return self.response()

    def closed_by_peer(self) -> bool:
        """True if the device closed the connection (EOF) rather than staying silent."""
        try:
            while True:
                if not self.sock.recv(1 << 16):
                    return True
        except (TimeoutError, socket.timeout):
            return False
        except ConnectionResetError:
            return True
