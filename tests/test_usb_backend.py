"""The USB transport end to end through pyusb, against the emulated Prime's pyusb backend.

The backend forwards the vendor interface's bulk endpoints to a TCP debug endpoint; here that is a
scripted fake device, so every USB framing rule (ZLP, short reads, disconnects) is pinned on its own.
"""

import time

import pytest
import usb.backend
import usb.core
import usb.util

from hil.emulator.usb_backend import EmulatedPrimeBackend
from hil.errors import ConfigError
from hil.link import protocol as p
from hil.link.client import PrimeClient
from hil.link.transport import LinkClosed
from hil.link.usb import UsbTransport, load_backend, port_path

from fake_device import ScriptedDevice, frames, ok


@pytest.fixture
def fake():
    made = []

    def make(handler):
        dev = ScriptedDevice(handler)
        made.append(dev)
        return dev, EmulatedPrimeBackend(debug=f"tcp:127.0.0.1:{dev.port}", serial="EMU-0007")

    yield make
    for dev in made:
        dev.stop()


@pytest.fixture
def usb_prime(fake):
    clients = []

    def make(handler, **kw):
        dev, backend = fake(handler)
        client = PrimeClient(UsbTransport(backend=backend, **kw), pixel_order="BGRA", home_button=(100, 910),
                             timeout=2.0)
        clients.append(client)
        return dev, client.open()

    yield make
    for c in clients:
        c.close()


def test_find_presents_the_composite_device_of_keyos_md_4(fake):
    _, backend = fake(lambda body: ok())
    dev = usb.core.find(idVendor=0x1307, idProduct=0x0165, backend=backend)
    assert dev is not None
    assert (dev.bDeviceClass, dev.bDeviceSubClass, dev.bDeviceProtocol) == (0xEF, 0x02, 0x01)
    assert dev.bcdUSB == 0x0210
    assert dev.manufacturer == "Foundation Devices, Inc."
    assert dev.product == "Passport Prime"
    assert dev.serial_number == "EMU-0007"
    cfg = dev.get_active_configuration()
    assert cfg.bmAttributes == 0xC0 and cfg.bMaxPower == 16  # self-powered, 32 mA
    classes = [(i.bInterfaceClass, i.bInterfaceSubClass, i.bInterfaceProtocol) for i in cfg]
    assert classes == [(0x08, 0x06, 0x50), (0x03, 0x00, 0x00), (0xFF, 0x00, 0x00)]
    vendor = cfg[(2, 0)]
    eps = [(usb.util.endpoint_type(e.bmAttributes), e.wMaxPacketSize) for e in vendor]
    assert eps == [(usb.util.ENDPOINT_TYPE_BULK, 512)] * 2
    assert usb.core.find(idVendor=0x2C97, idProduct=0x7011, backend=backend) is None
    usb.util.dispose_resources(dev)


def test_interfaces_with_a_kernel_driver_must_be_detached_first(fake):
    _, backend = fake(lambda body: ok())
    dev = usb.core.find(idVendor=0x1307, idProduct=0x0165, backend=backend)
    assert dev.is_kernel_driver_active(0) and not dev.is_kernel_driver_active(2)
    with pytest.raises(usb.core.USBError, match="busy"):
        usb.util.claim_interface(dev, 0)
    usb.util.dispose_resources(dev)


def test_client_over_usb(usb_prime):
    dev, prime = usb_prime(lambda body: ok(b"1.0.0"))
    assert prime.version() == "1.0.0"
    assert prime.device == "usb:1307:0165,2c97:7011"
    assert dev.requests == [b"\x08"]


