"""The emulated Prime's CTAP2 authenticator, driven by python-fido2's Ctap2 through an in-memory device."""

import hashlib
import threading
from types import SimpleNamespace

import pytest
from fido2 import cbor
from fido2.ctap import CtapDevice, CtapError
from fido2.ctap2 import Ctap2
from fido2.webauthn import AuthenticatorData
from fido2.hid import CAPABILITY, CTAPHID

from hil.emulator import ctap2 as emu
from hil.emulator.defects import Defects


class FakeUI:
    """The trusted display's modal API: records prompts; a test answers them."""

    def __init__(self, answer=None):
        self.shown, self.dismissed, self.auto = [], [], answer

    def show_modal(self, title, body, buttons, on_answer):
        modal = (title, body, buttons, on_answer)
        self.shown.append(modal)
        if self.auto:
            on_answer(self.auto)
        return modal

    def dismiss(self, modal):
        self.dismissed.append(modal)
        modal[3](None)


class FakePrime:
    def __init__(self, answer="Confirm"):
        self.lock = threading.RLock()
        self.ui = FakeUI(answer)
        self.lines = []
        self.keyos = SimpleNamespace(defects=Defects())  # a good build

    def log(self, line):
        self.lines.append(line)


class Direct(CtapDevice):
    """CTAPHID.CBOR straight into the authenticator, re-sending while it answers USER_ACTION_PENDING."""

    def __init__(self, auth, resend=True):
        self.auth, self.resend, self.pending = auth, resend, 0

    capabilities = CAPABILITY.CBOR

    def call(self, cmd, data=b"", event=None, on_keepalive=None):
        assert cmd == CTAPHID.CBOR
        while True:
            resp = self.auth.process(data[0], data[1:])
            if resp[:1] != bytes([emu.USER_ACTION_PENDING]) or not self.resend:
                return resp
            self.pending += 1

    @classmethod
    def list_devices(cls):
        return iter(())


CDH = hashlib.sha256(b"client data").digest()
RP = {"id": "example.com", "name": "Example"}
USER = {"id": b"user-1", "name": "alice"}
ES256 = [{"type": "public-key", "alg": -7}]


def make(answer="Confirm", **kw):
    prime = FakePrime(answer)
    auth = emu.Authenticator(prime, b"k" * 32, **kw)
    return prime, auth, Ctap2(Direct(auth))


def test_get_info_advertises_what_is_enforced():
    _, _, ctap = make()
    info = ctap.info
    assert info.versions == ["U2F_V2", "FIDO_2_0"]
    assert info.options == {"up": True}
    assert "nfc" in info.transports


def test_register_then_authenticate_with_prompts_on_the_display():
    prime, auth, ctap = make()
    att = ctap.make_credential(CDH, RP, USER, ES256)
    assert att.fmt == "packed" and att.auth_data.is_user_present()
    cred = att.auth_data.credential_data
    att.auth_data.credential_data.public_key.verify(bytes(att.auth_data) + CDH, att.att_stmt["sig"])
    title, body, buttons, _ = prime.ui.shown[0]
    assert (title, buttons) == ("Confirm Registration", ["Cancel", "Confirm"])
    assert "Register this Security Key?" in body and "example.com" in body

    assertion = ctap.get_assertion("example.com", CDH, allow_list=[{"type": "public-key", "id": cred.credential_id}])
    assert assertion.credential["id"] == cred.credential_id
    assert (att.auth_data.counter, assertion.auth_data.counter) == (0, 1)  # KeyOS's per-credential counter
    again = ctap.get_assertion("example.com", CDH, allow_list=[{"type": "public-key", "id": cred.credential_id}])
    assert again.auth_data.counter == 2
    cred.public_key.verify(bytes(assertion.auth_data) + CDH, assertion.signature)
    assert prime.ui.shown[1][0] == "Confirm Authentication"
    assert "Authenticate with key “Prime”" in prime.ui.shown[1][1]


def test_credential_is_bound_to_its_rp_and_device():
    _, _, ctap = make()
    cred_id = ctap.make_credential(CDH, RP, USER, ES256).auth_data.credential_data.credential_id
    with pytest.raises(CtapError) as e:
        ctap.get_assertion("evil.example", CDH, allow_list=[{"type": "public-key", "id": cred_id}])
    assert e.value.code == CtapError.ERR.NO_CREDENTIALS
    other = Ctap2(Direct(emu.Authenticator(FakePrime(), b"x" * 32)))
    with pytest.raises(CtapError) as e:
        other.get_assertion("example.com", CDH, allow_list=[{"type": "public-key", "id": cred_id}])
    assert e.value.code == CtapError.ERR.NO_CREDENTIALS


