"""Drivers reach remote instruments through address schemes the installed package registers, never by
importing the bridge themselves."""

from hil import schemes
from hil.link.bridge import serial_port
from hil.stimuli import nfc
from hil.stimuli.nfc_bridge import RemoteNfcReader


def test_bridge_addresses_open_through_their_registered_scheme():
    assert schemes.opener("nfc", "bridge:10.0.0.11:7703") is RemoteNfcReader
    assert schemes.opener("serial", "bridge:10.0.0.11:7704") is serial_port
    assert isinstance(nfc.reader("bridge:10.0.0.11:7703"), RemoteNfcReader)


def test_addresses_without_a_registered_scheme_stay_the_drivers_own():
    for kind, address in (("serial", "/dev/ttyACM0"), ("serial", "rfc2217://bench:4001"), ("nfc", "usb:04e6:5591"),
                          ("nfc", "udp:127.0.0.1:40126"), ("camera", "bridge:h:1")):
        assert schemes.opener(kind, address) is None
    assert isinstance(nfc.reader("udp:127.0.0.1:40126"), nfc.NfcReader)
