"""The emulated Primes' USB ports as a Linux host presents them: a sysfs and a /dev under ``ROOT``.

Each emulated unit sits alone on its own virtual host controller, as a device on Linux's ``dummy_hcd``
would: ``sys/devices/platform/dummy_hcd.K/usbB/B-1`` with the attributes the kernel writes (``idVendor``,
``idProduct``, ``manufacturer``, ``product``, ``serial``, ``busnum``, ``devnum``, ``devpath``) and one
``B-1:1.N`` directory per interface (``bInterfaceClass``).  ``sys/bus/usb/devices/B-1`` links to it.
The port path ``B-1`` stays while the unit changes identity: KeyOS's composite device 1307:0165
(keyos.md §4), the SAM-BA ROM's CDC-ACM serial 03eb:6124, or nothing while it is off or at a
bootloader page.  Each change is an unplug and a fresh enumeration (``devnum`` counts up).

The ROM's tty is its pty, presented as the kernel presents a ttyACM: ``B-1:1.0/tty/ttyACMn`` with
``dev`` and ``uevent`` (``MAJOR``, ``MINOR``, ``DEVNAME``), ``sys/dev/char/MAJOR:MINOR`` and
``sys/class/tty/ttyACMn`` linking to it, and udev's stable name
``dev/serial/by-path/platform-dummy_hcd.K-usb-0:1:1.0`` pointing at the pty while the ROM is
enumerated.  What the kernel would not show, the unit's debug endpoint (for the pyusb backend), is
kept apart in ``units/B-1.json``.  ROOT is one per user on this host, as /sys is; a controller whose
emulator died is taken over by the next one.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

from filelock import FileLock

ROOT = Path(tempfile.gettempdir()) / f"hil-emulated-usb-{os.getuid()}"
SYS, DEV, UNITS = ROOT / "sys", ROOT / "dev", ROOT / "units"


@dataclass(frozen=True)
class Identity:
    """What one enumeration of the unit shows: ids, strings, interface classes (in interface order)."""

    vid: str
    pid: str
    device_class: str  # bDeviceClass: 0xef composite (interface association), 0x02 CDC
    manufacturer: str | None
    product: str | None
    interfaces: tuple[str, ...]
    serial: bool = True
    tty: bool = False  # the first interface is a CDC-ACM whose tty is the SAM-BA monitor


# keyos.md §4: mass storage (Airlock), HID (CTAP), and the vendor debug interface while it exists
KEYOS = Identity("1307", "0165", "ef", "Foundation Devices, Inc.", "Passport Prime", ("08", "03", "ff"))
KEYOS_NO_DEBUG = Identity("1307", "0165", "ef", "Foundation Devices, Inc.", "Passport Prime", ("08", "03"))
# keyos.md §5.1 (udev rules 99-passport.rules): 03eb:6124, a CDC-ACM (communication 0x02, data 0x0a).
# assumed: the ROM gives no string descriptors and no serial number (Microchip does not document them).
SAMBA_ROM = Identity("03eb", "6124", "02", None, None, ("02", "0a"), serial=False, tty=True)


def identity_of(prime) -> Identity | None:
    """The unit's USB identity now (None: nothing enumerated), from its power and boot state."""
    if not prime.powered:
        return None
    if prime.keyos_running:
        return KEYOS if prime.debug_available() else KEYOS_NO_DEBUG
    firmware = prime.firmware
    if firmware is not None and firmware.mode == "samba":
        return SAMBA_ROM
    return None  # keyos-boot's error page and Boot Menu do not enumerate (assumed: no USB stack in keyos-boot)


def units() -> list[dict]:
    """The units presented on this host: ``{"port", "debug", "serial", "owner"}`` each."""
    found = []
    for path in sorted(UNITS.glob("*.json")):
        try:
            found.append(json.loads(path.read_text()))
        except (OSError, ValueError):
            continue  # being written or removed
    return found