def test_screenshot_crosses_many_64k_reads(usb_prime):
    raw = bytes(range(256)) * (p.SCREENSHOT_BYTES // 256)
    dev, prime = usb_prime(lambda body: ok(raw))
    shot = prime.screenshot()
    assert shot.tobytes() == p.decode_screenshot(raw, "BGRA").tobytes()


def test_frame_of_whole_chunks_is_ended_by_a_zlp(usb_prime):
    """A 65536-byte frame fills the first read exactly; only the ZLP after it ends the frame."""
    text = b"t" * (65536 - 2)
    dev, prime = usb_prime(lambda body: frames(p.log_frame(["INFO: x"])) + ok(text if body[0] == 0x06 else b"1.0.0"))
    assert prime.kernel_cmd("t") == text.decode()
    assert prime.version() == "1.0.0"
    assert list(prime.logs(timeout=0.2)) == ["INFO: x", "INFO: x"]


def test_out_transfer_of_whole_packets_needs_the_zlp(fake):
    dev, backend = fake(lambda body: ok())
    usbdev = usb.core.find(idVendor=0x1307, idProduct=0x0165, backend=backend)
    usb.util.claim_interface(usbdev, 2)
    ep_out = usb.util.find_descriptor(usbdev.get_active_configuration()[(2, 0)], bEndpointAddress=0x03)
    body = p.load_app_file_begin(0, "a" * 503)
    assert len(body) == 512
    ep_out.write(body)
    time.sleep(0.2)
    assert dev.requests == []  # the device still waits for the end of the transfer
    ep_out.write(b"")
    deadline = time.monotonic() + 2
    while not dev.requests and time.monotonic() < deadline:
        time.sleep(0.01)
    assert dev.requests == [body]
    usb.util.release_interface(usbdev, 2)
    usb.util.dispose_resources(usbdev)


def test_transport_sends_the_zlp(usb_prime):
    dev, prime = usb_prime(lambda body: ok())
    prime.sideload(bytes(16), {"a" * 503: b""})
    assert [len(r) for r in dev.requests] == [17, 512, 1]


def test_select_by_serial_and_by_port_path(fake, usb_prime):
    _, backend = fake(lambda body: ok())
    found = usb.core.find(idVendor=0x1307, idProduct=0x0165, backend=backend)
    assert port_path(found) == "1-1"
    usb.util.dispose_resources(found)
    dev, prime = usb_prime(lambda body: ok(b"1.0.0"), serial="EMU-0007")
    assert prime.version() == "1.0.0"
    dev, prime = usb_prime(lambda body: ok(b"1.0.0"), port="1-1")
    assert prime.version() == "1.0.0"


@pytest.mark.parametrize("kw, words", [({"serial": "P1-0042"}, "no Prime with serial P1-0042"),
                                       ({"port": "3-1.4"}, "no Prime at port 3-1.4")])
def test_no_matching_prime(fake, kw, words):
    _, backend = fake(lambda body: ok())
    with pytest.raises(LinkClosed, match=words):
        UsbTransport(backend=backend, **kw).open()


def test_device_unplugged_mid_session(usb_prime):
    dev, prime = usb_prime(lambda body: ok(b"1.0.0") if len(dev.requests) == 1 else None)
    assert prime.version() == "1.0.0"
    with pytest.raises(LinkClosed, match="disconnected") as e:
        prime.version()
    assert "GET_VERSION" in str(e.value) and not prime.transport.is_open


def test_device_stopping_mid_frame_over_usb(usb_prime):
    import struct

    dev, prime = usb_prime(lambda body: struct.pack("<I", p.SCREENSHOT_BYTES + 2) + b"\x02\x00" + bytes(70000))
    prime.transport.stall_timeout = 0.3
    with pytest.raises(LinkClosed, match="stopped sending mid-frame"):
        prime.screenshot()


def test_slow_drip_frame_over_usb_hits_the_frame_deadline(usb_prime):
    """A 64 KiB transfer every 150 ms never trips the 0.5 s stall limit; the whole-frame limit ends it."""
    import struct

    def drip(body):
        try:
            dev.conn.sendall(struct.pack("<I", p.SCREENSHOT_BYTES + 2) + b"\x02\x00")
            for _ in range(p.SCREENSHOT_BYTES // 65536):
                dev.conn.sendall(bytes(65536))
                time.sleep(0.15)
        except OSError:
            pass

    dev, prime = usb_prime(drip)
    prime.transport.stall_timeout, prime.transport.frame_timeout = 0.5, 0.6
    t0 = time.monotonic()
    with pytest.raises(LinkClosed, match=r"usb:.*SCREENSHOT: frame not complete within 0.6 s \(\d+ bytes arrived\)"):
        prime.screenshot()
    assert time.monotonic() - t0 < 3 and not prime.transport.is_open


def test_unknown_status_over_usb(usb_prime):
    dev, prime = usb_prime(lambda body: frames(bytes([2, 9])))
    with pytest.raises(LinkClosed, match="unknown status byte 0x09"):
        prime.version()


def test_profile_names_the_backend(fake):
    dev, _ = fake(lambda body: ok(b"1.0.0"))
    backend = load_backend("hil.emulator.usb_backend:EmulatedPrimeBackend",
                           debug=f"tcp:127.0.0.1:{dev.port}", serial="EMU-0009", usb_port="emu-1")
    with PrimeClient(UsbTransport(serial="EMU-0009", backend=backend), pixel_order="RGBA",
                     home_button=(100, 910)) as prime:
        assert prime.version() == "1.0.0"
    with pytest.raises(ConfigError, match="not found"):
        load_backend("hil.nowhere:Backend")


# ---------------------------------------------------------------- end to end against the emulated Prime


@pytest.fixture(scope="module")
def emulated():
    from hil.emulator.launcher import EmulatorProcess
    from hil.lab.station import Station
    from hil.profile import profile_named

    with EmulatorProcess(count=1, seed=5, flavour="development") as emu:
        endpoints = emu.devices[0]
        yield Station.from_endpoints("emu", profile_named(endpoints["profile"]), endpoints)


def test_emulated_prime_over_usb_end_to_end(emulated):
    """The profile names the backend; resolve/usb/client run exactly as for a unit on a lab host."""
    from hil.link.resolve import open_client
    from hil.lab.pin_guard import PinGuard, unlock_over_link
    from hil.link.state import bring_home, detect_flavour

    with open_client(f"usb:{emulated.serial}", emulated.profile, timeout=15.0, station=emulated) as prime:
        assert prime.transport.name == f"usb:{emulated.serial}" == "usb:EMU-0501"
        assert prime.version() == "1.0.0"
        assert detect_flavour(prime, emulated.profile) == "development"
        bring_home(prime, emulated.profile, "development",
                   lambda touch: unlock_over_link(prime, "123456", PinGuard(emulated.name)))
        result = prime.launch_app("0x426974636f696e2057616c6c65740000")
        assert result.status is p.LaunchStatus.LAUNCHED
        over_usb = prime.screenshot()
        assert any("launched Bitcoin Wallet" in r for r in prime.logs(timeout=0.3))
        prime.close_app(result.pid)
        prime.home()
        prime.launch_app("0x426974636f696e2057616c6c65740000")
        again_usb = prime.screenshot()
    with open_client(emulated.debug, emulated.profile) as prime:
        assert prime.screenshot().tobytes() == again_usb.tobytes()  # same pixels, same decoder, either link
    assert over_usb.size == (480, 800)


def test_emulated_prime_unplugged_over_usb(emulated):
    import json
    import socket

    from hil.emulator.launcher import control_endpoint
    from hil.link.resolve import open_client

    device = f"usb:{emulated.usb_port}"
    with open_client(device, emulated.profile, station=emulated) as prime:
        assert prime.version() == "1.0.0"
        host, port = control_endpoint(emulated.debug).removeprefix("tcp:").rsplit(":", 1)
        with socket.create_connection((host, int(port)), timeout=5) as s:
            s.sendall(json.dumps({"cmd": "drop"}).encode() + b"\n")
            assert json.loads(s.makefile().readline())["ok"]
        time.sleep(0.3)
        with pytest.raises(LinkClosed, match=f"{device}, GET_VERSION: device disconnected"):
            prime.version()


def test_legacy_identity_is_the_fallback(fake):
    """A Prime in legacy (Flux) mode enumerates as 2c97:7011; the transport finds it after 1307:0165."""
    class LegacyMode(EmulatedPrimeBackend):
        def get_device_descriptor(self, dev):
            desc = super().get_device_descriptor(dev)
            desc.idVendor, desc.idProduct = 0x2C97, 0x7011
            return desc

    dev, _ = fake(lambda body: ok(b"1.0.0"))
    backend = LegacyMode(debug=f"tcp:127.0.0.1:{dev.port}")
    with PrimeClient(UsbTransport(backend=backend), pixel_order="BGRA", home_button=(100, 910)) as prime:
        assert prime.version() == "1.0.0"
    with pytest.raises(LinkClosed, match="no Prime on USB"):
        UsbTransport(backend=backend, ids=("1307:0165",)).open()


def test_without_developer_mode_there_is_no_debug_interface(fake):
    """Production builds leave the vendor interface out of the configuration while Developer Mode is off."""
    class DeveloperModeOff(EmulatedPrimeBackend):
        def get_configuration_descriptor(self, dev, config):
            desc = super().get_configuration_descriptor(dev, config)
            desc.bNumInterfaces = 2  # mass storage and HID only
            return desc

    dev, _ = fake(lambda body: ok())
    with pytest.raises(LinkClosed, match="1-1 has no usb-debug interface.*Developer Mode"):
        UsbTransport(backend=DeveloperModeOff(debug=f"tcp:127.0.0.1:{dev.port}")).open()
    assert dev.requests == []


class _TwoPrimes(usb.backend.IBackend):
    """Two emulated Primes on one bus (ports 1 and 2)."""

    def __init__(self, *backends):
        self.backends = backends

    def enumerate_devices(self):
        for b in self.backends:
            yield from b.enumerate_devices()

    def get_device_descriptor(self, dev):
        return dev.get_device_descriptor(dev)


def test_bare_usb_with_two_primes_present_lists_both(fake):
    (_, one), (dev, _) = fake(lambda body: ok()), fake(lambda body: ok())
    two = EmulatedPrimeBackend(debug=f"tcp:127.0.0.1:{dev.port}", port=2)
    with pytest.raises(LinkClosed) as e:
        UsbTransport(backend=_TwoPrimes(one, two), name="usb").open()
    assert "several Primes match (usb:1-1, usb:1-2)" in str(e.value) and "\n" not in str(e.value)
