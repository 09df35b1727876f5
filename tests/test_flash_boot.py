"""The emulated Prime's boot chain: ROM fallback to SAM-BA, keyos-boot's checks, its error pages."""

from __future__ import annotations

import subprocess

import pytest
import zxingcpp
from PIL import Image
from typer.testing import CliRunner

from hil.emulator import bootloader
from hil.emulator.build import Build
from hil.emulator.emmc import Emmc
from hil.flash import bootimg, cosign2, emulated
from hil.flash.cli import flash

KNOWN = emulated.keyset("test").pubkeys
SIGNERS = cosign2.load_keyset(emulated.TEST_SIGNERS)


@pytest.fixture(scope="module")
def factory(tmp_path_factory):
    path = tmp_path_factory.mktemp("factory") / "boot.img"
    emulated.write_boot_image(path, Build(version="1.0.0"))
    return path


@pytest.fixture
def emmc(factory, tmp_path):
    path = tmp_path / "emmc.img"
    subprocess.run(["cp", "--sparse=always", str(factory), str(path)], check=True)
    e = Emmc(path, bootimg.EMULATED.total_bytes)
    yield e
    e.close()


def install(emmc: Emmc, app: bytes) -> None:
    with open(emmc.path, "r+b") as fp:
        system = bootimg.partition_table(fp.read(512))[1]
        with bootimg.mount(fp, system) as fs:
            fs.remove(bootimg.APP_IMAGE)  # pyfatfs 1.1 cannot truncate a file in place
            fs.writebytes(bootimg.APP_IMAGE, app)


def test_factory_image_boots_and_raises_anti_rollback(emmc, tmp_path):
    ar = bootloader.AntiRollback(tmp_path / "ts")
    out = bootloader.boot(emmc, KNOWN, ar)
    assert out.mode == "keyos" and out.build == Build(version="1.0.0")
    assert ar.value == emulated.default_timestamp("1.0.0")


@pytest.mark.parametrize("case", ["developer", "stranger", "garbage", "older"])
def test_bootloader_refuses(emmc, tmp_path, case):
    ar = bootloader.AntiRollback(tmp_path / "ts")
    payload = Build(version="1.0.0").payload()
    if case == "developer":
        app = cosign2.sign(payload, SIGNERS.signer("test-developer").private_key(), version="1.0.0", timestamp=9,
                           developer=True)
    elif case == "stranger":
        app = emulated.app_image(Build(version="1.0.0"))
        known = emulated.keyset("production").pubkeys
        install(emmc, app)
        assert bootloader.boot(emmc, known, ar).mode == "error"
        return
    elif case == "garbage":
        app = b"\x7fELF" + bytes(5000)
    else:
        ar.raise_to(emulated.default_timestamp("2.0.0"))
        app = emulated.app_image(Build(version="1.0.0"))
    install(emmc, app)
    out = bootloader.boot(emmc, KNOWN, ar)
    assert out.mode == "error" and out.build is None


def test_rom_falls_back_to_samba_without_a_boot_program(emmc, tmp_path):
    emmc.write_pages(0, bytes(512))  # what a flash cut before its last step leaves
    out = bootloader.boot(emmc, KNOWN, bootloader.AntiRollback(tmp_path / "ts"))
    assert out.mode == "samba" and "MBR signature" in out.reason


def test_updated_image_is_the_fallback(emmc, tmp_path):
    with open(emmc.path, "r+b") as fp:
        system = bootimg.partition_table(fp.read(512))[1]
        with bootimg.mount(fp, system) as fs:
            fs.makedirs("keyos.update")
            fs.writebytes(bootimg.UPDATED_APP_IMAGE, emulated.app_image(Build(version="1.0.1")))
            fs.remove(bootimg.APP_IMAGE)
    assert bootloader.boot(emmc, KNOWN, bootloader.AntiRollback(tmp_path / "ts")).build.version == "1.0.1"


def test_error_pages_and_their_qr_match_the_real_ones(release_1_0_0):
    real = zxingcpp.read_barcodes(Image.open(release_1_0_0 / "blassets" / "fw_error_qr.png"))[0]
    ours = zxingcpp.read_barcodes(bootloader.qr_page())
    assert [b.text for b in ours] == [real.text] == [bootloader.FW_ERROR_URL]
    assert ours[0].ec_level == real.ec_level
    assert zxingcpp.read_barcodes(bootloader.error_page()) == []  # the QR only behind Support
    x0, y0, x1, y1 = bootloader.SUPPORT_BUTTON
    assert bootloader.page_button((x0 + x1) // 2, (y0 + y1) // 2, qr_shown=False) == "support"
    assert bootloader.page_button(*bootloader.BACK_BUTTON[:2], qr_shown=True) == "back"


def test_flash_cli_refuses_bad_images_in_one_line(tmp_path):
    bad = tmp_path / "app.bin"
    bad.write_bytes(b"PRM1" + bytes(100))
    result = CliRunner().invoke(_app(), ["flash", str(bad), "--device", "tcp:127.0.0.1:9", "--samba", "/dev/null"])
    assert result.exit_code == 1 and result.stderr.startswith("error: ") and "header too short" in result.stderr
    assert result.stderr.count("\n") == 1


def _app():
    import typer

    app = typer.Typer()
    app.command("flash")(flash)
    app.command("noop")(lambda: None)
    return app
