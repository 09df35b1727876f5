"""The usb-debug link over USB: the bulk endpoints of the Prime's vendor interface (class 0xFF), via pyusb.

OUT: one bulk transfer per command, plus a zero-length packet when its length is a multiple of the
packet size (else the device keeps waiting for the rest).  IN: one transfer per frame, read in
64 KiB chunks until a short read (os/usb-debug/protocol/src/client.rs).  The pyusb backend is
injectable: libusb1 on a lab host, or whatever the device profile names (the emulated Prime's).
"""

from __future__ import annotations

import errno
import importlib
import time
from collections.abc import Iterable
from pathlib import Path

import usb.core
import usb.util

from hil.errors import ConfigError
from hil.link import protocol
from hil.link.transport import LinkClosed, Transport

READ_CHUNK = 64 * 1024
# KeyOS, then its legacy (Flux) identity: docs/usb-architecture.md, docs/legacy-mode-hid.md, udev rules
# utils/passport-drive/99-passport.rules (keyos.md §4); the SAM-BA boot ROM's CDC-ACM in those rules too
DEFAULT_IDS = ("1307:0165", "2c97:7011")
SAMBA_ID = "03eb:6124"
VENDOR_CLASS = 0xFF


def port_path(dev: usb.core.Device) -> str:
    """``BUS-PORT[.PORT...]`` as sysfs and the lab's station pins spell it (e.g. ``1-2.3``)."""
    return f"{dev.bus}-{'.'.join(str(p) for p in dev.port_numbers or ())}"


def load_backend(spec: str, **station: str | None):
    """The pyusb backend a device profile names: ``libusb1``, or ``module:factory`` called with the
    station's endpoints (``debug``, ``serial``, ``usb_port``) as keywords."""
    if spec == "libusb1":
        import usb.backend.libusb1

        backend = usb.backend.libusb1.get_backend()
        if backend is None:
            raise ConfigError("pyusb found no libusb-1.0; install it (Debian: apt-get install libusb-1.0-0)")
        return backend
    try:
        return _factory(spec)(**station)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"USB backend {spec}: {e}") from None


def host_sysfs(spec: str) -> Path:
    """Where the host that the backend ``spec`` reaches presents its USB devices: ``/sys`` for libusb1,
    else the factory's ``sysfs`` (an emulated host's)."""
    return Path("/sys") if spec == "libusb1" else Path(getattr(_factory(spec), "sysfs", "/sys"))


def _factory(spec: str):
    module, _, name = spec.partition(":")
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError, ValueError):
        raise ConfigError(f"USB backend {spec!r} not found; use 'libusb1' or 'package.module:Factory'") from None


