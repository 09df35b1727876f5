"""Signed firmware and anti-rollback, enforced by the device (keyos.md §3.2, §3.5).

The harness's own pre-flash checks (``hil.flash.flasher.load_firmware``) are bypassed on purpose: the
image goes onto the eMMC through SAM-BA exactly as an attacker with the boot ROM would put it, and the
*device* must refuse to boot it. Evidence of a refusal is positive: the station's camera reads the
bootloader's "Firmware Error" page. A refused image leaves the unit at that page until it is
reflashed through the boot menu, so every test here is destructive: run one per unit
(``--destructive -k unsigned``) and reflash the unit afterwards (``hil flash``).
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import coincurve
import pytest

from hil.flash import bootimg, cosign2
from hil.flash.flasher import Firmware, Flasher
from hil.flash.samba import EmmcFile, Samba
from hil.link.transport import LinkError
from security_helpers import PromptNotSeen, ScreenReader, normal

pytestmark = [pytest.mark.security, pytest.mark.firmware, pytest.mark.destructive, pytest.mark.development_only]

ERROR_PAGE = "Firmware Error"  # boot/keyos-boot system_errors.rs, SystemErrorCode::FirmwareVerification
ZERO_PUB, ZERO_SIG = bytes(33), bytes(64)


@pytest.fixture
def installed_app(station, request) -> tuple[bytes, Samba]:
    """The app.bin the unit runs, read back through SAM-BA (the unit is left in SAM-BA)."""
    if not station.samba:
        pytest.skip(f"station {station.name} has no SAM-BA port")
    applet = Path(request.config.getoption("--samba-applet")).read_bytes()
    client = request.getfixturevalue("unlocked_prime")
    client.reboot_to_samba()  # development builds; the link goes with the reboot
    client.close()
    samba = Samba.open(station.samba, timeout=10)
    samba.connect(timeout=30)  # repeats N# while the monitor comes up
    sd = samba.sdmmc(applet)
    disk = EmmcFile(sd, sd.pages * sd.page_size)
    system = bootimg.partition_table(disk.read(bootimg.SECTOR), sd.pages * sd.page_size)[1]
    app = bootimg.read_file(disk, system, bootimg.APP_IMAGE)
    samba.close()
    assert app is not None, "the unit has no keyos/app.bin"
    return app, station


def _unsigned(image: bytes) -> bytes:
    header = cosign2.parse_unverified(image)
    stripped = dataclasses.replace(header, pubkey1=ZERO_PUB, signature1=ZERO_SIG, pubkey2=ZERO_PUB, signature2=ZERO_SIG)
    return stripped.to_bytes() + image[header.size:]


def _wrongly_signed(image: bytes) -> bytes:
    header = cosign2.parse_unverified(image)
    binary = image[header.size:]
    signed = cosign2.sign(binary, coincurve.PrivateKey(), version=header.version, timestamp=header.timestamp)
    return cosign2.add_second_signature(signed, coincurve.PrivateKey())


def _flash_raw(station, image: bytes, applet: bytes, keys: cosign2.KeySet) -> None:
    """Write ``image`` as keyos/app.bin with the lab's flasher, its own image checks left out."""
    header = cosign2.parse_unverified(image)
    unchecked = cosign2.Verified(header, cosign2.Trust.DISABLED, b"", b"", cosign2.reproducible_hash(image))
    Flasher(station.samba, applet, keys).flash(Firmware(Path("<under test>"), "app.bin", image, unchecked),
                                               force=True, allow_rollback=True)


def _refused(station, client, variant: str, timeout: float = 30.0) -> None:
    """Positive evidence either way: the bootloader's error page read by the camera (refused), or
    KeyOS answering on the debug link again (booted the bad image: failed)."""
    if not station.camera:
        raise PromptNotSeen(f"station {station.name} has no camera: cannot see whether the unit refused the image")
    reader = ScreenReader(station, None)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if normal(ERROR_PAGE) in normal(reader.text()):
                return
            try:
                client.open()  # an explicit probe of the link, not a silent reconnect: the test asks for it
                version = client.version()
            except LinkError:
                time.sleep(0.5)
                continue
            raise AssertionError(f"the unit booted the {variant} image: KeyOS {version} answers on the debug link")
        raise PromptNotSeen(f"neither the bootloader's {ERROR_PAGE!r} page nor KeyOS within {timeout:g} s")
    finally:
        reader.close()


@pytest.mark.parametrize("variant", ["unsigned", "wrongly-signed", "rolled-back"])
def test_device_refuses_bad_firmware(variant, installed_app, request):
    good, station = installed_app
    applet = Path(request.config.getoption("--samba-applet")).read_bytes()
    keys = cosign2.load_keyset(Path(request.config.getoption("--firmware-keys")))
    if variant == "unsigned":
        bad = _unsigned(good)
    elif variant == "wrongly-signed":
        bad = _wrongly_signed(good)
    else:
        older = request.config.getoption("--firmware-rollback")
        if older is None:
            pytest.skip("no --firmware-rollback image (a validly signed build older than the unit's)")
        bad = Path(older).read_bytes()
        assert cosign2.parse_unverified(bad).timestamp < cosign2.parse_unverified(good).timestamp, \
            "--firmware-rollback is not older than what the unit runs"
    _flash_raw(station, bad, applet, keys)
    _refused(station, request.getfixturevalue("unlocked_prime"), variant)
