"""cosign2 headers: parsed and verified exactly as KeyOS's cosign2 crate does."""

from __future__ import annotations

import hashlib
import json
import struct
import subprocess

import coincurve
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed, decode_dss_signature, encode_dss_signature
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from typer.testing import CliRunner

from hil.emulator.build import Build
from hil.flash import cosign2, emulated
from hil.flash.cli import firmware_app

N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141


def independent_header(binary: bytes, version: str, timestamp: int, date: str,
                       signer1: ec.EllipticCurvePrivateKey | None, signer2: ec.EllipticCurvePrivateKey | None,
                       magic: bytes = b"PRM1", header_size: int = 2048, bin_size: int | None = None) -> bytes:
    """A header made from keyos.md §3.2/§9 alone, with `cryptography` (not coincurve) for ECDSA."""
    fields = magic + struct.pack("<I", timestamp) + date.encode().ljust(14, b"\0") + \
        version.encode().ljust(20, b"\0") + struct.pack("<I", len(binary) if bin_size is None else bin_size)
    h1 = hashlib.sha256(fields + bytes(128 - len(fields))).digest()
    h2 = hashlib.sha256(bytes(header_size - 240)).digest()
    h3 = hashlib.sha256(binary).digest()
    H = hashlib.sha256(hashlib.sha256(h1 + h2 + h3 + bytes(32)).digest()).digest()

    def pair(key):
        if key is None:
            return bytes(33) + bytes(64)
        r, s = decode_dss_signature(key.sign(H, ec.ECDSA(Prehashed(hashes.SHA256()))))
        s = min(s, N - s)  # libsecp256k1 accepts low-S only
        return _pub(key) + r.to_bytes(32, "big") + s.to_bytes(32, "big")

    header = fields + pair(signer1) + pair(signer2)
    assert len(header) == 240
    return header + bytes(header_size - 240) + binary


