"""Sign-off: go only on complete positive evidence; the bundle verifies offline and fails on any change."""

import json
import re
import shutil
from pathlib import Path

import pytest
from farm_helpers import firmware_hash, signed_build, write_plan, write_result
from typer.testing import CliRunner

from hil.report import signoff
from hil.report.cli import signoff_app
from farm_helpers import lab_in

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def lab(tmp_path):
    return lab_in(tmp_path)


@pytest.fixture
def build(tmp_path):
    return signed_build(tmp_path / "app.bin")


GREEN = ("suites.security.test_isolation", "suites.security.test_lockdown")


def _green(folder, fw, **kw):
    for mod in GREEN:
        write_result(folder, mod, "test_one", "passed", firmware=fw, evidence={"screen": b"ok"}, **kw)
    if not (folder / "plan.json").exists():
        write_plan(folder, [f"{mod}::test_one" for mod in GREEN])


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
    assert {s: {p: c["verdict"] for p, c in row.items()} for s, row in payload["matrix"].items()} == {
        "suites.security.test_isolation": {"prime-emulated": "passed"},
        "suites.security.test_lockdown": {"prime-emulated": "passed"}}
    assert payload["firmware"]["trust"]["test"] == "FULLY_TRUSTED" and payload["firmware"]["version"] == "1.0.0"
    assert any(e["path"].endswith("/plan.json") for e in payload["evidence"])  # what was meant to run
    assert len(payload["evidence"]) == 5 and all(len(e["sha256"]) == 64 for e in payload["evidence"])
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
    other = signoff.SigningKey(path=tmp_path / "other.pem", generate=True)
    signoff.lab_key(other)
    r = CliRunner().invoke(signoff_app, ["verify", str(b), "--trusted", str(other.trusted_signers)])
    assert r.exit_code == 1 and "not one of the trusted signers" in r.output
    r = CliRunner().invoke(signoff_app, ["verify", str(b), "--trusted", str(other.path)])
    assert r.exit_code == 2 and "holds a private key" in r.output
    link = tmp_path / "linked"
    shutil.copytree(b, link)
    (link / "evidence" / "passwd").symlink_to("/etc/passwd")
    r = CliRunner().invoke(signoff_app, ["verify", str(link), "--lab", str(lab)])
    assert r.exit_code == 1 and "a symlink in a results folder" in r.output


