"""Signed firmware and anti-rollback, enforced by the device (keyos.md §3.2, §3.5).

The harness's own pre-flash checks (``hil.flash.flasher.load_firmware``) are bypassed on purpose: the
image goes onto the eMMC through SAM-BA exactly as an attacker with the boot ROM would put it, and the
*device* must refuse to boot it. Evidence of a refusal is positive: the station's camera reads the
bootloader's "Firmware Error" page. KeyOS running instead is a failure (the unit booted the bad image): it
answers on the debug link, or, on a build without the link (issue 14 point 7), the camera reads its PIN screen. Either way the unit is then put back on its own build through SAM-BA, reached by
the station's route (``hil.stimuli.boot_menu.route``: the CD pads on a production bootloader, the Boot
Menu by relay and robot on a development one) and must report that build's version, so the cases are
not destructive; a station without what its route needs, or without a camera, skips them with the reason.

The images are the unit's own ``app.bin`` (read back through SAM-BA), altered: stripped of its
signatures, signed by unknown keys, with one of its two signatures (PartiallyTrusted), signed
``--developer`` (only in the second slot) by an unknown key (ThirdParty: skipped where the profile says the
flavour's bootloader boots development builds), made for the other chip (magic ``blef``) and made older than the
anti-rollback value. The last two need a valid
signature by the units' signers: the lab's own (``--firmware-signers``, test-signed units) or, for the
rollback, a real older release (``--firmware-rollback``); without them those cases skip.

The Boot Menu, opened by the power button as anyone holding a unit can, offers "(Debug) SAM-BA mode" only on a
development bootloader (keyos-boot ``menu_page.rs``): the camera reads it, and a production menu with it fails.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import coincurve
import pytest

from hil.flash import bootimg, cosign2, emulated
from hil.flash.flasher import Firmware, Flasher, FlashFailed, load_firmware
from hil.flash.samba import EmmcFile, Samba
from hil.flash.samba_entry import leave_samba
from hil.link.resolve import open_client
from hil.link.transport import LinkError
from hil.machine import scaled
from hil.stimuli.boot_menu import (can_enter_samba, open_boot_menu, panel_view, power_cycle, samba_entry_shown,
                                   station_enter_samba)
from hil.vision.pin_screen import NotAPinScreen, wait_lock_screen
from security_helpers import PromptNotSeen, ScreenReader, normal, trusted_lab_signers, waited

pytestmark = [pytest.mark.security, pytest.mark.firmware]

ERROR_PAGE = "Firmware Error"  # boot/keyos-boot system_errors.rs, SystemErrorCode::FirmwareVerification
ZERO_PUB, ZERO_SIG = bytes(33), bytes(64)
SAMBA_TIMEOUT = 45.0  # on an idle host (the Flasher and the waits here scale it); the Boot Menu holds 10.5 s


class KeyOSWatch:
    """Where the cases see KeyOS run: on the debug link (GET_VERSION answers), or, on a build without the link
    (issue 14 point 7), on the camera (its PIN screen, where every boot ends; the version cannot be read there).
    Holds the session's client (KeyOS serves one debug client at a time): closed while the unit is away."""

    def __init__(self, station, display, client=None):
        self.station, self.display, self.client = station, display, client

    @classmethod
    def of(cls, station, flavour: str, display, request) -> KeyOSWatch:
        if station.profile.link_missing(flavour):
            return cls(station, display)
        return cls(station, display, request.getfixturevalue("device_under_test").client)

    def version(self) -> str | None:
        """The version KeyOS reports now; None without the link."""
        return self.client.version() if self.client is not None else None

    def seen(self) -> str | None:
        """What shows KeyOS running, from one look, or None."""
        if self.client is None:
            try:
                wait_lock_screen(lambda: panel_view(self.display), timeout=0)
            except NotAPinScreen:
                return None
            return "KeyOS's lock screen shows on the camera"
        try:
            with open_client(self.station.debug, self.station.profile) as client:
                return f"KeyOS {client.version()} answers on the debug link"
        except LinkError:
            return None

    def leave(self) -> None:
        """The unit leaves KeyOS: the link goes with it."""
        if self.client is not None:
            self.client.close()

    def rejoin(self) -> None:
        """The session's client back (the test took the unit away on purpose)."""
        if self.client is not None:
            self.client.open()

    def wait(self, version: str | None, timeout: float = SAMBA_TIMEOUT) -> None:
        """Until KeyOS runs again: ``version`` on the link; without it, its lock screen on the camera."""
        if self.client is not None:
            _await_keyos(self.station, version, timeout)
            return
        try:
            wait_lock_screen(lambda: panel_view(self.display), timeout)
        except NotAPinScreen as e:
            raise NotAPinScreen(f"KeyOS did not come back on the camera within {timeout:g} s ({e})") from None

    @contextlib.contextmanager
    def away(self) -> Iterator[None]:
        """The unit leaves KeyOS for the block and must come back as it was."""
        version = self.version()
        self.leave()
        try:
            yield
        finally:
            try:
                self.wait(version)
            finally:
                self.rejoin()