class UsbPort:
    """One unit's port: claims a controller, then re-enumerates the unit whenever its identity changes."""

    def __init__(self, prime, endpoints: dict[str, str]):
        self.prime, self.endpoints = prime, endpoints
        self.identity: Identity | None = None
        self.devnum = 1  # the root hub's
        self._guard = threading.Lock()  # one re-enumeration at a time
        with FileLock(str(ROOT / ".lock")):
            self.controller, self.bus = _claim()
            self.path = f"{self.bus}-1"
            record = {"port": self.path, "debug": endpoints["debug"], "serial": prime.serial, "owner": os.getpid()}
            (UNITS / f"{self.path}.json").write_text(json.dumps(record))
        self.hub = SYS / "devices" / "platform" / self.controller / f"usb{self.bus}"
        self.by_path = DEV / "serial" / "by-path" / f"platform-{self.controller}-usb-0:1:1.0"
        with prime.lock:
            prime.on_change(self.refresh)
            self.refresh()

    def refresh(self) -> None:
        """Called under ``prime.lock`` after every state change: re-enumerate when the identity differs."""
        with self._guard:
            now = identity_of(self.prime)
            if now == self.identity:
                return
            self._unplug()
            if now is not None:
                self._plug(now)
            self.identity = now

    def stop(self) -> None:
        with self.prime.lock:
            self.prime.remove_on_change(self.refresh)
            self._unplug()
        with FileLock(str(ROOT / ".lock")):
            _release(self.controller, self.path)

    # ------------------------------------------------------------ the tree

    def _plug(self, identity: Identity) -> None:
        self.devnum += 1
        name = self.path
        staging = self.hub / f".{name}"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        attrs = {"idVendor": identity.vid, "idProduct": identity.pid,
                 "bDeviceClass": identity.device_class, "busnum": str(self.bus), "devpath": "1",
                 "devnum": str(self.devnum), "speed": "480", "bNumInterfaces": str(len(identity.interfaces)),
                 "manufacturer": identity.manufacturer, "product": identity.product,
                 "serial": self.prime.serial if identity.serial else None}
        for key, value in attrs.items():
            if value is not None:
                (staging / key).write_text(value + "\n")
        for number, cls in enumerate(identity.interfaces):
            intf = staging / f"{name}:1.{number}"
            intf.mkdir()
            (intf / "bInterfaceClass").write_text(cls + "\n")
            (intf / "bInterfaceNumber").write_text(f"{number:02x}\n")
        if identity.tty:
            self._tty(staging / f"{name}:1.0")
        staging.rename(self.hub / name)  # the device appears whole
        _link(SYS / "bus" / "usb" / "devices" / name, self.hub / name)
        if identity.tty:
            tty = self.hub / name / f"{name}:1.0" / "tty" / self._tty_name
            _link(SYS / "class" / "tty" / self._tty_name, tty)
            _link(SYS / "dev" / "char" / self._devno, tty)
            _link(self.by_path, Path(self.endpoints["samba"]))

    def _tty(self, intf: Path) -> None:
        pty = os.stat(self.endpoints["samba"]).st_rdev
        self._devno = f"{os.major(pty)}:{os.minor(pty)}"
        self._tty_name = f"ttyACM{self.bus - 1}"
        tty = intf / "tty" / self._tty_name
        tty.mkdir(parents=True)
        (tty / "dev").write_text(self._devno + "\n")
        devname = os.path.relpath(self.endpoints["samba"], "/dev")  # udev names the node /dev/DEVNAME
        (tty / "uevent").write_text(f"MAJOR={os.major(pty)}\nMINOR={os.minor(pty)}\nDEVNAME={devname}\n")
        (tty / "device").symlink_to(f"../../../{intf.name}")

    def _unplug(self) -> None:
        if self.identity is None:
            return
        if self.identity.tty:
            for link in (self.by_path, SYS / "dev" / "char" / self._devno, SYS / "class" / "tty" / self._tty_name):
                link.unlink(missing_ok=True)
        (SYS / "bus" / "usb" / "devices" / self.path).unlink(missing_ok=True)
        shutil.rmtree(self.hub / self.path, ignore_errors=True)
        self.identity = None


def _link(link: Path, target: Path) -> None:
    link.parent.mkdir(parents=True, exist_ok=True)
    link.unlink(missing_ok=True)
    link.symlink_to(target)


def _claim() -> tuple[str, int]:
    """The first free controller (``dummy_hcd.K``, bus K+1); one whose emulator is gone is freed first."""
    for d in (SYS / "devices" / "platform", UNITS):
        d.mkdir(parents=True, exist_ok=True)
    k = 0
    while True:
        controller, bus = f"dummy_hcd.{k}", k + 1
        record = UNITS / f"{bus}-1.json"
        if (SYS / "devices" / "platform" / controller).exists() and record.exists():
            try:
                owner = json.loads(record.read_text())["owner"]
            except (OSError, ValueError, KeyError):
                owner = None
            if owner is not None and _alive(owner):
                k += 1
                continue
        _release(controller, f"{bus}-1")
        (SYS / "devices" / "platform" / controller / f"usb{bus}").mkdir(parents=True)
        return controller, bus


def _release(controller: str, port: str) -> None:
    """Remove a controller with everything that pointed into it."""
    for links in (SYS / "bus" / "usb" / "devices", SYS / "class" / "tty", SYS / "dev" / "char",
                  DEV / "serial" / "by-path"):
        for link in links.glob("*"):
            if link.is_symlink() and (f"/{controller}/" in os.readlink(link) or link.name == port
                                      or link.name.startswith(f"platform-{controller}-")):
                link.unlink(missing_ok=True)
    shutil.rmtree(SYS / "devices" / "platform" / controller, ignore_errors=True)
    (UNITS / f"{port}.json").unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
