"""Bad input gets a typed, one-line error naming the thing and the fix (issue 17): one test per crash and
per silent error that a round of hostile inputs found."""

import json
import socket
import threading
from pathlib import Path

import pytest
from farm_helpers import firmware_hash, signed_build, write_result
from PIL import Image
from typer.testing import CliRunner

from hil.cli import app as hil_app
from hil.emulator import camera
from hil.emulator.launcher import EmulatorProcess
from hil.errors import ConfigError
from hil.flash import emulated, manifest
from hil.flash.flasher import check_bundle
from hil.lab.config import load_lab, SigningKey
from hil.profile import load_profile
from hil.report import signoff
from hil.report.allure import read_results
from hil.report.cli import signoff_app
from hil.terminal import printable
from hil.vision.camera import Camera

ROOT = Path(__file__).resolve().parents[1]


def one_line_error(result) -> str:
    """The CLI's whole complaint: one line, no traceback."""
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert result.exit_code not in (0, None) and len(lines) == 1, result.output
    assert "Traceback" not in result.output and not isinstance(result.exception, (TypeError, AttributeError))
    return lines[0]


# ------------------------------------------------------------------ manifests, app bundles


def test_manifest_not_utf8_is_a_manifest_error():
    with pytest.raises(manifest.ManifestError, match=r"m\.json: not UTF-8 text; a manifest is UTF-8"):
        manifest.loads(b"\xff", "m.json")
    with pytest.raises(manifest.ManifestError, match="not UTF-8"):
        manifest.loads(b"appId = '\xff'", "m.toml")


def test_flash_app_bundle_with_a_non_utf8_manifest_fails_before_the_device(tmp_path):
    (tmp_path / "manifest.json").write_bytes(b"\xff\xfe")
    (tmp_path / "app.elf").write_bytes(b"\x7fELF")
    with pytest.raises(manifest.ManifestError, match="manifest.json: not UTF-8"):
        check_bundle(tmp_path, emulated.keyset("test"))
    with socket.socket() as nobody:  # a port no device listens on: the bundle is refused before any connect
        nobody.bind(("127.0.0.1", 0))
        port = nobody.getsockname()[1]
        r = CliRunner().invoke(hil_app, ["flash", str(tmp_path), "--device", f"tcp:127.0.0.1:{port}", "--keys", "test"])
    assert one_line_error(r) == f"error: {tmp_path}/manifest.json: not UTF-8 text; a manifest is UTF-8 TOML or JSON"


# ------------------------------------------------------------------ hil firmware build-emulated


@pytest.mark.parametrize("args, expected", [
    (["--version", "1.0.0-aaaaaaaaaaaaaaaaaaaa"], "error: --version: version too long to write in header; the header"),
    (["--timestamp", "-5"], "error: --timestamp: invalid timestamp in header; give seconds since 1970 in 0..4294967295"),
    (["--timestamp", "99999999999"], "error: --timestamp: invalid timestamp"),
])
def test_build_emulated_bad_header_fields(tmp_path, args, expected):
    out = tmp_path / "app.bin"
    r = CliRunner().invoke(hil_app, ["firmware", "build-emulated", "-o", str(out), *args])
    assert one_line_error(r).startswith(expected)
    assert not out.exists()


@pytest.mark.parametrize("name", ["x.bin", "x.img"])
def test_build_emulated_unwritable_output(tmp_path, name):
    out = tmp_path / "missing" / name
    r = CliRunner().invoke(hil_app, ["firmware", "build-emulated", "--timestamp", "5", "-o", str(out)])
    assert one_line_error(r) == (f"error: {out}: cannot write (No such file or directory); "
                                 "pick a file in an existing, writable directory")


# ------------------------------------------------------------------ lab files and profiles


def lab_file(tmp_path, stations: str = "  emu-1: {profile: prime-emulated, emulated: {seed: 1}}\n",
             extra: str = f"signoff_criteria: {ROOT / 'signoff_criteria.emulated.yaml'}\n") -> Path:
    p = tmp_path / "lab.yaml"
    p.write_text(f"signing_key: {{path: k.pem}}\nprofiles_dir: {ROOT / 'device_profiles'}\n{extra}stations:\n{stations}")
    return p


def test_lab_file_not_utf8(tmp_path):
    p = lab_file(tmp_path)
    p.write_bytes(p.read_bytes() + b"# caf\xe9\n")
    with pytest.raises(ConfigError, match=r"lab.yaml: not UTF-8 text \(byte \d+\); save the file as UTF-8"):
        load_lab(p)


def test_profile_not_utf8(tmp_path):
    (tmp_path / "rev-x.yaml").write_bytes((ROOT / "device_profiles" / "prime-emulated.yaml").read_bytes() + b"\xff")
    with pytest.raises(ConfigError, match=r"rev-x.yaml: not UTF-8 text"):
        load_profile("rev-x", tmp_path)


def test_huge_integer_names_its_line(tmp_path):
    p = lab_file(tmp_path, "  emu-1: {profile: prime-emulated, emulated: {seed: " + "9" * 5000 + "}}\n")
    with pytest.raises(ConfigError, match=r"lab.yaml:5: not valid YAML \(an integer of 5000 characters is too long"):
        load_lab(p)


