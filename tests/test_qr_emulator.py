"""The emulated Prime's camera reading the QR presenter, qrMatchRules routing, and the Bitcoin app
(in process: the Prime's state is inspected directly; the harness-only path is in test_qr_e2e.py)."""

import threading
import time
from types import SimpleNamespace

import numpy as np
import pytest
import zxingcpp

from hil.emulator import qrcam
from hil.emulator.apps.bitcoin import REJECT_BOX, SIGN_BOX, BitcoinScreen
from hil.emulator.build import Build
from hil.emulator.launcher import start_device
from hil.provisioning import TEST_PIN
from hil.emulator.qrcam import Assembler, Scan, route
from hil.machine import scaled
from hil.stimuli import qr
from hil.stimuli.presenter import Presenter, ur_parts
from hil.stimuli.psbt import build_spend, verify_signed
from hil.stimuli.ur import URDecoder, byte_string_ur, ur_byte_string

OTHER_MNEMONIC = "forum undo fragile fade shy sign arrest garment culture tube off merit"


@pytest.fixture
def device():
    d = start_device(1, 7, Build(flavour="development"), boot_seconds=0)
    presenter = Presenter()
    presenter.start(d.endpoints["qr_display"])
    yield d, presenter
    presenter.stop()
    d.stop()


def unlock(prime):
    with prime.lock:
        assert prime.login(TEST_PIN)


def wait_for(predicate, timeout=20.0):
    deadline = time.monotonic() + scaled(timeout)
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError("timed out")


def front(prime):
    with prime.lock:
        return prime.ui.front()


def test_routing_by_bitcoin_qr_match_rules():
    assert [r.rule_id for r in route(Scan(ur_type="psbt"))] == ["psbt"]
    assert [r.rule_id for r in route(Scan(ur_type="bytes"))] == ["psbt-or-multisig-config"]
    assert [r.rule_id for r in route(Scan(ur_type="crypto-output"))] == ["multisig-config"]
    assert [r.rule_id for r in route(Scan(text="Policy: 2 of 3\n"))] == ["multisig-config"]
    assert [r.rule_id for r in route(Scan(text="wsh(sortedmulti(2,xpub...))"))] == ["multisig-config"]
    assert route(Scan(text="policy: two of three")) == []
    assert route(Scan(ur_type="crypto-seed")) == []


def test_assembler_restarts_on_another_message_and_delivers_once():
    a = ur_parts(byte_string_ur("psbt", b"psbt\xff" + bytes(300)), 50)
    b = ur_parts(byte_string_ur("psbt", b"psbt\xff" + bytes(range(200))), 50)
    asm, scans = Assembler(), []
    for part in a[:2] + b:
        scan, error = asm.feed(part, b"")
        assert error is None
        scans += [scan] if scan else []
    assert len(scans) == 1
    assert scans[0].data == byte_string_ur("psbt", b"psbt\xff" + bytes(range(200))).cbor
    for part in b:  # the same message still in view is not delivered again
        assert asm.feed(part, b"") == (None, None)
    scan, error = asm.feed("ur:psbt/1-3/zzzz", b"")
    assert scan is None and "not a byteword" in error


def test_psbt_through_the_camera_is_reviewed_signed_and_shown_as_animated_ur(device):
    d, presenter = device
    prime = d.prime
    unlock(prime)
    spend = build_spend(prime.se.mnemonic(), 120_000, fee=1_410)
    presenter.show(ur_parts(byte_string_ur("psbt", spend.serialize()), 60), fps=10)
    screen = wait_for(lambda: isinstance(s := front(prime), BitcoinScreen) and s.state == "review" and s)
    assert screen.review == {"amount": 120_000, "fee": 1_410, "to": spend.destination, "outputs": 1}
    presenter.show([])
    with prime.lock:
        prime.touch((SIGN_BOX[0] + SIGN_BOX[2]) // 2, (SIGN_BOX[1] + SIGN_BOX[3]) // 2)
    assert screen.state == "signed"
    dec = URDecoder()

    def read_display():
        with prime.lock:
            frame = prime.framebuffer()
        for symbol in zxingcpp.read_barcodes(frame):
            dec.receive_part(symbol.text)
        return dec.is_complete()

    wait_for(read_display)
    assert dec.result.type == "psbt"
    assert verify_signed(ur_byte_string(dec.result), spend.psbt) == 1


def test_psbt_of_another_wallet_is_refused(device):
    d, presenter = device
    unlock(d.prime)
    spend = build_spend(OTHER_MNEMONIC, 50_000)
    presenter.show(ur_parts(byte_string_ur("psbt", spend.serialize())), fps=10)
    screen = wait_for(lambda: isinstance(s := front(d.prime), BitcoinScreen) and s.state == "message" and s)
    assert screen.message.startswith("Wrong Wallet")


def test_unknown_qr_gets_a_modal_and_a_locked_camera_sees_nothing(device):
    d, presenter = device
    presenter.show(["hello from the lab"])
    time.sleep(1.0)
    with d.prime.lock:
        assert d.prime.ui.modal is None and not d.prime.app_screens  # locked: the camera is off
    unlock(d.prime)
    modal = wait_for(lambda: d.prime.ui.modal)
    assert modal.title == "Unknown QR Code"


def test_reject_signs_nothing_and_a_multisig_policy_opens_the_bitcoin_app(device):
    d, presenter = device
    prime = d.prime
    unlock(prime)
    spend = build_spend(prime.se.mnemonic(), 10_000)
    presenter.show(ur_parts(byte_string_ur("psbt", spend.serialize())), fps=10)
    screen = wait_for(lambda: isinstance(s := front(prime), BitcoinScreen) and s.state == "review" and s)
    presenter.show([])
    with prime.lock:
        prime.touch((REJECT_BOX[0] + REJECT_BOX[2]) // 2, (REJECT_BOX[1] + REJECT_BOX[3]) // 2)
        assert screen.state == "idle" and screen.encoder is None
        assert "INFO:bitcoin: transaction rejected by the user" in prime.logs_since(0)[0]
    presenter.show(["Name: lab\nPolicy: 2 of 3\nFormat: P2WSH"])
    wait_for(lambda: screen.state == "message")
    assert screen.message.startswith("Multisig Configuration")


def test_the_camera_decodes_a_picture_once_while_it_stays_up_and_rescans_after_a_blank(monkeypatch):
    decodes, scans = [], []
    read = zxingcpp.read_barcodes
    monkeypatch.setattr(qrcam.zxingcpp, "read_barcodes", lambda *a, **k: decodes.append(1) or read(*a, **k))
    cam = qrcam.QRCameraPeripheral()
    cam.prime = SimpleNamespace(lock=threading.Lock(), powered=True, screen_on=True, booting=False,
                                is_locked=lambda: False, log=print)
    cam.deliver = scans.append
    code, blank = np.asarray(qr.render("hello")), np.full((480, 480), 255, np.uint8)
    for _ in range(30):  # one second of captures of one picture
        cam.look(code)
    assert len(decodes) == 1 and [s.text for s in scans] == ["hello"]
    for picture in [blank] * (qrcam.FORGET_AFTER_BLANK_FRAMES - 1) + [code.copy()]:
        cam.look(picture)
    assert len(decodes) == 3 and len(scans) == 1  # a short gap: the code is still the one in view
    for picture in [blank.copy()] * qrcam.FORGET_AFTER_BLANK_FRAMES + [code.copy()]:
        cam.look(picture)
    assert len(decodes) == 5 and [s.text for s in scans] == ["hello", "hello"]  # shown again: scanned again