def _pub(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.public_key().public_bytes(Encoding.X962, PublicFormat.CompressedPoint)


@pytest.fixture(scope="module")
def keys():
    return [ec.generate_private_key(ec.SECP256K1()) for _ in range(3)]


def test_independent_headers_verify_with_their_trust_levels(keys):
    a, b, dev = keys
    known = {_pub(a), _pub(b)}
    binary = b"\x7fELF" + bytes(range(256)) * 40
    full = independent_header(binary, "1.0.0", 1753056000, "July 21, 2025", a, b)
    v = cosign2.verify(full, known)
    assert v.trust is cosign2.Trust.FULLY_TRUSTED
    assert (v.header.version, v.header.date, v.header.timestamp, v.header.bin_size) == \
        ("1.0.0", "July 21, 2025", 1753056000, len(binary))
    assert cosign2.verify(independent_header(binary, "1.0.0", 1, "Jan. 1, 1970", a, None), known).trust \
        is cosign2.Trust.PARTIALLY_TRUSTED
    assert cosign2.verify(independent_header(binary, "2.0.0-rc.1", 1, "Jan. 1, 1970", None, dev), known).trust \
        is cosign2.Trust.THIRD_PARTY
    assert cosign2.verify(full).trust is cosign2.Trust.DISABLED  # no known signers: trust disabled
    wrong_size = independent_header(binary, "1.0.0", 1, "Jan. 1, 1970", a, b, bin_size=len(binary) - 1)
    with pytest.raises(cosign2.Cosign2Error) as e:
        cosign2.verify(wrong_size, known)
    assert e.value.code == "InvalidBinarySize"


def test_our_signing_matches_the_independent_hash(keys):
    """Ours and the independent maker produce the same signed hash, so either verifies the other."""
    secret = keys[0].private_numbers().private_value.to_bytes(32, "big")
    ours = cosign2.sign(b"payload", coincurve.PrivateKey(secret), version="1.4.0", timestamp=1763942400)
    theirs = independent_header(b"payload", "1.4.0", 1763942400, "Nov. 24, 2025", keys[0], None)
    assert ours[:79] == theirs[:79] and ours[143:] == theirs[143:]  # all but the (randomised) signature
    h = cosign2.verify(ours).hash
    sig = ours[79:143]
    keys[0].public_key().verify(encode_dss_signature(int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big")),
                                h, ec.ECDSA(Prehashed(hashes.SHA256())))


@pytest.mark.parametrize("ts,date", [(1753056000, "July 21, 2025"), (1763942400, "Nov. 24, 2025"),
                                     (1746057600, "May 1, 2025"), (1749513600, "June 10, 2025"),
                                     (1725148800, "Sep. 1, 2024"), (0, "Jan. 1, 1970")])
def test_date_field_follows_the_crate(ts, date):
    assert cosign2.date_string(ts) == date


def test_reproducible_hash_is_tail_after_the_header(tmp_path):
    image = emulated.app_image(Build(version="1.0.0"))
    path = tmp_path / "app.bin"
    path.write_bytes(image)
    out = subprocess.run(f"tail -c +2049 {path} | sha256sum", shell=True, capture_output=True, text=True, check=True)
    assert cosign2.reproducible_hash(image) == out.stdout.split()[0] == cosign2.verify(image).reproducible_hash


@pytest.fixture(scope="module")
def test_keys():
    return cosign2.load_keyset(emulated.TEST_SIGNERS)


def _signed(test_keys, binary=b"x" * 100, version="1.0.0", ts=1000):
    image = cosign2.sign(binary, test_keys.signer("test-signer-1").private_key(), version=version, timestamp=ts)
    return cosign2.add_second_signature(image, test_keys.signer("test-signer-2").private_key())


def _code(data, known):
    with pytest.raises(cosign2.Cosign2Error) as e:
        cosign2.verify(data, known)
    return e.value.code


def test_bad_headers_are_refused_with_the_crates_reason(test_keys):
    known = emulated.keyset("test").pubkeys
    good = _signed(test_keys)
    assert cosign2.verify(good, known).trust is cosign2.Trust.FULLY_TRUSTED
    assert _code(good[:1000], known) == "HeaderTooShort"
    assert _code(b"ELF\x7f" + good[4:], known) == "NoHeader"
    assert _code(good + b"extra", known) == "InvalidSignature1"  # the binary hash is checked first
    assert _code(good[:-1] + b"y", known) == "InvalidSignature1"  # binary altered
    tampered = bytearray(good)
    tampered[22:27] = b"9.9.9"
    assert _code(bytes(tampered), known) == "InvalidSignature1"
    assert _code(good, emulated.keyset("production").pubkeys) == "UnknownPubkey1"
    unsigned = bytearray(good)
    unsigned[46:240] = bytes(194)
    assert _code(bytes(unsigned), known) == "HeaderWithNoSignature"
    blef = cosign2.sign(b"nrf", test_keys.signer("test-signer-1").private_key(), version="1.0.0", timestamp=1,
                        magic=cosign2.Magic.NRF52_BLE)
    assert cosign2.verify(blef).header.chip is cosign2.Magic.NRF52_BLE
    one = cosign2.sign(b"x", test_keys.signer("test-signer-1").private_key(), version="1.0.0", timestamp=1)
    with pytest.raises(cosign2.Cosign2Error) as e:
        cosign2.add_second_signature(one, test_keys.signer("test-signer-1").private_key())
    assert e.value.code == "PubkeyAlreadyUsed"
    with pytest.raises(cosign2.Cosign2Error):
        cosign2.add_second_signature(good, test_keys.signer("test-developer").private_key())


def test_second_signer_outside_the_set_is_unknown(test_keys):
    known = emulated.keyset("test").pubkeys
    image = cosign2.sign(b"x", test_keys.signer("test-signer-1").private_key(), version="1.0.0", timestamp=1)
    odd = cosign2.add_second_signature(image, test_keys.signer("test-developer").private_key())
    assert _code(odd, known) == "UnknownPubkey2"
    dev = cosign2.sign(b"x", test_keys.signer("test-signer-1").private_key(), version="1.0.0", timestamp=1,
                       developer=True)
    assert _code(dev, known) == "BrokenSignatures"  # a trusted key in the developer slot is no scheme


def test_field_rules(test_keys, keys):
    good = _signed(test_keys)
    known = {_pub(keys[0]), _pub(keys[1])}
    trailing = independent_header(b"x", "1.0.0\0x", 1, "Jan. 1, 1970", keys[0], keys[1])
    assert _code(trailing, known) == "InvalidVersionTrailingBytes"
    assert _code(independent_header(b"x", "v1", 1, "Jan. 1, 1970", keys[0], keys[1]), known) == "InvalidVersionSemver"
    assert _code(independent_header(b"x", "1.0.0", 1, "Jan.\0 1", keys[0], keys[1]), known) == "InvalidDateTrailingBytes"
    with pytest.raises(cosign2.Cosign2Error) as e:
        cosign2.sign(b"x", test_keys.signer("test-signer-1").private_key(), version="one", timestamp=1)
    assert e.value.code == "InvalidVersionSemver"
    header = cosign2.parse_unverified(good)
    with pytest.raises(cosign2.Cosign2Error) as e:
        cosign2.Header(**{**header.__dict__, "signature2": bytes(64)}).validate_fields()
    assert e.value.code == "InvalidPubkey2"


def test_key_sets_ship_the_published_keys():
    prod = emulated.keyset("production")
    assert sorted(p.hex() for p in prod.pubkeys) == sorted([
        "03bf014e1a37a113089bea7b50ee9bd7733189ecd6afb7e051a6e95f99b97da5e9",
        "03040e47c1cde8978085bdc8b44df85e7c0b2e1ea586697b5d385e523d3f908bc3",
        "038de8dd1cbad8bf1da7ff64b8a9b4a375f0205eff41f7f9dca8e91c4cf0951daa",
        "03cb8e4219d3c8f269ab2ed3acb71a4b1722c76a0c348ea11fa79b4639bef45094"])
    assert all(s.secret is None for s in prod.signers)
    test = emulated.keyset("test")
    assert test.pubkeys <= cosign2.load_keyset(emulated.TEST_SIGNERS).pubkeys and not test.pubkeys & prod.pubkeys


def test_bad_key_set_file_is_one_clear_error(tmp_path):
    bad = tmp_path / "keys.toml"
    bad.write_text('[[signer]]\nname = "x"\npubkey = "02abcd"\n')
    with pytest.raises(ValueError, match="keys.toml: not a usable key set"):
        cosign2.load_keyset(bad)


def test_semver_order():
    assert cosign2.semver_key("1.0.0-rc.1") < cosign2.semver_key("1.0.0") < cosign2.semver_key("v1.0.10")


def test_inspect_cli_exit_codes(tmp_path, test_keys):
    runner = CliRunner()
    path = tmp_path / "app.bin"
    path.write_bytes(_signed(test_keys))
    ok = runner.invoke(firmware_app, ["inspect", str(path), "--keys", "test", "--json"])
    assert ok.exit_code == 0, ok.output
    info = json.loads(ok.stdout)
    assert info["trust"] == "FullyTrusted" and info["version"] == "1.0.0" and info["magic"] == "PRM1"
    assert [s["name"] for s in info["signers"]] == ["test-signer-1", "test-signer-2"]
    refused = runner.invoke(firmware_app, ["inspect", str(path)])  # production keys
    assert refused.exit_code == 1 and "unknown pubkey1" in refused.stderr
    assert refused.stderr.count("\n") == 1
    path.write_bytes(path.read_bytes()[:700])
    truncated = runner.invoke(firmware_app, ["inspect", str(path), "--keys", "test"])
    assert truncated.exit_code == 1 and "header too short" in truncated.stderr
