"""Sign-off: go only on complete positive evidence; the bundle verifies offline and fails on any change."""

import json
import re
import shutil
from pathlib import Path

import pytest
import yaml
from farm_helpers import firmware_hash, signed_build, write_claims, write_plan, write_result
from typer.testing import CliRunner

from hil.report import signoff
from hil.report.cli import signoff_app
from farm_helpers import lab_in

ROOT = Path(__file__).resolve().parents[1]


def emulated_criteria(tmp_path, checks=None) -> signoff.Criteria:
    """The emulated lab's criteria, requiring these checks (default GREEN's) instead of the repository's claims."""
    catalogue = write_claims(tmp_path / "claims.yaml", checks or [f"{m}::test_one" for m in GREEN])
    criteria = signoff.load_criteria(ROOT / "signoff_criteria.emulated.yaml")
    assert criteria.claims == "suites/claims.yaml"
    return criteria.model_copy(update={"claims": str(catalogue)})


@pytest.fixture
def lab(tmp_path):
    """The emulated lab, its criteria requiring GREEN's checks (a test rewrites tmp_path/claims.yaml)."""
    path = lab_in(tmp_path)
    criteria = tmp_path / "criteria.yaml"
    criteria.write_text(yaml.safe_dump(emulated_criteria(tmp_path).model_dump(mode="json")))
    text = path.read_text()
    path.write_text(text.replace(f"signoff_criteria: {ROOT}/signoff_criteria.emulated.yaml",
                                 f"signoff_criteria: {criteria}"))
    assert str(criteria) in path.read_text()
    return path


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
    write_claims(tmp_path / "claims.yaml", [f"{m}::test_check_0" for m in modules])
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
    assert signoff.decide(emulated_criteria(tmp_path), ident, runs, {"prime-emulated"}).go


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
    criteria = criteria or emulated_criteria(tmp_path)
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
    # a file named on the command line, or --ignore: nothing deselected, still partial
    write_plan(tmp_path / "res", ["suites.security.test_lockdown::test_one"],
               filters={"paths": "suites/security/test_lockdown.py", "--ignore": "suites/security/test_fido.py"})
    d = _decide(tmp_path, build)
    assert not d.go and any("a partial plan (paths 'suites/security/test_lockdown.py' --ignore 'suites/security/"
                            "test_fido.py' narrowed what was collected), never a release" in r for r in d.reasons)


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


# ---------------------------------------------------------------- what GO wrongly said before (s28 review)


def test_a_failed_attempt_is_no_go_even_when_a_retry_passed(tmp_path, build):
    """Attempt 1 failed (then the farm re-ran it), attempt 2 passed: the failure is the finding."""
    fw = firmware_hash(build)
    _green(tmp_path / "res", fw, attempt=2)
    write_result(tmp_path / "res", "suites.security.test_lockdown", "test_one", "failed", firmware=fw,
                 message="AssertionError: the seed was shown without a prompt", extra_labels={"retried": "true"})
    d = _decide(tmp_path, build)
    assert not d.go
    assert any("suites.security.test_lockdown::test_one failed (attempt 1, then re-run): AssertionError" in r
               for r in d.reasons), d.reasons
    # an attempt the farm re-ran because infrastructure broke it is no finding
    _green(tmp_path / "ok", fw, attempt=2)
    write_result(tmp_path / "ok", "suites.security.test_lockdown", "test_one", "broken", firmware=fw,
                 message="LinkClosed", extra_labels={"retried": "true"})
    assert _decide(tmp_path, build, folders=("ok",)).go