@dataclasses.dataclass
class Unit:
    """The station's unit with what the cases need: its own build and the hands to reach SAM-BA."""

    station: object
    keyos: KeyOSWatch
    enter_samba: Callable[[], None]
    applet: bytes
    keys: cosign2.KeySet
    flavour: str | None  # the build (and bootloader) the station declares
    good: bytes | None = None  # the app.bin it runs, read in the first case's trip into SAM-BA
    unreadable: str | None = None  # why that read failed (a lab fault: every case is broken on it)

    def flasher(self, link: bool) -> Flasher:
        opener = (lambda: open_client(self.station.debug, self.station.profile)) \
            if link and self.keyos.client is not None else None
        return Flasher(self.station.samba, self.applet, self.keys, link=opener, enter_samba=self.enter_samba,
                       timeout=SAMBA_TIMEOUT)

    def leave_with(self, make: Callable[[bytes], bytes]) -> bytes:
        """``make(good)``, a case's bad image, with the unit out of KeyOS to be written. The first case reads the
        unit's build in the trip into SAM-BA it writes in: the monitor is left running for that write (the flasher
        takes a running monitor as it finds it), so the read costs no power cycle and boot of its own. Evidence
        that the read build is the running one: KeyOS reported its version just before (where it has the link),
        as it must again after every recovery. A case that ends before its write boots the unit back first."""
        if self.good is not None:
            bad = make(self.good)
            self.keyos.leave()
            return bad
        if self.unreadable is not None:  # the first case's read failed: the others end broken on it at once
            raise FlashFailed(self.unreadable)
        running = self.keyos.version()
        self.keyos.leave()
        try:
            good = _read_installed(self.station, self.enter_samba, self.applet)
            try:
                version = cosign2.parse_unverified(good).version
            except cosign2.Cosign2Error as e:
                raise FlashFailed(f"the unit's keyos/app.bin has no readable cosign2 header ({e})") from None
            if running not in (None, version):
                raise FlashFailed(f"the unit reports KeyOS {running}, but its eMMC's keyos/app.bin is {version}")
            self.good = good
            return make(good)
        except BaseException as e:
            if isinstance(e, FlashFailed):
                self.unreadable = str(e)
            try:
                self._boot_back(running)
            except Exception as back:
                raise FlashFailed(f"after {type(e).__name__}: {e}, the unit did not leave SAM-BA ({back})") from e
            raise

    def _boot_back(self, version: str | None) -> None:
        """From the monitor a case left running (the eMMC untouched) back to KeyOS and the session's client; the
        monitor's port is let go once KeyOS is back (`leave_samba`)."""
        with leave_samba(self.station.samba, scaled(SAMBA_TIMEOUT)):
            self.keyos.wait(version)
        self.keyos.rejoin()


