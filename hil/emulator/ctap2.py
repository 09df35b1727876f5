"""The emulated Prime's FIDO2 authenticator (CTAP 2.0 over NFC), following KeyOS ``os/fido/src/ctap``.

What it holds to, as KeyOS does: ES256 only (``UNSUPPORTED_ALGORITHM`` otherwise); no built-in UV
(``uv``: ``INVALID_OPTION``); no discoverable credentials (``rk`` present: ``UNSUPPORTED_OPTION``);
``up: false`` on makeCredential refused; pinUvAuth not supported; enterprise attestation refused; an
excluded credential gives ``CREDENTIAL_EXCLUDED``. User presence is KeyOS's non-blocking model: the
first request shows the Security Keys prompt on the trusted display and answers
``USER_ACTION_PENDING``; the platform re-sends the same request (matched by its hash) until the user
has answered: Confirm lets it through, Cancel or a dropped prompt is ``OPERATION_DENIED``, and a prompt
left unanswered past ``up_timeout`` is taken down and answered ``USER_ACTION_TIMEOUT``.

Credential ids wrap the credential's private key (AES-256-GCM under the device's master key, the
rpIdHash as associated data), so an id from another RP or another device does not unwrap. Only the
signature counter is kept per credential, as KeyOS keeps it per registered key: 0 at registration, raised
by one before each signature (``os/fido/src/implementation.rs`` ``create_registered_key_ctap``, ``sign_der``;
``os/fido/src/lib.rs`` ``RegisteredKey::inc_signature_counter``), so a credential's first assertion signs 1.
A request is decoded whole before anything else; a member of the wrong CBOR type is
``CBOR_UNEXPECTED_TYPE`` (``os/fido/src/ctap/error.rs``: minicbor's type mismatch), e.g. an allowList entry
that is not a descriptor map. Attestation is ``packed`` self attestation, or ``none`` when the
platform asks for only that.

KeyOS at the inspected commit answers every CTAP2 command with InvalidCommand ("CTAP2 disabled ...
force U2F fallback") and advertises only U2F_V2; this models the CTAP2 path KeyOS implements behind
that switch, and advertises FIDO_2_0.
"""

from __future__ import annotations

import hashlib
import os
import struct
import threading
import time

import cbor2
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

# CTAP2 command bytes and status codes (CTAP 2.1 §6, §8.2)
GET_INFO, MAKE_CREDENTIAL, GET_ASSERTION = 0x04, 0x01, 0x02
OK = 0x00
INVALID_COMMAND, INVALID_PARAMETER, INVALID_LENGTH = 0x01, 0x02, 0x03
CBOR_UNEXPECTED_TYPE, INVALID_CBOR, MISSING_PARAMETER = 0x11, 0x12, 0x14
CREDENTIAL_EXCLUDED, USER_ACTION_PENDING, UNSUPPORTED_ALGORITHM = 0x19, 0x23, 0x26
OPERATION_DENIED, UNSUPPORTED_OPTION, INVALID_OPTION = 0x27, 0x2B, 0x2C
NO_CREDENTIALS, USER_ACTION_TIMEOUT = 0x2E, 0x2F
ES256 = -7
FLAG_UP, FLAG_AT = 0x01, 0x40
# The prompt texts of KeyOS's Security Keys app (apps/gui-app-security-keys/i18n/en.json)
REGISTER_TITLE, REGISTER_BODY = "Confirm Registration", "Register this Security Key?"
AUTH_TITLE, AUTH_BODY = "Confirm Authentication", "Authenticate with key “{0}”"
BUTTONS = ["Cancel", "Confirm"]
KEY_LABEL = "Prime"
CRED_ID_VERSION = 1


class CtapStatus(Exception):
    def __init__(self, code: int):
        super().__init__(f"CTAP status 0x{code:02X}")
        self.code = code


class _Prompt:
    def __init__(self, fingerprint: bytes):
        self.fingerprint = fingerprint
        self.started = self.last_poll = time.monotonic()
        self.answer: str | None = None
        self.answered = threading.Event()
        self.modal = None


