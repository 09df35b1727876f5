"""pytest plugin for prime-hil (being written: options, fixtures and markers follow)."""


def pytest_addoption(parser):
    group = parser.getgroup("hil", "prime-hil device under test")
    group.addoption("--device", default=None,
                    help="emulator | tcp:HOST:PORT | usb:SERIAL | usb:BUS-PORT | /dev/ttyACMn (default: a fresh emulator)")