def test_verdict_reads_on_one_page(tmp_path, lab, build):
    """ISO dates, the signer by name and role, criteria in words, trust as a table, the banner on a
    test-key build, evidence grouped per check with hashes, fixture containers left out."""
    _green(tmp_path / "res", firmware_hash(build))
    (tmp_path / "res" / "0000-container.json").write_text("{}")
    assert _signoff(lab, build, tmp_path / "res", tmp_path / "bundle").exit_code == 0
    payload = json.loads((tmp_path / "bundle" / "signoff.json").read_text())["payload"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", payload["created"])
    assert payload["signer"]["name"] == "prime-hil emulated lab" and "never a release" in payload["signer"]["role"]
    assert payload["not_a_release"] == ["test keys", "emulated criteria"]
    assert not any("container" in e["path"] for e in payload["evidence"])
    check = next(c for c in payload["checks"] if c["test"] == "suites.security.test_lockdown::test_one")
    assert [f["name"] for f in check["files"]] == ["result", "screen"] and check["version"] == "1.0.0"
    html = (tmp_path / "bundle" / "signoff.html").read_text()
    assert "NOT A RELEASE: test keys, emulated criteria" in html and payload["created"] in html
    assert "<th>key set</th><th>trust</th>" in html and "The build must be fully trusted" in html
    assert check["files"][1]["sha256"][:16] in html and "prime-hil emulated lab, harness self-test" in html


EVIDENCE = tuple(f"display reading 1: Allow Access? | Grant Probe wants to access / {what}" for what in (
    "camera frame, panel outlined", "rectified view with OCR boxes", "OCR lines with confidences")) + (
    "probe 0x519ecf69d7fdfa8db9c2a106f38e8b2b (PID 28): 2/2 steps, ended / probe report",
    "probe 0x519ecf69d7fdfa8db9c2a106f38e8b2b (PID 28): 2/2 steps, ended / device log excerpt (last 9 of 9 lines)",
    "screenshot")


def test_pdf_holds_the_verdict_on_page_one_and_the_evidence_after(tmp_path, lab, build):
    """A nightly-sized bundle (60 checks, 6 files each): the banner, verdict, reasons, trust, the matrix with
    counts and the criteria on page 1 of the PDF; the evidence per check, grouped by test, on the pages after."""
    from weasyprint import HTML

    fw = firmware_hash(build)
    modules = [f"suites.security.test_{m}" for m in ("isolation", "lockdown", "permissions", "trusted_display")]
    tests = [(m, f"test_check_{i}[parameter_{i}]") for m in modules for i in range(15)]
    for m, t in tests:
        write_result(tmp_path / "res", m, t, "passed", firmware=fw, evidence={e: t.encode() for e in EVIDENCE})
    write_result(tmp_path / "res", modules[0], "test_dev_only", "skipped", firmware=fw,
                 message="Skipped: needs a development build")
    write_plan(tmp_path / "res", [f"{m}::{t}" for m, t in tests] + [f"{modules[0]}::test_dev_only"])
    assert _signoff(lab, build, tmp_path / "res", tmp_path / "bundle").exit_code == 0
    doc = HTML(filename=tmp_path / "bundle" / "signoff.html").render()  # signoff.pdf is this document
    page_of = {}
    for label, (page, _, _), _, _ in doc.make_bookmark_tree()[0][2]:
        page_of[label] = page
    assert doc.make_bookmark_tree()[0][0] == "Release sign-off: GO" and doc.make_bookmark_tree()[0][1][0] == 0
    assert {h: page_of[h] for h in ("Reasons", "Trust", "Security suites × profiles", "Criteria")} == dict.fromkeys(
        ("Reasons", "Trust", "Security suites × profiles", "Criteria"), 0)
    assert page_of["Skips (1)"] == 1 and page_of["Evidence per check (61 checks, 422 files)"] >= 1
    assert len(doc.pages) <= 6, len(doc.pages)  # the table of one file per row took 11
    html = (tmp_path / "bundle" / "signoff.html").read_text()
    assert html.index('<div class="banner">NOT A RELEASE') < html.index("<h1>Release sign-off") < html.index('<div class="details">')
    assert "<b>passed</b>:\n15 passed, 0 failed, 0 broken, 1 skipped" in html
    assert '<h3 class="mono">suites.security.test_lockdown</h3>' in html  # one group per module, tests by name
    assert '<span class="name">test_check_3[parameter_3]</span>' in html
    assert '<span class="step">display reading 1: Allow Access? | Grant Prob…</span>' in html  # files under their step
    assert '<span class="file in-step">OCR lines with confidences <span class="mono">' in html


def test_symlink_in_results_is_refused(tmp_path, lab, build):
    _green(tmp_path / "res", firmware_hash(build))
    (tmp_path / "res" / "x-attachment.txt").symlink_to(lab)
    r = _signoff(lab, build, tmp_path / "res", tmp_path / "bundle")
    assert r.exit_code == 2 and "a symlink in a results folder" in r.output and not (tmp_path / "bundle").exists()


def test_failing_suite_is_no_go_and_named(tmp_path, lab, build):
    fw = firmware_hash(build)
    _green(tmp_path / "res", fw)
    write_result(tmp_path / "res", "suites.security.test_isolation", "test_two", "failed", firmware=fw)
    r = _signoff(lab, build, tmp_path / "res", tmp_path / "bundle")
    assert r.exit_code == 1 and r.output.startswith("NO-GO")
    assert "suite suites.security.test_isolation: prime-emulated failed (1 passed, 1 failed)" in r.output
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
                                allowed_skips={"suites.security.*": ("^needs a production build",)},
                                clean_runs=2, accepted_keysets=("test",))
    _green(tmp_path / "dev0", fw)
    _green(tmp_path / "dev", fw)
    write_result(tmp_path / "dev", "suites.security.test_lockdown", "test_refuses", "skipped", firmware=fw,
                 message="Skipped: needs a production build; tcp:1 runs a development build")
    d = signoff.decide(criteria, ident, [signoff.read_results(tmp_path / n) for n in ("dev0", "dev")], {"prime-emulated"})
    assert not d.go and d.matrix["suites.security.test_lockdown"]["prime-emulated"]["verdict"] == "skipped"
    assert any("suites.security.test_lockdown::test_refuses (needs a production build)" in r for r in d.reasons), d.reasons
    # the same check passed on a production station in the other deciding run: go
    write_result(tmp_path / "dev0", "suites.security.test_lockdown", "test_refuses", "passed", firmware=fw,
                 station="emu-2", evidence={"screen": b"ok"})
    d = signoff.decide(criteria, ident, [signoff.read_results(tmp_path / n) for n in ("dev0", "dev")], {"prime-emulated"})
    assert d.go, d.reasons


# ---------------------------------------------------------------- what GO wrongly said before (issue 13)


