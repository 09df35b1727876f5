"""NFC through nfcpy's udp driver: FIDO2 over ISO-DEP against the emulated Prime, NDEF tags presented
to its reader, and a field that drops mid-exchange. Each test has its own udp port (xdist-safe)."""

import threading
import time
from types import SimpleNamespace

import ndef
import nfc
import nfc.clf
import nfc.tag
import pytest
from fido2.client import DefaultClientDataCollector, Fido2Client
from fido2.ctap2 import Ctap2
from fido2.server import Fido2Server
from fido2.webauthn import PublicKeyCredentialParameters, PublicKeyCredentialRpEntity, PublicKeyCredentialUserEntity

from pathlib import Path

from hil.emulator.defects import Defects
from hil.emulator.nfc import EmulatedNfc, free_udp_port
from hil.errors import ConfigError, InfrastructureError
from hil.machine import scaled
from hil.stimuli.ctap_nfc import MAX_RESPONSE, ApduError, CtapNfcDevice, EndlessResponse
from hil.stimuli.nfc import NfcFieldLost, NfcReader, NoCardFound, ndef_message
from tests.test_ctap2 import FakeUI

ROOT = Path(__file__).resolve().parents[1]


class FakePrime:
    def __init__(self, answer="Confirm"):
        self.lock = threading.RLock()
        self.ui = FakeUI(answer)
        self.seed, self.serial = 7, "EMU-0001"
        self.powered = self.keyos_running = True
        self.keyos = SimpleNamespace(defects=Defects())  # a good build
        self.lines = []

    def log(self, line):
        self.lines.append(line)


@pytest.fixture
def emulated():
    prime, nfc_dev = FakePrime(), EmulatedNfc()
    key, path = nfc_dev.start(prime)
    assert key == "nfc" and path.startswith("udp:127.0.0.1:")
    yield prime, nfc_dev, path
    nfc_dev.stop()


def test_webauthn_register_and_authenticate_over_nfc(emulated):
    prime, _, path = emulated
    server = Fido2Server(PublicKeyCredentialRpEntity(id="example.com", name="Example"), attestation="direct")
    server.allowed_algorithms = [PublicKeyCredentialParameters(type="public-key", alg=-7)]  # keeps Lc <= 255
    user = PublicKeyCredentialUserEntity(id=b"user-1", name="alice")
    with CtapNfcDevice(NfcReader(path).connect(timeout=8)) as dev:
        assert dev.select_response == b"U2F_V2"
        client = Fido2Client(dev, DefaultClientDataCollector("https://example.com"))
        options, state = server.register_begin(user, user_verification="discouraged")
        reg = client.make_credential(options.public_key)
        auth_data = server.register_complete(state, reg)  # verifies the packed self attestation
        options, state = server.authenticate_begin([auth_data.credential_data], user_verification="discouraged")
        assertion = client.get_assertion(options.public_key).get_response(0)
        server.authenticate_complete(state, [auth_data.credential_data], assertion)
    titles = [m[0] for m in prime.ui.shown]
    assert titles == ["Confirm Registration", "Confirm Authentication"]


def test_get_info_and_status_words(emulated):
    _, _, path = emulated
    with CtapNfcDevice(NfcReader(path).connect(timeout=8)) as dev:
        assert Ctap2(dev).info.versions == ["U2F_V2", "FIDO_2_0"]
        data, sw = dev.session.apdu(bytes.fromhex("00A4040007D2760000850101"))
        assert (data, sw) == (b"", 0x6A81)  # not the FIDO AID
        with pytest.raises(ApduError, match=r"SW 6D00 \(instruction not supported\)"):
            dev._exchange(bytes.fromhex("00EE000000"))


def test_field_lost_mid_exchange_is_broken_not_hung(emulated):
    _, nfc_dev, path = emulated
    nfc_dev.field_loss = True
    started = time.monotonic()
    session = NfcReader(path).connect(timeout=8)
    with pytest.raises(NfcFieldLost, match="NFC field lost mid-exchange") as e:
        CtapNfcDevice(session)
    assert isinstance(e.value, InfrastructureError)
    assert time.monotonic() - started < scaled(15)  # each block is waited for as long as the load needs


def test_no_card_on_the_reader():
    with pytest.raises(NoCardFound, match="no ISO-DEP card answered"):
        NfcReader(f"udp:127.0.0.1:{free_udp_port()}").connect(timeout=1.5)


def test_prime_reads_a_presented_tag_and_shows_it(emulated):
    prime, nfc_dev, path = emulated
    message = ndef_message(text="hello prime", uri="https://foundation.xyz/", raw=[("urn:nfc:ext:example.com:t", b"\x01\x02")])
    result = NfcReader(path).present_tag(message, timeout=10)
    assert result.read and result.message == message
    deadline = time.monotonic() + 3
    while not nfc_dev.tags and time.monotonic() < deadline:  # the Prime decodes after the tag has gone
        time.sleep(0.05)
    records = nfc_dev.tags[0]
    assert records[0].text == "hello prime" and records[1].iri == "https://foundation.xyz/"
    assert records[2].type == "urn:nfc:ext:example.com:t" and records[2].data == b"\x01\x02"
    title, body, _, _ = prime.ui.shown[-1]
    assert title == "NFC Tag" and "text: hello prime" in body and "uri: https://foundation.xyz/" in body
    assert "INFO:nfc: NDEF record text: hello prime" in prime.lines


