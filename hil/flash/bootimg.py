"""The development full image ``boot.img``: an MBR and the eMMC's three partitions, read and written.

Layout from KeyOS's ``xtask/src/bootimage.rs`` (keyos.md §2.1): sector 0 holds the MBR; partition 0
``KEYOSBOOT`` (FAT32, bootable, from sector 1: ``boot.bin``/``boot.cip``, ``recovery.bin``, bootloader
assets), partition 1 ``PRIME`` (FAT32: ``keyos/app.bin``, ``keyos/apps/…``), partition 2 the user
volume, only marked in the MBR (the device formats it at first boot). The FAT layer is pyfatfs.

A pure codec over a file object, shared by the flasher (checks an image before a device is touched)
and the emulated Prime's boot ROM and bootloader (which read its eMMC through it).
"""

from __future__ import annotations

import io
import struct
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from hil.errors import HilError

if TYPE_CHECKING:  # pyfatfs is imported where a volume is opened or made: its `fs` loads pkg_resources (~0.25 s
    from pyfatfs.PyFatFS import PyFatBytesIOFS  # of CPU), which a suite's worker that flashes nothing never needs

SECTOR = 512
MIB = 1024 * 1024
GIB = 1024 * MIB
FAT32_LBA = 0x0C
BOOT_VOLUME, SYSTEM_VOLUME = "KEYOSBOOT", "PRIME"
BOOTLOADERS = ("boot.bin", "boot.cip")  # plaintext (development) or Secure Boot ciphered
APP_IMAGE = "keyos/app.bin"
UPDATED_APP_IMAGE = "keyos.update/app.bin"  # the bootloader's fallback when keyos/app.bin is missing
RECOVERY_IMAGE = "recovery.bin"


class BootImageError(ValueError):
    """A boot.img (or eMMC) whose partition table or file systems KeyOS could not boot from."""


@dataclass(frozen=True)
class Layout:
    """Partition sizes in sectors; partition 0 starts at sector 1, the others follow it."""

    boot: int
    system: int
    user: int

    @property
    def starts(self) -> tuple[int, int, int]:
        return 1, 1 + self.boot, 1 + self.boot + self.system

    @property
    def total_bytes(self) -> int:
        return (1 + self.boot + self.system + self.user) * SECTOR


