"""The emulated Prime's eMMC: 512-byte pages in an image file that survives power cycles.

Two faults for the harness's own tests: a power cut armed to strike after a number of further
bytes (the write in progress stops part-way, whole pages only, as an eMMC commits them, and
:class:`PowerCut` reaches the SAM-BA monitor, which goes dark); and bad writes, where the next
writes store a flipped byte, so read-back verification has something to catch.
"""

from __future__ import annotations

import os
from pathlib import Path

PAGE = 512


class PowerCut(Exception):
    """The power failed during a write."""


class Emmc:
    def __init__(self, path: Path, size: int):
        self.path = Path(path)
        self.size = size
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)  # positional reads and writes: no lock
        # A new eMMC, or a boot.img written straight to it, grows to size with all its blocks, as a unit's eMMC
        # has them: a sparse image allocated them at the first write, 50-130 us per 64 KiB chunk, 2-6 times
        # the write itself (docs/benchmarks.md "Flashing"). What it holds is kept.
        os.posix_fallocate(self._fd, 0, size)
        self._cut_after: int | None = None
        self._bad_writes = 0

    @property
    def pages(self) -> int:
        return self.size // PAGE

    def close(self) -> None:
        """Closed for good: a monitor thread still running after its port stopped then fails on a bad
        descriptor instead of writing through a number the process may have reused for another file."""
        fd, self._fd = self._fd, -1
        if fd >= 0:
            os.close(fd)

    def arm_power_cut(self, after_bytes: int) -> None:
        """Cut the power once ``after_bytes`` more bytes have been written."""
        self._cut_after = after_bytes

    def arm_bad_writes(self, count: int) -> None:
        """The next ``count`` page writes store their first byte inverted."""
        self._bad_writes = count

    def read_pages(self, page: int, count: int) -> bytes:
        data = bytearray(count * PAGE)
        self.read_pages_into(page, memoryview(data))
        return bytes(data)

    def read_pages_into(self, page: int, into: memoryview) -> None:
        """``len(into)`` bytes of whole pages from ``page`` on, read straight into ``into`` (the applet's SRAM
        buffer: no copy of a chunk per read)."""
        self._check(page, len(into) // PAGE)
        got = os.preadv(self._fd, [into], page * PAGE)
        into[got:] = bytes(len(into) - got)  # past the file's end the image reads as zeros

    def write_pages(self, page: int, data: bytes | memoryview) -> None:
        self._check(page, len(data) // PAGE)
        cut = False
        if self._cut_after is not None:
            allowed = self._cut_after // PAGE * PAGE
            if len(data) > allowed:
                data, cut = data[:allowed], True
            self._cut_after -= len(data)
        if self._bad_writes and data:
            self._bad_writes -= 1
            data = bytes([data[0] ^ 0xFF]) + data[1:]
        view, pos = memoryview(data), page * PAGE
        while view:  # a regular file takes it all at once, short of a full disk
            n = os.pwrite(self._fd, view, pos)
            view, pos = view[n:], pos + n
        if cut:
            self._cut_after = None
            raise PowerCut(f"power cut after writing {len(data)} bytes at page {page}")

    def file(self):
        """A read-only file object over the whole eMMC (for the boot ROM's FAT reads)."""
        return open(self.path, "rb")

    def _check(self, page: int, count: int) -> None:
        if page < 0 or count < 0 or page + count > self.pages:
            raise ValueError(f"pages {page}..{page + count} are outside the eMMC (0..{self.pages})")
