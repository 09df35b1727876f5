"""FIDO2 over NFC (keyos.md §4 "NFC": T4T card emulation, FIDO AID, NFCCTAP): python-fido2's CTAP2 client
through the station's reader against the Prime's authenticator.

User presence is KeyOS's non-blocking model (``hil.stimuli.ctap_nfc``): the Prime shows the Security Keys
prompt and answers USER_ACTION_PENDING until the user has answered. What must hold: only Confirm lets a
request through (Cancel, or a prompt dropped unanswered, is OPERATION_DENIED); no prompt is drawn over
the lock screen (it waits for the login); a credential id works only for the RP id it was made for.

Every wait is on an event: the client's keepalive (the Prime holds the request), the prompt read on the
display, the request's own end; each with a deadline, past which the run is broken, not failed.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from cryptography.exceptions import InvalidSignature
from fido2 import cbor
from fido2.ctap import STATUS, CtapError
from fido2.hid import CTAPHID
from fido2.ctap2 import Ctap2

from hil.errors import InfrastructureError
from hil.link.state import show_lock_screen, wait_unlocked
from hil.machine import scaled
from hil.stimuli.ctap_nfc import CtapNfcDevice
from hil.stimuli.nfc import reader
from hil.stimuli.touch import enter_pin
from hil.vision.pin_screen import NotAPinScreen, wait_pin_screen
from security_helpers import PromptNotSeen, title_shown, wait_readable, waited

pytestmark = [pytest.mark.security, pytest.mark.fido]

# apps/gui-app-security-keys/i18n/en.json (as hil/emulator/ctap2.py cites them)
REGISTER_TITLE, AUTH_TITLE = "Confirm Registration", "Confirm Authentication"
RP = {"id": "example.com", "name": "Example"}
USER = {"id": b"hil-user", "name": "alice"}
ES256 = [{"type": "public-key", "alg": -7}]
CONNECT_S = 10.0  # the reader finds the Prime's card within this on an idle host (scaled with the load)
ANSWER_S = 60.0  # a request ends within this once the user has answered (the platform polls every 0.1 s)
LOCKED_WATCH_S = 1.5  # reads of the lock screen after the Prime took the request (camera frames lag)


class RequestBroken(InfrastructureError):
    """The CTAP2 request never reached a verdict (reader, link or deadline): no evidence either way."""


class CtapRequest:
    """One CTAP2 command from python-fido2, sent in a thread while the test acts as the user.  ``pending``
    is set when the Prime answers USER_ACTION_PENDING: it holds the request and wants presence."""

    def __init__(self, nfc: str, command: Callable[[Ctap2, dict[str, Any]], Any]):
        self.pending, self.done, self.cancel = threading.Event(), threading.Event(), threading.Event()
        self.result: Any = None
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(nfc, command), daemon=True)
        self._thread.start()

    def _run(self, nfc: str, command) -> None:
        try:
            with CtapNfcDevice(reader(nfc).connect(timeout=scaled(CONNECT_S))) as dev:
                self.result = command(Ctap2(dev), {"event": self.cancel, "on_keepalive": self._keepalive})
        except BaseException as e:  # handed to the test thread
            self.error = e
        finally:
            self.done.set()

    def _keepalive(self, status: int) -> None:
        if status == STATUS.UPNEEDED:
            self.pending.set()

    def wait_pending(self, timeout: float = CONNECT_S + 20) -> bool:
        """True once the Prime asks for presence; False if the request ended without asking."""
        deadline = time.monotonic() + scaled(timeout)
        while not (self.pending.is_set() or self.done.is_set()):
            if time.monotonic() > deadline:
                raise RequestBroken(f"the Prime neither asked for presence nor answered within {waited(timeout)}")
            self.pending.wait(0.1)  # or done: checked again at least every tenth of a second
        return self.pending.is_set()

    def outcome(self, timeout: float = ANSWER_S) -> tuple[Any, CtapError | None]:
        """(result, None) or (None, the CTAP error the Prime answered); broken on anything else."""
        if not self.done.wait(scaled(timeout)):
            raise RequestBroken(f"the CTAP2 request did not end within {waited(timeout)}")
        if self.error is None:
            return self.result, None
        if type(self.error) is CtapError:
            return None, self.error
        raise RequestBroken(f"the CTAP2 request failed outside the authenticator: {self.error!r}") from self.error

    def close(self) -> None:
        self.cancel.set()
        self._thread.join(scaled(ANSWER_S))


@pytest.fixture
def nfc(station) -> str:
    if not station.nfc:
        pytest.skip(f"station {station.name} has no NFC reader")
    return station.nfc


def _register(nfc: str) -> CtapRequest:
    cdh = os.urandom(32)  # each request its own, so the Prime never takes it for a re-send of another
    return CtapRequest(nfc, lambda ctap, kw: ctap.make_credential(cdh, RP, USER, ES256, **kw))


def _assert(nfc: str, rp_id: str, cred_id: bytes, cdh: bytes | None = None) -> CtapRequest:
    cdh = cdh or os.urandom(32)
    allow = [{"type": "public-key", "id": cred_id}]
    return CtapRequest(nfc, lambda ctap, kw: ctap.get_assertion(rp_id, cdh, allow, **kw))


def _answer(screen, request: CtapRequest, title: str, button: str):
    """The prompt read on the display, then ``button`` pressed on it; the request's outcome."""
    if not request.wait_pending():
        return request.outcome()
    shown = screen.wait_for(title, timeout=15)
    screen.tap_text(button, shown)
    return request.outcome()