def test_the_claims_checks_are_required_whatever_pytest_collected(tmp_path, build):
    """A run narrowed to one check (a path, --ignore, a skipped or renamed module) cannot sign GO: every check
    the catalogue names must be planned and end passed or skipped for an allowed reason; parametrised cases
    count by their function."""
    fw = firmware_hash(build)
    required = ["suites/security/test_permissions.py::test_a_valid_sideload_launches",
                "suites/security/test_lockdown.py::test_refuses"]
    criteria = emulated_criteria(tmp_path, required)
    write_result(tmp_path / "res", "suites.security.test_permissions", "test_a_valid_sideload_launches", "passed",
                 firmware=fw, evidence={"s": b"ok"})
    write_plan(tmp_path / "res", ["suites.security.test_permissions::test_a_valid_sideload_launches"])
    d = _decide(tmp_path, build, criteria)
    assert not d.go and any("1 required check(s) (claims) not planned, so never run: suites.security.test_lockdown"
                            "::test_refuses" in r for r in d.reasons), d.reasons
    # planned as two cases: one skipped for a reason the criteria do not allow is not enough
    tests = ["suites.security.test_permissions::test_a_valid_sideload_launches",
             "suites.security.test_lockdown::test_refuses[a]", "suites.security.test_lockdown::test_refuses[b]"]
    write_plan(tmp_path / "res", tests)
    write_result(tmp_path / "res", "suites.security.test_lockdown", "test_refuses[a]", "passed", firmware=fw,
                 evidence={"s": b"ok"})
    b = write_result(tmp_path / "res", "suites.security.test_lockdown", "test_refuses[b]", "skipped", firmware=fw,
                     message="Skipped: no probe today")
    d = _decide(tmp_path, build, criteria)
    assert not d.go and any("without a result the criteria allow: suites.security.test_lockdown::test_refuses[b] "
                            "(skipped)" in r for r in d.reasons), d.reasons
    b.unlink()  # skipped for a reason the emulated criteria allow: go
    write_result(tmp_path / "res", "suites.security.test_lockdown", "test_refuses[b]", "skipped", firmware=fw,
                 message="Skipped: erases the unit; pass --destructive")
    assert _decide(tmp_path, build, criteria).go
    # the shipped criteria require the repository's catalogue
    shipped = signoff.load_criteria(ROOT / "signoff_criteria.emulated.yaml")
    d = _decide(tmp_path, build, shipped)
    assert not d.go and any("required check(s) (claims) not planned" in r for r in d.reasons)


def test_only_the_plans_session_counts_and_two_final_results_are_no_go(tmp_path, build):
    """A killed session's plan, an earlier session's results in the same folder: they do not fill in."""
    fw = firmware_hash(build)
    _green(tmp_path / "res", fw, session="earlier")
    write_plan(tmp_path / "res", [f"{m}::test_one" for m in GREEN], session="killed")
    d = _decide(tmp_path, build)
    assert not d.go and any("2 planned check(s) have no result" in r for r in d.reasons), d.reasons
    assert d.runs[0]["results_of_other_sessions"] == 2
    # the nightly's resumed part: the earlier part's results are the run's
    write_plan(tmp_path / "res", [f"{m}::test_one" for m in GREEN], session="resumed", resumed_sessions=["earlier"])
    assert _decide(tmp_path, build).go
    # two final results for one check in the session: no-go, whichever came last
    write_result(tmp_path / "res", "suites.security.test_lockdown", "test_one", "passed", firmware=fw,
                 session="earlier", evidence={"s": b"ok"})
    d = _decide(tmp_path, build)
    assert not d.go and any("2 final results for suites.security.test_lockdown::test_one" in r for r in d.reasons)
    # a plan without a session cannot tell its results from a stale one's
    (tmp_path / "old").mkdir()
    _green(tmp_path / "old", fw)
    (tmp_path / "old" / "plan.json").write_text(json.dumps({"tests": [f"{m}::test_one" for m in GREEN]}))
    d = _decide(tmp_path, build, folders=("old",))
    assert not d.go and any("its plan names no session" in r for r in d.reasons), d.reasons


