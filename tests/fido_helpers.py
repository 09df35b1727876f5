"""Shared by the NFC and touch end-to-end tests: a WebAuthn registration over NFC that a hand on the
Prime (robot taps on its prompt) has to answer while the client waits."""

from __future__ import annotations

import threading
from collections.abc import Callable

from fido2.client import DefaultClientDataCollector, Fido2Client
from fido2.server import Fido2Server
from fido2.webauthn import PublicKeyCredentialParameters, PublicKeyCredentialRpEntity, PublicKeyCredentialUserEntity

from hil.stimuli.ctap_nfc import CtapNfcDevice
from hil.stimuli.nfc import reader


def register_over_nfc(nfc: str, answer: Callable[[], None]) -> tuple[Fido2Server, dict, dict]:
    """Register alice at example.com through the reader at ``nfc`` in a thread while ``answer()`` runs in
    the caller's; returns the server, its state and ``{"response": ...}`` or ``{"error": ...}``."""
    server = Fido2Server(PublicKeyCredentialRpEntity(id="example.com", name="Example"), attestation="direct")
    server.allowed_algorithms = [PublicKeyCredentialParameters(type="public-key", alg=-7)]
    options, state = server.register_begin(PublicKeyCredentialUserEntity(id=b"u1", name="alice"),
                                           user_verification="discouraged")
    outcome = {}

    def register():
        try:
            with CtapNfcDevice(reader(nfc).connect(timeout=10)) as dev:
                client = Fido2Client(dev, DefaultClientDataCollector("https://example.com"))
                outcome["response"] = client.make_credential(options.public_key)
        except Exception as e:  # handed to the test thread
            outcome["error"] = e

    thread = threading.Thread(target=register)
    thread.start()
    try:
        answer()
    finally:
        thread.join(30)
    return server, state, outcome