@pytest.fixture(scope="module")
def unit(station, unit_flavour, request) -> Unit:
    why = can_enter_samba(station) or (None if station.camera else
                                       f"station {station.name} has no camera to see the bootloader's error page")
    if why:
        pytest.skip(why)
    flavour = unit_flavour or request.getfixturevalue("device_under_test").flavour  # undeclared: as it answers
    opt = request.config.getoption
    keys = emulated.keyset(opt("--firmware-keys") or station.profile.firmware_keys)
    applet = Path(opt("--samba-applet")).read_bytes()
    relay, touch = request.getfixturevalue("station_relay"), request.getfixturevalue("robot_touch")
    camera = request.getfixturevalue("station_camera")  # reads where the Boot Menu shows its SAM-BA entry
    keyos = KeyOSWatch.of(station, flavour, station.display(camera), request)
    with station_enter_samba(station, relay, touch, camera) as enter_samba:
        yield Unit(station, keyos, enter_samba, applet, keys, flavour)


def _read_installed(station, enter_samba, applet: bytes) -> bytes:
    """The app.bin the unit runs, read through SAM-BA (entered by the station's route); the monitor stays up."""
    enter_samba()
    samba = Samba.open(station.samba, timeout=10)
    try:
        samba.connect(timeout=scaled(SAMBA_TIMEOUT))  # repeats N# while the monitor comes up
        sd = samba.sdmmc(applet)
        disk = EmmcFile(sd, sd.pages * sd.page_size)
        try:
            system = bootimg.partition_table(disk.read(bootimg.SECTOR), sd.pages * sd.page_size)[1]
            app = bootimg.read_file(disk, system, bootimg.APP_IMAGE)
        except bootimg.BootImageError as e:
            raise FlashFailed(f"the unit's eMMC cannot be read as a boot image ({e}): no build to vary") from None
    finally:
        samba.close()
    if app is None:
        raise FlashFailed("the unit's eMMC holds no keyos/app.bin: no build to vary")
    return app


def _await_keyos(station, version: str | None, timeout: float = SAMBA_TIMEOUT) -> None:
    deadline, seen = time.monotonic() + scaled(timeout), "nothing"
    while time.monotonic() < deadline:
        try:
            with open_client(station.debug, station.profile) as client:
                seen = client.version()
            if seen == version:
                return
        except LinkError as e:
            seen = str(e)
        time.sleep(0.25)
    raise FlashFailed(f"the unit did not come back on KeyOS {version} (last: {seen})")


# ------------------------------------------------------------ the bad images

def _unsigned(good: bytes, _unit) -> bytes:
    header = cosign2.parse_unverified(good)
    stripped = dataclasses.replace(header, pubkey1=ZERO_PUB, signature1=ZERO_SIG, pubkey2=ZERO_PUB, signature2=ZERO_SIG)
    return stripped.to_bytes() + good[header.size:]


def _wrongly_signed(good: bytes, _unit) -> bytes:
    header = cosign2.parse_unverified(good)
    signed = cosign2.sign(good[header.size:], coincurve.PrivateKey(), version=header.version,
                          timestamp=header.timestamp)
    return cosign2.add_second_signature(signed, coincurve.PrivateKey())


def _partially_trusted_a_second_later(good: bytes, unit: Unit, request) -> bytes:
    """The unit's build one second newer, signed by one of its signers only (PartiallyTrusted, refused). A refused image
    must leave the anti-rollback value as it was (keyos.md §3.5: os/update sets it once the image verified), so the
    unit's own build must boot again after it (`test_device_refuses_bad_firmware`). A unit whose bootloader breaks
    that refuses its own build afterwards and needs one signed later still (``--firmware-signers``) to come back."""
    header = cosign2.parse_unverified(good)
    first, _ = _lab_signers(unit, request)
    return cosign2.sign(good[header.size:], first, version=header.version, timestamp=header.timestamp + 1)


def _partially_trusted(good: bytes, _unit) -> bytes:
    """The unit's first signature only (cosign2: PartiallyTrusted; the bootloader wants both)."""
    header = cosign2.parse_unverified(good)
    return dataclasses.replace(header, pubkey2=ZERO_PUB, signature2=ZERO_SIG).to_bytes() + good[header.size:]