def test_a_newer_run_with_an_unlabelled_record_decides_not_an_older_clean_one(tmp_path, build):
    fw = firmware_hash(build)
    _green(tmp_path / "runs" / "n1", fw)
    new = tmp_path / "runs" / "n2"
    _green(new, fw)
    q = write_result(new, "suites.security.test_lockdown", "test_two", "broken", firmware=fw, message="NoStationFree")
    doc = json.loads(q.read_text())
    doc["labels"] = [lab for lab in doc["labels"] if lab["name"] in ("package", "suite", "nodeid", "session")]
    q.write_text(json.dumps(doc))
    write_plan(new, [f"{m}::test_one" for m in GREEN] + ["suites.security.test_lockdown::test_two"])
    for f in (tmp_path / "runs" / "n1").glob("*-result.json"):  # n1 is the older run
        d = json.loads(f.read_text())
        d["stop"] -= 60_000
        f.write_text(json.dumps(d))
    runs = [signoff.read_results(f) for f in signoff.find_runs(tmp_path / "runs")]
    d = signoff.decide(emulated_criteria(tmp_path), signoff.firmware_identity(build), runs, {"prime-emulated"})
    assert not d.go and [p.name for p in d.deciding] == ["n2"], (d.deciding, d.reasons)
    assert any("1 result(s) without this build's firmware label (another build's, or none): "
               "suites.security.test_lockdown::test_two (no label)" in r for r in d.reasons), d.reasons
    # run.json names the build: a run whose records all lack the label is still this build's, and no-go
    (new / "run.json").write_text(json.dumps({"firmware": {"hash": fw, "sha256": "x"}}))
    for f in new.glob("*-result.json"):
        d = json.loads(f.read_text())
        d["labels"] = [lab for lab in d["labels"] if lab["name"] != "firmware"]
        f.write_text(json.dumps(d))
    runs = [signoff.read_results(f) for f in signoff.find_runs(tmp_path / "runs")]
    d = signoff.decide(emulated_criteria(tmp_path), signoff.firmware_identity(build), runs, {"prime-emulated"})
    assert not d.go and [p.name for p in d.deciding] == ["n2"], d.reasons


def test_a_failed_or_broken_check_outside_the_security_suites_is_no_go(tmp_path, build):
    fw = firmware_hash(build)
    _green(tmp_path / "res", fw)
    write_result(tmp_path / "res", "suites.test_smoke", "test_locked_production_device_answers_locked", "failed",
                 firmware=fw, message="AssertionError: it answered")
    write_result(tmp_path / "res", "suites.test_smoke", "test_version", "broken", firmware=fw, message="LinkClosed")
    write_plan(tmp_path / "res", [f"{m}::test_one" for m in GREEN] + [
        "suites.test_smoke::test_locked_production_device_answers_locked", "suites.test_smoke::test_version"])
    d = _decide(tmp_path, build)
    assert not d.go
    assert any("suites.test_smoke::test_locked_production_device_answers_locked failed (attempt 1): Assert" in r
               for r in d.reasons), d.reasons
    assert any("suites.test_smoke::test_version broken: LinkClosed" in r for r in d.reasons), d.reasons


def test_an_attachment_outside_the_results_folder_is_not_evidence(tmp_path, lab, build):
    fw = firmware_hash(build)
    (tmp_path / "secret.txt").write_text("not evidence")
    _green(tmp_path / "res", fw)
    for bad in ("../secret.txt", str(tmp_path / "secret.txt")):
        p = next(p for p in sorted((tmp_path / "res").glob("*-result.json")))
        doc = json.loads(p.read_text())
        doc["attachments"] = [{"name": "screen", "source": bad}]
        p.write_text(json.dumps(doc))
        shutil.rmtree(tmp_path / "bundle", ignore_errors=True)
        r = _signoff(lab, build, tmp_path / "res", tmp_path / "bundle")
        assert r.exit_code == 1 and "not a file name in the results folder" in " ".join(r.output.split()), r.output
        payload = json.loads((tmp_path / "bundle" / "signoff.json").read_text())["payload"]
        assert not any(e["path"].endswith("secret.txt") for e in payload["evidence"])
