"""The usb-debug link over TCP, as KeyOS's simulator serves it (and the emulated Prime, and `hil bridge`).

Each frame, both ways, is a u32 LE length followed by the body USB would carry
(os/usb-debug/protocol/src/stream.rs).  A close between frames is a disconnect; a close inside one,
or a length over 2 MiB, is a broken link.
"""

from __future__ import annotations

import socket
import time

from hil.link import protocol
from hil.link.transport import LinkClosed, Transport

DEFAULT_HOST, DEFAULT_PORT = "127.0.0.1", 7664


class TcpTransport(Transport):
    def __init__(self, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT, *,
                 connect_timeout: float = 5.0, stall_timeout: float = 5.0, frame_timeout: float = 30.0):
        super().__init__(f"tcp:{host}:{port}", stall_timeout, frame_timeout)
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
        """The frame's clock starts with its first byte: from then on the stall and frame limits hold."""
        first = self._recv_exact(1, time.monotonic() + timeout, None)
        frame_end = self.frame_end()
        header = first + self._recv_exact(protocol.STREAM_HEADER.size - 1, self.next_deadline(frame_end), frame_end)
        try:
            length = protocol.stream_length(header)
        except protocol.ProtocolError as e:
            raise self.lost(str(e)) from None
        return self._recv_exact(length, self.next_deadline(frame_end), frame_end)

    def _recv_exact(self, n: int, deadline: float, frame_end: float | None) -> bytes:
        """``n`` bytes by ``deadline``; inside a frame (``frame_end`` set) each chunk moves the deadline on."""
        buf = bytearray(n)
        view = memoryview(buf)
        got = 0
        while got < n:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise self.timed_out(got, deadline, frame_end, n)
            self._sock.settimeout(remaining)
            try:
                k = self._sock.recv_into(view[got:])
            except TimeoutError:
                raise self.timed_out(got, deadline, frame_end, n) from None
            except ConnectionResetError:
                k = 0
            except OSError as e:
                raise self.lost(f"receive failed: {e.strerror or e}") from None
            if not k:
                raise self.lost("device closed the connection" if frame_end is None
                                else f"device closed the connection mid-frame ({got} of {n} bytes arrived)")
            got += k
            if frame_end is not None:
                deadline = self.next_deadline(frame_end)
        return bytes(buf)
