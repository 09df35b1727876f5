"""The emulated Prime as a USB device, for pyusb: a ``usb.backend.IBackend`` (keyos.md §4).

``usb.core.find(idVendor=0x1307, idProduct=0x0165, backend=EmulatedHost(...))`` finds a composite USB
2.1 device (class 0xEF/02/01, "Foundation Devices, Inc." / "Passport Prime") with a mass-storage
interface, a HID (CTAP) interface and the vendor usb-debug interface (class 0xFF, two 512-byte bulk
endpoints).  Everything above this class is pyusb's own code, so the harness's USB transport runs
unchanged.  The vendor endpoints carry their transfers to the emulator's TCP debug endpoint: one OUT
transfer (ended by a short packet or ZLP, as on the wire) becomes one frame, and each IN frame is
handed out as a bulk transfer in packets of 512 bytes ending with a short packet or a ZLP.

What a unit presents (ids, strings, interfaces, port path) is what its emulator's USB port shows in the
emulated host's sysfs (``hil.emulator.usb_host``): it changes as the unit moves between KeyOS and the
SAM-BA ROM, and is gone while the unit is off.  :class:`EmulatedHost` is the backend a device profile
names; it is constructed in the harness process with the station's endpoints.
"""

from __future__ import annotations

import array
import errno
import queue
import socket
import struct
import threading
import time
from pathlib import Path
from types import SimpleNamespace as Desc

import usb.backend
import usb.core
import usb.util

from hil.emulator import usb_host
from hil.link import protocol

PACKET = 512
HID_PACKET = 64
_GONE = object()  # queued by the reader when the TCP endpoint closes
_END = object()  # queued by the reader after the last byte of a frame


def _ep(address: int, attributes: int, size: int, interval: int = 0) -> Desc:
    return Desc(bLength=7, bDescriptorType=5, bEndpointAddress=address, bmAttributes=attributes,
                wMaxPacketSize=size, bInterval=interval, bRefresh=0, bSynchAddress=0, extra_descriptors=[])


def _intf(number: int, cls: str) -> Desc:
    """Interface ``number`` of class ``cls`` (hex, as sysfs writes it), endpoints 0x8N+1 and 0x0N+1."""
    sub, proto, eps, extra = {
        "08": (0x06, 0x50, [(0x02, PACKET, 0)] * 2, b""),  # mass storage (Airlock), bulk-only
        # HID CTAP2/U2F: its HID descriptor (0x21) names a 34-byte report descriptor, usage page 0xF1D0
        "03": (0x00, 0x00, [(0x03, HID_PACKET, 5)] * 2, bytes([9, 0x21, 0x11, 0x01, 0, 1, 0x22, 34, 0])),
        "ff": (0x00, 0x00, [(0x02, PACKET, 0)] * 2, b""),  # usb-debug
        "02": (0x02, 0x01, [(0x03, 8, 16)], b""),  # CDC-ACM communication: notifications
        "0a": (0x00, 0x00, [(0x02, PACKET, 0)] * 2, b""),  # CDC data
    }[cls]
    addresses = (0x81 + number, 0x01 + number)
    endpoints = [_ep(a, attr, size, interval) for a, (attr, size, interval) in zip(addresses, eps)]
    return Desc(bLength=9, bDescriptorType=4, bInterfaceNumber=number, bAlternateSetting=0,
                bNumEndpoints=len(endpoints), bInterfaceClass=int(cls, 16), bInterfaceSubClass=sub,
                bInterfaceProtocol=proto, iInterface=0, extra_descriptors=list(extra), endpoints=endpoints)


KERNEL_DRIVERS = {"08": "usb-storage", "03": "usbhid", "02": "cdc_acm", "0a": "cdc_acm"}  # bound by a Linux host