class Authenticator:
    def __init__(self, prime, master_key: bytes, aaguid: bytes = b"\0" * 16, up_timeout: float = 30.0,
                 abandon_after: float = 5.0):
        self.prime = prime
        self.aead = AESGCM(hashlib.sha256(b"ctap2-credential-wrap" + master_key).digest())
        self.aaguid = aaguid
        self.up_timeout = up_timeout
        self.abandon_after = abandon_after  # a prompt whose platform stopped re-sending is taken down
        self.counters: dict[bytes, int] = {}  # credential id -> its signature counter
        self._prompt: _Prompt | None = None

    # ------------------------------------------------------------ entry point

    def process(self, cmd: int, data: bytes) -> bytes:
        """One CTAP2 request (command byte + CBOR) -> status byte + CBOR."""
        try:
            if cmd == GET_INFO:
                if self._defect("ctap-get-info-takes-a-parameter"):
                    data = b""
                if data:
                    raise CtapStatus(INVALID_LENGTH)
                return bytes([OK]) + _cbor(self.info())
            if cmd not in (MAKE_CREDENTIAL, GET_ASSERTION):
                raise CtapStatus(INVALID_COMMAND)
            req = _decode_map(data)
            fingerprint = hashlib.sha256(bytes([cmd]) + data).digest()
            if self._defect("ctap-presence-matched-by-rp"):  # the re-sent request recognised by its RP alone
                fingerprint = hashlib.sha256(bytes([cmd]) + _cbor(req.get(2 if cmd == MAKE_CREDENTIAL else 1))).digest()
            body = self.make_credential(req, fingerprint) if cmd == MAKE_CREDENTIAL else \
                self.get_assertion(req, fingerprint)
            return bytes([OK]) + _cbor(body)
        except CtapStatus as s:
            return bytes([s.code])

    def info(self) -> dict:
        return {1: ["U2F_V2", "FIDO_2_0"], 3: self.aaguid, 4: {"up": True}, 9: ["nfc", "usb"],
                10: [{"alg": ES256, "type": "public-key"}]}

    # ------------------------------------------------------------ authenticatorMakeCredential

    def make_credential(self, req: dict, fingerprint: bytes) -> dict:
        cdh = _need(req, 1, bytes)
        rp = _need(req, 2, dict)
        user = _need(req, 3, dict)
        params = _need(req, 4, list)
        rp_id = _field(rp, "id", str)
        _field(user, "id", bytes)
        _check_pin_uv(req)
        if self._defect("ctap-registers-without-a-shared-algorithm"):
            params = [{"alg": ES256, "type": "public-key"}]
        if not any(isinstance(p, dict) and p.get("alg") == ES256 and p.get("type") == "public-key" for p in params):
            raise CtapStatus(UNSUPPORTED_ALGORITHM)
        opts = _options(req.get(7), self._defect("ctap-accepts-uv-option"), self._defect("ctap-ignores-rk-option"))
        if opts.get("up") is False:
            raise CtapStatus(INVALID_OPTION)
        if 10 in req:  # enterpriseAttestation
            raise CtapStatus(INVALID_PARAMETER)
        rp_hash = hashlib.sha256(rp_id.encode()).digest()
        excluded = req.get(5) or []
        if self._defect("ctap-exclude-list-checks-its-first-entry-only"):
            excluded = excluded[:1]
        for cred in excluded:
            if isinstance(cred, dict) and isinstance(cred.get("id"), bytes) and self._unwrap(cred["id"], rp_hash):
                raise CtapStatus(CREDENTIAL_EXCLUDED)
        who = user.get("displayName") or user.get("name") or ""
        shown = rp.get("name") if self._defect("ctap-prompt-names-the-rp-by-its-own-name") else rp_id
        self._presence(fingerprint, REGISTER_TITLE, f"{REGISTER_BODY}\n{shown}\n{who}".rstrip())
        key = ec.generate_private_key(ec.SECP256R1())
        cred_id = self._wrap(key, rp_hash)
        pub = key.public_key().public_numbers()
        crv = 2 if self._defect("ctap-cose-key-wrong-curve") else 1  # COSE crv 1: P-256
        cose = _cbor({1: 2, 3: ES256, -1: crv, -2: pub.x.to_bytes(32, "big"), -3: pub.y.to_bytes(32, "big")})
        counted = rp_hash if self._defect("ctap-counter-kept-per-rp") else cred_id
        self.counters[counted] = 0  # assumed: the registration's authData counts 0 (KeyOS's AuthData::new, not read)
        auth_data = (rp_hash + bytes([FLAG_UP | FLAG_AT]) + struct.pack(">I", self.counters[counted]) + self.aaguid
                     + struct.pack(">H", len(cred_id)) + cred_id + cose)
        self.prime.log(f"INFO:fido::ctap: MakeCredential registered for {rp_id}")
        if req.get(11) == ["none"]:
            return {1: "none", 2: auth_data, 3: {}}
        sig = key.sign(auth_data + cdh, ec.ECDSA(hashes.SHA256()))
        return {1: "packed", 2: auth_data, 3: {"alg": ES256, "sig": sig}}

    # ------------------------------------------------------------ authenticatorGetAssertion

    def get_assertion(self, req: dict, fingerprint: bytes) -> dict:
        rp_id = _need(req, 1, str)
        cdh = _need(req, 2, bytes)
        _check_pin_uv(req)
        opts = _options(req.get(5), self._defect("ctap-assertion-accepts-uv-option"))
        rp_hash = hashlib.sha256(rp_id.encode()).digest()
        allow = req.get(3) or []
        if not isinstance(allow, list):
            raise CtapStatus(CBOR_UNEXPECTED_TYPE)
        if not all(isinstance(cred, dict) for cred in allow):  # each entry is decoded as a descriptor map first
            if not self._defect("ctap-skips-non-map-allow-entries"):
                raise CtapStatus(CBOR_UNEXPECTED_TYPE)
            allow = [cred for cred in allow if isinstance(cred, dict)]
        found = None
        for cred in allow:
            if isinstance(cred.get("id"), bytes):
                key = self._unwrap(cred["id"], rp_hash)
                if key is not None:
                    found = (cred["id"], key)
                    break
        if found is None:
            raise CtapStatus(NO_CREDENTIALS)
        flags = FLAG_UP if self._defect("ctap-silent-assertion-claims-presence") else 0
        if opts.get("up", True):
            self._presence(fingerprint, AUTH_TITLE, f"{AUTH_BODY.format(KEY_LABEL)}\n{rp_id}")
            flags |= FLAG_UP
        counted = rp_hash if self._defect("ctap-counter-kept-per-rp") else found[0]
        counter = self.counters.get(counted, 0)
        if not self._defect("ctap-counter-frozen-on-assertion"):
            counter += 1
        self.counters[counted] = counter
        auth_data = rp_hash + bytes([flags]) + struct.pack(">I", counter)
        sig = found[1].sign(auth_data + cdh, ec.ECDSA(hashes.SHA256()))
        self.prime.log(f"INFO:fido::ctap: GetAssertion for {rp_id}")
        return {1: {"id": found[0], "type": "public-key"}, 2: auth_data, 3: sig}

    # ------------------------------------------------------------ credential ids

    def _wrap(self, key: ec.EllipticCurvePrivateKey, rp_hash: bytes) -> bytes:
        nonce = os.urandom(12)
        secret = key.private_numbers().private_value.to_bytes(32, "big")
        return bytes([CRED_ID_VERSION]) + nonce + self.aead.encrypt(nonce, secret, self._bound_to(rp_hash))

    def _bound_to(self, rp_hash: bytes) -> bytes:
        """The associated data that scopes a credential id to its RP."""
        return b"" if self._defect("ctap-credential-not-rp-scoped") else rp_hash

    def _unwrap(self, cred_id: bytes, rp_hash: bytes) -> ec.EllipticCurvePrivateKey | None:
        if len(cred_id) != 1 + 12 + 32 + 16 or cred_id[0] != CRED_ID_VERSION:
            return None
        try:
            secret = self.aead.decrypt(cred_id[1:13], cred_id[13:], self._bound_to(rp_hash))
        except InvalidTag:
            return None
        return ec.derive_private_key(int.from_bytes(secret, "big"), ec.SECP256R1())

    # ------------------------------------------------------------ user presence on the trusted display

    def _presence(self, fingerprint: bytes, title: str, body: str) -> None:
        now = time.monotonic()
        live = self._prompt
        if live is not None and not live.answered.is_set() and now - live.last_poll > self.abandon_after:
            self._take_down(live)  # its platform went away
            live = None
        if live is not None and live.fingerprint != fingerprint:
            if live.answered.is_set() and self._defect("ctap-confirm-outlives-its-request"):
                live.fingerprint = fingerprint  # the answer is taken for whichever request comes next
            elif live.answered.is_set():
                self._prompt = live = None
            else:
                raise CtapStatus(USER_ACTION_PENDING)  # one prompt at a time; the other platform waits
        if live is None:
            live = self._prompt = _Prompt(fingerprint)

            def on_answer(answer, p=live):
                p.answer = answer
                p.answered.set()

            with self.prime.lock:
                live.modal = self.prime.ui.show_modal(title, body, BUTTONS, on_answer)
                if self._defect("ctap-prompt-over-lockscreen"):
                    live.modal.over_lock = True
                    self.prime.ui.refresh_modals()
            raise CtapStatus(USER_ACTION_PENDING)
        live.last_poll = now
        if live.answered.is_set():
            if live.answer != "Confirm" or not self._defect("ctap-confirm-answers-twice"):
                self._prompt = None  # the answer is spent on this request
            if live.answer == "Confirm" or (live.answer is None and self._defect("ctap-dropped-prompt-allows")):
                return
            raise CtapStatus(OPERATION_DENIED)
        if now - live.started > self.up_timeout:
            self._take_down(live)
            raise CtapStatus(USER_ACTION_TIMEOUT)
        raise CtapStatus(USER_ACTION_PENDING)

    def _defect(self, name: str) -> bool:
        return self.prime.keyos.defects.has(name)

    def _take_down(self, prompt: _Prompt) -> None:
        self._prompt = None
        with self.prime.lock:
            self.prime.ui.dismiss(prompt.modal)


