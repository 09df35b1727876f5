"""The cosign2 signature header that KeyOS prepends to app.bin, recovery.bin, app ELFs and release tars.

A pure codec (keyos.md §3.2 and §9; `imports/cosign2/cosign2/src/lib.rs`): the lab checks images with it
before a device is touched, and the emulated Prime's bootloader verifies what it boots with the same
code. Header layout (default 2048 B, 256..4096)::

    0 magic[4]  4 timestamp u32 LE  8 date[14]  22 version[20]  42 bin_size u32 LE
    46 pubkey1[33]  79 signature1[64]  143 pubkey2[33]  176 signature2[64]  240.. reserved

Signed hash ``H = sha256(sha256(h1 ‖ h2 ‖ h3 ‖ 0³²))`` with h1 = sha256(fields 0..46 zero-padded to 128 B),
h2 = sha256(header[240:size]), h3 = sha256(binary); signatures are compact secp256k1 ECDSA over H.
Errors carry the Rust error name (``code``) so a report matches what KeyOS would say.
"""

from __future__ import annotations

import datetime as _dt
import enum
import hashlib
import re
import struct
import tomllib
from dataclasses import dataclass
from pathlib import Path

import coincurve
from coincurve import ecdsa

DEFAULT_SIZE = 2048
MIN_SIZE = 256
MAX_SIZE = 4096
PAYLOAD_SIZE = 240
_FIELDS = struct.Struct("<4sI14s20sI33s64s33s64s")
assert _FIELDS.size == PAYLOAD_SIZE
_ZERO_PUB = bytes(33)
_ZERO_SIG = bytes(64)
# SemVer 2.0.0 (semver.org's recommended expression), as the `semver` crate accepts it.
_SEMVER = re.compile(
    r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?"
    r"(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$"
)
_MONTHS = ("Jan.", "Feb.", "Mar.", "Apr.", "May", "June", "July", "Aug.", "Sep.", "Oct.", "Nov.", "Dec.")


class Magic(enum.Enum):
    """Which chip an image is for."""

    ATSAMA5D27_KEYOS = b"PRM1"  # the Prime's SoC
    NRF52_BLE = b"blef"  # the Bluetooth controller


class Trust(enum.Enum):
    FULLY_TRUSTED = "FullyTrusted"
    PARTIALLY_TRUSTED = "PartiallyTrusted"
    THIRD_PARTY = "ThirdParty"
    DISABLED = "Disabled"  # verified with an empty key set: signatures are valid, signers unknown


class Cosign2Error(ValueError):
    """An image whose header KeyOS would reject; ``code`` is the cosign2 error name."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


def _fail(code: str, message: str) -> Cosign2Error:
    return Cosign2Error(code, message)


def date_string(timestamp: int) -> str:
    """The header's date field, as cosign2 derives it from the timestamp (e.g. ``Nov. 24, 2025``)."""
    d = _dt.datetime.fromtimestamp(timestamp, _dt.timezone.utc)
    return f"{_MONTHS[d.month - 1]} {d.day}, {d.year:04d}"


def is_semver(version: str) -> bool:
    return bool(_SEMVER.match(version))


def semver_key(version: str) -> tuple:
    """Order versions by SemVer precedence (build metadata ignored)."""
    m = _SEMVER.match(version.removeprefix("v"))
    if not m:
        raise ValueError(f"not a SemVer version: {version!r}")
    pre = m.group(4)
    pre_key: tuple = (1,) if pre is None else (0, *((0, int(p)) if p.isdigit() else (1, p) for p in pre.split(".")))
    return (int(m.group(1)), int(m.group(2)), int(m.group(3)), pre_key)