class EmulatedHost(usb.backend.IBackend):
    """The emulated Primes this station reaches: the one whose debug link is ``debug`` (a bare TCP device
    when no emulator presents it), else every unit the emulated host presents, as libusb sees a host's.
    ``sysfs`` is where that host presents them (``hil.link.resolve`` reads a tty's owner there)."""

    sysfs: Path = usb_host.SYS

    def __init__(self, debug: str | None = None, serial: str | None = None, usb_port: str | None = None):
        self.debug, self.serial = debug, serial

    def enumerate_devices(self):
        registered = usb_host.units()
        if self.debug and self.debug.startswith("tcp:"):
            mine = [u for u in registered if u["debug"] == self.debug]
            if not mine:
                yield EmulatedPrimeBackend(self.debug, self.serial)
                return
            registered = mine
        for unit in registered:
            sysdir = usb_host.SYS / "bus" / "usb" / "devices" / unit["port"]
            try:
                yield EmulatedPrimeBackend(unit["debug"], unit["serial"], sysdir=sysdir.resolve(strict=True))
            except (OSError, ValueError):
                continue  # not enumerated now (off, at a bootloader page, or re-enumerating)


def _delegate(name: str):
    def method(self, dev, *args):
        return getattr(dev, name)(dev, *args)
    method.__name__ = name
    return method


for _name in ("get_device_descriptor", "get_configuration_descriptor", "get_interface_descriptor",
              "get_endpoint_descriptor", "open_device", "close_device", "set_configuration", "get_configuration",
              "set_interface_altsetting", "claim_interface", "release_interface", "bulk_write", "bulk_read",
              "ctrl_transfer", "clear_halt", "is_kernel_driver_active", "detach_kernel_driver",
              "attach_kernel_driver"):
    setattr(EmulatedHost, _name, _delegate(_name))  # each unit is its own device and handle