def test_cancelled_or_dropped_presence_prompt_is_operation_denied(unlocked_prime, nfc, screen):
    """Only Confirm is presence: Cancel, and a prompt dropped unanswered (home button), answer OPERATION_DENIED."""
    cancelled = _register(nfc)
    try:
        _, error = _answer(screen, cancelled, REGISTER_TITLE, "Cancel")
    finally:
        cancelled.close()
    assert error is not None and error.code == CtapError.ERR.OPERATION_DENIED, \
        f"Cancel on the presence prompt answered {error or 'a credential'}"
    dropped = _register(nfc)
    try:
        if not dropped.wait_pending():
            pytest.fail(f"the Prime answered without asking for presence: {dropped.outcome()}")
        screen.wait_for(REGISTER_TITLE, timeout=15)
        unlocked_prime.home()  # leaves the prompt unanswered
        _, error = dropped.outcome()
    finally:
        dropped.close()
    assert error is not None and error.code == CtapError.ERR.OPERATION_DENIED, \
        f"a dropped presence prompt answered {error or 'a credential'}"


def _assert_no_fido_prompt(screen, when: str) -> None:
    """Positive evidence on every read for a few frames: the display shows something, and not the prompt."""
    wait_readable(screen, 5.0)
    deadline = time.monotonic() + scaled(LOCKED_WATCH_S)
    while time.monotonic() < deadline:
        text = screen.text()
        if not text.strip():
            raise PromptNotSeen(f"nothing read on the display {when}")
        assert not title_shown(REGISTER_TITLE, text), f"a presence prompt is on the lock screen {when}: {text!r}"
        time.sleep(0.25)


def _pin_screen_or_none(look, touch):
    try:
        return wait_pin_screen(look, touch)
    except NotAPinScreen:
        return None


def test_no_presence_prompt_over_the_lock_screen(unlocked_prime, nfc, screen, touch, look, pin):
    """A request arriving while locked waits behind the lock screen (no prompt there), and is asked after
    the login (keyos.md §1.4, §2.3: prompts are never shown over the lock screen)."""
    show_lock_screen(unlocked_prime, touch)
    request = _register(nfc)
    try:
        try:
            if not request.wait_pending():
                pytest.fail(f"the locked Prime answered without asking for presence: {request.outcome()}")
            _assert_no_fido_prompt(screen, "while the Prime held a FIDO request")
        finally:  # the PIN only where the lock screen shows its pad; a failure above is not masked
            pad = _pin_screen_or_none(look, touch)
            if pad is not None:
                enter_pin(touch, pad, pin)
        if pad is None:
            raise PromptNotSeen("the PIN screen was not readable to log in after the held request")
        assert wait_unlocked(unlocked_prime), "the test PIN typed on the lock screen did not unlock"
        shown = screen.wait_for(REGISTER_TITLE, timeout=15)
        screen.tap_text("Confirm", shown)
        result, error = request.outcome()
    finally:
        request.close()
    if error is not None and error.code == CtapError.ERR.USER_ACTION_TIMEOUT:  # the login outlasted the prompt's time
        raise RequestBroken(f"the held request timed out before the login and the Confirm reached it: {error}")
    assert error is None and result.auth_data.is_user_present(), f"the request held over the lock: {error}"


