"""A scripted fake usb-debug device on TCP, for the link tests (the emulated Prime is tested elsewhere)."""

import socket
import struct
import threading

from hil.link import protocol as p
from hil.link.protocol import Status


class ScriptedDevice:
    """A TCP peer that answers each request frame with whatever raw bytes ``handler(body)`` returns.

    ``handler`` returning None closes the connection.  Requests are recorded in ``requests``.
    """

    def __init__(self, handler):
        self.handler = handler
        self.requests: list[bytes] = []
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.conn = None
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        try:
            self.conn, _ = self.server.accept()
            while True:
                header = self._recv(4)
                body = self._recv(struct.unpack("<I", header)[0])
                self.requests.append(body)
                out = self.handler(body)
                if out is None:
                    break
                self.conn.sendall(out)
        except (OSError, ConnectionError):
            pass
        finally:
            if self.conn:
                self.conn.close()

    def _recv(self, n):
        buf = b""
        while len(buf) < n:
            chunk = self.conn.recv(n - len(buf))
            if not chunk:
                raise ConnectionError
            buf += chunk
        return buf

    def stop(self):
        try:
            self.server.shutdown(socket.SHUT_RDWR)  # wakes a thread blocked in accept()
        except OSError:
            pass
        self.server.close()
        if self.conn:
            self.conn.close()
        self.thread.join(5)


def frames(*bodies: bytes) -> bytes:
    return b"".join(p.stream_frame(b) for b in bodies)


def ok(payload=b""):
    return frames(p.response(Status.OK, payload))
