"""The emulated Prime's firmware builds: real cosign2 images whose payload is an emulated build.

``app.bin`` = cosign2 header (signed by the two TEST ONLY signers of ``firmware/keys/test-signers.toml``,
so FullyTrusted for the emulator's key set ``firmware/keys/test.toml``) + the JSON build descriptor of
``hil.emulator.build``. ``boot.img`` = the emulated eMMC layout with a stand-in ``boot.bin``, a signed
``recovery.bin`` and that ``app.bin``. Builds are deterministic for the same inputs (ECDSA nonces per
RFC 6979; the default timestamp follows the version), except the FAT time stamps inside a boot.img.
Pure: the emulator uses it to provision a factory-fresh eMMC.
"""

from __future__ import annotations

import struct
from pathlib import Path

from hil.emulator.build import Build
from hil.flash import bootimg, cosign2

FIRMWARE = Path(__file__).resolve().parents[2] / "firmware"
TEST_SIGNERS = FIRMWARE / "keys" / "test-signers.toml"
KEY_SETS = {"production": FIRMWARE / "keys" / "production.toml", "test": FIRMWARE / "keys" / "test.toml"}
APPLET = FIRMWARE / "emulated" / "sdmmc-applet.bin"
BUILD_DIR = FIRMWARE / "emulated" / "build"  # git-ignored; filled on demand
DEFAULT_VERSION = "1.0.0"
_EPOCH = 1735689600  # 2025-01-01T00:00:00Z


def keyset(name_or_path: str | Path) -> cosign2.KeySet:
    """``production``, ``test`` or a key set TOML file."""
    return cosign2.load_keyset(KEY_SETS.get(str(name_or_path), Path(name_or_path)))


def default_timestamp(version: str) -> int:
    """A timestamp that grows with the version (one minute per patch step), so newer builds never
    look like rollbacks."""
    major, minor, patch = cosign2.semver_key(version)[:3]
    return _EPOCH + ((major * 1000 + minor) * 1000 + patch) * 60


def app_image(build: Build, timestamp: int | None = None, signers: tuple[str, str] = ("test-signer-1", "test-signer-2")) -> bytes:
    """A signed emulated ``app.bin``."""
    keys = cosign2.load_keyset(TEST_SIGNERS)
    ts = default_timestamp(build.version) if timestamp is None else timestamp
    image = cosign2.sign(build.payload(), keys.signer(signers[0]).private_key(), version=build.version, timestamp=ts)
    return cosign2.add_second_signature(image, keys.signer(signers[1]).private_key())


def bootloader() -> bytes:
    """A stand-in keyos-boot ``boot.bin``: an AT91 image whose word at 0x14 is its size."""
    text = b"prime-hil emulated keyos-boot (no code: the emulator models the bootloader)\n"
    body = bytearray(0x20) + text
    struct.pack_into("<I", body, 0x14, len(body))
    return bytes(body)


def write_boot_image(path: Path, build: Build, timestamp: int | None = None) -> None:
    app = app_image(build, timestamp)
    bootimg.write(path, layout=bootimg.EMULATED, bootloader=bootloader(), recovery=app, app=app)


def default_build(flavour: str = "production", version: str = DEFAULT_VERSION) -> Path:
    """The boot.img ``hil nightly`` flashes by default, built on first use under ``BUILD_DIR``."""
    path = BUILD_DIR / f"keyos-emulated-{version}-{flavour}.img"
    if not path.exists():
        BUILD_DIR.mkdir(parents=True, exist_ok=True)
        write_boot_image(path, Build(version=version, flavour=flavour))
    return path