def _credential(nfc, screen):
    """A credential for example.com, registered with the user's Confirm (the control of the checks that use it):
    its attested credential data (id, public key)."""
    return _confirmed(screen, _register(nfc), REGISTER_TITLE, "registration").auth_data.credential_data


def _confirmed(screen, request: CtapRequest, title: str, what: str):
    """``request``'s answer once its prompt (``title``) is confirmed: a control, so any error fails the check."""
    try:
        answer, error = _answer(screen, request, title, "Confirm")
    finally:
        request.close()
    assert error is None, f"the confirmed {what} (control) failed: {error}"
    return answer


def test_the_registration_prompt_names_the_rp_id(unlocked_prime, nfc, screen):
    """The trusted display names the RP by its id, the one identity the credential is bound to (its rpIdHash), never
    by the name the RP gives itself (WebAuthn rp.name is the RP's own, unverified text; the prompt's RP line is the
    emulator's, hil/emulator/ctap2.py, assumed of KeyOS's Security Keys app): a registration for example.com calling
    itself "paypal.com" shows example.com, and not paypal.com."""
    cdh = os.urandom(32)
    posing = {"id": RP["id"], "name": "paypal.com"}
    request = CtapRequest(nfc, lambda ctap, kw: ctap.make_credential(cdh, posing, USER, ES256, **kw))
    try:
        assert request.wait_pending(), "the registration (control) was answered without a presence prompt"
        shown = screen.wait_for(REGISTER_TITLE, timeout=15)
        text = " ".join(line.text for line in shown.lines).lower()
        screen.tap_text("Cancel", shown)
        request.outcome()
    finally:
        request.close()
    assert "paypal.com" not in text and RP["id"] in text, \
        f"the registration prompt for {RP['id']} (calling itself paypal.com) read: {text!r}"


def test_credentials_are_scoped_to_their_rp_id(unlocked_prime, nfc, screen):
    """A credential made for example.com asserts for example.com only; for another RP id the Prime has no
    credential (NO_CREDENTIALS) and asks nobody."""
    made = _credential(nfc, screen)
    cred_id, key = made.credential_id, made.public_key
    assert (key.get(1), key.get(3), key.get(-1)) == (2, -7, 1), \
        f"the credential's COSE key is not the EC2 P-256 ES256 key it was made as (kty, alg, crv): {dict(key)}"
    error = _refused_without_a_prompt(
        _assert(nfc, "evil.example", cred_id), unlocked_prime,
        "the Prime asked for presence to assert for evil.example with example.com's credential")
    assert error is not None and error.code == CtapError.ERR.NO_CREDENTIALS, \
        f"example.com's credential for evil.example answered {error or 'an assertion'}"
    cdh = os.urandom(32)
    own = _assert(nfc, RP["id"], cred_id, cdh)
    try:
        assertion, error = _answer(screen, own, AUTH_TITLE, "Confirm")
    finally:
        own.close()
    assert error is None and assertion.auth_data.is_user_present(), f"the assertion (control) failed: {error}"
    try:  # signed by the key the credential registered, over this request's challenge
        key.verify(assertion.auth_data + cdh, assertion.signature)
    except InvalidSignature:
        pytest.fail("the assertion does not verify with the public key its credential registered")


