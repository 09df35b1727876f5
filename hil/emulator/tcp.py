"""The usb-debug link over TCP, as KeyOS's simulator serves it (``os/usb-debug/src/sim.rs``).

Each frame is a u32 LE length + the body USB would carry, both ways.  One client at a time, like the
claimed USB interface: a second connection is accepted and closed at once.  Log frames flow to the
client between responses; a new client first gets what the 16 KiB log ring still holds.  A length
over 2 MiB, or a frame cut short, ends the connection.  The interface only exists while the Prime
is powered and, on production builds, has Developer Mode on; otherwise connections are closed.
"""

from __future__ import annotations

import select
import socket
import threading
import time
import traceback
from typing import TYPE_CHECKING

from hil.emulator.debug import handle
from hil.link import protocol as p

if TYPE_CHECKING:
    from hil.emulator.prime import Prime

POLL_S = 0.05
PARTIAL_FRAME_TIMEOUT_S = 10.0  # a client that sends half a frame and goes quiet is dropped
SEND_TIMEOUT_S = 30.0


class DebugServer:
    """The ``debug`` endpoint of one Prime: ``tcp:127.0.0.1:PORT``."""

    key = "debug"

    def __init__(self):
        self.prime: Prime | None = None
        self._listener: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._drop = threading.Event()
        self._conn: socket.socket | None = None  # the client being served

    def start(self, prime: Prime, host: str = "127.0.0.1", port: int = 0) -> tuple[str, str]:
        self.prime = prime
        self._listener = socket.create_server((host, port))
        prime.on_link_reset(self._reset)
        self._thread = threading.Thread(target=self._run, name=f"debug-{prime.serial}", daemon=True)
        self._thread.start()
        bound_host, bound_port = self._listener.getsockname()[:2]
        return self.key, f"tcp:{bound_host}:{bound_port}"

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self._listener is not None:
            self._listener.close()

    def _reset(self) -> None:
        """The link goes away now, as a USB disconnect does: the host's next read sees it closed."""
        self._drop.set()
        conn = self._conn
        if conn is not None:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # already gone

    # ------------------------------------------------------------ accept / serve
    def _run(self) -> None:
        while not self._stop.is_set():
            if not select.select([self._listener], [], [], POLL_S)[0]:
                continue
            conn, _ = self._listener.accept()
            with self.prime.lock:
                present = self.prime.debug_available()
            if not present:
                conn.close()  # no vendor interface on the bus right now
                continue
            self._drop.clear()
            self._conn = conn
            try:
                self._serve(conn)
            except OSError as e:
                self.prime.log(f"WARN:usb_debug: debug: connection lost: {e}")
            except Exception:  # an emulator bug: say so loudly, keep the endpoint alive
                traceback.print_exc()
                self.prime.log("ERROR:usb_debug: debug: internal error in the emulator, connection closed")
            finally:
                self._conn = None
                conn.close()

    def _serve(self, conn: socket.socket) -> None:
        conn.settimeout(SEND_TIMEOUT_S)
        with self.prime.lock:
            held, self.prime.faults.held = self.prime.faults.held, []
        for frame in held:  # answers the previous client never read
            _send(conn, frame)
        cursor = 0
        buf = bytearray()
        partial_since: float | None = None
        while not self._stop.is_set() and not self._drop.is_set():
            readable = select.select([conn, self._listener], [], [], POLL_S)[0]
            if conn in readable:  # first: a host that just let go makes way for the one knocking
                data = conn.recv(1 << 16)
                if not data:
                    if buf:
                        self.prime.log("WARN:usb_debug: debug: frame cut short by the host")
                    return
                buf += data
            if self._listener in readable:
                self._listener.accept()[0].close()  # the interface is already claimed
            cursor = self._send_logs(conn, cursor)
            while len(buf) >= 4:
                try:
                    length = p.stream_length(bytes(buf[:4]))
                except p.ProtocolError as e:
                    self.prime.log(f"WARN:usb_debug: debug: {e}")
                    return
                if len(buf) < 4 + length:
                    break
                body = bytes(buf[4:4 + length])
                del buf[:4 + length]
                responses = handle(self.prime, body, lambda seconds: self._hold(conn, seconds))
                cursor = self._send_logs(conn, cursor)
                for frame in responses:
                    if not self._send_response(conn, frame):
                        return
            partial_since = (partial_since or time.monotonic()) if buf else None
            if partial_since is not None and time.monotonic() - partial_since > PARTIAL_FRAME_TIMEOUT_S:
                self.prime.log("WARN:usb_debug: debug: incomplete frame timed out")
                return

    def _hold(self, conn: socket.socket, seconds: float) -> None:
        """Wait out a gesture, ending early when the host hangs up, the link resets or the server stops."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0 and not self._stop.is_set() and not self._drop.is_set():
            if _hung_up(conn):
                self.prime.log("WARN:usb_debug: debug: host left during a gesture; it lands now")
                return
            time.sleep(min(POLL_S, left))

    def _send_logs(self, conn: socket.socket, cursor: int) -> int:
        with self.prime.lock:
            records, cursor = self.prime.logs_since(cursor)
        if records:
            _send(conn, p.log_frame(records))
        return cursor

    def _send_response(self, conn: socket.socket, body: bytes) -> bool:
        """Send one response, committing any requested fault. False ends the connection."""
        faults = self.prime.faults
        with self.prime.lock:
            delay, garbage, truncate, stall = faults.delay_s, faults.garbage, faults.truncate, faults.stall
            late, twice = faults.late, faults.twice
            faults.garbage, faults.truncate, faults.stall, faults.late, faults.twice = b"", False, False, False, False
            if late:
                faults.held.append(body)
                return True
        if delay:
            time.sleep(delay)
        if garbage:
            conn.sendall(garbage)
        if truncate or stall:
            conn.sendall(p.stream_frame(body)[: 4 + len(body) // 2])
            if stall:
                self._wait_until_gone(conn)
            return False
        conn.sendall(p.stream_frame(body) * (2 if twice else 1))  # a repeat arrives with the answer
        return True

    def _wait_until_gone(self, conn: socket.socket) -> None:
        """Stop answering: read and ignore until the host gives up or the link is reset."""
        while not self._stop.is_set() and not self._drop.is_set():
            if select.select([conn], [], [], POLL_S)[0] and not conn.recv(1 << 16):
                return


def _hung_up(conn: socket.socket) -> bool:
    """True once the host closed its end (a frame it already sent ahead is not a hang-up)."""
    try:
        return bool(select.select([conn], [], [], 0)[0]) and conn.recv(1, socket.MSG_PEEK) == b""
    except OSError:
        return True


def _send(conn: socket.socket, body: bytes) -> None:
    conn.sendall(p.stream_frame(body))