def _developer_signed(good: bytes, unit: Unit, _request) -> bytes:
    """The unit's build signed as `cosign2 sign --developer` signs it (pubkey1 zero), by a stranger."""
    boots = unit.station.profile.boots(unit.flavour)
    if "ThirdParty" in boots:
        pytest.skip(f"profile {unit.station.profile.name}: a {unit.flavour} bootloader boots developer-signed "
                    f"(ThirdParty) images, so there is no refusal to check")
    header = cosign2.parse_unverified(good)
    return cosign2.sign(good[header.size:], coincurve.PrivateKey(), version=header.version,
                        timestamp=header.timestamp, developer=True)


def _lab_signers(unit: Unit, request) -> tuple[coincurve.PrivateKey, coincurve.PrivateKey]:
    first, second = trusted_lab_signers(request, unit.keys)[:2]
    return first, second


def _resigned(good: bytes, unit: Unit, request, **changes) -> bytes:
    header = cosign2.parse_unverified(good)
    first, second = _lab_signers(unit, request)
    fields = {"version": header.version, "timestamp": header.timestamp, **changes}
    return cosign2.add_second_signature(cosign2.sign(good[header.size:], first, **fields), second)


def _wrong_chip(good: bytes, unit: Unit, request) -> bytes:
    return _resigned(good, unit, request, magic=cosign2.Magic.NRF52_BLE)


def _rolled_back(good: bytes, unit: Unit, request) -> bytes:
    older = request.config.getoption("--firmware-rollback")
    if older is None:
        return _resigned(good, unit, request, timestamp=cosign2.parse_unverified(good).timestamp - 60)
    bad = Path(older).read_bytes()
    assert cosign2.parse_unverified(bad).timestamp < cosign2.parse_unverified(good).timestamp, \
        "--firmware-rollback is not older than what the unit runs"
    return bad


def _rolled_back_a_second(good: bytes, unit: Unit, request) -> bytes:
    """One second older than the running image: the anti-rollback rule has no slack (keyos.md §3.5, "header timestamp
    must be >= current SE firmware timestamp"). assumed: the secure element's value is the running image's
    timestamp. KeyOS's os/update sets it to the image it installs; whether the bootloader also raises it on boot
    is not in the public source (the emulator does, hil/emulator/bootloader.py). A unit whose running image came
    by SAM-BA, not by an update, may hold an older value and boot this image: a failure here on such a unit
    says to install the build under test by an update first (or pass --firmware-rollback)."""
    return _resigned(good, unit, request, timestamp=cosign2.parse_unverified(good).timestamp - 1)


VARIANTS = {
    "unsigned": lambda good, unit, request: _unsigned(good, unit),
    "wrongly-signed": lambda good, unit, request: _wrongly_signed(good, unit),
    "partially-trusted": lambda good, unit, request: _partially_trusted(good, unit),
    "partially-trusted-a-second-later": _partially_trusted_a_second_later,
    "developer-signed": _developer_signed,
    "wrong-chip": _wrong_chip,
    "rolled-back": _rolled_back,
    "rolled-back-a-second": _rolled_back_a_second,
}


# ------------------------------------------------------------ steps

def _flash_raw(unit: Unit, image: bytes, booted: Callable[[], None]) -> None:
    """Write ``image`` as keyos/app.bin with the lab's flasher, its own image checks left out; ``booted`` waits for
    what the unit did with it while the monitor's port is still held (the flasher's reset is never answered)."""
    header = cosign2.parse_unverified(image)
    unchecked = cosign2.Verified(header, cosign2.Trust.DISABLED, b"", b"", cosign2.reproducible_hash(image))
    unit.flasher(link=False).flash(Firmware(Path("<under test>"), "app.bin", image, unchecked),
                                   force=True, allow_rollback=True, booted=booted)


