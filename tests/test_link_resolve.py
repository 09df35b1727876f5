"""--device strings, and a tty resolved through a fake sysfs tree to the Prime that owns it."""

import os

import pytest

from hil.lab.station import device_station
from hil.link.resolve import DeviceNotFound, resolve_tty, transport_for
from hil.profile import profile_named
from hil.link.tcp import TcpTransport
from hil.link.usb import UsbTransport


def usb_device(sys, name, vid, pid, product, interfaces):
    """A USB device directory as sysfs lays it out, with interface subdirectories ``name:1.N``."""
    dev = sys / "devices" / "pci0000:00" / "0000:00:14.0" / "usb1" / name
    dev.mkdir(parents=True)
    for attr, value in (("idVendor", vid), ("idProduct", pid), ("product", product), ("manufacturer", "Maker"),
                        ("busnum", name.split("-")[0]), ("devpath", name.split("-")[1])):  # the port path's parts
        (dev / attr).write_text(value + "\n")
    for number, cls in enumerate(interfaces):
        intf = dev / f"{name}:1.{number}"
        intf.mkdir()
        (intf / "bInterfaceClass").write_text(cls + "\n")
    return dev


def tty(tmp_path, name, interface_dir=None):
    """/dev/NAME, a character device (a pty stands in for the ttyACM node), plus sysfs's view of it:
    ``class/tty/NAME`` whose ``device`` link points at the owning interface, and ``dev/char/MAJOR:MINOR``."""
    master, slave = os.openpty()
    OPEN.extend((master, slave))
    (tmp_path / "dev").mkdir(exist_ok=True)
    node = tmp_path / "dev" / name
    node.symlink_to(os.ttyname(slave))
    cls = tmp_path / "sys" / "class" / "tty" / name
    cls.mkdir(parents=True)
    if interface_dir is not None:
        (cls / "device").symlink_to(interface_dir)
    rdev = os.stat(node).st_rdev
    char = tmp_path / "sys" / "dev" / "char"
    char.mkdir(parents=True, exist_ok=True)
    (char / f"{os.major(rdev)}:{os.minor(rdev)}").symlink_to(cls)
    return str(node)


OPEN: list[int] = []


@pytest.fixture(autouse=True)
def _close_ptys():
    yield
    while OPEN:
        os.close(OPEN.pop())


@pytest.fixture
def sys(tmp_path):
    return tmp_path / "sys"


def test_tty_of_a_prime_resolves_to_its_port_path(tmp_path, sys):
    dev = usb_device(sys, "1-2.3", "1307", "0165", "Passport Prime", ["08", "03", "ff", "02", "0a"])
    path = tty(tmp_path, "ttyACM0", dev / "1-2.3:1.3")
    assert resolve_tty(path, sys) == "usb:1-2.3"


def test_legacy_identity_is_a_prime_too(tmp_path, sys):
    dev = usb_device(sys, "3-1", "2c97", "7011", "Passport Prime", ["ff", "02"])
    assert resolve_tty(tty(tmp_path, "ttyACM1", dev / "3-1:1.1"), sys) == "usb:3-1"


def test_prime_without_debug_interface_asks_for_developer_mode(tmp_path, sys):
    dev = usb_device(sys, "1-4", "1307", "0165", "Passport Prime", ["08", "03", "02"])
    with pytest.raises(DeviceNotFound, match="no debug interface.*Developer Mode"):
        resolve_tty(tty(tmp_path, "ttyACM0", dev / "1-4:1.2"), sys)


def test_samba_monitor_is_named(tmp_path, sys):
    dev = usb_device(sys, "1-4", "03eb", "6124", "SAM-BA", ["02", "0a"])
    with pytest.raises(DeviceNotFound) as e:
        resolve_tty(tty(tmp_path, "ttyACM0", dev / "1-4:1.0"), sys)
    assert "03eb:6124" in str(e.value) and "SAM-BA mode" in str(e.value)
    assert "\n" not in str(e.value)