@dataclass(frozen=True)
class Header:
    """The fields of one header, as stored."""

    magic: bytes
    timestamp: int
    date_raw: bytes
    version_raw: bytes
    bin_size: int
    pubkey1: bytes
    signature1: bytes
    pubkey2: bytes
    signature2: bytes
    reserved: bytes  # header[240:size]

    @property
    def size(self) -> int:
        return PAYLOAD_SIZE + len(self.reserved)

    @property
    def chip(self) -> Magic:
        return Magic(self.magic)

    @property
    def version(self) -> str:
        return self.version_raw.split(b"\0", 1)[0].decode("utf-8")

    @property
    def date(self) -> str:
        return self.date_raw.split(b"\0", 1)[0].decode("utf-8")

    def to_bytes(self) -> bytes:
        return _FIELDS.pack(
            self.magic, self.timestamp, self.date_raw, self.version_raw, self.bin_size,
            self.pubkey1, self.signature1, self.pubkey2, self.signature2,
        ) + self.reserved

    def signed_hash(self, binary_hash: bytes) -> bytes:
        """H, the 32 bytes both signatures sign."""
        h1 = hashlib.sha256(self.to_bytes()[:46].ljust(128, b"\0")).digest()
        h2 = hashlib.sha256(self.reserved).digest()
        inner = hashlib.sha256(h1 + h2 + binary_hash + bytes(32)).digest()
        return hashlib.sha256(inner).digest()

    def validate_fields(self) -> None:
        """The checks cosign2's ``validate_fields`` makes, except the binary size."""
        version_raw, date_raw = self.version_raw, self.date_raw
        cut = version_raw.find(b"\0") if b"\0" in version_raw else len(version_raw)
        try:
            version = version_raw[:cut].decode("utf-8")
        except UnicodeDecodeError:
            raise _fail("InvalidVersionUtf8", "invalid version UTF-8 in header") from None
        if not is_semver(version):
            raise _fail("InvalidVersionSemver", f"invalid version SemVer in header: {version!r}")
        if any(version_raw[cut:]):
            raise _fail("InvalidVersionTrailingBytes", "invalid version trailing bytes in header")
        cut = date_raw.find(b"\0") if b"\0" in date_raw else len(date_raw)
        try:
            date_raw[:cut].decode("utf-8")
        except UnicodeDecodeError:
            raise _fail("InvalidDateUtf8", "invalid date UTF-8 in header") from None
        if any(date_raw[cut:]):
            raise _fail("InvalidDateTrailingBytes", "invalid date trailing bytes in header")
        if self.signature1 == _ZERO_SIG and self.pubkey1 != _ZERO_PUB:
            raise _fail("InvalidPubkey1", "invalid pubkey1 in header")
        if self.signature2 == _ZERO_SIG and self.pubkey2 != _ZERO_PUB:
            raise _fail("InvalidPubkey2", "invalid pubkey2 in header")


@dataclass(frozen=True)
class Verified:
    """A header whose signatures verified, with what they cover."""

    header: Header
    trust: Trust
    hash: bytes  # H
    binary_hash: bytes  # h3 = sha256(binary)
    reproducible_hash: str  # sha256 of the file after the header, hex (REPRODUCIBILITY.md)


def parse_unverified(data: bytes, header_size: int = DEFAULT_SIZE) -> Header | None:
    """The header at the start of ``data``; None when the magic is not a cosign2 magic."""
    if header_size > MAX_SIZE:
        raise _fail("HeaderTooLong", "header too long")
    if len(data) < 4 or data[:4] not in {m.value for m in Magic}:
        return None
    if len(data) < header_size or header_size < MIN_SIZE:
        raise _fail("HeaderTooShort", f"header too short: {len(data)} bytes, the header alone is {header_size}")
    fields = _FIELDS.unpack_from(data)
    return Header(*fields, reserved=bytes(data[PAYLOAD_SIZE:header_size]))


def _verify_sig(msg: bytes, sig: bytes, pubkey: bytes) -> bool:
    try:
        der = ecdsa.cdata_to_der(ecdsa.deserialize_compact(sig))
        return coincurve.PublicKey(pubkey).verify(der, msg, hasher=None)
    except (ValueError, TypeError):
        return False