def test_reader_that_walks_away_mid_read_is_field_lost():
    path = f"udp:127.0.0.1:{free_udp_port()}"

    def flaky_reader():
        time.sleep(0.3)
        with nfc.ContactlessFrontend(path) as clf:  # selects the NDEF app, then the field goes away
            target = clf.sense(nfc.clf.RemoteTarget("106A"), iterations=20, interval=0.1)
            nfc.tag.activate(clf, target).transceive(bytes.fromhex("00A4040007D276000085010100"))

    t = threading.Thread(target=flaky_reader)
    t.start()
    try:
        with pytest.raises(NfcFieldLost, match="never finished reading"):
            NfcReader(path).present_tag(ndef_message(text="x"), timeout=8)
    finally:
        t.join(10)


@pytest.mark.parametrize("kw, why", [({}, "at least one record"), ({"raw": [("not a type", b"")]}, "not valid"),
                                     ({"text": "x" * 3000}, "exceeds")])
def test_bad_tag_contents_are_refused(kw, why):
    with pytest.raises(ConfigError, match=why):
        ndef_message(**kw)


def test_ndef_records_decode_back():
    msg = ndef_message(text="a", uri="https://b.example/")
    assert [type(r) for r in ndef.message_decoder(msg)] == [ndef.TextRecord, ndef.UriRecord]


def test_applet_chains_responses_in_96_byte_pieces():
    import cbor2

    from hil.emulator.ctap2 import Authenticator
    from hil.emulator.nfc import FidoApplet

    applet = FidoApplet(Authenticator(FakePrime(), b"k" * 32))
    assert applet.apdu(bytes.fromhex("00A4040008A0000006472F0001")) == b"U2F_V2\x90\x00"
    req = b"\x01" + cbor2.dumps({1: b"\0" * 32, 2: {"id": "example.com"}, 3: {"id": b"u"},
                                 4: [{"type": "public-key", "alg": -7}]})
    msg = bytes([0x80, 0x10, 0x00, 0x00, len(req)]) + req + b"\x00"
    assert applet.apdu(msg) == b"\x23\x90\x00"  # USER_ACTION_PENDING: the prompt is up (FakeUI confirms it)
    first = applet.apdu(msg)  # the platform re-sends the same request
    assert len(first) == 96 + 2 and first[-2] == 0x61
    body = first[:-2]
    sw = first[-2:]
    while sw[0] == 0x61:
        more = applet.apdu(b"\x00\xC0\x00\x00" + sw[1:])
        assert len(more) - 2 <= 96
        body, sw = body + more[:-2], more[-2:]
    assert sw == b"\x90\x00" and body[0] == 0x00 and cbor2.loads(body[1:])[1] == "packed"
    assert applet.apdu(b"\x00\xC0\x00\x00\x00") == b"\x67\x00"  # nothing left to fetch
    assert applet.apdu(b"\x90\x10\x00\x00\x01\x04") == b"\x6E\x00"  # command chaining: KeyOS rejects the class
    assert applet.apdu(b"\x00\xA4\x04\x00\x09\x01") == b"\x62\x81"  # Lc longer than the data


class EndlessCard:
    """An ISO-DEP session whose card answers SELECT, then says 61XX (more data) to every fetch."""

    def __init__(self, piece: bytes, delay: float = 0.0):
        self.piece, self.delay, self.fetches, self.closed = piece, delay, 0, False
        self.where = "udp:127.0.0.1:9"

    def apdu(self, command: bytes, timeout=None):
        if command[1] == 0xA4:
            return b"U2F_V2", 0x9000
        self.fetches += command[1] == 0xC0
        time.sleep(self.delay)
        return self.piece, 0x6100 | len(self.piece)

    def close(self):
        self.closed = True


def test_endless_get_response_is_cut_off_at_the_size_limit():
    card = EndlessCard(bytes(96))
    with pytest.raises(EndlessResponse, match=r"card on udp:127.0.0.1:9: .*SW 6160\) after 65568 bytes") as e:
        CtapNfcDevice(card)
    assert isinstance(e.value, InfrastructureError) and card.closed
    assert card.fetches == MAX_RESPONSE // 96  # stopped right past the limit, not one fetch later


def test_endless_get_response_is_cut_off_at_the_deadline():
    card = EndlessCard(b"\x00", delay=0.02)
    started = time.monotonic()
    with pytest.raises(EndlessResponse, match=r"after \d+ bytes \(limits: 65536 bytes, 0.3 s\)"):
        CtapNfcDevice(card, response_timeout=0.3)
    assert time.monotonic() - started < 2 and card.fetches < 30


