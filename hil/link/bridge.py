"""``bridge:HOST:PORT``: a station's endpoint on a bench host, behind that bench's lease-checked `hil bridge`
(the lab's `hil.lab.bridge`), as a link transport beside usb and tcp.

The first frame a client sends is `HIL-LEASE <token>`, where the token is the labgrid reservation token of
the station's place (`LG_TOKEN`, as `labgrid-client reserve --shell` prints it, or the thread's
`lease_token`); the bench answers `OK <station>` or `DENIED <reason>` (then closes). After that the usb-debug
link is KeyOS simulator framing (`TcpTransport`); a serial instrument (robot, relay) is its raw bytes
(`LeasedSerial`, the ``serial.bridge`` address scheme of `hil.schemes`).
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
from typing import Any

import serial
from serial.urlhandler.protocol_socket import Serial as SocketSerial

from hil.errors import InfrastructureError
from hil.link import protocol
from hil.link.tcp import TcpTransport
from hil.link.transport import DeviceNotFound, LinkClosed

HELLO, OK, DENIED = b"HIL-LEASE ", b"OK ", b"DENIED "
HANDSHAKE_LIMIT = 1024  # a hello or an answer longer than this is not one
TOKEN_ENV = "LG_TOKEN"


class LeaseRefused(InfrastructureError):
    """A bench endpoint did not let this client in (no lease, another lease, busy, hung)."""


def _recv_exact(sock: socket.socket, n: int, deadline: float | None) -> bytes | None:
    buf = bytearray()
    while len(buf) < n:
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("timed out")
            sock.settimeout(left)
        chunk = sock.recv(n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return bytes(buf)


def recv_frame(sock: socket.socket, limit: int | None = None, deadline: float | None = None) -> bytes | None:
    """One frame body, or None when the peer closed; a bad length (or one over `limit`) raises
    `ProtocolError`, and passing `deadline` (monotonic) raises `TimeoutError`."""
    header = _recv_exact(sock, protocol.STREAM_HEADER.size, deadline)
    if header is None:
        return None
    length = protocol.stream_length(header)
    if limit is not None and length > limit:
        raise protocol.ProtocolError(f"a {length}-byte frame where at most {limit} bytes were expected")
    body = _recv_exact(sock, length, deadline)
    if body is None:
        raise protocol.ProtocolError("the peer closed the connection mid-frame")
    return body


def current_token() -> str | None:
    """The lease token this thread presents: its `lease_token`, else `LG_TOKEN`."""
    return getattr(_lease, "token", None) or os.environ.get(TOKEN_ENV)


def present_lease(sock: socket.socket, token: str | None, timeout: float) -> str:
    """The client's side of the handshake on a connected socket; returns the station's name."""
    if not token:
        raise LeaseRefused(f"no lease token; set {TOKEN_ENV} to the labgrid reservation token of the station's "
                           "place (`labgrid-client reserve --shell`, then acquire it)")
    deadline = time.monotonic() + timeout
    try:
        sock.settimeout(timeout)
        sock.sendall(protocol.stream_frame(HELLO + token.encode()))
        answer = recv_frame(sock, HANDSHAKE_LIMIT, deadline)
    except TimeoutError:
        raise LeaseRefused(f"bridge did not answer the lease handshake within {timeout:g} s (bridge hung?)") from None
    except (OSError, protocol.ProtocolError) as e:
        raise LeaseRefused(f"lease handshake failed: {e}") from None
    if answer is None:
        raise LeaseRefused("bridge closed the connection during the lease handshake")
    if answer.startswith(OK):
        return answer[len(OK):].decode(errors="replace")
    reason = answer[len(DENIED):] if answer.startswith(DENIED) else answer[:80]
    raise LeaseRefused(f"bridge refused the link: {reason.decode(errors='replace')}")


_lease = threading.local()


@contextlib.contextmanager
def lease_token(token: str):
    """Links opened by this thread present `token` instead of `LG_TOKEN`: the nightly flashes several places
    at once from one process, each under its own labgrid lease, and the environment is per process."""
    _lease.token = token
    try:
        yield
    finally:
        _lease.token = None


def address(device: str) -> tuple[str, int]:
    """HOST and PORT of `bridge:HOST:PORT`."""
    host, _, port = device.partition(":")[2].rpartition(":")
    if not device.startswith("bridge:") or not host or not port.isdigit():
        raise DeviceNotFound(f"{device}: expected bridge:HOST:PORT, e.g. bridge:10.0.0.11:7701")
    return host, int(port)


class BridgeTransport(TcpTransport):
    """`bridge:HOST:PORT`: the TCP link of a bench's bridge, opened with this process's lease token."""

    def __init__(self, host: str, port: int, token: str | None, *, stall_timeout: float = 5.0):
        super().__init__(host, port, stall_timeout=stall_timeout)
        self.name = f"bridge:{host}:{port}"
        self.token = token

    def _open_link(self) -> None:
        super()._open_link()
        try:
            present_lease(self._sock, self.token, self.connect_timeout)
        except LeaseRefused as e:
            self._close_link()
            raise LinkClosed(self.name, str(e)) from None


def transport(device: str, stall_timeout: float = 5.0) -> BridgeTransport:
    """The transport of a `bridge:HOST:PORT` device string, presenting `current_token()`."""
    host, port = address(device)
    return BridgeTransport(host, port, current_token(), stall_timeout=stall_timeout)


class LeasedSerial(SocketSerial):
    """A bench's serial instrument (robot, relay) through its bridge: pyserial's `socket://` port that
    presents the lease before the instrument's first byte."""

    def __init__(self, device: str, token: str | None, **kw: Any) -> None:
        self.token = token
        host, port = address(device)
        super().__init__(f"socket://{host}:{port}", **kw)

    def open(self) -> None:
        super().open()
        try:
            self._socket.setblocking(True)
            present_lease(self._socket, self.token, 5.0)
            self._socket.setblocking(False)
        except LeaseRefused as e:
            self.close()
            raise serial.SerialException(str(e)) from None


def serial_port(device: str, baudrate: int, timeout: float) -> LeasedSerial:
    return LeasedSerial(device, current_token(), baudrate=baudrate, timeout=timeout)
