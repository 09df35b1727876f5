"""The emulated secure element: PIN, login attempts, the seed and the security words.

Mirrors ``os/security``: a PIN of at least 6 digits, 10 login attempts after which the seed is erased,
the seed the unit was provisioned with (KeyOS's ``SetSeedAndPin`` takes it from onboarding; a lab provisions
its test mnemonic), per-app seeds derived from it, and two anti-phishing "security words" derived from the
PIN prefix, the SE serial and the seed fingerprint.  The SE serial is derived from the emulator seed so runs
repeat.
"""

from __future__ import annotations

import hashlib
import hmac

from embit import bip39
from embit.wordlists.bip39 import WORDLIST

from hil.emulator.defects import Defects

MAX_LOGIN_ATTEMPTS = 10
MIN_PIN_LENGTH = 6
PIN_PREFIX_LENGTH = 4  # the digits the security words are derived from, shown while typing


class SecureElement:
    def __init__(self, emulator_seed: int, serial: str, seed: bytes):
        """``seed``: the provisioned seed's BIP39 entropy (16 or 32 bytes: KeyOS's ``Seed``, api/security/src/lib.rs)."""
        material = hashlib.sha256(f"prime-emulator:{emulator_seed}:{serial}".encode()).digest()
        self.serial = serial
        self.se_serial = material[:9]  # an ATECC-style 9-byte serial number
        self._entropy: bytes | None = seed
        self._pin: str | None = None
        self.attempts_remaining = MAX_LOGIN_ATTEMPTS
        self.logged_in = False
        self.defects = Defects()  # the running build's, set at each boot

    @property
    def max_attempts(self) -> int:
        return MAX_LOGIN_ATTEMPTS + (1 if self.defects.has("pin-attempt-limit-not-ten") else 0)

    @staticmethod
    def valid_pin(pin: str) -> bool:
        return len(pin) >= MIN_PIN_LENGTH and pin.isascii() and pin.isdigit()

    # ------------------------------------------------------------ PIN
    def set_seed_and_pin(self, pin: str) -> None:
        if not self.valid_pin(pin):
            raise ValueError(f"PIN must be at least {MIN_PIN_LENGTH} digits")
        if self._entropy is None:
            raise ValueError("no seed: the device was wiped")
        self._pin = pin
        self.attempts_remaining = self.max_attempts

    @property
    def pin_set(self) -> bool:
        return self._pin is not None

    def forget_pin(self) -> None:
        """A unit before onboarding: seed kept, no PIN yet."""
        self._pin, self.logged_in = None, False

    @property
    def wiped(self) -> bool:
        return self._entropy is None

    def login(self, pin: str) -> bool:
        """One attempt. The tenth wrong PIN erases the seed (the caller reboots into a wiped device)."""
        if self.wiped or self._pin is None or self.attempts_remaining == 0:
            return False
        typed = pin[:len(self._pin)] if self.defects.has("pin-judged-by-its-prefix") else pin
        if hmac.compare_digest(typed.encode(), self._pin.encode()):
            if self.attempts_remaining == 1 and self.defects.has("last-attempt-refuses-right-pin"):
                return False
            self.logged_in = True
            if not self.defects.has("login-keeps-failed-attempts"):
                self.attempts_remaining = self.max_attempts
            return True
        self.attempts_remaining -= 1
        if self.defects.has("wrong-pin-wipes-at-once"):
            self.attempts_remaining = 0
        if self.attempts_remaining == 0:
            self.wipe()
        return False

    def logout(self) -> None:
        self.logged_in = False

    def wipe(self) -> None:
        self._entropy = None
        self._pin = None
        self.logged_in = False
        self.attempts_remaining = 0

    # ------------------------------------------------------------ seed
    def _seed(self) -> bytes:
        if self._entropy is None:
            raise ValueError("no seed: the device was wiped")
        if self.defects.has("twelve-word-seed-stored-as-32-bytes"):
            return self._entropy.ljust(32, b"\0")
        return self._entropy

    def mnemonic(self) -> str:
        """``GetSeed``: the master seed words (Foundation-only callers)."""
        return bip39.mnemonic_from_bytes(self._seed())

    def seed_fingerprint(self) -> bytes:
        return hashlib.sha256(b"SeedFingerprint" + self._seed()).digest()[:4]

    def app_seed(self, app_id: bytes) -> bytes:
        """``GetAppSeed``: HMAC-SHA256 keyed by the app's 16-byte id over the master seed (os/security/src/
        atsama5d2.rs ``get_app_seed``: ``crypto.hmac256(sender_app_id, master_seed)``; api/crypto/src/lib.rs
        ``hmac256(key, data)``), so each app's seed is its own and follows from the seed alone."""
        return hmac.new(app_id, self._seed(), hashlib.sha256).digest()

    def security_words(self, pin_prefix: str) -> tuple[str, str]:
        """``GetSecurityWords``: two BIP39 words from the PIN prefix, SE serial and seed fingerprint."""
        fingerprint = self.seed_fingerprint() if not self.wiped else b""
        if self.defects.has("security-words-ignore-pin"):
            pin_prefix = ""
        digest = hashlib.sha256(pin_prefix.encode() + self.se_serial + fingerprint).digest()
        first, second = int.from_bytes(digest[:2], "big") >> 5, int.from_bytes(digest[2:4], "big") >> 5
        return WORDLIST[first], WORDLIST[second]