class UsbTransport(Transport):
    """Finds the Prime (by serial, by port path, or the only one present), claims its debug interface."""

    def __init__(self, *, serial: str | None = None, port: str | None = None,
                 ids: Iterable[str] = DEFAULT_IDS, backend=None, stall_timeout: float = 5.0,
                 frame_timeout: float = 30.0, name: str | None = None):
        super().__init__(name or f"usb:{serial or port or ','.join(ids)}", stall_timeout, frame_timeout)
        self.serial, self.port = serial, port
        self.ids = tuple(ids)
        self.backend = backend
        self._dev = self._intf = self._ep_in = self._ep_out = None
        self._buf = usb.util.create_buffer(READ_CHUNK)

    # ------------------------------------------------------------ open / close

    def _find(self) -> usb.core.Device:
        found = []  # every identity at once: a Prime in KeyOS and one in legacy mode are two Primes
        for vid_pid in self.ids:
            vid, pid = (int(x, 16) for x in vid_pid.split(":"))
            try:
                found += [d for d in usb.core.find(find_all=True, idVendor=vid, idProduct=pid, backend=self.backend)
                          if self._matches(d)]
            except usb.core.NoBackendError:
                raise ConfigError("pyusb found no USB backend; install libusb-1.0 (Debian: apt-get install "
                                  "libusb-1.0-0)") from None
        if len(found) > 1:
            listed = ", ".join(f"usb:{port_path(d)}" for d in found)
            raise LinkClosed(self.name, f"several Primes match ({listed}); name one with usb:SERIAL or usb:BUS-PORT")
        if found:
            return found[0]
        wanted = f" with serial {self.serial}" if self.serial else f" at port {self.port}" if self.port else ""
        raise LinkClosed(self.name, f"no Prime{wanted} on USB (looked for {', '.join(self.ids)})")

    def _matches(self, dev: usb.core.Device) -> bool:
        if self.port is not None:
            return port_path(dev) == self.port
        if self.serial is not None:
            try:
                return dev.serial_number == self.serial
            except (ValueError, usb.core.USBError):  # no access to the string descriptor
                return False
        return True

    def _open_link(self) -> None:
        try:
            dev = self._find()
            try:
                cfg = dev.get_active_configuration()
            except usb.core.USBError:
                dev.set_configuration()
                cfg = dev.get_active_configuration()
            for intf in cfg:
                if intf.bInterfaceClass != VENDOR_CLASS:
                    continue
                bulk = [e for e in intf if usb.util.endpoint_type(e.bmAttributes) == usb.util.ENDPOINT_TYPE_BULK]
                ins = [e for e in bulk if usb.util.endpoint_direction(e.bEndpointAddress) == usb.util.ENDPOINT_IN]
                outs = [e for e in bulk if usb.util.endpoint_direction(e.bEndpointAddress) == usb.util.ENDPOINT_OUT]
                if ins and outs:
                    break
            else:
                raise LinkClosed(self.name, f"{port_path(dev)} has no usb-debug interface (class 0xFF); "
                                            "turn on Developer Mode (Settings > Apps > Developer Mode)")
            number = intf.bInterfaceNumber
            try:
                if dev.is_kernel_driver_active(number):
                    dev.detach_kernel_driver(number)
            except NotImplementedError:
                pass
            usb.util.claim_interface(dev, number)
        except usb.core.USBError as e:
            raise LinkClosed(self.name, f"cannot open: {e}") from None
        self._dev, self._intf, self._ep_in, self._ep_out = dev, number, ins[0], outs[0]

    def _close_link(self) -> None:
        dev, self._dev = self._dev, None
        if dev is None:
            return
        try:
            usb.util.release_interface(dev, self._intf)
        except usb.core.USBError:
            pass  # the device may already be gone; it is closed either way
        usb.util.dispose_resources(dev)

    # ------------------------------------------------------------ frames

    def _write(self, body: bytes, timeout: float) -> None:
        ms = max(1, int(timeout * 1000))
        try:
            self._ep_out.write(body, ms)
            if len(body) % self._ep_out.wMaxPacketSize == 0:
                self._ep_out.write(b"", ms)  # ZLP: ends a transfer of whole packets
        except usb.core.USBTimeoutError:
            raise self.lost(f"device did not accept a {len(body)}-byte command within {timeout:g} s") from None
        except usb.core.USBError as e:
            raise self.lost(f"USB write failed: {e}") from None

    def _read(self, timeout: float) -> bytes:
        """The frame's clock starts with its first chunk: from then on the stall and frame limits hold."""
        frame = bytearray()
        deadline, frame_end = time.monotonic() + timeout, None
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise self.timed_out(len(frame), deadline, frame_end)
            try:
                n = self._ep_in.read(self._buf, max(1, int(remaining * 1000)))
            except usb.core.USBTimeoutError:
                raise self.timed_out(len(frame), deadline, frame_end) from None
            except usb.core.USBError as e:
                gone = e.errno == errno.ENODEV
                raise self.lost("device disconnected" if gone else f"USB read failed: {e}") from None
            if n == 0 and frame_end is None:
                continue  # a stray ZLP between frames
            frame += self._buf[:n]
            if len(frame) > protocol.MAX_FRAME:
                raise self.lost(f"frame exceeds the {protocol.MAX_FRAME}-byte limit")
            if n < READ_CHUNK:  # short packet or ZLP: the frame is complete
                return bytes(frame)
            frame_end = frame_end or self.frame_end()
            deadline = self.next_deadline(frame_end)
