"""The SAMA5D2 SAM-BA boot ROM monitor over USB CDC-ACM, and Microchip's SD/MMC applet behind it.

Follows KeyOS's own flasher (`utils/sambuca/src/{lib,flash}.rs`, keyos.md §7): binary mode with
``N#``, ``V#`` version, ``w``/``W`` u32 read/write, ``S``/``R`` block write/read, ``G`` go; the chip
check (CIDR & 0xffffffe0 == 0x8a5c08c0); L2 cache turned into SRAM so the applet fits at 0x220000;
then the applet mailbox at 0x220004: ``cmd``, ``status``, arguments, ack = 0xFFFFFFFF - cmd.

The monitor runs its commands one after another, in the order they arrive (``G`` returns when the applet
has), and in binary mode only ``w``, ``R`` and ``V`` answer.  So an applet run goes out as one write
(mailbox words, ``G``, the two ``w`` of its answer), and page transfers are pipelined: up to
:data:`IN_FLIGHT` chunks' commands are out before the oldest one's answer is read, so the cable idles neither
for a round trip nor while the host is late to read an answer.

The port is a plain pyserial object opened from a URL (``/dev/ttyACM0``, ``rfc2217://…``, ``socket://…``, a pty).
DTR/RTS are never set: a pty refuses them and the ROM does not need them. Every read and every write
has a deadline, on a local tty, over rfc2217 and over a raw socket alike; a monitor that goes quiet, stops
reading or answers garbage raises :class:`SambaError` (broken, not failed).
"""

from __future__ import annotations

import io
import os
import select
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import serial
from serial import rfc2217
from serial.urlhandler import protocol_socket

from hil.machine import scaled
from hil.errors import InfrastructureError

BAUD = 921600  # sambuca lib.rs (keyos.md §7); a CDC-ACM port ignores it, a bench's ser2net does not
SAMA5D2_CIDR = 0x8A5C08C0
CHIPID_CIDR = 0xFC069000
SFR_L2CC_HRAMC = 0xF8030058  # 0 = the 128 KiB L2 cache is SRAM at 0x220000
RSTC_CR = 0xF8048000
BSC_CR = 0xF8048054
APPLET_ADDR = 0x220000
MAILBOX = 0x220004
CHUNK = 64 * 1024  # FLASH_TRANSFER_CHUNK_SIZE
# assumed: the applet's buffer lies in the SAMA5D2's SRAM (128 KiB) or the L2 cache mapped as SRAM (128 KiB); a
# larger size reported by a misbehaving monitor must not become a read of that many bytes.
MAX_APPLET_BUFFER = 0x40000
POLL = 0.1  # the port's read timeout; `Samba._read` waits for a whole answer in steps of it
# assumed: the ROM runs commands in arrival order, G returning once the applet has (its source is closed); so
# chunks' commands may be sent before earlier chunks are answered. Four 64 KiB chunks ahead cover a host that is
# scheduled late by a few milliseconds (8 rounds on a loaded host: median 0.86 of a raw copy one ahead, 0.94 four).
IN_FLIGHT = 4

CMD_INITIALIZE = 0x00
CMD_READ_PAGES = 0x32
CMD_WRITE_PAGES = 0x33


class SambaError(InfrastructureError):
    """The monitor or its applet did not do what was asked (silence, garbage, a bad status)."""


class AppletFailed(SambaError):
    """The applet answered with a failure status: the monitor is fine and answers what was sent after."""


