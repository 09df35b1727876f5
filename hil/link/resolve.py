"""From what a person has in hand (a ``--device`` string) to a usb-debug link.

``tcp:HOST:PORT``  KeyOS's simulator, the emulated Prime
``bridge:HOST:PORT`` a bench's ``hil bridge`` (a lab across hosts): TCP after the lease token in ``LG_TOKEN``
``usb:SERIAL``     the Prime with that serial number
``usb:BUS-PORT``   the Prime on that USB port path (``1-2.3``), as stations are pinned
``usb``            the only Prime present (two present: an error listing both)
``/dev/ttyACM0``   a tty of the Prime (its CDC-ACM log serial), or a symlink to one
                   (``/dev/serial/by-id/…``): sysfs names the USB device that owns it, whose vendor
                   interface is the debug link; if it is the SAM-BA ROM (:class:`SambaRom`), the unit
                   on its port path once KeyOS runs (``hil.lab.first_contact``)
``emulator``       a fresh emulated Prime (the lab's :func:`hil.lab.station.device_station`)

Which pyusb backend reaches a USB device is the device profile's ``usb.backend``.
"""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path
from typing import Protocol

from hil.link import bridge
from hil.link.client import PrimeClient
from hil.link.tcp import TcpTransport
from hil.link.transport import DeviceNotFound, Transport
from hil.link.usb import DEFAULT_IDS, SAMBA_ID, UsbTransport, host_sysfs, load_backend
from hil.profile import Profile

BUS_PORT = re.compile(r"\d+-\d+(\.\d+)*")
VENDOR_CLASS = "ff"


class SambaRom(DeviceNotFound):
    """The tty is the Prime's SAM-BA boot ROM (03eb:6124): no debug link until KeyOS runs on ``port``,
    the USB port path both identities share (``hil.lab.first_contact`` gets it there)."""

    def __init__(self, message: str, tty: str, port: str):
        super().__init__(message)
        self.tty, self.port = tty, port


def resolve_tty(path: str, sysfs: Path = Path("/sys"), ids: tuple[str, ...] = DEFAULT_IDS,
                samba: str = SAMBA_ID) -> str:
    """``usb:BUS-PORT`` of the Prime owning the tty at ``path``, with its debug interface present
    (:class:`SambaRom` when the tty is the unit's boot ROM)."""
    usb_dev = tty_owner(path, sysfs)
    port, found = _port(usb_dev), f"{_attr(usb_dev, 'idVendor')}:{_attr(usb_dev, 'idProduct')}"
    product = " ".join(x for x in (_attr(usb_dev, "manufacturer"), _attr(usb_dev, "product")) if x) or "unnamed"
    if found == samba:
        raise SambaRom(f"{path}: belongs to USB device {found} {product!r} at {port}, a Prime in SAM-BA "
                       "mode: no debug link until KeyOS runs (flash it with --firmware, or boot its eMMC)",
                       path, port)
    if found not in ids:
        raise DeviceNotFound(f"{path}: belongs to USB device {found} {product!r} at {port}, "
                             f"not a Prime running KeyOS ({', '.join(ids)})")
    siblings = [d for d in usb_dev.glob(f"{usb_dev.name}:*") if _attr(d, "bInterfaceClass") == VENDOR_CLASS]
    if not siblings:
        raise DeviceNotFound(f"{path}: Prime {found} at {port} has no debug interface (class 0xff); "
                             "turn on Developer Mode (Settings > Apps > Developer Mode)")
    return f"usb:{port}"


def tty_owner(path: str, sysfs: Path) -> Path:
    """The sysfs directory of the USB device owning the tty at ``path``, found as udev finds it: the node's
    device number names ``dev/char/MAJOR:MINOR``, whose ``device`` is the interface, whose parent is the
    device.  Symlinks (``/dev/serial/by-id/…``, ``by-path/…``) resolve on the way."""
    if not os.path.exists(path):
        raise DeviceNotFound(f"{path}: no such device (is the Prime plugged in? `ls /dev/ttyACM*`)")
    st = os.stat(path)
    if not stat.S_ISCHR(st.st_mode):
        raise DeviceNotFound(f"{path}: not a character device, so not a serial port")
    node = sysfs / "dev" / "char" / f"{os.major(st.st_rdev)}:{os.minor(st.st_rdev)}"
    if not (node / "device").exists():
        raise DeviceNotFound(f"{path}: exists but sysfs has no device behind it ({node}); not a USB serial port")
    intf = (node / "device").resolve()
    if _attr(intf.parent, "idVendor") is None or _attr(intf.parent, "idProduct") is None:
        raise DeviceNotFound(f"{path}: a tty on {intf.name}, not on a USB device")
    return intf.parent