# The Prime's eMMC as KeyOS lays it out.
KEYOS = Layout(boot=(256 * MIB - SECTOR) // SECTOR, system=(8 * GIB - 0x1000000) // SECTOR,
               user=(50 * GIB - 0x400000) // SECTOR)
# The emulated Prime's smaller eMMC: the same scheme with the smallest FAT32 volumes (FAT32 needs
# more than 65,525 clusters, i.e. > 32.5 MiB at 512-byte clusters).
EMULATED = Layout(boot=(40 * MIB - SECTOR) // SECTOR, system=(40 * MIB) // SECTOR, user=(16 * MIB) // SECTOR)


@dataclass(frozen=True)
class Partition:
    index: int
    bootable: bool
    type: int
    start: int  # sector
    sectors: int

    @property
    def offset(self) -> int:
        return self.start * SECTOR

    @property
    def end(self) -> int:
        return (self.start + self.sectors) * SECTOR


def partition_table(mbr: bytes, disk_bytes: int | None = None) -> list[Partition]:
    """The three partitions of a KeyOS MBR, checked; ``disk_bytes`` bounds partitions 0 and 1."""
    if len(mbr) < SECTOR or mbr[510:512] != b"\x55\xaa":
        raise BootImageError("bad partition table: no MBR signature 55 AA at byte 510")
    parts = []
    for i in range(4):
        status, ptype, start, count = struct.unpack_from("<B3xB3xII", mbr, 446 + 16 * i)
        if status not in (0x00, 0x80):
            raise BootImageError(f"bad partition table: entry {i} has status byte {status:#04x}")
        if ptype:
            parts.append(Partition(i, status == 0x80, ptype, start, count))
    if [p.index for p in parts] != [0, 1, 2]:
        raise BootImageError(f"bad partition table: expected partitions 0, 1, 2 (KEYOSBOOT, PRIME, user), "
                             f"found {[p.index for p in parts]}")
    boot = parts[0]
    if not boot.bootable or boot.start != 1:
        raise BootImageError("bad partition table: partition 0 (KEYOSBOOT) must be bootable and start at sector 1")
    for a, b in zip(parts, parts[1:]):
        if a.sectors == 0 or a.start + a.sectors > b.start:
            raise BootImageError(f"bad partition table: partitions {a.index} and {b.index} overlap or are empty")
    for p in parts[:2]:
        if p.type not in (0x0B, FAT32_LBA):
            raise BootImageError(f"bad partition table: partition {p.index} has type {p.type:#04x}, not FAT32")
        if disk_bytes is not None and p.end > disk_bytes:
            raise BootImageError(f"bad partition table: partition {p.index} ends at byte {p.end}, "
                                 f"past the end of the image ({disk_bytes} bytes)")
    return parts


def _mbr(layout: Layout) -> bytes:
    mbr = bytearray(SECTOR)
    for i, (start, count) in enumerate(zip(layout.starts, (layout.boot, layout.system, layout.user))):
        # CHS fields 0xFEFFFF: "use LBA", as every partitioner writes for disks past 8 GiB.
        struct.pack_into("<B3sB3sII", mbr, 446 + 16 * i, 0x80 if i == 0 else 0, b"\xfe\xff\xff",
                         FAT32_LBA, b"\xfe\xff\xff", start, count)
    mbr[510:512] = b"\x55\xaa"
    return bytes(mbr)


class _Window(io.RawIOBase):
    """A file object over ``fp`` that pyfatfs may use without touching anything outside one partition.

    Once the medium has failed (a device lost mid-write) and its error has been raised, later writes
    are dropped: they can only come from pyfatfs flushing on close or garbage collection."""

    def __init__(self, fp, start: int, end: int):
        self._fp, self._start, self._end, self._pos = fp, start, end, 0
        self.failed = False

    def readable(self) -> bool:
        return True

    def writable(self) -> bool:
        return self._fp.writable()

    def seekable(self) -> bool:
        return True

    def seek(self, pos: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._end - self._start}[whence]
        self._pos = base + pos
        return self._pos

    def tell(self) -> int:
        return self._pos

    def readinto(self, b) -> int:  # io.RawIOBase builds read() on it
        n = min(len(b), max(self._end - self._start - self._pos, 0))
        self._fp.seek(self._start + self._pos)
        data = self._fp.read(n)
        b[:n] = data + bytes(n - len(data))  # a sparse tail reads as zeros
        self._pos += n
        return n

    def write(self, data) -> int:
        if self._start + self._pos + len(data) > self._end:
            raise BootImageError("write past the end of the partition")
        if not self.failed:
            try:
                self._fp.seek(self._start + self._pos)
                self._fp.write(data)
            except BaseException:
                self.failed = True
                raise
        self._pos += len(data)
        return len(data)

    def flush(self) -> None:
        self._fp.flush()


def _check_volume(boot_sector: bytes, part: Partition) -> None:
    """Refuse a FAT boot sector whose sizes do not fit its partition or whose FAT is far larger than its clusters
    need: pyfatfs would parse every entry of such a FAT (tens of seconds for a few inflated bytes)."""
    if len(boot_sector) < 40:
        return
    bps, spc, reserved, fats = struct.unpack_from("<HBHB", boot_sector, 11)
    total = struct.unpack_from("<H", boot_sector, 19)[0] or struct.unpack_from("<I", boot_sector, 32)[0]
    fat_sectors = struct.unpack_from("<H", boot_sector, 22)[0] or struct.unpack_from("<I", boot_sector, 36)[0]
    if not bps or not spc:
        return  # pyfatfs names these itself
    clusters = max(total - reserved - fats * fat_sectors, 0) // spc
    if total * bps > part.sectors * SECTOR:
        raise BootImageError(f"partition {part.index}: its FAT volume claims {total * bps} bytes, the partition "
                             f"holds {part.sectors * SECTOR}; rebuild the image")
    if fat_sectors * bps > 2 * 4 * (clusters + 2) + 64 * bps:
        raise BootImageError(f"partition {part.index}: a FAT of {fat_sectors} sectors for {clusters} clusters; "
                             "the volume is damaged, rebuild the image")


@contextmanager
def mount(fp, part: Partition) -> Iterator[PyFatBytesIOFS]:
    """The FAT file system of one partition of an open image or eMMC file."""
    from pyfatfs.PyFatFS import PyFatBytesIOFS

    window = _Window(fp, part.offset, part.end)
    _check_volume(window.read(SECTOR), part)
    window.seek(0)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "not cleanly unmounted": a flash cut short is our normal case
            fs = PyFatBytesIOFS(window, utc=True)
    except HilError:
        raise  # the device, not the volume, failed
    except Exception as e:  # pyfatfs raises many kinds on a damaged volume
        raise BootImageError(f"partition {part.index} is not a readable FAT file system ({e})") from None
    try:
        yield fs
    finally:
        fs.close()


def read_file(fp, part: Partition, path: str) -> bytes | None:
    """One file's bytes from a partition, None when it does not exist."""
    with mount(fp, part) as fs:
        try:
            return fs.readbytes(path) if fs.isfile(path) else None
        except Exception as e:  # a damaged directory or cluster chain, in whatever form pyfatfs reports it
            raise BootImageError(f"partition {part.index}: {path} is unreadable ({e})") from None


def write(path: Path, *, layout: Layout, bootloader: bytes, recovery: bytes, app: bytes,
          apps: Mapping[str, bytes] | None = None, volume_id: int = 0x4B45594F) -> None:
    """Write a boot.img as ``xtask build-firmware`` does: MBR, KEYOSBOOT, PRIME, user partition marked.

    ``apps`` maps paths under ``keyos/apps/`` to bytes. The image is written to a temporary file and
    renamed, so a failure never leaves a half-written boot.img behind.
    """
    from pyfatfs.PyFat import PyFat

    path = Path(path)
    tmp = path.with_name(path.name + ".partial")
    tmp.write_bytes(b"")
    try:
        boot_start, system_start, _ = (s * SECTOR for s in layout.starts)
        for start, sectors, label in ((boot_start, layout.boot, BOOT_VOLUME),
                                      (system_start, layout.system, SYSTEM_VOLUME)):
            fat = PyFat(offset=start)
            fat.mkfs(str(tmp), PyFat.FAT_TYPE_FAT32, size=sectors * SECTOR, label=label, volume_id=volume_id)
            fat.close()  # flushes the FAT with the root directory's cluster
        with open(tmp, "r+b") as fp:
            fp.write(_mbr(layout))
            parts = partition_table(_mbr(layout))
            with mount(fp, parts[0]) as fs:
                fs.writebytes("boot.bin", bootloader)
                fs.writebytes(RECOVERY_IMAGE, recovery)
            with mount(fp, parts[1]) as fs:
                fs.makedirs("keyos/apps")
                fs.writebytes(APP_IMAGE, app)
                for rel, data in (apps or {}).items():
                    fs.makedirs(f"keyos/apps/{rel}".rsplit("/", 1)[0], recreate=True)
                    fs.writebytes(f"keyos/apps/{rel}", data)
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)


@dataclass(frozen=True)
class BootImage:
    """What a boot.img holds, read and checked."""

    partitions: tuple[Partition, ...]
    bootloader: str  # boot.bin or boot.cip
    app: bytes  # keyos/app.bin
    recovery: bytes | None

    @classmethod
    def read(cls, path: Path) -> BootImage:
        path = Path(path)
        with open(path, "rb") as fp:
            return cls.read_from(fp, path.stat().st_size)

    @classmethod
    def read_from(cls, fp, size: int) -> BootImage:
        fp.seek(0)
        parts = partition_table(fp.read(SECTOR), size)
        loader = next((name for name in BOOTLOADERS if read_file(fp, parts[0], name) is not None), None)
        recovery = read_file(fp, parts[0], RECOVERY_IMAGE)
        if loader is None:
            raise BootImageError("KEYOSBOOT has no boot.bin or boot.cip; the ROM would find nothing to boot")
        app = read_file(fp, parts[1], APP_IMAGE)
        if app is None:
            raise BootImageError(f"PRIME has no {APP_IMAGE}; build the image with an app.bin")
        return cls(tuple(parts), loader, app, recovery)