def _refused_without_a_prompt(request, prime, asked: str):
    """The request's error, having checked that no presence prompt came up for it (``asked`` says why that
    fails); a prompt that did come is taken down first."""
    try:
        prompted = request.wait_pending()
        if prompted:
            prime.home()  # take the prompt down before failing
        assert not prompted, asked
        _, error = request.outcome()
    finally:
        request.close()
    return error


@pytest.mark.parametrize("operation", ["registration", "assertion"])
def test_user_verification_is_never_claimed(operation, unlocked_prime, nfc, screen):
    """KeyOS has no built-in user verification (getInfo names no "uv" option): a registration or an assertion that
    demands it (option uv = true) is refused as an option the Prime lacks, before any presence prompt, so no answer
    can tell an RP that the user was verified."""
    cdh = os.urandom(32)
    if operation == "registration":
        request = CtapRequest(nfc, lambda ctap, kw: ctap.make_credential(cdh, RP, USER, ES256, options={"uv": True},
                                                                         **kw))
    else:
        allow = [{"type": "public-key", "id": _credential(nfc, screen).credential_id}]
        request = CtapRequest(nfc, lambda ctap, kw: ctap.get_assertion(RP["id"], cdh, allow, options={"uv": True}, **kw))
    error = _refused_without_a_prompt(
        request, unlocked_prime, f"the Prime asked for presence for a {operation} with user verification it lacks")
    assert error is not None and error.code in (CtapError.ERR.INVALID_OPTION, CtapError.ERR.UNSUPPORTED_OPTION), \
        f"a {operation} demanding user verification answered {error or 'with success'}"


@pytest.mark.parametrize("orphaned", ["registration", "assertion"])
def test_a_confirm_answers_only_the_request_it_was_shown_for(orphaned, unlocked_prime, nfc, screen):
    """Presence belongs to one request: the Prime matches the re-sent request to its prompt by the request's hash
    (hil/emulator/ctap2.py after os/fido/src/ctap). A prompt confirmed after its platform went away lets no other
    request through: the next, different request is asked for itself, even an assertion for the same RP and
    credential that differs from the orphaned one only in its challenge (clientDataHash). assumed: KeyOS may keep
    the orphaned prompt up (the emulator does) or take it down with its platform; where it is still read, it is
    confirmed, and either way the next request must ask for itself."""
    cred_id = _credential(nfc, screen).credential_id
    orphan, title = (_register(nfc), REGISTER_TITLE) if orphaned == "registration" else \
        (_assert(nfc, RP["id"], cred_id), AUTH_TITLE)
    try:
        if not orphan.wait_pending():
            pytest.fail(f"the Prime answered without asking for presence: {orphan.outcome()}")
        screen.wait_for(title, timeout=15)
    finally:
        orphan.close()  # its platform stops re-sending: nothing will ever collect this Confirm
    now = screen.read()
    shown = " ".join(line.text for line in now.lines)
    if not shown.strip():
        raise PromptNotSeen("nothing read on the display after the platform left: cannot tell whether the orphaned "
                            "prompt is still up to be confirmed")
    if title_shown(title, shown):  # read after the platform left
        screen.tap_text("Confirm", now)
    other = _assert(nfc, RP["id"], cred_id)
    try:
        prompted = other.wait_pending()
        if prompted:
            _, error = _answer(screen, other, AUTH_TITLE, "Cancel")
        else:
            result, error = other.outcome()
    finally:
        other.close()
    assert prompted, f"an assertion went through on the Confirm given to another request's prompt: {error or result}"
    assert error is not None and error.code == CtapError.ERR.OPERATION_DENIED, \
        f"the assertion's own prompt, cancelled, answered {error or 'an assertion'}"