class EmulatedPrimeBackend(usb.backend.IBackend):
    """One emulated Prime, its debug interface forwarded to ``debug`` (``tcp:HOST:PORT``): as its emulator's
    USB port presents it in sysfs (``sysdir``), else in KeyOS mode at port 1-1."""

    def __init__(self, debug: str, serial: str | None = "EMU-0001", usb_port: str | None = None,
                 bus: int = 1, port: int = 1, connect_timeout: float = 5.0, sysdir: Path | None = None):
        kind, _, rest = debug.partition(":")
        host, _, port_text = rest.rpartition(":")
        if kind != "tcp" or not host or not port_text.isdigit():
            raise ValueError(f"debug endpoint {debug!r} must be tcp:HOST:PORT")
        self.address = (host, int(port_text))
        self.serial = serial or "EMU-0001"
        self.bus, self.ports = bus, (port,)
        self.ids, self.device_class = (0x1307, 0x0165), 0xEF
        self.strings = {1: "Foundation Devices, Inc.", 2: "Passport Prime"}
        classes = usb_host.KEYOS.interfaces
        if sysdir is not None:  # one enumeration's facts, read once as a host reads them at enumeration
            attr = {a: (sysdir / a).read_text().strip() for a in ("idVendor", "idProduct", "bDeviceClass",
                                                                  "busnum", "devpath")}
            self.ids = (int(attr["idVendor"], 16), int(attr["idProduct"], 16))
            self.device_class = int(attr["bDeviceClass"], 16)
            self.bus, self.ports = int(attr["busnum"]), tuple(int(p) for p in attr["devpath"].split("."))
            self.strings = {i: (sysdir / a).read_text().strip() for i, a in ((1, "manufacturer"), (2, "product"))
                            if (sysdir / a).exists()}
            self.serial = (sysdir / "serial").read_text().strip() if (sysdir / "serial").exists() else None
            classes = tuple((sysdir / f"{sysdir.name}:1.{n}" / "bInterfaceClass").read_text().strip()
                            for n in range(len(list(sysdir.glob(f"{sysdir.name}:1.*")))))
        self.interfaces = [_intf(n, cls) for n, cls in enumerate(classes)]
        self.debug_intf = classes.index("ff") if "ff" in classes else None
        self.ep_out, self.ep_in = (None, None) if self.debug_intf is None else (1 + self.debug_intf,
                                                                                0x81 + self.debug_intf)
        self.connect_timeout = connect_timeout
        self.configuration = 1  # a Linux host configures a device as it enumerates it
        self.kernel_drivers = {n: KERNEL_DRIVERS[c] for n, c in enumerate(classes) if c in KERNEL_DRIVERS}
        self.claimed: set[int] = set()
        self._sock: socket.socket | None = None
        self._pieces: queue.Queue = queue.Queue()
        self._reader: threading.Thread | None = None
        self._out = bytearray()  # the OUT transfer being received
        self._in = b""  # bytes of the current IN frame not yet handed out

    # ------------------------------------------------------------ descriptors

    def enumerate_devices(self):
        yield self

    def get_device_descriptor(self, dev):
        composite = self.device_class == 0xEF  # interface association: subclass 02, protocol 01
        return Desc(bLength=18, bDescriptorType=1, bcdUSB=0x0210, bDeviceClass=self.device_class,
                    bDeviceSubClass=0x02 if composite else 0, bDeviceProtocol=0x01 if composite else 0,
                    bMaxPacketSize0=64, idVendor=self.ids[0], idProduct=self.ids[1], bcdDevice=0x0100,
                    iManufacturer=1 if 1 in self.strings else 0, iProduct=2 if 2 in self.strings else 0,
                    iSerialNumber=3 if self.serial else 0, bNumConfigurations=1, bus=self.bus,
                    address=self.ports[-1] + 1, port_number=self.ports[-1], port_numbers=self.ports,
                    speed=usb.util.SPEED_HIGH)

    def get_configuration_descriptor(self, dev, config):
        if config != 0:
            raise IndexError(config)
        total = 9 + sum(9 + len(i.extra_descriptors) + 7 * len(i.endpoints) for i in self.interfaces)
        # self-powered (0xC0), 32 mA (bMaxPower counts 2 mA units)
        return Desc(bLength=9, bDescriptorType=2, wTotalLength=total, bNumInterfaces=len(self.interfaces),
                    bConfigurationValue=1, iConfiguration=0, bmAttributes=0xC0, bMaxPower=16,
                    extra_descriptors=[])

    def get_interface_descriptor(self, dev, intf, alt, config):
        if config != 0 or alt != 0 or not 0 <= intf < len(self.interfaces):
            raise IndexError((intf, alt))
        return self.interfaces[intf]

    def get_endpoint_descriptor(self, dev, ep, intf, alt, config):
        return self.get_interface_descriptor(dev, intf, alt, config).endpoints[ep]

    # ------------------------------------------------------------ handles

    def open_device(self, dev):
        return self

    def close_device(self, dev_handle):
        self._disconnect()

    def set_configuration(self, dev_handle, config_value):
        if config_value not in (0, 1):
            raise usb.core.USBError("Pipe error", errno=errno.EPIPE)
        self.configuration = config_value

    def get_configuration(self, dev_handle):
        return self.configuration

    def set_interface_altsetting(self, dev_handle, intf, altsetting):
        if altsetting != 0:
            raise usb.core.USBError("Pipe error", errno=errno.EPIPE)

    def is_kernel_driver_active(self, dev_handle, intf):
        return intf in self.kernel_drivers

    def detach_kernel_driver(self, dev_handle, intf):
        if self.kernel_drivers.pop(intf, None) is None:
            raise usb.core.USBError("Entity not found", errno=errno.ENOENT)

    def attach_kernel_driver(self, dev_handle, intf):
        cls = f"{self.interfaces[intf].bInterfaceClass:02x}"
        if cls in KERNEL_DRIVERS:
            self.kernel_drivers[intf] = KERNEL_DRIVERS[cls]

    def claim_interface(self, dev_handle, intf):
        if intf in self.kernel_drivers:
            raise usb.core.USBError("Resource busy", errno=errno.EBUSY)
        if intf == self.debug_intf and intf not in self.claimed:
            self._connect()
        self.claimed.add(intf)

    def release_interface(self, dev_handle, intf):
        self.claimed.discard(intf)
        if intf == self.debug_intf:
            self._disconnect()

    def clear_halt(self, dev_handle, ep):
        pass

    def ctrl_transfer(self, dev_handle, bmRequestType, bRequest, wValue, wIndex, data, timeout):
        if bmRequestType == 0x80 and bRequest == 0x06 and wValue >> 8 == 0x03:  # GET_DESCRIPTOR(string)
            index = wValue & 0xFF
            if index == 0:
                reply = bytes([4, 3]) + struct.pack("<H", 0x0409)
            elif index in self.strings or (index == 3 and self.serial):
                text = self.strings.get(index, self.serial).encode("utf-16-le")
                reply = bytes([2 + len(text), 3]) + text
            else:
                raise usb.core.USBError("Pipe error", errno=errno.EPIPE)
            n = min(len(reply), len(data))
            data[:n] = array.array("B", reply[:n])
            return n
        raise usb.core.USBError("Pipe error", errno=errno.EPIPE)  # nothing else is implemented: stall

    # ------------------------------------------------------------ the debug interface's bulk endpoints

    def bulk_write(self, dev_handle, ep, intf, data, timeout):
        if ep != self.ep_out or self.debug_intf not in self.claimed:
            raise usb.core.USBError("Pipe error", errno=errno.EPIPE)
        self._check_connected()
        self._out += bytes(data)
        if len(self._out) > protocol.MAX_OUT:
            self._out.clear()
            raise usb.core.USBError("Overflow", errno=errno.EOVERFLOW)
        if not data or len(data) % PACKET:  # a short packet or the ZLP ends the transfer
            body, self._out = bytes(self._out), bytearray()
            if body:
                try:
                    self._sock.sendall(protocol.stream_frame(body))
                except OSError:
                    self._disconnect()
                    raise usb.core.USBError("No such device (it may have been disconnected)",
                                            errno=errno.ENODEV) from None
        return len(data)

    def bulk_read(self, dev_handle, ep, intf, buff, timeout):
        """One IN transfer: up to ``len(buff)`` bytes, cut short where the frame ends.  A frame of
        whole transfers is ended by a ZLP, which the next read returns as 0 bytes."""
        if ep != self.ep_in or self.debug_intf not in self.claimed:
            raise usb.core.USBError("Pipe error", errno=errno.EPIPE)
        deadline = time.monotonic() + timeout / 1000 if timeout else None
        got = bytearray()
        while len(got) < len(buff):
            if not self._in:
                try:
                    item = self._pieces.get(timeout=None if deadline is None else max(0, deadline - time.monotonic()))
                except queue.Empty:
                    self._in = bytes(got) + self._in  # nothing is lost by a timed-out read
                    raise usb.core.USBTimeoutError("Operation timed out", errno=errno.ETIMEDOUT) from None
                if item is _GONE:
                    self._pieces.put(_GONE)
                    raise usb.core.USBError("No such device (it may have been disconnected)", errno=errno.ENODEV)
                if item is _END:
                    break
                self._in = item
            n = min(len(buff) - len(got), len(self._in))
            got += self._in[:n]
            self._in = self._in[n:]
        buff[:len(got)] = array.array("B", got)
        return len(got)

    # ------------------------------------------------------------ the TCP side

    def _connect(self) -> None:
        try:
            self._sock = socket.create_connection(self.address, timeout=self.connect_timeout)
        except OSError as e:
            raise usb.core.USBError(f"No such device ({e})", errno=errno.ENODEV) from None
        self._sock.settimeout(None)
        self._pieces = queue.Queue()
        self._out.clear()
        self._in = b""
        self._reader = threading.Thread(target=self._read_frames, args=(self._sock, self._pieces),
                                        name="emulated-usb-in", daemon=True)
        self._reader.start()

    def _check_connected(self) -> None:
        if self._sock is None:
            raise usb.core.USBError("No such device (it may have been disconnected)", errno=errno.ENODEV)

    def _disconnect(self) -> None:
        sock, self._sock = self._sock, None
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)  # wakes the reader thread
            except OSError:
                pass
            sock.close()
        if self._reader is not None:
            self._reader.join(5)
            self._reader = None

    @staticmethod
    def _read_frames(sock: socket.socket, pieces: queue.Queue) -> None:
        """Queue each frame's bytes as they arrive, then _END: a device stalling mid-frame stalls the
        IN endpoint mid-transfer, as on the wire."""
        def recv(n: int) -> bytes:
            chunk = sock.recv(min(n, 1 << 20))
            if not chunk:
                raise ConnectionError
            return chunk

        try:
            while True:
                header = b""
                while len(header) < protocol.STREAM_HEADER.size:
                    header += recv(protocol.STREAM_HEADER.size - len(header))
                left = protocol.stream_length(header)
                while left:
                    chunk = recv(left)
                    pieces.put(chunk)
                    left -= len(chunk)
                pieces.put(_END)
        except (OSError, ConnectionError, protocol.ProtocolError):
            pieces.put(_GONE)