def verify(data: bytes, known_signers: frozenset[bytes] | set[bytes] = frozenset(),
           header_size: int = DEFAULT_SIZE) -> Verified:
    """Parse and verify like cosign2's ``Header::parse``; raises :class:`Cosign2Error` with KeyOS's reason."""
    header = parse_unverified(data, header_size)
    if header is None:
        raise _fail("NoHeader", f"no cosign2 header: magic {bytes(data[:4])!r} is neither PRM1 nor blef")
    if header.signature1 == _ZERO_SIG and header.signature2 == _ZERO_SIG:
        raise _fail("HeaderWithNoSignature", "header with no signature")
    binary = memoryview(data)[header_size:]
    binary_hash = hashlib.sha256(binary).digest()
    h = header.signed_hash(binary_hash)
    known = frozenset(known_signers)
    if header.signature1 != _ZERO_SIG:
        if not _verify_sig(h, header.signature1, header.pubkey1):
            raise _fail("InvalidSignature1", "invalid signature1 in header")
        if known and header.pubkey1 not in known:
            raise _fail("UnknownPubkey1", f"unknown pubkey1 in header: {header.pubkey1.hex()}")
    if header.signature2 != _ZERO_SIG:
        if not _verify_sig(h, header.signature2, header.pubkey2):
            raise _fail("InvalidSignature2", "invalid signature2 in header")
        if known and header.pubkey2 not in known and header.signature1 != _ZERO_SIG:
            raise _fail("UnknownPubkey2", f"unknown pubkey2 in header: {header.pubkey2.hex()}")
    trust = _trust(header, known)
    header.validate_fields()
    if header.bin_size != len(binary):
        raise _fail("InvalidBinarySize",
                    f"invalid binary size in header: should be {len(binary)}, but is {header.bin_size}")
    return Verified(header, trust, h, binary_hash, hashlib.sha256(binary).hexdigest())


def _trust(header: Header, known: frozenset[bytes]) -> Trust:
    if not known:
        return Trust.DISABLED
    p1, p2 = header.pubkey1, header.pubkey2
    if p1 in known and p2 in known and p1 != p2:
        return Trust.FULLY_TRUSTED
    if p1 in known and p2 == _ZERO_PUB:
        return Trust.PARTIALLY_TRUSTED
    if p1 == _ZERO_PUB and p2 not in known:
        return Trust.THIRD_PARTY
    raise _fail("BrokenSignatures", "broken signatures scheme in header")


def reproducible_hash(data: bytes, header_size: int = DEFAULT_SIZE) -> str:
    """``tail -c +2049 FILE | sha256sum``: the build's hash without its signatures."""
    return hashlib.sha256(memoryview(data)[header_size:]).hexdigest()


def sign(binary: bytes, key: coincurve.PrivateKey, *, version: str, timestamp: int,
         developer: bool = False, magic: Magic = Magic.ATSAMA5D27_KEYOS,
         header_size: int = DEFAULT_SIZE) -> bytes:
    """A new signed image (header + binary): a trusted signer fills pair 1, a developer only pair 2."""
    if not is_semver(version):
        raise _fail("InvalidVersionSemver", f"version {version!r} is not SemVer (e.g. 1.2.3)")
    if len(version.encode()) > 20:
        raise _fail("VersionTooLong", "version too long to write in header")
    if not MIN_SIZE <= header_size <= MAX_SIZE:
        raise _fail("HeaderTooLong", f"header size must be {MIN_SIZE}..{MAX_SIZE}")
    if not 0 <= timestamp < 2**32:
        raise _fail("InvalidTimestamp", "invalid timestamp in header")
    unsigned = Header(
        magic.value, timestamp, date_string(timestamp).encode().ljust(14, b"\0"),
        version.encode().ljust(20, b"\0"), len(binary), _ZERO_PUB, _ZERO_SIG, _ZERO_PUB, _ZERO_SIG,
        bytes(header_size - PAYLOAD_SIZE),
    )
    h = unsigned.signed_hash(hashlib.sha256(binary).digest())
    pair = {"pubkey2" if developer else "pubkey1": key.public_key.format(compressed=True),
            "signature2" if developer else "signature1": _sign_hash(key, h)}
    return _replace(unsigned, **pair).to_bytes() + binary