def test_some_other_usb_serial_says_what_it_is(tmp_path, sys):
    dev = usb_device(sys, "1-1", "0403", "6001", "FT232R USB UART", ["ff"])
    with pytest.raises(DeviceNotFound, match=r"0403:6001 'Maker FT232R USB UART' at 1-1, not a Prime"):
        resolve_tty(tty(tmp_path, "ttyUSB0", dev / "1-1:1.0"), sys)


def test_missing_path(tmp_path, sys):
    with pytest.raises(DeviceNotFound, match="ttyACM7: no such device"):
        resolve_tty(str(tmp_path / "dev" / "ttyACM7"), sys)


def test_tty_that_is_not_usb(tmp_path, sys):
    platform = sys / "devices" / "platform" / "serial8250"
    platform.mkdir(parents=True)
    with pytest.raises(DeviceNotFound, match="not on a USB device"):
        resolve_tty(tty(tmp_path, "ttyS0", platform), sys)
    with pytest.raises(DeviceNotFound, match="not a USB serial port"):
        resolve_tty(tty(tmp_path, "ttyS1"), sys)
    (tmp_path / "dev" / "plain").write_text("")
    with pytest.raises(DeviceNotFound, match="plain: not a character device"):
        resolve_tty(str(tmp_path / "dev" / "plain"), sys)


def test_device_strings():
    profile = profile_named("prime-rev-b")
    t = transport_for("tcp:127.0.0.1:7664", profile)
    assert isinstance(t, TcpTransport) and (t.host, t.port) == ("127.0.0.1", 7664)
    with pytest.raises(DeviceNotFound, match="tcp:HOST:PORT"):
        transport_for("tcp:nowhere", profile)
    with pytest.raises(DeviceNotFound, match="not a device"):
        transport_for("serial:P1", profile)


def test_usb_strings_pick_serial_or_port_path(monkeypatch):
    monkeypatch.setattr("hil.link.resolve.load_backend", lambda spec, **kw: ("backend", spec))
    profile = profile_named("prime-rev-b")
    by_port = transport_for("usb:1-2.3", profile)
    assert isinstance(by_port, UsbTransport) and by_port.port == "1-2.3" and by_port.serial is None
    by_serial = transport_for("usb:P1-0042", profile)
    assert by_serial.serial == "P1-0042" and by_serial.port is None
    assert by_serial.backend == ("backend", "libusb1") and by_serial.ids == ("1307:0165", "2c97:7011")


def test_tty_string_goes_through_sysfs(tmp_path, sys, monkeypatch):
    monkeypatch.setattr("hil.link.resolve.load_backend", lambda spec, **kw: None)
    dev = usb_device(sys, "2-1", "1307", "0165", "Passport Prime", ["ff", "02"])
    t = transport_for(tty(tmp_path, "ttyACM0", dev / "2-1:1.1"), profile_named("prime-rev-b"), sysfs=sys)
    assert isinstance(t, UsbTransport) and t.port == "2-1" and t.name == "usb:2-1"


def test_station_for_a_wired_device():
    with device_station("tcp:10.0.0.5:7664", "keyos-simulator") as st:
        assert st.debug == "tcp:10.0.0.5:7664" and st.profile.name == "keyos-simulator"
    with device_station("usb:1-2", None) as st:
        assert st.profile.name == "prime-rev-b"


def test_a_symlinked_tty_resolves(tmp_path, sys):
    """/dev/serial/by-id/… names link to the ttyACM node; sysfs knows the node's name, not the link's."""
    dev = usb_device(sys, "1-2.3", "1307", "0165", "Passport Prime", ["08", "03", "ff", "02", "0a"])
    node = tty(tmp_path, "ttyACM0", dev / "1-2.3:1.3")
    link = tmp_path / "dev" / "usb-Foundation_Devices_Passport_Prime-if03"
    link.symlink_to(node)
    assert resolve_tty(str(link), sys) == "usb:1-2.3"


def test_bare_usb_is_the_only_prime(monkeypatch):
    monkeypatch.setattr("hil.link.resolve.load_backend", lambda spec, **kw: None)
    t = transport_for("usb", profile_named("prime-rev-b"))
    assert isinstance(t, UsbTransport) and t.port is None and t.serial is None and t.name == "usb"
