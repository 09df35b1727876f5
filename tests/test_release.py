"""KeyOS-v<ver>.bin release bundles: the outer signature and every file's hash checked."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile

import pytest
from typer.testing import CliRunner

from hil.emulator.build import Build
from hil.flash import cosign2, emulated, release
from hil.flash.cli import firmware_app

KEYS = emulated.keyset("test")
SIGNERS = cosign2.load_keyset(emulated.TEST_SIGNERS)
TS = 1753056000


def files() -> dict[str, bytes]:
    app = emulated.app_image(Build(version="1.0.0"), TS)
    elf = cosign2.sign(b"\x7fELF app", SIGNERS.signer("test-signer-1").private_key(), version="1.0.0", timestamp=TS)
    elf = cosign2.add_second_signature(elf, SIGNERS.signer("test-signer-2").private_key())
    return {"app.bin": app, "apps/gui-app-bitcoin.elf": elf}


def bundle(members: dict[str, bytes], version: str = "1.0.0") -> bytes:
    """Like tools/signer: a plain tar (with a version folder prefix), then cosign2-signed twice."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(f"v{version}/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    image = cosign2.sign(buf.getvalue(), SIGNERS.signer("test-signer-1").private_key(), version=version, timestamp=TS)
    return cosign2.add_second_signature(image, SIGNERS.signer("test-signer-2").private_key())


def manifest(fs: dict[str, bytes], version: str = "v1.0.0") -> bytes:
    return json.dumps({"version": version, "files": [
        {"name": n, "hash": "0x" + hashlib.sha256(d).hexdigest()} for n, d in fs.items()]}, indent=2).encode()


def test_a_good_bundle_verifies_every_file():
    fs = files()
    rel = release.read(bundle({**fs, "manifest.json": manifest(fs)}), KEYS)
    assert rel.version == "v1.0.0" and rel.app == fs["app.bin"]
    assert rel.bundle.trust is cosign2.Trust.FULLY_TRUSTED
    assert {n: v.trust for n, v in rel.verified.items()} == {
        "app.bin": cosign2.Trust.FULLY_TRUSTED, "apps/gui-app-bitcoin.elf": cosign2.Trust.FULLY_TRUSTED}


def test_built_bundles_round_trip():
    data = release.build(files(), version="1.0.0", timestamp=TS,
                         signers=[SIGNERS.signer("test-signer-1"), SIGNERS.signer("test-signer-2")])
    assert set(release.read(data, KEYS).files) == {"app.bin", "apps/gui-app-bitcoin.elf"}


@pytest.mark.parametrize("case,expected", [
    ("altered", "apps/gui-app-bitcoin.elf: hash 0x"),
    ("missing", "apps/gui-app-bitcoin.elf: listed in manifest.json but missing"),
    ("extra", "v1.0.0/notes.txt: in the bundle but not covered"),
    ("no-manifest", "bundle has no manifest.json"),
    ("bad-manifest", "manifest.json is not {version, files"),
    ("version", "manifest.json says v2.0.0, the bundle header says 1.0.0"),
    ("unsigned-file", "app.bin: unknown pubkey1"),
])
def test_bad_bundles_are_refused(case, expected):
    fs = files()
    members = {**fs, "manifest.json": manifest(fs)}
    if case == "altered":
        members["apps/gui-app-bitcoin.elf"] = fs["apps/gui-app-bitcoin.elf"][:-1] + b"!"
    elif case == "missing":
        del members["apps/gui-app-bitcoin.elf"]
    elif case == "extra":
        members["notes.txt"] = b"hi"
    elif case == "no-manifest":
        del members["manifest.json"]
    elif case == "bad-manifest":
        members["manifest.json"] = b'{"version": "v1.0.0"}'
    elif case == "version":
        members["manifest.json"] = manifest(fs, "v2.0.0")
    elif case == "unsigned-file":
        prod = cosign2.sign(b"x", SIGNERS.signer("test-developer").private_key(), version="1.0.0", timestamp=TS)
        members["app.bin"] = prod
        members["manifest.json"] = manifest({**fs, "app.bin": prod})
        with pytest.raises(release.ReleaseError, match="app.bin: unknown pubkey1"):
            release.read(bundle(members), cosign2.KeySet("t", tuple(
                s for s in SIGNERS.signers if s.name != "test-developer")))
        return
    with pytest.raises(release.ReleaseError) as e:
        release.read(bundle(members), KEYS)
    assert expected in str(e.value)


def test_outer_signature_is_checked():
    fs = files()
    data = bytearray(bundle({**fs, "manifest.json": manifest(fs)}))
    data[-600] ^= 1
    with pytest.raises(release.ReleaseError, match="bundle signature: invalid signature1"):
        release.read(bytes(data), KEYS)


def test_verify_release_cli(tmp_path):
    fs = files()
    good = tmp_path / "KeyOS-v1.0.0.bin"
    good.write_bytes(bundle({**fs, "manifest.json": manifest(fs)}))
    runner = CliRunner()
    ok = runner.invoke(firmware_app, ["verify-release", str(good), "--keys", "test"])
    assert ok.exit_code == 0 and "v1.0.0, FullyTrusted" in ok.stdout
    bad = runner.invoke(firmware_app, ["verify-release", str(good)])  # production keys
    assert bad.exit_code == 1 and bad.stderr.startswith("error: ") and bad.stderr.count("\n") == 1