def rom_tty(port: str, sysfs: Path, samba: str = SAMBA_ID) -> str | None:
    """The tty of the SAM-BA ROM enumerated at USB port path ``port`` now (None: something else or nothing
    is there): the node udev makes, ``/dev/DEVNAME`` from the tty's ``uevent``."""
    dev = sysfs / "bus" / "usb" / "devices" / port
    if usb_id(port, sysfs) != samba:
        return None
    for uevent in sorted(dev.glob(f"{port}:*/tty/*/uevent")):
        fields = dict(line.split("=", 1) for line in (_attr(uevent.parent, "uevent") or "").splitlines() if "=" in line)
        if "DEVNAME" in fields:
            return f"/dev/{fields['DEVNAME']}"
    return None


def usb_id(port: str, sysfs: Path) -> str | None:
    """``vvvv:pppp`` of the USB device enumerated at port path ``port`` now (None: nothing is there)."""
    dev = sysfs / "bus" / "usb" / "devices" / port
    vid, pid = _attr(dev, "idVendor"), _attr(dev, "idProduct")
    return f"{vid}:{pid}" if vid is not None and pid is not None else None


def _port(usb_dev: Path) -> str:
    """``BUS-PORT[.PORT…]``: the kernel's ``busnum`` and ``devpath``, which a re-enumeration keeps."""
    return f"{_attr(usb_dev, 'busnum')}-{_attr(usb_dev, 'devpath')}"


class Endpoints(Protocol):
    """What a USB backend may need of the station a link belongs to (a lab's `Station` has these)."""

    debug: str | None
    serial: str | None
    usb_port: str | None


def _attr(d: Path, name: str) -> str | None:
    try:
        return (d / name).read_text().strip()
    except OSError:
        return None


def transport_for(device: str, profile: Profile, station: Endpoints | None = None,
                  stall_timeout: float = 5.0, sysfs: Path | None = None) -> Transport:
    """The transport a ``--device`` string names.  ``station`` supplies the endpoints a profile's
    USB backend may need (the emulated Prime's backend forwards to its ``debug`` endpoint).  A tty is
    looked up in ``sysfs``, by default the one of the host the profile's backend reaches."""
    kind, _, rest = device.partition(":")
    if kind == "tcp":
        host, _, port = rest.rpartition(":")
        if not host or not port.isdigit():
            raise DeviceNotFound(f"{device}: expected tcp:HOST:PORT, e.g. tcp:127.0.0.1:7664")
        return TcpTransport(host, int(port), stall_timeout=stall_timeout)
    if kind == "bridge":  # a bench's `hil bridge` (issue 8): TCP after a lease handshake
        return bridge.transport(device, stall_timeout)
    if device.startswith("/"):
        sysfs = sysfs or host_sysfs(profile.usb.backend)
        return transport_for(resolve_tty(device, sysfs, (profile.usb.keyos, profile.usb.legacy), profile.usb.samba),
                             profile, station, stall_timeout)
    if kind == "usb":  # bare "usb": the only Prime present
        endpoints = {k: getattr(station, k) for k in ("debug", "serial", "usb_port")} if station else {}
        backend = load_backend(profile.usb.backend, **endpoints)
        where = {} if not rest else {"port": rest} if BUS_PORT.fullmatch(rest) else {"serial": rest}
        return UsbTransport(ids=(profile.usb.keyos, profile.usb.legacy), backend=backend,
                            stall_timeout=stall_timeout, name=device, **where)
    raise DeviceNotFound(f"{device!r} is not a device: use emulator, tcp:HOST:PORT, bridge:HOST:PORT, usb, usb:SERIAL, "
                         "usb:BUS-PORT or a tty path such as /dev/ttyACM0")


def open_client(device: str, profile: Profile, timeout: float | None = None,
                station: Endpoints | None = None) -> PrimeClient:
    """An unopened :class:`PrimeClient` for ``device``, configured from ``profile`` (``timeout``, when
    given, replaces the profile's default command limit; the per-command limits stay)."""
    link = profile.link
    return PrimeClient(transport_for(device, profile, station), pixel_order=profile.screenshot_byte_order,
                       home_button=profile.touch.home_button.centre, timeout=timeout or link.command_s,
                       limits=link.command_limits_s, settle=link.settle_s, max_log_bytes=link.log_backlog_bytes)