class Samba:
    """One SAM-BA monitor session in binary mode."""

    def __init__(self, port: serial.SerialBase, timeout: float = 30.0):
        self.port = port
        self.timeout = timeout
        self._fd = _descriptor(port)

    @classmethod
    def open(cls, url: str, timeout: float = 30.0) -> Samba:
        try:
            port = serial.serial_for_url(url, baudrate=BAUD, timeout=POLL)
        except (serial.SerialException, ValueError) as e:
            raise SambaError(f"SAM-BA port {url}: cannot open ({e})") from None
        if isinstance(port, rfc2217.Serial):
            # A bench's ser2net port takes no write_timeout (NotImplementedError at open). Its write is the socket's
            # sendall, which pyserial leaves under its 5 s connect timeout whatever the session's deadline (a
            # socket's timeout bounds a whole sendall). The session's deadline instead; pyserial's reader thread
            # wakes on it only to see whether the port was closed, and close() wakes it at once.
            port._socket.settimeout(timeout)
        return cls(port, timeout)

    def close(self) -> None:
        self.port.close()

    def __enter__(self) -> Samba:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ------------------------------------------------------------ monitor commands

    def connect(self, timeout: float | None = None) -> None:
        """Switch to binary mode, check the chip is a SAMA5D2 and map L2 as SRAM.

        ``timeout`` bounds the wait for a monitor that is still coming up (after a reboot into
        SAM-BA): ``N#`` is repeated until it is acknowledged.
        """
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while True:
            self.send(b"N#")
            ack = self._read(2, min(scaled(0.25), self.timeout), "N# (binary mode)", required=False)  # a loaded
            # host reads a running monitor's ack late: a late one would be taken for the next command's answer
            if ack == b"\n\r":
                break
            if ack:
                raise SambaError(f"{self.port.name}: N# answered {ack!r}, not a SAM-BA monitor")
            if time.monotonic() > deadline:
                raise SambaError(f"{self.port.name}: no SAM-BA monitor answered N# "
                                 f"(is the device in SAM-BA mode?)")
        cidr = self.read_u32(CHIPID_CIDR) & 0xFFFFFFE0
        if cidr != SAMA5D2_CIDR:
            raise SambaError(f"{self.port.name}: chip id {cidr:08x} is not a SAMA5D2 ({SAMA5D2_CIDR:08x})")
        self.write_u32(SFR_L2CC_HRAMC, 0)

    def version(self) -> str:
        self.send(b"V#")
        text = bytearray()
        while chunk := self._read(1, 0.1, "V#", required=False):
            text += chunk
            if len(text) > 256:
                break
        version = bytes(text).split(b"\0", 1)[0].decode("ascii", "replace").strip()
        if not version:
            raise SambaError(f"{self.port.name}: V# returned no version")
        return version

    def read_u32(self, addr: int) -> int:
        self.send(f"w{addr:x},#".encode())
        return int.from_bytes(self._read(4, self.timeout, f"w{addr:x}"), "little")

    def write_u32(self, addr: int, value: int) -> None:
        self.send(f"W{addr:x},{value:08x}#".encode())

    def write(self, addr: int, data: bytes) -> None:
        self.send(*self.write_request(addr, data))

    @staticmethod
    def write_request(addr: int, data: bytes | memoryview, then: bytes = b"") -> tuple[bytes | memoryview, ...]:
        """``S``: ``data`` stored at ``addr``, and the commands ``then`` after it, as parts of one :meth:`send`
        (the data is not copied)."""
        return f"S{addr:x},{len(data):x}#".encode(), data, then

    def read(self, addr: int, length: int) -> bytes:
        self.send(f"R{addr:x},{length:x}#".encode())
        return self.read_answer(addr, length)

    def read_answer(self, addr: int, length: int) -> bytes:
        """The ``length`` bytes an ``R`` sent earlier answers."""
        return self._read(length, self.timeout + length / 65536, f"R{addr:x},{length:x}")

    def go(self, addr: int) -> None:
        self.send(f"G{addr:x}#".encode())

    def reboot_to_normal(self) -> None:
        """Clear the boot-sequence bits and reset (sambuca ``reboot_to_normal``)."""
        self.write_u32(BSC_CR, 0x66830000)
        self.write_u32(RSTC_CR, 0xA5000001)

    # ------------------------------------------------------------ applet

    def applet_command(self, cmd: int, args: list[int]) -> int:
        """Run one applet command; returns its status (0 = success)."""
        self.send(self.applet_request(cmd, args))
        return self.applet_status(cmd)

    @staticmethod
    def applet_request(cmd: int, args: list[int]) -> bytes:
        """The commands of one applet run: its mailbox words, ``G``, then ``w`` of the ack and the status."""
        words = (cmd, 0xFFFFFFFF, *args)
        return (b"".join(f"W{MAILBOX + 4 * i:x},{w:08x}#".encode() for i, w in enumerate(words))
                + f"G{APPLET_ADDR:x}#w{MAILBOX:x},#w{MAILBOX + 4:x},#".encode())

    def applet_status(self, cmd: int) -> int:
        """The answer of an applet run sent with :meth:`applet_request`: its status (0 = success)."""
        answer = self._read(8, self.timeout, f"applet command {cmd:#x}")
        ack, status = int.from_bytes(answer[:4], "little"), int.from_bytes(answer[4:], "little")
        if ack != 0xFFFFFFFF - cmd:
            raise SambaError(f"{self.port.name}: applet did not acknowledge command {cmd:#x} (mailbox {ack:08x})")
        return status

    def sdmmc(self, applet: bytes, *, instance: int = 0, ioset: int = 1, partition: int = 0,
              bus_width: int = 8, voltages: int = 3) -> Sdmmc:
        """Upload the SD/MMC applet and initialise the eMMC (KeyOS: instance 0, ioset 1, user
        partition, 8-bit bus, 3.3/1.8 V)."""
        self.write(APPLET_ADDR, applet)
        status = self.applet_command(CMD_INITIALIZE, [0, 3, instance, ioset,
                                                      instance, ioset, partition, bus_width, voltages])
        if status != 0:
            raise SambaError(f"{self.port.name}: SD/MMC applet failed to initialise (status {status})")
        buffer_addr, buffer_size, page_size, pages = (self.read_u32(MAILBOX + off) for off in (8, 0xC, 0x10, 0x14))
        if (page_size == 0 or page_size & (page_size - 1) or not page_size <= buffer_size <= MAX_APPLET_BUFFER
                or pages == 0):
            raise SambaError(f"{self.port.name}: applet reported page size {page_size}, buffer {buffer_size}, "
                             f"{pages} pages")
        return Sdmmc(self, buffer_addr, buffer_size, page_size, pages)

    # ------------------------------------------------------------ plumbing

    def send(self, *parts: bytes | memoryview) -> None:
        """Commands as one write (the monitor takes them one after another), taken by the port within the
        session's deadline: a monitor that stops reading is broken at :attr:`timeout`, never a host blocked."""
        fd, deadline = self._fd, time.monotonic() + self.timeout
        try:
            if fd is not None:
                done = self._write_fd(fd, parts, deadline)
            else:
                self.port.write(b"".join(parts))
                done = True
        except (serial.SerialException, OSError) as e:
            if time.monotonic() < deadline:
                raise SambaError(f"{self.port.name}: write failed ({e}); device gone?") from None
            done = False  # an rfc2217 port's socket timed out at the deadline (Samba.open)
        if not done:
            raise SambaError(f"{self.port.name}: write failed (not taken within {self.timeout:g} s: "
                             f"the monitor stopped reading)")

    @staticmethod
    def _write_fd(fd: int, parts: tuple[bytes | memoryview, ...], deadline: float) -> bool:
        """``parts`` written to a local tty (or a raw socket) in order, by ``deadline`` (False if not all were taken by
        then), waiting (select) only when the tty's buffer is full. pyserial's ``write`` selects after every write and
        copies what is left of the data after each (a 64 KiB chunk goes into a pty about 4 KiB at a time); nor is the
        tty drained (tcdrain) after a send: the monitor reads in order, and its answers have their own deadlines.
        pyserial's descriptor is non-blocking, so a write into a full tty takes part or none."""
        views = [memoryview(p).cast("B") for p in parts if len(p)]
        while views:
            try:
                n = os.writev(fd, views)
            except BlockingIOError:
                n = 0
            while views and n >= len(views[0]):
                n -= len(views.pop(0))
            if not views:
                return True
            views[0] = views[0][n:]
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([], [fd], [], left)[1]:
                return False
        return True

    def _read(self, n: int, timeout: float, what: str, required: bool = True) -> bytes:
        """``n`` bytes within ``timeout``, read in steps of the port's own timeout. That one is set once, at
        open: on a bench's ser2net port each change costs a round of RFC 2217 negotiation."""
        deadline, fd = time.monotonic() + timeout, self._fd
        try:
            data = self._read_fd(fd, n, deadline) if fd is not None else self._read_port(n, deadline)
        except (serial.SerialException, OSError) as e:
            raise SambaError(f"{self.port.name}: {what}: read failed ({e}); device gone?") from None
        if required and len(data) != n:
            raise SambaError(f"{self.port.name}: {what}: got {len(data)} of {n} bytes in {timeout:.1f}s")
        return data

    def _read_port(self, n: int, deadline: float) -> bytes:
        data = bytearray()
        while True:
            data += self.port.read(n - len(data))
            if len(data) >= n or time.monotonic() >= deadline:
                return bytes(data)

    @staticmethod
    def _read_fd(fd: int, n: int, deadline: float) -> bytes:
        """Up to ``n`` bytes from a local tty (or a raw socket) by ``deadline``, read straight into one buffer, waiting
        (select) only when it holds nothing. pyserial's ``read(n)`` selects before every read and allocates ``n`` bytes
        for each, while a CDC-ACM or pty tty hands over a few KiB at a time: a 64 KiB answer cost 16 of each
        (docs/benchmarks.md "Flashing"). pyserial's descriptor is non-blocking and its termios has VMIN 0, so an empty
        tty reads as 0 bytes (or EAGAIN); one that select calls readable and still reads as empty has hung up, as
        pyserial's own read says."""
        data = bytearray(n)
        view, got, waited = memoryview(data), 0, False
        while got < n:
            try:
                k = os.readv(fd, [view[got:]])
            except BlockingIOError:
                k = 0
            if k:
                got, waited = got + k, False
                continue
            if waited:
                raise serial.SerialException("the port is readable but returns no data (device disconnected?)")
            left = deadline - time.monotonic()
            if left <= 0:
                break
            waited = bool(select.select([fd], [], [], min(POLL, left))[0])
        return bytes(data) if got == n else bytes(data[:got])