def test_a_confirm_answers_its_request_once(unlocked_prime, nfc, screen):
    """A Confirm is spent on the one operation it was given for (CTAP 2.0: presence is collected per operation;
    assumed: KeyOS's os/fido takes its ``PresenceState::Completed`` on the poll that reads it, nav_thread.rs being
    outside what we read): the very same assertion sent again afterwards, byte for byte, is asked for again, so a
    platform that replays a request cannot collect a second signature from one touch."""
    made = _credential(nfc, screen)
    cdh = os.urandom(32)
    first = _assert(nfc, RP["id"], made.credential_id, cdh)
    try:
        assertion, error = _answer(screen, first, AUTH_TITLE, "Confirm")
    finally:
        first.close()
    assert error is None and assertion.auth_data.is_user_present(), f"the confirmed assertion (control) failed: {error}"
    again = _assert(nfc, RP["id"], made.credential_id, cdh)
    try:
        asked = again.wait_pending()
        assertion, error = _answer(screen, again, AUTH_TITLE, "Cancel") if asked else again.outcome()
    finally:
        again.close()
    assert asked, f"the same assertion sent again was answered {error or 'with a signature'} without asking"
    assert error is not None and error.code == CtapError.ERR.OPERATION_DENIED, \
        f"the repeated assertion, cancelled, answered {error or 'an assertion'}"


def test_a_silent_assertion_claims_no_presence(unlocked_prime, nfc, screen):
    """getAssertion with the option up = false asks for no presence (CTAP 2.1 §6.2.2), so its authenticator data
    must not set the UP flag: no answer may claim a presence nobody gave. KeyOS takes the option (``os/fido/src/ctap/
    mod.rs`` GetAssertion step 4 reads it, step 9 asks for presence only when it is true or absent), so the answer is
    an assertion, unprompted, not a refusal."""
    cred_id = _credential(nfc, screen).credential_id
    cdh = os.urandom(32)
    allow = [{"type": "public-key", "id": cred_id}]
    silent = CtapRequest(nfc, lambda ctap, kw: ctap.get_assertion(RP["id"], cdh, allow, options={"up": False}, **kw))
    error = _refused_without_a_prompt(silent, unlocked_prime, "the Prime asked for presence for an up=false assertion")
    assert error is None, f"the up=false assertion was refused: {error}"
    assert not silent.result.auth_data.is_user_present(), "an assertion made without a presence test claims one (UP)"


# Requests the Prime must refuse, malformed or asking what it lacks, before any credential or presence prompt, each with the status
# CTAP 2.1 gives it (§6.4 authenticatorGetInfo takes no parameters, §8.2 the status codes) and os/fido answers
# (``ctap/mod.rs``: GetInfo with data InvalidLength, a request decoded whole first, step 3 UnsupportedAlgorithm;
# ``ctap/error.rs``: a CBOR type mismatch CBOR_UNEXPECTED_TYPE, any other decode error INVALID_CBOR):
# name -> (command, CBOR after it, status)
MALFORMED = {
    "getInfo with a parameter": (0x04, cbor.encode({}), CtapError.ERR.INVALID_LENGTH),
    "makeCredential cut off in its CBOR": (0x01, cbor.encode({1: bytes(32)})[:-8], CtapError.ERR.INVALID_CBOR),
    "makeCredential not a map": (0x01, cbor.encode([bytes(32)]), CtapError.ERR.CBOR_UNEXPECTED_TYPE),
    "makeCredential without clientDataHash": (0x01, cbor.encode({2: RP, 3: USER, 4: ES256}),
                                              CtapError.ERR.MISSING_PARAMETER),
    # §6.1.2 step 3, before any presence: no algorithm in pubKeyCredParams the Prime has (ES256 only, getInfo 10)
    "makeCredential offering RS256 only": (0x01, cbor.encode({1: bytes(32), 2: RP, 3: USER,
                                                               4: [{"type": "public-key", "alg": -257}]}),
                                           CtapError.ERR.UNSUPPORTED_ALGORITHM),
    # no discoverable credentials (getInfo names no "rk" option): asking for one is refused, not quietly ignored
    "makeCredential asking for a discoverable credential": (0x01, cbor.encode({1: bytes(32), 2: RP, 3: USER, 4: ES256,
                                                                               7: {"rk": True}}),
                                                            CtapError.ERR.UNSUPPORTED_OPTION),
    # an allowList entry is a PublicKeyCredentialDescriptor map; a bare integer is the wrong type
    "getAssertion with an allowList entry not a map": (0x02, cbor.encode({1: RP["id"], 2: bytes(32), 3: [5]}),
                                                       CtapError.ERR.CBOR_UNEXPECTED_TYPE),
}


