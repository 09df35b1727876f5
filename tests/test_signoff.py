"""Sign-off: go only on complete positive evidence; the bundle verifies offline and fails on any change."""

import json
import shutil
from pathlib import Path

import pytest
from farm_helpers import firmware_hash, signed_build, write_result
from typer.testing import CliRunner

from hil.report import signoff
from hil.report.cli import signoff_app

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def lab(tmp_path):
    text = (ROOT / "lab_config.yaml").read_text()
    for key, val in (("state_dir: .hil", f"state_dir: {tmp_path / 'state'}"),
                     ("profiles_dir: device_profiles", f"profiles_dir: {ROOT / 'device_profiles'}"),
                     ("signoff_criteria: signoff_criteria.emulated.yaml", f"signoff_criteria: {ROOT / 'signoff_criteria.emulated.yaml'}"),
                     ("path: .hil/keys/lab-signoff-ed25519.pem", f"path: {tmp_path / 'keys' / 'lab.pem'}")):
        text = text.replace(key, val)
    p = tmp_path / "lab.yaml"
    p.write_text(text)
    return p


@pytest.fixture
def build(tmp_path):
    return signed_build(tmp_path / "app.bin")


def _green(folder, fw, **kw):
    for mod in ("suites.security.test_isolation", "suites.security.test_lockdown"):
        write_result(folder, mod, "test_one", "passed", firmware=fw, evidence={"screen": b"ok"}, **kw)


def _signoff(lab, build, results, out):
    return CliRunner().invoke(signoff_app, ["--build", str(build), "--results", str(results), "-o", str(out),
                                            "--lab", str(lab)])


def test_go_bundle_verifies_and_tamper_fails(tmp_path, lab, build):
    _green(tmp_path / "res", firmware_hash(build))
    r = _signoff(lab, build, tmp_path / "res", tmp_path / "bundle")
    assert r.exit_code == 0, r.output
    assert r.output.startswith("GO")
    b = tmp_path / "bundle"
    payload = json.loads((b / "signoff.json").read_text())["payload"]
    assert payload["matrix"] == {"suites.security.test_isolation": {"prime-emulated": "passed"},
                                 "suites.security.test_lockdown": {"prime-emulated": "passed"}}
    assert payload["firmware"]["trust"]["test"] == "FULLY_TRUSTED" and payload["firmware"]["version"] == "1.0.0"
    assert len(payload["evidence"]) == 4 and all(len(e["sha256"]) == 64 for e in payload["evidence"])
    assert (b / "signoff.pdf").read_bytes().startswith(b"%PDF")
    ok = CliRunner().invoke(signoff_app, ["verify", str(b), "--lab", str(lab)])
    assert ok.exit_code == 0 and "verified: GO" in ok.output

    def tampered(edit):
        t = tmp_path / "t"
        shutil.rmtree(t, ignore_errors=True)
        shutil.copytree(b, t)
        edit(t)
        return CliRunner().invoke(signoff_app, ["verify", str(t), "--lab", str(lab)])

    att = next((b / "evidence").rglob("*-attachment.txt")).relative_to(b)
    r = tampered(lambda t: (t / att).write_bytes(b"changed"))
    assert r.exit_code == 1 and "SHA-256 differs" in r.output
    r = tampered(lambda t: (t / att).unlink())
    assert r.exit_code == 1 and "listed in the sign-off but missing" in r.output
    r = tampered(lambda t: (t / "evidence" / "extra.txt").write_text("x"))
    assert r.exit_code == 1 and "not listed in the signed sign-off" in r.output

    def flip(t):
        doc = json.loads((t / "signoff.json").read_text())
        doc["payload"]["decision"] = "go" if doc["payload"]["decision"] == "no-go" else "no-go"
        (t / "signoff.json").write_text(json.dumps(doc))
    r = tampered(flip)
    assert r.exit_code == 1 and "signature does not match" in r.output
    other = tmp_path / "other.pem"
    signoff.lab_key(signoff.SigningKey(path=other, generate=True))
    r = CliRunner().invoke(signoff_app, ["verify", str(b), "--key", str(other)])
    assert r.exit_code == 1 and "not the lab's key" in r.output


def test_failing_suite_is_no_go_and_named(tmp_path, lab, build):
    fw = firmware_hash(build)
    _green(tmp_path / "res", fw)
    write_result(tmp_path / "res", "suites.security.test_isolation", "test_two", "failed", firmware=fw)
    r = _signoff(lab, build, tmp_path / "res", tmp_path / "bundle")
    assert r.exit_code == 1 and r.output.startswith("NO-GO")
    assert "suite suites.security.test_isolation: prime-emulated failed" in r.output
    payload = signoff.verify(tmp_path / "bundle", signoff.load_public(tmp_path / "keys" / "lab.pem"))
    assert payload["failing_suites"] == ["suites.security.test_isolation"]