# ---------------------------------------------------------------- CBOR helpers

def _cbor(obj) -> bytes:
    return cbor2.dumps(obj, canonical=True)


def _decode_map(data: bytes) -> dict:
    try:
        obj = cbor2.loads(data)
    except Exception:
        raise CtapStatus(INVALID_CBOR) from None
    if not isinstance(obj, dict):
        raise CtapStatus(CBOR_UNEXPECTED_TYPE)
    return obj


def _need(req: dict, key: int, typ: type):
    if key not in req:
        raise CtapStatus(MISSING_PARAMETER)
    if not isinstance(req[key], typ):
        raise CtapStatus(CBOR_UNEXPECTED_TYPE)
    return req[key]


def _field(m: dict, key: str, typ: type):
    if key not in m:
        raise CtapStatus(MISSING_PARAMETER)
    if not isinstance(m[key], typ):
        raise CtapStatus(CBOR_UNEXPECTED_TYPE)
    return m[key]


def _check_pin_uv(req: dict) -> None:
    if 8 in req:  # pinUvAuthParam: no PIN/UV protocol is supported
        raise CtapStatus(INVALID_PARAMETER if 9 in req else MISSING_PARAMETER)


def _options(opts, uv_taken: bool = False, rk_ignored: bool = False) -> dict:
    """``uv_taken`` / ``rk_ignored``: a seeded defect's authenticator, which lets a request that demands user
    verification on / answers a request for a discoverable credential with a plain one."""
    if opts is None:
        return {}
    if not isinstance(opts, dict) or not all(isinstance(v, bool) for v in opts.values()):
        raise CtapStatus(CBOR_UNEXPECTED_TYPE)
    if opts.get("uv") is True and not uv_taken:
        raise CtapStatus(INVALID_OPTION)  # no built-in user verification
    if "rk" in opts and not rk_ignored:
        raise CtapStatus(UNSUPPORTED_OPTION)  # no discoverable credentials
    return opts
