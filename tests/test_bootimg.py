"""boot.img: MBR + KEYOSBOOT / PRIME / user, written and read back, bad tables refused."""

from __future__ import annotations

import json
import os
import re
import struct
import subprocess

import pytest
from typer.testing import CliRunner

from hil.emulator.build import Build
from hil.flash import bootimg, cosign2, emulated
from hil.flash.cli import firmware_app
from hil.flash.flasher import ImageError, load_firmware


@pytest.fixture(scope="module")
def image(tmp_path_factory):
    path = tmp_path_factory.mktemp("img") / "boot.img"
    emulated.write_boot_image(path, Build(version="1.0.0", flavour="development"))
    return path


def test_keyos_layout_matches_bootimage_rs():
    assert bootimg.KEYOS.starts == (1, 524288, 524288 + 16744448)  # 256 MiB, then 8 GiB - 16 MiB
    assert bootimg.KEYOS.user * 512 == 50 * 1024 ** 3 - 0x400000


def test_written_image_reads_back(image):
    img = bootimg.BootImage.read(image)
    assert [(p.index, p.bootable, p.type, p.start) for p in img.partitions] == \
        [(0, True, 0x0C, 1), (1, False, 0x0C, bootimg.EMULATED.starts[1]), (2, False, 0x0C, bootimg.EMULATED.starts[2])]
    assert img.bootloader == "boot.bin"
    v = cosign2.verify(img.app, emulated.keyset("test").pubkeys)
    assert v.trust is cosign2.Trust.FULLY_TRUSTED and Build.from_payload(img.app[2048:]).flavour == "development"
    with open(image, "rb") as fp:
        part = img.partitions[0]
        with bootimg.mount(fp, part) as fs:
            assert fs.getinfo("KEYOSBOOT", namespaces=["basic"]) if fs.exists("KEYOSBOOT") else True
            loader = fs.readbytes("boot.bin")
    assert struct.unpack_from("<I", loader, 0x14)[0] == len(loader)
    assert load_firmware(image, emulated.keyset("test")).kind == "boot.img"


def _corrupt(image, tmp_path, offset, data):
    bad = tmp_path / "bad.img"
    subprocess.run(["cp", "--sparse=always", str(image), str(bad)], check=True)
    with open(bad, "r+b") as fp:
        fp.seek(offset)
        fp.write(data)
    return bad


@pytest.mark.parametrize("offset,data,message", [
    (510, b"\0\0", "no MBR signature"),
    (446 + 16 + 8, struct.pack("<I", 100), "partitions 0 and 1 overlap"),
    (446 + 4, b"\x83", "partition 0 has type 0x83, not FAT32"),
    (446, b"\x00", "partition 0 (KEYOSBOOT) must be bootable"),
    (446 + 32 + 4, b"\x00", "expected partitions 0, 1, 2"),
])
def test_bad_partition_tables_are_refused(image, tmp_path, offset, data, message):
    bad = _corrupt(image, tmp_path, offset, data)
    with pytest.raises(bootimg.BootImageError, match=re.escape(message)):
        bootimg.BootImage.read(bad)
    with pytest.raises(ImageError, match=re.escape(message) if offset != 510 else "neither a cosign2-signed"):
        load_firmware(bad, emulated.keyset("test"))


def test_truncated_image_and_broken_fat(image, tmp_path):
    cut = _corrupt(image, tmp_path, 0, b"")
    os.truncate(cut, 30 * 1024 * 1024)
    with pytest.raises(bootimg.BootImageError, match="past the end of the image"):
        bootimg.BootImage.read(cut)
    start = bootimg.EMULATED.starts[1] * 512
    bad = _corrupt(image, tmp_path, start, bytes(512))
    with pytest.raises(bootimg.BootImageError, match="partition 1 is not a readable FAT"):
        bootimg.BootImage.read(bad)


def test_image_signed_by_strangers_is_refused(tmp_path):
    path = tmp_path / "boot.img"
    emulated.write_boot_image(path, Build())
    with pytest.raises(ImageError, match="keyos/app.bin: unknown pubkey1"):
        load_firmware(path, emulated.keyset("production"))


def test_build_emulated_cli(tmp_path):
    runner = CliRunner()
    out = tmp_path / "app.bin"
    ok = runner.invoke(firmware_app, ["build-emulated", "--version", "2.1.0", "--flavour", "development",
                                      "--defect", "mask-off-by-one", "-o", str(out)])
    assert ok.exit_code == 0, ok.output
    build = Build.from_payload(out.read_bytes()[2048:])
    assert (build.version, build.flavour, build.defects) == ("2.1.0", "development", ("mask-off-by-one",))
    again = tmp_path / "again.bin"
    runner.invoke(firmware_app, ["build-emulated", "--version", "2.1.0", "--flavour", "development",
                                 "--defect", "mask-off-by-one", "-o", str(again)])
    assert again.read_bytes() == out.read_bytes()  # deterministic
    bad = runner.invoke(firmware_app, ["build-emulated", "--defect", "no-such-defect", "-o", str(out)])
    assert bad.exit_code == 1 and "unknown defect 'no-such-defect'" in bad.stderr


def test_inspect_reads_the_boot_image_the_nightly_flashes(image):
    """`hil firmware inspect` sees what the flasher flashes: a boot.img's keyos/app.bin."""
    result = CliRunner().invoke(firmware_app, ["inspect", str(image), "--keys", "test", "--json"])
    assert result.exit_code == 0, result.output
    info = json.loads(result.stdout)
    assert info["kind"] == "boot.img" and info["image"].endswith(bootimg.APP_IMAGE)
    assert info["trust"] == "FullyTrusted" and info["version"] == "1.0.0"


def test_inspect_of_a_file_it_cannot_parse_is_an_error_not_a_trust_level(tmp_path):
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"not firmware" * 100)
    result = CliRunner().invoke(firmware_app, ["inspect", str(junk), "--keys", "test", "--json"])
    assert result.exit_code == 1 and "neither a cosign2-signed app.bin" in result.stderr
    assert "trust" not in result.stdout and result.stderr.count("\n") == 1


def test_the_module_loads_without_the_fat_library():
    """Every suite worker imports it at collection (the firmware lane and the signing helpers); pyfatfs (and the
    pkg_resources its `fs` loads) only comes in where a volume is opened or made."""
    import sys

    probe = "import sys, hil.flash.bootimg; print(sorted({'pyfatfs', 'fs'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