def test_duplicate_station_name_is_an_error(tmp_path):
    p = lab_file(tmp_path, "  emu-1: {profile: prime-emulated, emulated: {seed: 1}}\n"
                           "  emu-1: {profile: prime-emulated, emulated: {seed: 2}}\n")
    with pytest.raises(ConfigError, match=r"lab.yaml:6: not valid YAML \(key 'emu-1' appears twice; keep one\)"):
        load_lab(p)


def test_duplicate_key_in_a_profile_is_an_error(tmp_path):
    text = (ROOT / "device_profiles" / "prime-emulated.yaml").read_text()
    (tmp_path / "rev-x.yaml").write_text(text + "screenshot_byte_order: rgba\n")
    assert "screenshot_byte_order:" in text  # so the line added above is the second one
    with pytest.raises(ConfigError, match=r"rev-x.yaml:\d+: not valid YAML \(key 'screenshot_byte_order' appears twice"):
        load_profile("rev-x", tmp_path)


def test_yaml_merge_keys_are_not_duplicates(tmp_path):
    p = lab_file(tmp_path, "  emu-1: &base {profile: prime-emulated, emulated: {seed: 1}}\n"
                           "  emu-2:\n    <<: *base\n    emulated: {seed: 2}\n")
    assert load_lab(p).stations["emu-2"].emulated.seed == 2


def test_missing_signoff_criteria_flagged_when_the_lab_loads(tmp_path):
    p = lab_file(tmp_path, extra="signoff_criteria: nowhere.yaml\n")
    with pytest.raises(ConfigError, match=r"lab.yaml: signoff_criteria: .*nowhere.yaml does not exist; point it at"):
        load_lab(p)
    p = lab_file(tmp_path, extra="")  # the default, signoff_criteria.yaml beside the lab file, is checked too
    with pytest.raises(ConfigError, match="signoff_criteria.yaml does not exist"):
        load_lab(p)


# ------------------------------------------------------------------ allure results and sign-off bundles


BAD_RESULTS = {
    "[]": "top level: must be a JSON object",
    '{"status": "passed", "statusDetails": "x"}': "statusDetails 'x': must be a JSON object",
    '{"status": "passed", "start": 1e400}': "start inf: Input should be a finite number",
    "[" * 100_000 + "]" * 100_000: "nested too deeply",
    '{"status": "passed", "labels": [{"name": "x"}]}': "labels.0.value: Field required",
}


def test_malformed_result_files_are_reported_and_the_bundle_still_made(tmp_path):
    results, build = tmp_path / "res", signed_build(tmp_path / "app.bin")
    write_result(results, "suites.security.test_isolation", "test_one", "passed", firmware=firmware_hash(build),
                 evidence={"screen": b"ok"})
    expected = []
    for i, (body, problem) in enumerate(BAD_RESULTS.items()):
        (results / f"bad{i}-result.json").write_text(body)
        expected.append(f"{results / f'bad{i}-result.json'}: unreadable Allure result ({problem}); "
                        "re-run the test or delete the file")
    read = read_results(results)
    assert [r.name for r in read.records] == ["test_one"] and read.problems == expected
    key = tmp_path / "k.pem"
    decision = signoff.create(build, results, tmp_path / "bundle", criteria_path=ROOT / "signoff_criteria.emulated.yaml",
                              key=signoff.lab_key(SigningKey(path=key, generate=True)), lab="t", profiles={"prime-emulated"})
    assert not decision.go and all(any(p in r for r in decision.reasons) for p in expected)
    assert signoff.verify(tmp_path / "bundle", signoff.load_public(key))["decision"] == "no-go"


