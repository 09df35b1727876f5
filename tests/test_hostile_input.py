"""Every decoder of untrusted bytes, fed by Hypothesis: random bytes and mutations of valid samples raise
only the decoder's documented error type (or decode), and finish: the per-input deadline is a hang detector,
many times what any input takes.

Budget: the profile `HIL_HYPOTHESIS_PROFILE` names. `ci` (default) is derandomised and small, so the whole
file takes seconds in every run; `long` (`make fuzz`) draws fresh inputs, hundreds per decoder.
"""

from __future__ import annotations

import io
import json
import os
import tarfile
import threading
from datetime import timedelta
from pathlib import Path

import cbor2
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from hil.emulator.build import Build
from hil.emulator.ctap2 import Authenticator
from hil.emulator.defects import Defects
from hil.emulator.nfc import FidoApplet
from hil.errors import ConfigError, InfrastructureError
from hil.lab.config import LabConfig
from hil.profile import Profile
from hil.yamlfile import load_yaml_model, read_yaml
from hil.flash import bootimg, cosign2, emulated, manifest, release
from hil.flash.samba import Samba, SambaError
from hil.link import protocol
from hil.report import signoff
from hil.report.allure import parse_result, read_results
from hil.stimuli import seedqr, ur
from hil.stimuli.ctap_nfc import CtapNfcDevice
from hil.stimuli.nfc import NfcError
from fido2.ctap import CtapError

ROOT = Path(__file__).resolve().parents[1]

