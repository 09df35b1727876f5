"""Flashing an emulated Prime end to end: debug link (TCP) + SAM-BA monitor (pty, pyserial)."""

from __future__ import annotations

import hashlib
import json
import time

import pytest
import serial

from hil.emulator.build import Build
from hil.emulator.launcher import start_device
from hil.provisioning import TEST_PIN
from hil.flash import cosign2, emulated
from hil.flash.flasher import (Flasher, FlashFailed, ImageError, RollbackRefused, boot_policy, load_firmware,
                               sideload)
from hil.flash.samba import Samba, SambaError
from hil.link.resolve import open_client
from hil.profile import profile_named
from hil.link.transport import LinkClosed

KEYS = emulated.keyset("test")
APPLET = emulated.APPLET.read_bytes()
PROFILE = profile_named("prime-emulated")


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    folder = tmp_path_factory.mktemp("images")
    out = {}
    for version in ("1.1.0", "1.2.0"):
        out[version] = folder / f"boot-{version}.img"
        emulated.write_boot_image(out[version], Build(version=version, flavour="development"))
    out["app-1.3.0"] = folder / "app-1.3.0.bin"
    out["app-1.3.0"].write_bytes(emulated.app_image(Build(version="1.3.0", flavour="development")))
    return out


def start(version: str = "1.0.0", flavour: str = "development"):
    return start_device(1, 0, Build(version=version, flavour=flavour))


@pytest.fixture
def device():
    d = start()
    yield d
    d.stop()


@pytest.fixture
def device_120():
    d = start("1.2.0")
    yield d
    d.stop()


def flasher(device, enter_samba=None, timeout: float = 15) -> Flasher:
    return Flasher(device.endpoints["samba"], APPLET, KEYS, enter_samba=enter_samba, timeout=timeout, io_timeout=2,
                   link=lambda: open_client(device.endpoints["debug"], PROFILE))


def version_of(device) -> str:
    """GET_VERSION on a fresh connection (the device serves one client at a time, so a connection
    made while the flasher's last one is still being torn down may be turned away once)."""
    for attempt in range(10):
        try:
            with open_client(device.endpoints["debug"], PROFILE) as client:
                return client.version()
        except LinkClosed:
            time.sleep(0.1)
    raise AssertionError("the device never answered GET_VERSION")


def emmc_digest(device) -> str:
    return hashlib.sha256(device.prime.firmware.emmc.path.read_bytes()).hexdigest()


def test_full_reflash_with_verify_rewrite_then_skip_then_app_update(device, images):
    phases = []
    f = flasher(device)
    f.progress = lambda phase, done, total: phases.append(phase)
    device.prime.firmware.emmc.arm_bad_writes(2)  # read-back verify must catch and rewrite these
    result = f.flash(load_firmware(images["1.1.0"], KEYS))
    assert result.action == "flashed" and result.chunks_patched >= 1 and version_of(device) == "1.1.0"
    assert {"write", "verify"} <= set(phases)
    assert device.prime.firmware.outcome.reproducible_hash == result.hash
    assert f.flash(load_firmware(images["1.1.0"], KEYS)).action == "skipped"
    update = f.flash(load_firmware(images["app-1.3.0"], KEYS))
    assert update.action == "updated" and version_of(device) == "1.3.0"


def test_the_monitor_port_stays_open_until_the_flashed_build_answers(device, images, monkeypatch):
    """The reset is the last thing sent to the monitor and it is never answered. A bench's ser2net drops
    what it has not yet written to the unit when its client hangs up (the labgrid nightly's unit stayed in
    SAM-BA after a flash), so the flasher hangs up only once KeyOS reports the flashed version."""
    events = []
    close = Samba.close
    monkeypatch.setattr(Samba, "close", lambda self: (events.append("monitor closed"), close(self))[1])

    def link():
        client = open_client(device.endpoints["debug"], PROFILE)
        version = client.version
        client.version = lambda: events.append(f"reports {(v := version())}") or v
        return client

    f = flasher(device)
    f.link = link
    assert f.flash(load_firmware(images["app-1.3.0"], KEYS)).action == "updated"
    assert events[-2:] == ["reports 1.3.0", "monitor closed"], events
    f.link = None  # a unit without the link: the caller's own evidence is awaited, the port still open

    def enter_samba():  # the station's jig, here
        with open_client(device.endpoints["debug"], PROFILE) as client:
            client.reboot_to_samba()
    f.enter_samba = enter_samba
    f.flash(load_firmware(images["app-1.3.0"], KEYS), force=True, booted=lambda: events.append("booted"))
    assert events[-2:] == ["booted", "monitor closed"], events


def test_rollback_refused_before_the_device_is_touched(device_120, images):
    before = emmc_digest(device_120)
    with pytest.raises(RollbackRefused, match="older than the running 1.2.0.*--allow-rollback"):
        flasher(device_120).flash(load_firmware(images["1.1.0"], KEYS))
    assert emmc_digest(device_120) == before and device_120.prime.keyos_running


