"""The usb-debug link over TCP, as KeyOS's simulator serves it (and the emulated Prime, and `hil bridge`).

Each frame, both ways, is a u32 LE length followed by the body USB would carry
(os/usb-debug/protocol/src/stream.rs).  A close between frames is a disconnect; a close inside one,
or a length over 2 MiB, is a broken link.
"""

from __future__ import annotations

import socket
import time

from hil.link import protocol
from hil.link.transport import LinkClosed, LinkTimeout, Transport

DEFAULT_HOST, DEFAULT_PORT = "127.0.0.1", 7664


class TcpTransport(Transport):
    def __init__(self, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT, *,
                 connect_timeout: float = 5.0, stall_timeout: float = 5.0):
        super().__init__(f"tcp:{host}:{port}", stall_timeout)
        self.host, self.port, self.connect_timeout = host, port, connect_timeout
        self._sock: socket.socket | None = None

    def _open_link(self) -> None:
        try:
            self._sock = socket.create_connection((self.host, self.port), timeout=self.connect_timeout)
        except OSError as e:
            raise LinkClosed(self.name, f"cannot connect: {e.strerror or e}") from None
        self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def _close_link(self) -> None:
        sock, self._sock = self._sock, None
        if sock is not None:
            sock.close()

    def _write(self, body: bytes, timeout: float) -> None:
        try:
            data = protocol.stream_frame(body)
        except protocol.ProtocolError as e:
            raise LinkClosed(self.name, str(e)) from None
        self._sock.settimeout(timeout)
        try:
            self._sock.sendall(data)
        except OSError as e:
            raise self.lost(f"send failed: {e.strerror or e}") from None

    def _read(self, timeout: float) -> bytes:
        header = self._recv_exact(protocol.STREAM_HEADER.size, time.monotonic() + timeout, in_frame=False)
        try:
            length = protocol.stream_length(header)
        except protocol.ProtocolError as e:
            raise self.lost(str(e)) from None
        return self._recv_exact(length, time.monotonic() + self.stall_timeout, in_frame=True)

    def _recv_exact(self, n: int, deadline: float, in_frame: bool) -> bytes:
        """``n`` bytes.  Once any byte of a frame has arrived, the rest may pause at most ``stall_timeout``."""
        buf = bytearray(n)
        view = memoryview(buf)
        got = 0
        while got < n:
            started = in_frame or got > 0
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise self._timed_out(started)
            self._sock.settimeout(remaining)
            try:
                k = self._sock.recv_into(view[got:])
            except TimeoutError:
                raise self._timed_out(started) from None
            except ConnectionResetError:
                k = 0
            except OSError as e:
                raise self.lost(f"receive failed: {e.strerror or e}") from None
            if not k:
                raise self.lost("device closed the connection mid-frame" if started
                                else "device closed the connection")
            got += k
            deadline = time.monotonic() + self.stall_timeout
        return bytes(buf)

    def _timed_out(self, started: bool) -> Exception:
        if started:
            return self.lost(f"device stopped sending mid-frame (no data for {self.stall_timeout:g} s)")
        return LinkTimeout(self.name, "no frame arrived in time")