@pytest.mark.parametrize("doc", [
    {"payload": [], "signature": ""},
    {"payload": {"signer": "x"}, "signature": ""},
    {"payload": {"signer": {"public_key": "ab"}}, "signature": 5},
    {"payload": {}, "signature": ""},
    [],
    "[" * 100_000,
])
def test_verify_malformed_bundle_says_not_verified(tmp_path, doc):
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "signoff.json").write_text(doc if isinstance(doc, str) else json.dumps(doc))
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    (tmp_path / "pub.pem").write_bytes(Ed25519PrivateKey.generate().public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    r = CliRunner().invoke(signoff_app, ["verify", str(tmp_path / "b"), "--trusted", str(tmp_path / "pub.pem")])
    assert r.exit_code == 1
    assert one_line_error(r).startswith(f"NOT VERIFIED: {tmp_path / 'b' / 'signoff.json'}: not a sign-off document (")


# ------------------------------------------------------------------ emulator options and control


def test_emulator_start_with_a_missing_apps_directory(tmp_path):
    r = CliRunner().invoke(hil_app, ["emulator", "start", "--apps", str(tmp_path / "nonexistent")])
    assert one_line_error(r) == (f"hil emulator start: --apps: {tmp_path / 'nonexistent'}: no such directory; "
                                 "point at a directory of <app>/manifest.json")


def test_emulator_process_refuses_a_missing_apps_directory_before_it_starts(tmp_path):
    proc = EmulatorProcess(apps=str(tmp_path / "nonexistent"))
    with pytest.raises(manifest.ManifestError, match="nonexistent: no such directory"):
        proc.start()
    assert proc._proc is None  # nothing was spawned


def test_pytest_with_a_missing_emulator_apps_directory(pytester):
    pytester.makepyfile("def test_x(device_under_test):\n    pass\n")
    r = pytester.runpytest_subprocess("--device=emulator", "--emulator-apps", "/nonexistent", "-p", "no:cacheprovider")
    assert r.ret == pytest.ExitCode.USAGE_ERROR
    assert "hil: /nonexistent: no such directory; point at a directory of <app>/manifest.json" in r.stdout.str()
    assert "Traceback" not in r.stdout.str() + r.stderr.str() and "FileNotFoundError" not in r.stdout.str()


class StillPrime:
    seed, index, frame_counter = 3, 1, 1

    def __init__(self):
        self.lock = threading.RLock()

    def framebuffer(self) -> Image.Image:
        return Image.new("RGB", (480, 800), "white")


@pytest.mark.parametrize("optics, message", [
    ({"blur": "x"}, "bad camera optics blur: Input should be a valid number"),
    ({"blur": -1}, "bad camera optics blur: Input should be greater than or equal to 0"),
    ({"frame": [0, 0]}, "bad camera optics frame.0: Input should be greater than or equal to 64"),
    ({"glare": [0.5, 0.5, 0, 10]}, "bad camera optics glare.2: Input should be greater than 0"),
    ({"zoom": 2}, "bad camera optics zoom: Extra inputs are not permitted; known: frame, scale"),
])
def test_camera_refuses_bad_optics_and_keeps_streaming(optics, message):
    prime = StillPrime()
    cam = camera.CameraPeripheral()
    _, url = cam.start(prime)
    try:
        with pytest.raises(ValueError, match=message.replace(".", r"\.")):
            camera.control(prime, {"cmd": "camera", "optics": optics})
        assert cam.optics == camera.Optics()
        with Camera(url) as stream:
            assert stream.grab(10).shape == (1280, 960, 3)
    finally:
        cam.stop()


# ------------------------------------------------------------------ device text on a terminal

HOSTILE = "\x1b]0;owned\x07\x1b[2J\x9b31m\u202eevil\r"


def test_printable_replaces_every_control_character():
    assert printable(HOSTILE + "\tok\nnext é ✓") == "\ufffd]0;owned\ufffd\ufffd[2J\ufffd31m\ufffdevil\ufffd\tok\nnext é ✓"


def hostile_results(folder: Path, build: Path) -> None:
    fw = firmware_hash(build)
    for mod in ("suites.security.test_isolation", f"suites.security.test_{HOSTILE}"):  # a suite name from the device
        write_result(folder, mod, "test_one", "failed", firmware=fw, evidence={"screen": b"ok"}, message=HOSTILE,
                     extra_labels={"nodeid": f"{mod}::test_{HOSTILE}"})


def assert_sanitised(text: str) -> None:
    assert "owned" in text  # the device text is shown...
    assert not any(c in text for c in "\x1b\x07\x9b\r\u202e")  # ...but none of its control characters


def test_signoff_sanitises_device_text(tmp_path):
    lab = lab_file(tmp_path, extra=f"signoff_criteria: {ROOT / 'signoff_criteria.emulated.yaml'}\n"
                                   f"state_dir: {tmp_path / 'state'}\n")
    lab.write_text(lab.read_text().replace("path: k.pem", "path: k.pem, generate: true"))
    build = signed_build(tmp_path / "app.bin")
    hostile_results(tmp_path / "res", build)
    r = CliRunner().invoke(signoff_app, ["--build", str(build), "--results", str(tmp_path / "res"),
                                         "-o", str(tmp_path / "bundle"), "--lab", str(lab)])
    assert r.exit_code == 1 and r.output.startswith("NO-GO"), r.output
    assert_sanitised(r.output)


def test_nightly_console_sanitises_device_text(tmp_path, capsys):
    from hil.lab import cli as farm_cli
    from hil.lab import nightly as job
    from hil.lab.quarantine import Quarantine

    lab = lab_file(tmp_path, extra=f"signoff_criteria: {ROOT / 'signoff_criteria.emulated.yaml'}\n"
                                   f"state_dir: {tmp_path / 'state'}\nreports_dir: {tmp_path / 'reports'}\n")
    lab.write_text(lab.read_text().replace("path: k.pem", "path: k.pem, generate: true"))
    cfg, build = load_lab(lab), signed_build(tmp_path / "app.bin")
    run = job.open_run(cfg, {"file": str(build), "sha256": "0" * 64, "hash": firmware_hash(build)}, resume=False)
    run.meta.update(profiles=["prime-emulated"], broken_stations={"emu-1": f"device said {HOSTILE}"})
    hostile_results(run.results, build)
    assert farm_cli._report(job, cfg, run, build, Quarantine(cfg.state_dir)) == 1
    out = capsys.readouterr().out
    assert "new failures: 2" in out and "sign-off: NO-GO" in out
    assert_sanitised(out)