class TimedCard:
    """A card that answers SELECT and getInfo at once and records how long the reader waits for each block."""

    where = "udp:127.0.0.1:9"

    def __init__(self):
        self.waits: list[float | None] = []

    def apdu(self, c: bytes, timeout: float | None = None):
        self.waits.append(timeout)
        return (b"U2F_V2", 0x9000) if c[1] == 0xA4 else (b"\x00\xa0", 0x9000)

    def close(self):
        pass


def test_the_reader_waits_for_each_block_as_long_as_the_hosts_load_needs(monkeypatch):
    """A CTAP2 answer on a loaded host can come after the idle host's 1 s; waited for only that long, nfcpy's
    R(NAK) crosses it and the exchange ends on NfcFieldLost, a broken check on the good build (as the mutation
    campaign's first FIDO checks broke at load 5-10)."""
    import hil.machine

    monkeypatch.setattr(hil.machine, "factor", lambda: 3.0)
    card = TimedCard()
    CtapNfcDevice(card)
    assert card.waits == [3.0, 3.0]  # SELECT and the getInfo probe, each 3 idle-host seconds


# ---------------------------------------------------------------- real readers (nfcpy's own drivers)


@pytest.mark.parametrize("path, driver", [("usb:072f:2200", "acr122"), ("usb:04e6:5591", "pn533"),
                                          ("usb:054c:06c1", "rcs380"), ("tty:USB0:pn532", "pn532"),
                                          ("udp:127.0.0.1:5000", "udp"), ("usb:003:009", None)])
def test_the_driver_a_path_selects_is_nfcpys(path, driver):
    from hil.stimuli.nfc_readers import driver_of

    assert driver_of(path) == driver


def test_a_reader_that_cannot_present_a_tag_is_refused_when_the_lab_loads(tmp_path):
    from hil.lab.config import load_lab

    text = (ROOT / "lab_config.example.yaml").read_text().replace("usb:04e6:5591", "usb:072f:2200", 1) \
        .replace("signoff_criteria: ", f"signoff_criteria: {ROOT}/")
    (tmp_path / "lab.yaml").write_text(text)
    with pytest.raises(ConfigError, match=r"NFC reader usb:072f:2200 \(nfcpy driver acr122\) cannot present a tag; "
                                          r"use a PN533 reader such as the Identive SCL3711 \(usb:04e6:5591\)"):
        load_lab(tmp_path / "lab.yaml")


def ndef_reader(blocks_seen: list[bytes]):
    """A phone reading a Type 4 tag's NDEF message (NFC Forum T4T 2.0), block by block, then leaving."""
    def apdus():
        yield bytes.fromhex("00A4040007D276000085010100")  # SELECT the NDEF application
        yield bytes.fromhex("00A4000C02E103")  # SELECT CC
        yield bytes.fromhex("00B000000F")  # READ the CC
        yield bytes.fromhex("00A4000C02E104")  # SELECT the NDEF file
        nlen = yield bytes.fromhex("00B0000002")  # READ its length
        yield bytes.fromhex("00B00002") + bytes([int.from_bytes(nlen[:2], "big")])
    script, pcb, last = apdus(), 0, None

    def on_block(sent: bytes):
        nonlocal pcb, last
        blocks_seen.append(sent)
        try:
            apdu = next(script) if last is None else script.send(sent[1:])
        except StopIteration:
            return None if sent[:1] == b"\xc2" else b"\xc2"  # S(DESELECT), then leave
        last = apdu
        block, pcb = bytes([0x02 | pcb]) + apdu, pcb ^ 1
        return block
    return on_block


def test_a_tag_is_presented_through_nfcpys_real_pn533_driver(monkeypatch):
    """The chip answers RATS itself (with the harness's ATS) and hands over the first I-block: the harness
    must serve it, with a 4-byte random UID (08h), or a PN533 bench cannot present a tag at all."""
    import nfc.clf.device
    import nfc.clf.pn533

    from tests.pn533_chip import Pn533

    seen: list[bytes] = []
    chip = Pn533(rats=bytes.fromhex("E080"), reader=ndef_reader(seen))
    def connect(path):  # what nfc.clf.device.connect does once pyusb has found the SCL3711
        device = nfc.clf.pn533.init(chip)
        device._path = path  # noqa: SLF001
        return device

    monkeypatch.setattr(nfc.clf.device, "connect", connect)
    message = ndef_message(text="Prime test tag")
    result = NfcReader("usb:04e6:5591").present_tag(message, timeout=5)
    assert result.read and result.message == message
    assert chip.sent[0] == bytes.fromhex("0578A07002")  # the harness's ATS, sent by the chip for it
    assert result.apdus[0] == "00a4040007d276000085010100"  # the first I-block was served, not dropped