def _descriptor(port: serial.SerialBase) -> int | None:
    """The descriptor :class:`Samba` reads and writes itself, with its own deadlines: a local tty's (pyserial's
    posix port) or a raw socket's (``socket://``, whose pyserial write has no deadline unless given one and then
    spins on a full socket until it passes); None over RFC 2217, whose bytes pyserial's telnet layer escapes, and
    for ports that have none (``loop://``). Both are non-blocking, and both read as empty once the peer is gone."""
    if isinstance(port, protocol_socket.Serial):
        return port.fileno()
    return getattr(port, "fd", None)


@dataclass
class VerifyStats:
    chunks_patched: int = 0
    attempts: int = 0


class Sdmmc:
    """The initialised SD/MMC applet: page reads and writes through its SRAM buffer."""

    MAX_REWRITES = 3  # per chunk; sambuca loops forever, a lab run must end

    def __init__(self, samba: Samba, buffer_addr: int, buffer_size: int, page_size: int, pages: int):
        self.samba, self.buffer_addr, self.buffer_size = samba, buffer_addr, buffer_size
        self.page_size, self.pages = page_size, pages

    @property
    def chunk_size(self) -> int:
        pages = min(self.buffer_size // self.page_size, max(CHUNK // self.page_size, 1))
        return pages * self.page_size

    def write_pages(self, page: int, data: bytes) -> None:
        self._aligned(data)
        self._send_write(page, data)
        self._check(CMD_WRITE_PAGES, page, len(data) // self.page_size, "writing")

    def read_pages(self, page: int, count: int) -> bytes:
        self._send_read(page, count)
        return self._receive_read(page, count)

    def write(self, offset: int, data: bytes, progress: Callable[[int], None] = lambda n: None) -> None:
        """Write ``data`` at byte ``offset`` in chunks; ``progress`` gets the bytes done so far. Up to
        :data:`IN_FLIGHT` chunks go out before the oldest one's status is read: the monitor stores each into
        the buffer only after the applet has written the one before."""
        page = self._page(offset)
        self._aligned(data)
        view, pending = memoryview(data), deque()
        for pos in range(0, len(data), self.chunk_size):
            chunk = view[pos:pos + self.chunk_size]
            first = page + pos // self.page_size
            self._send_write(first, chunk)
            pending.append((first, len(chunk) // self.page_size, pos + len(chunk)))
            if len(pending) == IN_FLIGHT:
                self._settle_write(pending, progress)
        while pending:
            self._settle_write(pending, progress)

    def _settle_write(self, pending: deque, progress: Callable[[int], None]) -> None:
        """The status of the oldest chunk in flight."""
        first, count, done = pending.popleft()
        try:
            self._check(CMD_WRITE_PAGES, first, count, "writing")
        except AppletFailed:
            for _ in pending:  # the chunks sent after it answer too
                self.samba.applet_status(CMD_WRITE_PAGES)
            raise
        progress(done)

    def read(self, offset: int, length: int) -> bytes:
        page = self._page(offset)
        self._aligned(bytes(length))
        out = bytearray()
        while len(out) < length:
            count = min(self.chunk_size, length - len(out)) // self.page_size
            out += self.read_pages(page + len(out) // self.page_size, count)
        return bytes(out)

    def verify(self, offset: int, data: bytes, progress: Callable[[int], None] = lambda n: None,
               auto_patch: bool = True) -> VerifyStats:
        """Read back and compare chunk by chunk, rewriting a chunk that differs (sambuca
        ``verify_flash``); a chunk still wrong after :attr:`MAX_REWRITES` raises.  Reads of up to
        :data:`IN_FLIGHT` chunks are out at a time; before a rewrite, the answers still coming are taken."""
        page = self._page(offset)
        stats = VerifyStats()
        chunks = [(pos, page + pos // self.page_size, min(self.chunk_size, len(data) - pos) // self.page_size)
                  for pos in range(0, len(data), self.chunk_size)]
        requested = 0  # chunks whose read has gone out
        taken: deque[bytes] = deque()  # answers already read, for the chunks after the one compared
        for i, (pos, first, count) in enumerate(chunks):
            while requested < min(len(chunks), i + IN_FLIGHT):
                self._send_read(*chunks[requested][1:])
                requested += 1
            try:
                got = taken.popleft() if taken else self._receive_read(first, count)
            except AppletFailed:
                self._drain_reads(chunks[i + 1:requested])
                raise
            chunk = data[pos:pos + count * self.page_size]
            if got != chunk:
                rest = chunks[i + 1 + len(taken):requested]  # take the answers still coming before a rewrite
                for k, c in enumerate(rest):
                    try:
                        taken.append(self._receive_read(*c[1:]))
                    except AppletFailed:
                        self._drain_reads(rest[k + 1:])
                        raise
                tries = 0
                while got != chunk:
                    if not auto_patch or tries == self.MAX_REWRITES:
                        raise SambaError(f"eMMC pages {first}..{first + count} differ from the image after "
                                         f"{tries} rewrite(s)")
                    tries += 1
                    self.write_pages(first, chunk)
                    got = self.read_pages(first, count)
                stats.chunks_patched += 1
                stats.attempts += tries
            progress(pos + len(chunk))
        return stats

    def _drain_reads(self, chunks: list[tuple[int, int, int]]) -> None:
        """Take the answers of reads still in flight, so the link stays in step after a failure."""
        for _, first, count in chunks:
            try:
                self._receive_read(first, count)
            except AppletFailed:
                pass

    def _send_write(self, page: int, data: bytes | memoryview) -> None:
        self.samba.send(*self.samba.write_request(self.buffer_addr, data,
                                                  self.samba.applet_request(CMD_WRITE_PAGES,
                                                                            [page, len(data) // self.page_size])))

    def _send_read(self, page: int, count: int) -> None:
        self.samba.send(self.samba.applet_request(CMD_READ_PAGES, [page, count])
                         + f"R{self.buffer_addr:x},{count * self.page_size:x}#".encode())

    def _receive_read(self, page: int, count: int) -> bytes:
        try:
            self._check(CMD_READ_PAGES, page, count, "reading")
        except AppletFailed:
            self.samba.read_answer(self.buffer_addr, count * self.page_size)  # R answers whatever the buffer holds
            raise
        return self.samba.read_answer(self.buffer_addr, count * self.page_size)

    def _check(self, cmd: int, page: int, count: int, what: str) -> None:
        status = self.samba.applet_status(cmd)
        if status != 0:
            raise AppletFailed(f"SD/MMC applet: status {status} after {what} {count} page(s) at page {page}")

    def _page(self, offset: int) -> int:
        if offset % self.page_size:
            raise ValueError(f"offset {offset} is not a multiple of the {self.page_size}-byte page")
        return offset // self.page_size

    def _aligned(self, data: bytes) -> None:
        if len(data) % self.page_size:
            raise ValueError(f"length {len(data)} is not a multiple of the {self.page_size}-byte page")


class EmmcFile(io.RawIOBase):
    """The eMMC behind the applet as a seekable file, so a FAT library can read and change files in
    place. Reads are cached per page; a write goes to the device at once (read-modify-write of the
    pages it touches)."""

    def __init__(self, sdmmc: Sdmmc, size: int, writable: bool = False):
        self._sdmmc, self._size, self._writable, self._pos = sdmmc, size, writable, 0
        self._cache: dict[int, bytes] = {}

    def readable(self) -> bool:
        return True

    def writable(self) -> bool:
        return self._writable

    def seekable(self) -> bool:
        return True

    def seek(self, pos: int, whence: int = io.SEEK_SET) -> int:
        self._pos = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence] + pos
        return self._pos

    def tell(self) -> int:
        return self._pos

    def _pages(self, first: int, last: int) -> bytes:
        missing = [p for p in range(first, last + 1) if p not in self._cache]
        if missing:
            lo, hi = missing[0], missing[-1]
            data = self._sdmmc.read(lo * self._sdmmc.page_size, (hi - lo + 1) * self._sdmmc.page_size)
            for i in range(hi - lo + 1):
                self._cache[lo + i] = data[i * self._sdmmc.page_size:(i + 1) * self._sdmmc.page_size]
        return b"".join(self._cache[p] for p in range(first, last + 1))

    def readinto(self, b) -> int:  # io.RawIOBase builds read() on it
        n = max(0, min(len(b), self._size - self._pos))
        if n == 0:
            return 0
        ps = self._sdmmc.page_size
        first, last = self._pos // ps, (self._pos + n - 1) // ps
        b[:n] = self._pages(first, last)[self._pos - first * ps:][:n]
        self._pos += n
        return n

    def write(self, data) -> int:
        if not self._writable:
            raise io.UnsupportedOperation("eMMC opened read-only")
        data = bytes(data)
        if not data:
            return 0
        ps = self._sdmmc.page_size
        first, last = self._pos // ps, (self._pos + len(data) - 1) // ps
        buf = bytearray(self._pages(first, last))
        start = self._pos - first * ps
        buf[start:start + len(data)] = data
        for pos in range(0, len(buf), self._sdmmc.chunk_size):
            self._sdmmc.write_pages(first + pos // ps, bytes(buf[pos:pos + self._sdmmc.chunk_size]))
        for i in range(last - first + 1):
            self._cache[first + i] = bytes(buf[i * ps:(i + 1) * ps])
        self._pos += len(data)
        return len(data)