def _decide(tmp_path, build, criteria=None, folders=("res",)):
    criteria = criteria or signoff.load_criteria(ROOT / "signoff_criteria.emulated.yaml")
    return signoff.decide(criteria, signoff.firmware_identity(build),
                          [signoff.read_results(tmp_path / f) for f in folders], {"prime-emulated"})


def test_one_passing_result_without_a_plan_or_with_modules_that_never_ran_is_no_go(tmp_path, build):
    fw = firmware_hash(build)
    write_result(tmp_path / "res", "suites.security.test_lockdown", "test_one", "passed", firmware=fw,
                 evidence={"screen": b"ok"})
    d = _decide(tmp_path, build)
    assert not d.go and any("no test plan (plan.json)" in r for r in d.reasons), d.reasons
    # the plan names the checks that never ran, and a module that did not import
    write_plan(tmp_path / "res", ["suites.security.test_lockdown::test_one", "suites/security/test_firmware.py::test_a"],
               collection_errors={"suites/security/test_isolation.py": "ImportError: cannot import name 'x'"})
    d = _decide(tmp_path, build)
    assert not d.go
    assert any("1 planned check(s) have no result: suites/security/test_firmware.py::test_a" in r for r in d.reasons)
    assert any("module suites/security/test_isolation.py could not be collected: ImportError" in r for r in d.reasons)
    assert d.matrix["suites.security.test_firmware"]["prime-emulated"]["verdict"] == "missing"


def test_a_run_filtered_with_k_is_a_partial_plan_and_never_go(tmp_path, build):
    fw = firmware_hash(build)
    write_result(tmp_path / "res", "suites.security.test_lockdown", "test_one", "passed", firmware=fw,
                 evidence={"screen": b"ok"})
    write_plan(tmp_path / "res", ["suites.security.test_lockdown::test_one", "suites.security.test_lockdown::test_two"],
               filters={"-k": "one"}, deselected_by_filters=["suites.security.test_lockdown::test_two"])
    d = _decide(tmp_path, build)
    assert not d.go and any("a partial plan (-k 'one' deselected 1 check(s)), never a release" in r
                            for r in d.reasons), d.reasons


def test_the_build_is_what_the_unit_reported_not_the_operators_option(tmp_path, build):
    """--farm-firmware named the build, but the unit answered another version: a broken station, no GO."""
    _green(tmp_path / "res", firmware_hash(build), version="0.9.0")
    d = _decide(tmp_path, build)
    assert not d.go
    assert any("broken station(s) emu-1: its unit reported version 0.9.0, the build under sign-off is 1.0.0" in r
               for r in d.reasons), d.reasons
    assert d.matrix["suites.security.test_lockdown"]["prime-emulated"]["verdict"] == "broken"
    assert d.runs[0]["stations"] == {"emu-1": {"serial": "SER-emu-1", "versions": ["0.9.0"]}}


def test_a_suite_all_skipped_but_one_is_not_passed(tmp_path, build):
    fw = firmware_hash(build)
    _green(tmp_path / "res", fw)
    tests = [f"{m}::test_one" for m in GREEN]
    for i in range(3):
        write_result(tmp_path / "res", "suites.security.test_lockdown", f"test_s{i}", "skipped", firmware=fw,
                     message=f"Skipped: the probe app is missing ({i})")
        tests.append(f"suites.security.test_lockdown::test_s{i}")
    write_plan(tmp_path / "res", tests)
    d = _decide(tmp_path, build)
    cell = d.matrix["suites.security.test_lockdown"]["prime-emulated"]
    assert not d.go and cell["verdict"] == "skipped" and (cell["passed"], cell["skipped"]) == (1, 3)
    assert {s["reason"] for s in cell["skips"]} == {f"the probe app is missing ({i})" for i in range(3)}
    assert any("test_s0 skipped, a reason the criteria do not allow (the probe app is missing (0))" in r
               for r in d.reasons), d.reasons
    # the criteria allow that reason for this suite only: go
    criteria = signoff.Criteria(security_suites=("suites.security.*",), accepted_keysets=("test",),
                                allowed_skips={"suites.security.test_lockdown": ("^the probe app is missing",)})
    assert _decide(tmp_path, build, criteria).go
    # nothing passed: allowed skips alone carry no suite
    write_result(tmp_path / "only", "suites.security.test_lockdown", "test_s", "skipped", firmware=fw,
                 message="Skipped: the probe app is missing")
    write_plan(tmp_path / "only", ["suites.security.test_lockdown::test_s"])
    d = _decide(tmp_path, build, criteria, folders=("only",))
    assert not d.go and d.matrix["suites.security.test_lockdown"]["prime-emulated"]["verdict"] == "skipped"