def test_forced_rollback_is_written_but_the_device_refuses_to_boot_it(device_120, images):
    operator = lambda: device_120.prime.firmware.enter_samba()  # noqa: E731  the Boot Menu's "SAM-BA mode"
    with pytest.raises(FlashFailed, match="did not boot the flashed build"):
        flasher(device_120, timeout=2).flash(load_firmware(images["1.1.0"], KEYS), allow_rollback=True)
    fw = device_120.prime.firmware
    assert fw.mode == "error" and "anti-rollback" in fw.outcome.reason
    image = device_120.prime.framebuffer()
    assert image.size == (480, 800)
    # recovered through the power-button sequence, with a newer app.bin
    assert flasher(device_120, operator).flash(load_firmware(images["app-1.3.0"], KEYS)).action == "updated"
    assert version_of(device_120) == "1.3.0"


def test_bad_images_never_reach_the_device(device, images, tmp_path):
    before = emmc_digest(device)
    blef = tmp_path / "ble.bin"
    signers = cosign2.load_keyset(emulated.TEST_SIGNERS)
    image = cosign2.sign(b"nrf", signers.signer("test-signer-1").private_key(), version="1.0.0", timestamp=5,
                         magic=cosign2.Magic.NRF52_BLE)
    blef.write_bytes(cosign2.add_second_signature(image, signers.signer("test-signer-2").private_key()))
    with pytest.raises(ImageError, match="nRF52 BLE chip"):
        load_firmware(blef, KEYS)
    dev = tmp_path / "dev.bin"
    dev.write_bytes(cosign2.sign(b"x", signers.signer("test-developer").private_key(), version="1.0.0", timestamp=5,
                                 developer=True))
    with pytest.raises(ImageError, match="trust is ThirdParty"):
        load_firmware(dev, KEYS)
    junk = tmp_path / "junk.img"
    junk.write_bytes(b"\0" * 4096)
    with pytest.raises(ImageError, match="neither a cosign2-signed app.bin"):
        load_firmware(junk, KEYS)
    assert emmc_digest(device) == before and device.prime.keyos_running


def test_development_build_flashes_where_the_profile_boots_thirdparty(device, tmp_path):
    """`cargo xtask build-all` signs with `cosign2 sign --developer` (pubkey1 zero: ThirdParty): the
    development profile's bootloader boots that, the production one does not."""
    signers = cosign2.load_keyset(emulated.TEST_SIGNERS)
    build = Build(version="1.4.0", flavour="development")
    dev = tmp_path / "app-dev.bin"
    dev.write_bytes(cosign2.sign(build.payload(), signers.signer("test-developer").private_key(), version="1.4.0",
                                 timestamp=emulated.default_timestamp("1.4.0"), developer=True))
    assert cosign2.verify(dev.read_bytes(), KEYS.pubkeys).trust is cosign2.Trust.THIRD_PARTY
    with pytest.raises(ImageError, match="trust is ThirdParty.*boots only FullyTrusted"):
        load_firmware(dev, KEYS, boot_policy(PROFILE.boots("production")))
    firmware = load_firmware(dev, KEYS, boot_policy(PROFILE.boots("development")))
    assert flasher(device).flash(firmware).action == "updated" and version_of(device) == "1.4.0"


def test_production_build_needs_the_stations_cd_relay(images):
    d = start(flavour="production")
    try:
        with pytest.raises(FlashFailed, match="refused REBOOT_SAMBA.*CD relay.*have a person take it there"):
            flasher(d).flash(load_firmware(images["app-1.3.0"], KEYS))
        presses = []

        def operator():  # a person shorts the CD pads through a power cycle: the ROM starts SAM-BA
            presses.append(1)
            with d.prime.lock:
                d.prime.cd_pads_shorted = True
                d.prime.reboot()
                d.prime.cd_pads_shorted = False

        assert flasher(d, enter_samba=operator).flash(load_firmware(images["app-1.3.0"], KEYS)).action == "updated"
        assert presses == [1] and version_of(d) == "1.3.0"
    finally:
        d.stop()