settings.register_profile("ci", max_examples=40, derandomize=True, database=None, deadline=timedelta(seconds=20),
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.register_profile("long", max_examples=1500, database=None, deadline=timedelta(seconds=20),
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.load_profile(os.environ.get("HIL_HYPOTHESIS_PROFILE", "ci"))

KEYS = emulated.keyset("test")
SIGNERS = cosign2.load_keyset(emulated.TEST_SIGNERS)


# ------------------------------------------------------------------ mutations of a valid sample


def _edit(data: bytes, edit: tuple) -> bytes:
    kind, at, arg = edit
    at = at % (len(data) + 1)
    if kind == "set" and at < len(data):
        return data[:at] + bytes([arg[0] if arg else 0]) + data[at + 1:]
    if kind == "cut":
        return data[:at]
    if kind == "insert":
        return data[:at] + arg + data[at:]
    if kind == "delete":
        return data[:at] + data[at + len(arg) + 1:]
    return data[:at] + arg + data[at + len(arg):]  # overwrite


EDITS = st.tuples(st.sampled_from(["set", "set", "overwrite", "insert", "delete", "cut"]),
                  st.integers(0, 1 << 20), st.binary(max_size=12))


def mutated(sample: bytes, max_edits: int = 6, also_random: bool = True) -> st.SearchStrategy[bytes]:
    """``sample`` with a few bytes set, overwritten, inserted, deleted or the tail cut; or random bytes."""
    edits = st.lists(EDITS, min_size=1, max_size=max_edits).map(lambda es: _apply(sample, es))
    return st.one_of(edits, st.binary(max_size=2 * len(sample) + 16)) if also_random else edits


def _apply(sample: bytes, edits: list) -> bytes:
    for e in edits:
        sample = _edit(sample, e)
    return sample


def mutated_text(sample: str) -> st.SearchStrategy[str]:
    return st.one_of(mutated(sample.encode()).map(lambda b: b.decode("utf-8", "replace")), st.text(max_size=200))


# ------------------------------------------------------------------ usb-debug link


@given(st.binary(max_size=64) | st.builds(lambda k, s, p: bytes([k, s]) + p, st.sampled_from([1, 2, 0, 3]),
                                          st.integers(0, 255), st.binary(max_size=32)))
def test_usb_debug_frames(body):
    try:
        frame = protocol.decode_frame(body)
    except protocol.ProtocolError:
        event("refused")
        return
    assert isinstance(frame, (protocol.Response, protocol.Log))
    if isinstance(frame, protocol.Response):
        for parse in (protocol.parse_launch, protocol.parse_publisher_count, protocol.parse_swipe,
                      protocol.parse_file_begin, lambda p: protocol.parse_u64(p, "x"),
                      lambda p: protocol.parse_text(p, "x"), lambda p: protocol.parse_bool(p, "x"),
                      lambda p: protocol.decode_screenshot(p, "BGRA"), protocol.parse_request):
            try:
                parse(frame.payload)
            except protocol.ProtocolError:
                event("refused")


@given(st.binary(min_size=4, max_size=4))
def test_usb_debug_stream_length_never_exceeds_the_limit(header):
    try:
        assert protocol.stream_length(header) <= protocol.MAX_FRAME
    except protocol.ProtocolError:
        event("refused")


@given(st.lists(st.binary(max_size=300) | st.just(b"\x1e"), max_size=20))
def test_usb_debug_log_records_are_text_and_bounded(chunks):
    records = protocol.LogRecords(max_record=256)
    for chunk in chunks:
        assert all(isinstance(r, str) for r in records.feed(chunk))
        assert len(records._pending) < 256 + 300


# ------------------------------------------------------------------ cosign2, boot.img, release bundles


SIGNED = cosign2.add_second_signature(
    cosign2.sign(b"keyos" * 40, SIGNERS.signer("test-signer-1").private_key(), version="1.2.3", timestamp=1_700_000_000),
    SIGNERS.signer("test-signer-2").private_key())


@given(mutated(SIGNED[:600] + SIGNED[2048:], max_edits=4).map(lambda b: b[:600] + SIGNED[600:2048] + b[600:])
       | mutated(SIGNED, max_edits=4))
def test_cosign2_images(data):
    try:
        v = cosign2.verify(data, KEYS.pubkeys)
    except cosign2.Cosign2Error:
        event("refused")
        return
    assert v.header.bin_size == len(data) - 2048


@pytest.fixture(scope="module")
def boot_image(tmp_path_factory) -> bytes:
    path = tmp_path_factory.mktemp("img") / "boot.img"
    emulated.write_boot_image(path, Build(version="1.0.0", flavour="development"))
    return path


class Patched(io.RawIOBase):
    """A read-only view of an image file with some byte ranges replaced (no copy of 96 MB per input)."""

    def __init__(self, path: Path, patches: dict[int, bytes]):
        self._fp, self._patches, self._pos = open(path, "rb"), patches, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, pos: int, whence: int = io.SEEK_SET) -> int:
        self._pos = self._fp.seek(pos, whence)
        return self._pos

    def tell(self) -> int:
        return self._pos

    def readinto(self, b) -> int:
        self._fp.seek(self._pos)
        data = bytearray(self._fp.read(len(b)))
        for at, patch in self._patches.items():
            for i, byte in enumerate(patch):
                if 0 <= at + i - self._pos < len(data):
                    data[at + i - self._pos] = byte
        b[:len(data)] = data
        self._pos += len(data)
        return len(data)

    def close(self) -> None:
        self._fp.close()
        super().close()


_BOOT, _SYSTEM = (s * bootimg.SECTOR for s in bootimg.EMULATED.starts[:2])
_WHERE = st.sampled_from([0, 446, _BOOT, _BOOT + 0x4000, _SYSTEM, _SYSTEM + 0x4000]).flatmap(
    lambda base: st.integers(base, base + 0x8000))


@settings(max_examples=max(10, settings.default.max_examples // 4))  # each input mounts two 40 MB volumes
@given(st.dictionaries(_WHERE, st.binary(min_size=1, max_size=16), min_size=1, max_size=8))
def test_boot_images(boot_image, patches):
    fp = Patched(boot_image, patches)
    try:
        img = bootimg.BootImage.read_from(fp, boot_image.stat().st_size)
    except bootimg.BootImageError:
        event("refused")
        return
    finally:
        fp.close()
    assert isinstance(img.app, bytes)


def _tar(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:", format=tarfile.USTAR_FORMAT) as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


APP_BIN = emulated.app_image(Build(version="1.0.0", flavour="development"))
BUNDLE = release.build({"app.bin": APP_BIN}, version="1.0.0", timestamp=5,
                       signers=[SIGNERS.signer("test-signer-1"), SIGNERS.signer("test-signer-2")])
RELEASE_MANIFEST = json.dumps({"version": "v1.0.0", "files": [{"name": "app.bin", "hash": "0x" + "00" * 32}]}).encode()


def _signed(tar: bytes) -> bytes:
    image = cosign2.sign(tar, SIGNERS.signer("test-signer-1").private_key(), version="1.0.0", timestamp=5)
    return cosign2.add_second_signature(image, SIGNERS.signer("test-signer-2").private_key())


@given(mutated(BUNDLE, max_edits=3)
       | mutated(BUNDLE[2048:], max_edits=4, also_random=False).map(_signed)  # a signed tar that is itself bad
       | st.builds(lambda m, extra: _signed(_tar({"app.bin": APP_BIN, "manifest.json": m, **extra})),
                   mutated(RELEASE_MANIFEST), st.dictionaries(st.sampled_from(["../x", "a/manifest.json", "b"]),
                                                              st.binary(max_size=8), max_size=2)))
def test_release_bundles(data):
    try:
        rel = release.read(data, KEYS)
    except (release.ReleaseError, cosign2.Cosign2Error):
        event("refused")
        return
    assert "app.bin" in rel.files


# ------------------------------------------------------------------ manifests


TEMPLATES = manifest.load_templates(ROOT / "fixtures" / "keyos" / "permission_templates.toml")
TOML_MANIFEST = (ROOT / "fixtures" / "keyos" / "manifests" / "wallet-sync-demo" / "manifest.toml").read_text()
JSON_MANIFEST = json.dumps(manifest.loads(TOML_MANIFEST, "m.toml", TEMPLATES).to_json_obj())
RELEASE_FORM = json.dumps({"appName": {"en": "X"}, "appId": "0x" + "ab" * 16, "appSignature": "0x00",
                           "servers": [{"name": "os/x", "messages": []}],
                           "permissions": [{"server": "os/gui", "messages": "0..5"}]})
def _containers(keys: st.SearchStrategy) -> callable:
    def extend(children: st.SearchStrategy) -> st.SearchStrategy:
        return st.lists(children, max_size=4) | st.dictionaries(keys, children, max_size=4)
    return extend


_JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
                     _containers(st.text(max_size=12)), max_leaves=20)
_MANIFEST_KEYS = ["appId", "appName", "permissions", "servers", "appSignature", "fileHashes", "version",
                  "minKeyosVersion", "manifestVersion", "memory", "syscall"]


@given(st.one_of(mutated_text(JSON_MANIFEST), mutated_text(RELEASE_FORM),
                 st.builds(lambda base, extra: json.dumps({**json.loads(base), **extra}),
                           st.sampled_from([JSON_MANIFEST, RELEASE_FORM]),
                           st.dictionaries(st.sampled_from(_MANIFEST_KEYS), _JSON, max_size=3))))
def test_json_manifests(text):
    try:
        m = manifest.loads(text.encode(), "manifest.json")
    except manifest.ManifestError:
        event("refused")
        return
    assert m.app_id.startswith("0x") and len(m.app_id) == 34


@given(mutated_text(TOML_MANIFEST))
def test_toml_manifests(text):
    try:
        manifest.loads(text.encode(), "manifest.toml", TEMPLATES)
    except manifest.ManifestError:
        event("refused")


SIGNED_MANIFEST = cosign2.sign(JSON_MANIFEST.encode(), SIGNERS.signer("test-developer").private_key(),
                               version="1.0.0", timestamp=5, developer=True)


@given(mutated(SIGNED_MANIFEST, max_edits=3)
       | mutated(JSON_MANIFEST.encode(), also_random=False).map(
           lambda m: cosign2.sign(m, SIGNERS.signer("test-developer").private_key(), version="1.0.0", timestamp=5,
                                  developer=True)))
def test_cosign2_wrapped_manifests(data):
    try:
        verified = cosign2.verify(data, KEYS.pubkeys)
        manifest.loads(data[verified.header.size:], "manifest.json")
    except (cosign2.Cosign2Error, manifest.ManifestError):
        event("refused")


# ------------------------------------------------------------------ BC-UR and SeedQR


PSBT_PARTS = [ur.UREncoder(ur.byte_string_ur("psbt", bytes(range(200))), 40).next_part() for _ in range(12)]
_UR_TEXT = st.one_of(st.sampled_from(PSBT_PARTS).flatmap(mutated_text), st.text(max_size=60),
                     st.builds(lambda t, b: f"ur:{t}/{ur.bytewords_encode(b)}",
                               st.sampled_from(["psbt", "bytes", "x", "crypto-psbt"]), st.binary(max_size=40)))


@given(st.lists(_UR_TEXT | st.sampled_from(PSBT_PARTS), min_size=1, max_size=12))
def test_ur_parts(texts):
    decoder = ur.URDecoder()
    for text in texts:
        try:
            decoder.receive_part(text)
        except ur.URError:
            event("refused")
    if decoder.result is not None:
        try:
            ur.ur_byte_string(decoder.result)
        except ur.URError:
            event("refused")


@given(_UR_TEXT)
def test_single_part_urs(text):
    try:
        ur.ur_byte_string(ur.URDecoder.decode(text))
    except ur.URError:
        event("refused")


@given(st.binary(max_size=40) | st.text(alphabet="0123456789", max_size=100) | st.text(max_size=100))
def test_seedqr(payload):
    try:
        words = seedqr.decode(payload).split()
    except seedqr.SeedQRError:
        event("refused")
        return
    assert len(words) in (12, 24)


# ------------------------------------------------------------------ SAM-BA replies


class ReplyPort:
    """A serial port whose device answers with the given bytes, then stays silent."""

    name = "fuzz-samba"

    def __init__(self, replies: bytes):
        self.replies = replies

    def write(self, data: bytes) -> int:
        return len(data)

    def flush(self) -> None:
        pass

    def read(self, n: int) -> bytes:
        out, self.replies = self.replies[:n], self.replies[n:]
        return out


SAMBA_OK = (b"\n\r" + (0x8A5C08C0).to_bytes(4, "little") + (0xFFFFFFFF).to_bytes(4, "little")
            + bytes(4) + b"".join(v.to_bytes(4, "little") for v in (0x224000, 0x18000, 512, 1 << 20)))


@given(mutated(SAMBA_OK))
def test_samba_replies(replies):
    samba = Samba(ReplyPort(replies), timeout=0.01)
    try:
        samba.connect(timeout=0.01)
        sd = samba.sdmmc(b"applet")
        assert sd.chunk_size <= 0x40000
        sd.read(0, sd.page_size)
    except SambaError:
        event("refused")


# ------------------------------------------------------------------ CTAP2 and ISO-DEP


class Panel:
    """What the authenticator touches of a Prime: a prompt that nobody answers, on a good build."""

    def __init__(self):
        self.lock = threading.RLock()
        self.ui = self
        self.keyos = self  # the build's seeded defects: none
        self.defects = Defects.of()

    def log(self, line: str) -> None:
        pass

    def show_modal(self, *args):
        return object()

    def dismiss(self, modal) -> None:
        pass


_CBOR_VALUE = st.recursive(st.none() | st.booleans() | st.integers(-2**64, 2**64) | st.binary(max_size=40)
                           | st.text(max_size=20),
                           _containers(st.integers(0, 12) | st.sampled_from(["id", "name", "type", "alg", "up", "rk",
                                                                             "uv", "displayName"])), max_leaves=25)
_CTAP_REQUEST = st.builds(lambda cmd, body: bytes([cmd]) + body, st.sampled_from([1, 2, 4, 6, 0x41]),
                          st.dictionaries(st.integers(1, 10), _CBOR_VALUE, max_size=6).map(cbor2.dumps)
                          | st.binary(max_size=60))


@given(st.lists(st.one_of(
    _CTAP_REQUEST.filter(lambda r: len(r) < 256).map(lambda r: bytes([0x80, 0x10, 0, 0, len(r)]) + r + b"\x00"),
    st.binary(max_size=40),
    st.just(b"\x00\xA4\x04\x00\x08\xA0\x00\x00\x06\x47\x2F\x00\x01\x00"),
    st.just(b"\x00\xC0\x00\x00\x00")), min_size=1, max_size=6))
def test_iso_dep_frames_to_the_card(apdus):
    card = FidoApplet(Authenticator(Panel(), b"k" * 32, up_timeout=0.05, abandon_after=0.05))
    for apdu in apdus:
        resp = card.apdu(apdu)
        assert isinstance(resp, bytes) and len(resp) >= 2  # always a status word, never an exception


class CardSession:
    """An ISO-DEP session whose card answers with the given (data, status word) pairs."""

    where = "fuzz"

    def __init__(self, answers: list[tuple[bytes, int]]):
        self.answers = list(answers)

    def apdu(self, c: bytes, timeout: float | None = None) -> tuple[bytes, int]:
        return self.answers.pop(0) if self.answers else (b"", 0x6F00)

    def close(self) -> None:
        pass


_CARD_ANSWER = st.tuples(st.binary(max_size=120), st.sampled_from([0x9000, 0x6100, 0x6160, 0x6A82, 0x6F00])
                         | st.integers(0, 0xFFFF))


@given(st.lists(_CARD_ANSWER, max_size=8))
def test_iso_dep_frames_from_the_card(answers):
    try:
        dev = CtapNfcDevice(CardSession([(b"U2F_V2", 0x9000)] + answers), poll_interval=0, presence_deadline=0.05,
                            response_timeout=0.05)
        dev.call(0x10, b"\x04")
    except (CtapError, NfcError, InfrastructureError):
        event("refused")


# ------------------------------------------------------------------ Allure results, sign-off bundles


RESULT = json.dumps({"name": "t", "status": "passed", "statusDetails": {"message": "m"}, "start": 1, "stop": 2,
                     "labels": [{"name": "nodeid", "value": "a::t"}, {"name": "package", "value": "a"}],
                     "attachments": [{"name": "s", "source": "x.txt"}], "steps": [{"attachments": []}],
                     "parameters": [{"name": "p", "value": "1"}]})


@given(mutated_text(RESULT) | _JSON.map(json.dumps))
def test_allure_result_files(tmp_path_factory, text):
    try:
        record = parse_result(json.loads(text), "r.json")
    except (ValueError, RecursionError):  # json's and pydantic's (ValidationError is a ValueError)
        event("refused")
    else:
        assert record.status in ("passed", "failed", "broken", "skipped")
    folder = tmp_path_factory.mktemp("res")
    (folder / "r-result.json").write_text(text)
    res = read_results(folder)  # never raises: a bad file is a named problem
    assert len(res.records) + sum("unreadable" in p for p in res.problems) == 1


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    from farm_helpers import firmware_hash, signed_build, write_result

    from hil.lab.config import SigningKey

    tmp = tmp_path_factory.mktemp("signoff")
    build = signed_build(tmp / "app.bin")
    write_result(tmp / "res", "suites.security.test_isolation", "test_one", "passed", firmware=firmware_hash(build),
                 evidence={"screen": b"ok"})
    key = signoff.lab_key(SigningKey(path=tmp / "k.pem", generate=True))
    signoff.create(build, tmp / "res", tmp / "bundle", criteria_path=ROOT / "signoff_criteria.emulated.yaml", key=key,
                   lab="fuzz", profiles={"prime-emulated"})
    return tmp / "bundle", key.public_key()


@given(data=st.data())
def test_signoff_bundles(bundle, tmp_path_factory, data):
    folder, public = bundle
    original = (folder / "signoff.json").read_text()
    doc = data.draw(mutated_text(original) | _JSON.map(json.dumps)
                    | st.builds(lambda p, s: json.dumps({"payload": p, "signature": s}), _JSON, _JSON))
    copy = tmp_path_factory.mktemp("b")
    for f in folder.rglob("*"):
        if f.is_file():
            (copy / f.relative_to(folder)).parent.mkdir(parents=True, exist_ok=True)
            (copy / f.relative_to(folder)).write_bytes(f.read_bytes())
    (copy / "signoff.json").write_text(doc)
    try:
        signoff.verify(copy, public)
    except signoff.VerifyError:
        event("refused")
        return
    assert json.loads(doc) == json.loads(original)  # only the signed document itself verifies


# ------------------------------------------------------------------ lab files and profiles


LAB = (ROOT / "lab_config.yaml").read_text()
PROFILE = (ROOT / "device_profiles" / "prime-emulated.yaml").read_text()


@given(st.sampled_from([(LAB, LabConfig), (PROFILE, Profile)]).flatmap(
    lambda pair: st.tuples(mutated(pair[0].encode(), max_edits=4), st.just(pair[1]))))
def test_lab_files_and_profiles(tmp_path_factory, case):
    data, model = case
    path = tmp_path_factory.mktemp("lab") / "file.yaml"
    path.write_bytes(data)
    try:
        read_yaml(path)
        load_yaml_model(path, model, **({"name": "p"} if model is Profile else {}))
    except ConfigError as e:
        event("refused")
        assert str(e).startswith(str(path))
