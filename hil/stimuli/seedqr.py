"""SeedQR (SeedSigner's format, which KeyOS's security API accepts): a BIP39 mnemonic as a QR code.

Standard: each word's BIP39 index as four decimal digits (a numeric-mode QR, readable by any phone).
Compact: the raw entropy without the checksum bits (16 or 32 bytes in byte mode, one QR size smaller).
Spec and vectors: SeedSigner/seedsigner docs/seed_qr/README.md.
"""

from __future__ import annotations

import re

from embit import bip39
from embit.wordlists.bip39 import WORDLIST

_INDEX = {w: i for i, w in enumerate(WORDLIST)}
_STANDARD = re.compile(r"(?:[0-9]{4}){12}\Z|(?:[0-9]{4}){24}\Z")


class SeedQRError(ValueError):
    """A mnemonic or SeedQR payload that is not a valid 12- or 24-word BIP39 seed."""


def _words(mnemonic: str) -> list[str]:
    words = mnemonic.split()
    if len(words) not in (12, 24):
        raise SeedQRError(f"SeedQR holds a 12- or 24-word mnemonic, not {len(words)} words")
    unknown = [w for w in words if w not in _INDEX]
    if unknown:
        raise SeedQRError(f"not BIP39 English words: {', '.join(unknown)}")
    try:
        bip39.mnemonic_to_bytes(" ".join(words))
    except ValueError as e:
        raise SeedQRError(f"mnemonic fails its BIP39 checksum ({e})") from None
    return words


def standard(mnemonic: str) -> str:
    """The Standard SeedQR digit stream (48 or 96 digits)."""
    return "".join(f"{_INDEX[w]:04d}" for w in _words(mnemonic))


def compact(mnemonic: str) -> bytes:
    """The Compact SeedQR payload: the mnemonic's entropy (16 or 32 bytes)."""
    return bip39.mnemonic_to_bytes(" ".join(_words(mnemonic)))


def decode(payload: str | bytes) -> str:
    """The mnemonic in a Standard (digit string) or Compact (16/32 bytes) SeedQR."""
    if isinstance(payload, bytes):
        if len(payload) not in (16, 32):
            raise SeedQRError(f"a Compact SeedQR holds 16 or 32 bytes, not {len(payload)}")
        return bip39.mnemonic_from_bytes(payload)
    if not _STANDARD.match(payload):
        raise SeedQRError("a Standard SeedQR is 48 or 96 digits")
    indexes = [int(payload[i:i + 4]) for i in range(0, len(payload), 4)]
    if max(indexes) >= len(WORDLIST):
        raise SeedQRError(f"word index {max(indexes)} is beyond the 2048-word BIP39 list")
    mnemonic = " ".join(WORDLIST[i] for i in indexes)
    _words(mnemonic)
    return mnemonic