def _extent(image) -> int:
    """Bytes a full reflash of ``image`` writes (the flasher stops at the last used byte)."""
    data = image.read_bytes()
    return -(-len(data.rstrip(b"\0")) // 512) * 512


def _cut_and_recover(device, image, after_bytes: int) -> None:
    from hil.emulator import control

    control.apply(device.prime, {"cmd": "flash", "fault": "power_cut", "after_bytes": after_bytes})
    with pytest.raises((SambaError, FlashFailed)):
        flasher(device, timeout=2).flash(load_firmware(image, KEYS))
    assert not device.prime.powered
    control.apply(device.prime, {"cmd": "power_on"})
    mode = control.apply(device.prime, {"cmd": "flash"})["mode"]
    # Cut before the first write: the old system is intact and boots; any later: no MBR, the ROM
    # falls back to SAM-BA. Either way the next run recovers it.
    assert mode == ("keyos" if after_bytes == 0 else "samba"), f"cut after {after_bytes} bytes left {mode}"
    assert flasher(device).flash(load_firmware(image, KEYS)).action == "flashed"
    assert version_of(device) == "1.1.0"


def test_power_cut_mid_flash_is_recoverable(device, images):
    _cut_and_recover(device, images["1.1.0"], 5 * 1024 * 1024 + 1000)


@pytest.mark.slow
@pytest.mark.parametrize("where", [0.0, 512, 0.5, 0.999, "mbr"])
def test_power_cut_at_any_offset_is_recoverable(device, images, where):
    extent = _extent(images["1.1.0"])
    # the MBR page is written first (zeros) and last (the table): "mbr" cuts that last write
    after = {"mbr": extent}.get(where, int(where * extent) if isinstance(where, float) else where)
    _cut_and_recover(device, images["1.1.0"], after)


@pytest.mark.slow
@pytest.mark.parametrize("after_bytes", [0, 1024, 40_000, 300_000])
def test_power_cut_mid_app_update_is_recoverable(device, images, after_bytes):
    from hil.emulator import control

    control.apply(device.prime, {"cmd": "flash", "fault": "power_cut", "after_bytes": after_bytes})
    try:
        result = flasher(device, timeout=2).flash(load_firmware(images["app-1.3.0"], KEYS))
        assert result.action == "updated"  # the cut came after the last write
        return
    except (SambaError, FlashFailed):
        pass
    control.apply(device.prime, {"cmd": "power_on"})
    mode = control.apply(device.prime, {"cmd": "flash"})["mode"]
    assert mode in ("keyos", "error", "samba")
    operator = lambda: device.prime.firmware.enter_samba()  # noqa: E731
    assert flasher(device, operator).flash(load_firmware(images["1.1.0"], KEYS)).action == "flashed"
    assert version_of(device) == "1.1.0"


def test_cable_pull_mid_flash_is_recoverable(device, images):
    from hil.emulator import control

    class CablePulled(Exception):
        pass

    def pull(phase, done, total):
        if phase == "write" and done > 3 * 1024 * 1024:
            raise CablePulled  # the host loses the port mid-flash
    f = flasher(device)
    f.progress = pull
    with pytest.raises(CablePulled):
        f.flash(load_firmware(images["1.1.0"], KEYS))
    with serial.Serial(device.endpoints["samba"], timeout=1) as port:  # and with it half an S transfer
        port.write(b"S224000,10000#" + bytes(100))
        time.sleep(0.3)  # the monitor has taken them in before the cable goes
    control.apply(device.prime, {"cmd": "flash", "fault": "cable_pull"})
    assert control.apply(device.prime, {"cmd": "flash"})["mode"] == "samba"  # still in the ROM monitor
    assert flasher(device).flash(load_firmware(images["1.1.0"], KEYS)).action == "flashed"
    assert version_of(device) == "1.1.0"


def _developer_signed(data: bytes) -> bytes:
    signers = cosign2.load_keyset(emulated.TEST_SIGNERS)
    return cosign2.sign(data, signers.signer("test-developer").private_key(), version="1.0.0", timestamp=5,
                        developer=True)


def test_sideload_app_bundle(device, tmp_path, release_1_0_0):
    """A bundle as KeyOS's builder writes it: both files behind cosign2 --developer headers, and a
    manifest key this harness does not know; it reaches the device byte for byte."""
    bundle = tmp_path / "playground"
    bundle.mkdir()
    manifest = json.loads((release_1_0_0 / "apps" / "gui-app-playground" / "manifest.json").read_text())
    manifest["appId"] = "0x" + "ab" * 16
    manifest["keyosFutureKey"] = {"any": "thing"}
    (bundle / "manifest.json").write_bytes(_developer_signed(json.dumps(manifest).encode()))
    (bundle / "app.elf").write_bytes(_developer_signed(b"\x7fELF" + bytes(100)))
    with device.prime.lock:
        assert device.prime.login(TEST_PIN)
    with open_client(device.endpoints["debug"], PROFILE) as client:
        app = sideload(client, bundle, KEYS)
    assert app.app_id == "0x" + "ab" * 16
    with device.prime.lock:
        uploaded = device.prime.keyos.app_manager.apps[bytes.fromhex("ab" * 16)].files
    assert uploaded == {"manifest.json": (bundle / "manifest.json").read_bytes(),
                        "app.elf": (bundle / "app.elf").read_bytes()}
    (bundle / "app.elf").write_bytes(b"\x7fELF unsigned")
    with open_client(device.endpoints["debug"], PROFILE) as client, pytest.raises(ImageError, match="no cosign2 header"):
        sideload(client, bundle, KEYS)