def add_second_signature(image: bytes, key: coincurve.PrivateKey, header_size: int = DEFAULT_SIZE) -> bytes:
    """The image with a second trusted signature added (cosign2 ``add_second_signature``)."""
    header = parse_unverified(image, header_size)
    if header is None:
        raise _fail("NoHeader", "no cosign2 header to add a signature to")
    if header.signature2 != _ZERO_SIG:
        raise _fail("Signature2Present", "signature2 already present in header")
    if header.signature1 == _ZERO_SIG:
        raise _fail("Signature1Missing", "signature1 missing in header")
    pub = key.public_key.format(compressed=True)
    if pub == header.pubkey1:
        raise _fail("PubkeyAlreadyUsed", "attempting to sign with the same pubkey twice")
    binary = image[header_size:]
    h = header.signed_hash(hashlib.sha256(binary).digest())
    return _replace(header, pubkey2=pub, signature2=_sign_hash(key, h)).to_bytes() + binary


def _sign_hash(key: coincurve.PrivateKey, h: bytes) -> bytes:
    # libsecp256k1 signs the 32-byte digest as is (no further hashing) and always yields low-S.
    return key.sign_recoverable(h, hasher=None)[:64]


def _replace(header: Header, **changes) -> Header:
    return Header(**{**header.__dict__, **changes})


# --- key sets -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Signer:
    name: str
    pubkey: bytes
    secret: bytes | None = None  # only for test keys

    def private_key(self) -> coincurve.PrivateKey:
        if self.secret is None:
            raise ValueError(f"signer {self.name} has no private key")
        return coincurve.PrivateKey(self.secret)


@dataclass(frozen=True)
class KeySet:
    """A named set of signers: the `known_signers` a verifier trusts."""

    name: str
    signers: tuple[Signer, ...]

    @property
    def pubkeys(self) -> frozenset[bytes]:
        return frozenset(s.pubkey for s in self.signers)

    def signer(self, name: str) -> Signer:
        for s in self.signers:
            if s.name == name:
                return s
        raise KeyError(f"no signer {name!r} in key set {self.name} (have: {', '.join(s.name for s in self.signers)})")

    def name_of(self, pubkey: bytes) -> str | None:
        return next((s.name for s in self.signers if s.pubkey == pubkey), None)


def load_keyset(path: Path) -> KeySet:
    """Read a key set TOML: ``[[signer]]`` tables with ``name``, ``pubkey`` (33-byte hex) and, for test
    keys only, ``secret`` (32-byte hex). A secret must match its pubkey."""
    path = Path(path)
    try:
        doc = tomllib.loads(path.read_text())
        signers = []
        for entry in doc["signer"]:
            pub = bytes.fromhex(entry["pubkey"])
            coincurve.PublicKey(pub)
            if len(pub) != 33:
                raise ValueError(f"pubkey of {entry['name']} is not 33 bytes compressed")
            secret = bytes.fromhex(entry["secret"]) if "secret" in entry else None
            if secret is not None and coincurve.PrivateKey(secret).public_key.format() != pub:
                raise ValueError(f"secret of {entry['name']} does not match its pubkey")
            signers.append(Signer(entry["name"], pub, secret))
    except (OSError, tomllib.TOMLDecodeError, KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"{path}: not a usable key set ({exc}); expected [[signer]] tables "
                         "with name and pubkey") from exc
    if not signers:
        raise ValueError(f"{path}: key set has no signers")
    return KeySet(doc.get("name", path.stem), tuple(signers))