def test_a_malformed_request_is_refused_with_its_status_unprompted(unlocked_prime, nfc):
    """Each request answers exactly its CTAP status (malformed, or asking for an algorithm the Prime lacks), and
    none asks for presence (a request that does is cancelled at its first keepalive, its prompt taken down, and
    counted as asking)."""
    answered = {}
    with CtapNfcDevice(reader(nfc).connect(timeout=scaled(CONNECT_S))) as dev:
        for name, (command, body, _) in MALFORMED.items():
            asked = threading.Event()
            try:
                answer = dev.call(CTAPHID.CBOR, bytes([command]) + body, asked, lambda _status: asked.set())
            except CtapError as e:
                if e.code != CtapError.ERR.KEEPALIVE_CANCEL:
                    raise RequestBroken(f"{name}: the request failed outside the authenticator: {e!r}") from e
                unlocked_prime.home()  # take the prompt down
                answered[name] = "asked for presence"
                continue
            if not answer:
                raise RequestBroken(f"{name}: the Prime answered nothing")
            answered[name] = f"0x{answer[0]:02X}"
    expected = {name: f"0x{status:02X}" for name, (_, _, status) in MALFORMED.items()}
    assert answered == expected, f"the requests answered {answered}, not {expected}"


def test_a_registration_excluding_a_credential_it_holds_is_refused(unlocked_prime, nfc, screen):
    """excludeList (CTAP 2.0 §5.1 makeCredential, step 3): when any entry is a credential this Prime made for the RP,
    it answers CREDENTIAL_EXCLUDED and makes no new one, wherever that entry stands in the list (an RP lists every
    credential of the account; the one on this Prime is rarely first). A presence prompt that comes first (CTAP 2.1
    asks for it) is confirmed: either way the answer must be CREDENTIAL_EXCLUDED."""
    cred_id = _credential(nfc, screen).credential_id
    cdh = os.urandom(32)
    # another authenticator's id first (16 bytes: the whole request must fit the reader's one short APDU, 255 bytes)
    exclude = [{"type": "public-key", "id": os.urandom(16)}, {"type": "public-key", "id": cred_id}]
    again = CtapRequest(nfc, lambda ctap, kw: ctap.make_credential(cdh, RP, USER, ES256, exclude_list=exclude, **kw))
    try:
        _, error = _answer(screen, again, REGISTER_TITLE, "Confirm")
    finally:
        again.close()
    assert error is not None and error.code == CtapError.ERR.CREDENTIAL_EXCLUDED, \
        f"a registration excluding this Prime's credential (second in excludeList) answered {error or 'a new credential'}"


def test_the_signature_counter_rises_with_every_assertion(unlocked_prime, nfc, screen):
    """The signature counter (CTAP 2.0 §6.1, WebAuthn §6.1.1) grows with each assertion, so an RP can tell a cloned
    key. KeyOS keeps it per credential, 0 at registration and raised by one before each signature
    (``os/fido/src/implementation.rs`` ``create_registered_key_ctap``, ``sign_der``; ``os/fido/src/lib.rs``
    ``RegisteredKey::inc_signature_counter``): a new credential's two confirmed assertions sign 1, then 2, and a
    second credential registered for the same RP in between starts its own count at 1, leaving the first's alone."""
    first = _credential(nfc, screen)
    counters = [_confirmed_counter(nfc, screen, first.credential_id)]
    second = _credential(nfc, screen)
    counters += [_confirmed_counter(nfc, screen, first.credential_id), _confirmed_counter(nfc, screen, second.credential_id)]
    assert counters == [1, 2, 1], \
        f"the counters signed (first, first after a second registration for the RP, second) are {counters}, not [1, 2, 1]"


def _confirmed_counter(nfc: str, screen, cred_id: bytes) -> int:
    """The signature counter of one assertion with ``cred_id`` for RP, confirmed on the Prime."""
    return _confirmed(screen, _assert(nfc, RP["id"], cred_id), AUTH_TITLE, "assertion").auth_data.counter