def test_missing_evidence_is_no_go(tmp_path, lab, build):
    _green(tmp_path / "res", firmware_hash(build))
    next((tmp_path / "res").glob("*-attachment.txt")).unlink()
    r = _signoff(lab, build, tmp_path / "res", tmp_path / "bundle")
    assert r.exit_code == 1 and "evidence missing" in r.output


def test_results_of_another_build_are_no_go(tmp_path, lab, build):
    _green(tmp_path / "res", "0" * 64)
    r = _signoff(lab, build, tmp_path / "res", tmp_path / "bundle")
    assert r.exit_code == 1 and "0 run(s) of this build" in r.output


def test_broken_result_and_broken_station_are_no_go(tmp_path, lab, build):
    fw = firmware_hash(build)
    run = tmp_path / "runs" / "n1"
    _green(run / "allure-results", fw)
    write_result(run / "allure-results", "suites.security.test_lockdown", "test_two", "broken", firmware=fw)
    (run / "run.json").write_text(json.dumps({"broken_stations": {"emu-2": "camera dark"}}))
    r = _signoff(lab, build, tmp_path / "runs", tmp_path / "bundle")
    assert r.exit_code == 1
    assert "broken station(s) emu-2: camera dark" in r.output and "suites.security.test_lockdown: prime-emulated broken" in r.output


def test_unsigned_build_is_no_go(tmp_path, lab):
    plain = tmp_path / "plain.bin"
    plain.write_bytes(b"\x7fELF" + bytes(100))
    _green(tmp_path / "res", "x")
    r = _signoff(lab, plain, tmp_path / "res", tmp_path / "bundle")
    assert r.exit_code == 1 and "no cosign2 header" in r.output


def test_existing_bundle_is_not_overwritten(tmp_path, lab, build):
    (tmp_path / "bundle").mkdir()
    _green(tmp_path / "res", firmware_hash(build))
    r = _signoff(lab, build, tmp_path / "res", tmp_path / "bundle")
    assert r.exit_code == 2 and "exists" in r.output


def test_clean_reruns_criterion(tmp_path, build):
    fw = firmware_hash(build)
    ident = signoff.firmware_identity(build)
    criteria = signoff.Criteria(security_suites=("suites.security.*",), clean_runs=2, accepted_keysets=("test",))
    _green(tmp_path / "n1", fw)
    runs = [signoff.read_results(tmp_path / "n1")]
    d = signoff.decide(criteria, ident, runs, {"prime-emulated"})
    assert not d.go and "1 run(s) of this build in the results, the criteria need 2" in d.reasons
    _green(tmp_path / "n2", fw)
    write_result(tmp_path / "other", "suites.security.test_isolation", "test_one", "failed", firmware="0" * 64)
    runs = [signoff.read_results(tmp_path / n) for n in ("n1", "n2", "other")]
    d = signoff.decide(criteria, ident, runs, {"prime-emulated"})
    assert d.go, d.reasons
    assert sorted(p.name for p in d.deciding) == ["n1", "n2"]


def test_release_criteria_refuse_a_test_signed_build(tmp_path, build):
    """The shipped criteria accept only production-signed builds; the emulated lab's accept `test`."""
    fw = firmware_hash(build)
    _green(tmp_path / "n1", fw)
    runs, ident = [signoff.read_results(tmp_path / "n1")], signoff.firmware_identity(build)
    release = signoff.load_criteria(ROOT / "signoff_criteria.yaml")
    d = signoff.decide(release, ident, runs, {"prime-emulated"})
    assert not d.go and any("not fully trusted by production" in r for r in d.reasons), d.reasons
    assert signoff.decide(signoff.load_criteria(ROOT / "signoff_criteria.emulated.yaml"), ident, runs,
                          {"prime-emulated"}).go


def test_production_only_check_skipped_for_its_flavour_is_no_go(tmp_path, build):
    fw = firmware_hash(build)
    ident = signoff.firmware_identity(build)
    criteria = signoff.Criteria(security_suites=("suites.security.*",), required_flavours=("production",),
                                clean_runs=2, accepted_keysets=("test",))
    _green(tmp_path / "dev0", fw)
    _green(tmp_path / "dev", fw)
    write_result(tmp_path / "dev", "suites.security.test_lockdown", "test_refuses", "skipped", firmware=fw,
                 message="Skipped: needs a production build; tcp:1 runs a development build")
    d = signoff.decide(criteria, ident, [signoff.read_results(tmp_path / n) for n in ("dev0", "dev")], {"prime-emulated"})
    assert not d.go and d.matrix["suites.security.test_lockdown"]["prime-emulated"] == "skipped"
    assert any("suites.security.test_lockdown::test_refuses (needs a production build)" in r for r in d.reasons), d.reasons
    # the same check passed on a production station in the other deciding run: go
    write_result(tmp_path / "dev0", "suites.security.test_lockdown", "test_refuses", "passed", firmware=fw,
                 station="emu-2", evidence={"screen": b"ok"})
    d = signoff.decide(criteria, ident, [signoff.read_results(tmp_path / n) for n in ("dev0", "dev")], {"prime-emulated"})
    assert d.go, d.reasons