def test_cancel_on_the_prompt_denies():
    _, _, ctap = make(answer="Cancel")
    with pytest.raises(CtapError) as e:
        ctap.make_credential(CDH, RP, USER, ES256)
    assert e.value.code == CtapError.ERR.OPERATION_DENIED


def test_unanswered_prompt_times_out_and_is_taken_down():
    prime, auth, _ = make(answer=None, up_timeout=0.2)
    ctap = Ctap2(Direct(auth))
    with pytest.raises(CtapError) as e:
        ctap.make_credential(CDH, RP, USER, ES256)
    assert e.value.code == CtapError.ERR.USER_ACTION_TIMEOUT
    assert prime.ui.dismissed == prime.ui.shown  # the prompt left the screen


def test_pending_until_the_user_answers():
    prime, auth, _ = make(answer=None)
    ctap = Ctap2(Direct(auth, resend=False))
    with pytest.raises(CtapError) as e:
        ctap.make_credential(CDH, RP, USER, ES256)
    assert e.value.code == CtapError.ERR.USER_ACTION_PENDING
    prime.ui.shown[0][3]("Confirm")
    assert ctap.make_credential(CDH, RP, USER, ES256).auth_data.is_user_present()  # the same request, re-sent
    assert len(prime.ui.shown) == 1


def test_excluded_credential_is_refused():
    _, _, ctap = make()
    cred_id = ctap.make_credential(CDH, RP, USER, ES256).auth_data.credential_data.credential_id
    with pytest.raises(CtapError) as e:
        ctap.make_credential(CDH, RP, USER, ES256, exclude_list=[{"type": "public-key", "id": cred_id}])
    assert e.value.code == CtapError.ERR.CREDENTIAL_EXCLUDED


@pytest.mark.parametrize("kwargs, code", [
    ({"key_params": [{"type": "public-key", "alg": -8}]}, CtapError.ERR.UNSUPPORTED_ALGORITHM),
    ({"options": {"rk": True}}, CtapError.ERR.UNSUPPORTED_OPTION),
    ({"options": {"uv": True}}, CtapError.ERR.INVALID_OPTION),
    ({"options": {"up": False}}, CtapError.ERR.INVALID_OPTION),
    ({"pin_uv_param": b"x" * 16, "pin_uv_protocol": 1}, CtapError.ERR.INVALID_PARAMETER),
    ({"pin_uv_param": b"x" * 16}, CtapError.ERR.MISSING_PARAMETER),
    ({"enterprise_attestation": 1}, CtapError.ERR.INVALID_PARAMETER),
])
def test_make_credential_refuses_what_keyos_refuses(kwargs, code):
    prime, _, ctap = make()
    args = {"client_data_hash": CDH, "rp": RP, "user": USER, "key_params": ES256} | kwargs
    with pytest.raises(CtapError) as e:
        ctap.make_credential(**args)
    assert e.value.code == code
    assert prime.ui.shown == []  # refused before anything was asked of the user


@pytest.mark.parametrize("data, code", [
    (b"\x01\xff\xff", emu.INVALID_CBOR),
    (b"\x01\x80", emu.CBOR_UNEXPECTED_TYPE),
    (b"\x01\xa1\x01\x40", emu.MISSING_PARAMETER),
    (b"\x04\x00", emu.INVALID_LENGTH),
    (b"\x06", emu.INVALID_COMMAND),
    (b"\x02" + cbor.encode({1: "example.com", 2: CDH, 3: [5]}), emu.CBOR_UNEXPECTED_TYPE),  # allowList entry not a map
])
def test_garbage_requests_get_ctap_errors(data, code):
    _, auth, _ = make()
    assert auth.process(data[0], data[1:]) == bytes([code])


def test_none_attestation_when_asked_and_silent_assertion():
    _, auth, ctap = make()
    raw = ctap.send_cbor(Ctap2.CMD.MAKE_CREDENTIAL, {1: CDH, 2: RP, 3: USER, 4: ES256, 11: ["none"]})
    assert raw[1] == "none" and raw[3] == {}
    cred = AuthenticatorData(raw[2]).credential_data
    silent = ctap.get_assertion("example.com", CDH, [{"type": "public-key", "id": cred.credential_id}],
                                options={"up": False})
    assert not silent.auth_data.is_user_present()
    cred.public_key.verify(bytes(silent.auth_data) + CDH, silent.signature)
