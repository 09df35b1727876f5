"""A serial device on a pseudo-terminal: the harness opens the slave path with pyserial, exactly as
it would open /dev/ttyUSB0, and a reader thread hands what arrives to the emulated peripheral."""

from __future__ import annotations

import os
import select
import threading
import tty


class PtyDevice:
    """Subclasses implement :meth:`on_bytes` and answer with :meth:`write`."""

    name = "pty"

    def __init__(self):
        self._master = self._slave = -1
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.path = ""

    def start_pty(self) -> str:
        self._master, self._slave = os.openpty()
        tty.setraw(self._slave)  # no echo, no line discipline: bytes pass as they are
        self.path = os.ttyname(self._slave)
        self._thread = threading.Thread(target=self._run, name=f"emu-{self.name}", daemon=True)
        self._thread.start()
        return self.path

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(2)
        for fd in (self._master, self._slave):
            if fd >= 0:
                os.close(fd)
        self._master = self._slave = -1

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view and self._master >= 0:  # a large answer (a SAM-BA R of pages) may go out in parts
            view = view[os.write(self._master, view):]

    def _run(self) -> None:
        # Reads land in memory the caller owns: os.read(fd, n) allocates n bytes per call, and the pty hands
        # over at most its line discipline's 4 KiB at a time, so a large n cost more than the read itself (a
        # SAM-BA S payload arrives in thousands of reads).
        buffer = memoryview(bytearray(1 << 16))
        while not self._stop.is_set():
            if not select.select([self._master], [], [], 0.1)[0]:
                continue
            target = self.payload_target()
            try:
                n = os.readv(self._master, [buffer if target is None else target])
            except OSError:
                return
            if not n:
                continue
            if target is None:
                self.on_bytes(bytes(buffer[:n]))
            else:
                self.on_payload(n)

    def on_bytes(self, data: bytes) -> None:
        raise NotImplementedError

    def payload_target(self) -> memoryview | None:
        """Where the next bytes belong when the device already knows (a bulk payload it is receiving), so they
        are read straight into it; None hands them to :meth:`on_bytes`."""
        return None

    def on_payload(self, n: int) -> None:
        """``n`` bytes were read into :meth:`payload_target`."""