def _refused(unit: Unit, variant: str, timeout: float = 30.0) -> None:
    """Positive evidence either way: the bootloader's error page read by the camera (refused), or
    KeyOS running again (booted the bad image: failed), as `KeyOSWatch` sees it."""
    reader = ScreenReader(unit.station, None, unit.keyos.display.camera)  # the session's camera: one stream a device
    deadline = time.monotonic() + scaled(timeout)
    try:
        while time.monotonic() < deadline:
            if normal(ERROR_PAGE) in normal(reader.text()):
                return
            seen = unit.keyos.seen()
            if seen is not None:
                raise AssertionError(f"the unit booted the {variant} image: {seen}")
        raise PromptNotSeen(f"neither the bootloader's {ERROR_PAGE!r} page nor KeyOS within {waited(timeout)}")
    finally:
        reader.close()


def _refused_own_build(unit: Unit) -> bool:
    """Whether the camera reads the bootloader's error page over the unit's own build (a recovery that did not boot);
    anything else read, or nothing, says nothing (False)."""
    try:
        _refused(unit, "own")
    except (AssertionError, PromptNotSeen):
        return False
    return True


def _recover(unit: Unit, tmp_path: Path) -> None:
    """The unit's own build back on it by its route into SAM-BA; the flasher checks GET_VERSION where the
    build has the link, and KeyOS must show again (`KeyOSWatch.back`)."""
    path = tmp_path / "good-app.bin"
    path.write_bytes(unit.good)
    unit.flasher(link=True).flash(load_firmware(path, unit.keys), force=True, allow_rollback=True)


# before the image cases: it needs no SAM-BA, so it judges the menu even where their fixture cannot reach it
def test_boot_menu_offers_samba_only_on_a_development_bootloader(station, unit_flavour, station_relay, station_camera,
                                                                 request):
    """keyos-boot ``menu_page.rs`` adds "(Debug) SAM-BA mode" only ``#[cfg(not(feature = "production"))]``: on a
    production unit the Boot Menu, opened by the power button as anyone holding the unit can open it, must not
    offer the ROM monitor, which writes any image to the eMMC. Read by the camera on a frame that shows the
    menu's Recovery entry (a menu that is never read is broken, not a pass); then KeyOS boots again. Relay and
    camera alone: it runs on a build without the debug link too (issue 14 point 7)."""
    if unit_flavour is None:
        pytest.skip(f"station {station.name}: no declared flavour (give --flavour), so no expectation for its Boot Menu")
    keyos = KeyOSWatch.of(station, unit_flavour, station.display(station_camera), request)
    with keyos.away():
        open_boot_menu(station_relay)
        try:
            shown = samba_entry_shown(keyos.display)
        finally:
            power_cycle(station_relay)
    assert shown is (unit_flavour != "production"), \
        f"the {unit_flavour} bootloader's Boot Menu {'offers' if shown else 'lacks'} its SAM-BA entry"


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_device_refuses_bad_firmware(variant, unit, request, tmp_path):
    bad = unit.leave_with(lambda good: VARIANTS[variant](good, unit, request))  # KeyOS left for SAM-BA
    verdict: BaseException | None = None
    try:
        _flash_raw(unit, bad, lambda: _refused(unit, variant))
    except BaseException as e:  # recover the unit first, then report
        verdict = e
    try:
        _recover(unit, tmp_path)
        unit.keyos.wait(cosign2.parse_unverified(unit.good).version)
        unit.keyos.rejoin()
    except Exception as recovery:
        if isinstance(verdict, AssertionError):  # the device booted a bad image: that stays a failure
            raise AssertionError(f"{verdict} (and recovering the unit afterwards failed: {recovery})") from recovery
        if verdict is None and _refused_own_build(unit):  # positive evidence: its own build's error page
            raise AssertionError(f"after refusing the {variant} image the unit refuses its own build: the refused image "
                                 f"moved its anti-rollback value ({recovery})") from recovery
        raise
    if verdict is not None:
        raise verdict
    assert unit.keyos.version() in (None, cosign2.parse_unverified(unit.good).version)  # None: no link to ask

