"""`hil nightly` end to end on emulated stations, with stand-in suites and a stand-in flasher (the device's
answer to a build is modelled by a marker file the stand-in suite reads): go on a good build, no-go
naming the failing suite on a build with a seeded defect, the diff between the nights, and resume."""

import json
from pathlib import Path

import pytest
import typer
from farm_helpers import (SESSION, criteria_requiring, firmware_hash, signed_build, stand_in_suites, write_plan,
                          write_result)
from typer.testing import CliRunner

import hil.lab.nightly as job
from hil.lab.cli import nightly
from hil.report import signoff
from hil.report.allure import read_results
from hil.report.plan import read_plan

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def lab(tmp_path, monkeypatch):
    criteria = criteria_requiring(tmp_path / "criteria.yaml", [
        f"suites/security/test_isolation.py::{t}" for t in ("test_kernel_denies_undeclared_send", "test_storage_scoped")])
    text = (ROOT / "lab_config.yaml").read_text()
    for key, val in (("profiles_dir: device_profiles", f"profiles_dir: {ROOT / 'device_profiles'}"),
                     ("signoff_criteria: signoff_criteria.emulated.yaml", f"signoff_criteria: {criteria}"),
                     ("samba_applet: firmware", f"samba_applet: {ROOT / 'firmware'}")):
        text = text.replace(key, val)
    text = "\n".join(ln for ln in text.splitlines() if not ln.strip().startswith(("emu-2", "emu-3", "emu-4")))
    (tmp_path / "lab.yaml").write_text(text + "\n")
    flashed = stand_in_suites(tmp_path)

    def standin(lab_cfg, build, flavour="production"):
        def flash(station, progress):
            marker = flashed / station.name
            if marker.exists() and marker.read_bytes() == build.read_bytes():
                return False
            progress(0.5)
            marker.write_bytes(build.read_bytes())
            return True
        return flash

    monkeypatch.setattr(job, "samba_flasher", standin)
    return tmp_path / "lab.yaml"


def _nightly(lab, build, *more):
    app = typer.Typer()
    app.command()(nightly)
    return CliRunner().invoke(app, ["--firmware", str(build), "--lab", str(lab), *more])


@pytest.mark.slow
def test_good_night_then_defect_night(tmp_path, lab):
    good = signed_build(tmp_path / "good.bin", b'{"keyos": "emulated", "defects": []}')
    r = _nightly(lab, good)
    assert r.exit_code == 0, r.output
    assert "sign-off: GO" in r.output
    night1 = sorted((tmp_path / "reports" / "nightly").iterdir())[-1]
    meta = json.loads((night1 / "run.json").read_text())
    assert meta["finished"] and meta["flashed"] == {"emu-1": "flashed"}
    for f in ("summary.html", "diff.txt", "diff.json", "lab.yaml", "signoff/signoff.pdf", "allure-results/plan.json"):
        assert (night1 / f).is_file(), f
    summary = (night1 / "summary.html").read_text()
    assert 'Sign-off: <b class="go">GO</b>' in summary and 'href="signoff/signoff.html"' in summary
    assert 'href="allure-report/index.html"' in summary
    for f in ("categories.json", "environment.properties", "executor.json"):
        assert (night1 / "allure-results" / f).is_file(), f
    assert "Allure report" in r.output  # generated where Allure 3 is installed, else how to install it
    key = signoff.load_trusted(tmp_path / ".hil" / "keys" / "lab-signoff-ed25519.trusted-signers.pem")
    assert signoff.verify(night1 / "signoff", key)["decision"] == "go"
    stations = {r.station for r in read_results(night1 / "allure-results").records}
    assert stations == {"emu-1"}

    bad = signed_build(tmp_path / "defect.bin", b'{"keyos": "emulated", "defects": ["kernel-skips-permission-check"]}')
    from hil.lab.quarantine import Quarantine
    Quarantine(tmp_path / ".hil").add("emu-1", "health check failed: link: no response", by="worker gw0")
    r = _nightly(lab, bad)
    assert r.exit_code == 1, r.output
    assert "emu-1: readmitted: passed the health check (worker gw0 had quarantined it: health check failed: " \
           "link: no response)" in r.output
    assert "sign-off: NO-GO (failing suites: suites.security.test_isolation)" in r.output
    assert "new failures: 1" in r.output and "test_kernel_denies_undeclared_send" in r.output
    night2 = sorted((tmp_path / "reports" / "nightly").iterdir())[-1]
    assert night2 != night1
    payload = signoff.verify(night2 / "signoff", key)
    assert payload["decision"] == "no-go" and payload["failing_suites"] == ["suites.security.test_isolation"]
    history = (tmp_path / "reports" / "history.jsonl").read_text().splitlines()
    assert len(history) == 2


@pytest.mark.slow
def test_killed_night_is_resumed(tmp_path, lab):
    build = signed_build(tmp_path / "good.bin")
    from hil.lab.config import load_lab
    cfg = load_lab(lab)
    ident = signoff.firmware_identity(build)
    run = job.open_run(cfg, {"file": str(build), "sha256": ident["sha256"], "hash": firmware_hash(build),
                             "version": "1.0.0"})
    done = write_result(run.results, "suites.security.test_isolation", "test_storage_scoped", "passed",
                        firmware=firmware_hash(build), evidence={"log": b"x"},
                        extra_labels={"nodeid": "suites/security/test_isolation.py::test_storage_scoped"})
    write_plan(run.results, [f"suites/security/test_isolation.py::{t}" for t in  # the killed part's, written first
                             ("test_kernel_denies_undeclared_send", "test_storage_scoped")])
    r = _nightly(lab, build)
    assert "(resumed)" in r.output and "resuming: 1 test(s) already have a result" in r.output
    assert r.exit_code == 0, r.output
    results = read_results(run.results)
    assert sorted(x.test_id for x in results.records) == [
        "suites/security/test_isolation.py::test_kernel_denies_undeclared_send",
        "suites/security/test_isolation.py::test_storage_scoped"]
    assert done.exists()
    assert json.loads((run.dir / "run.json").read_text())["finished"]
    assert read_plan(run.results).resumed_sessions == (SESSION,)  # the killed part's result counts


def test_typo_in_lab_is_a_clear_error(tmp_path, lab):
    lab.write_text(lab.read_text().replace("seed: 1, flavour: production", "seed: 1, flavor: production"))
    r = _nightly(lab, tmp_path / "none.bin")
    assert r.exit_code == 2 and "stations.emu-1.emulated.flavor: unknown field (typo?)" in r.output


def test_untrusted_build_stops_before_any_station(tmp_path, lab, monkeypatch):
    monkeypatch.undo()  # the real flasher: it checks the image before touching a station
    plain = tmp_path / "plain.bin"
    plain.write_bytes(b"\x7fELF" + bytes(64))
    r = _nightly(lab, plain)
    assert r.exit_code == 2 and "neither a cosign2-signed app.bin" in r.output
    assert not (tmp_path / ".hil" / "quarantine.json").exists()


def test_test_ids_do_not_depend_on_where_the_repository_is(tmp_path):
    """The suites' ids start at the repository for its own suites, else beside the lab's suites folder,
    wherever the reports are written and whatever pytest's working directory."""
    from hil.lab.nightly import ROOT, suites_root

    assert suites_root([str(ROOT / "suites")]) == ROOT
    assert suites_root([str(ROOT / "suites" / "security" / "test_lockdown.py")]) == ROOT
    assert suites_root([str(tmp_path / "lab" / "suites")]) == tmp_path / "lab"
    assert suites_root([str(tmp_path / "lab" / "suites" / "a"), str(tmp_path / "lab" / "suites" / "b")]) == \
        tmp_path / "lab"


def test_a_suite_run_caches_its_bytecode_in_the_lab_where_the_environment_keeps_it_out_of_the_tree(tmp_path,
                                                                                                    monkeypatch):
    """With PYTHONDONTWRITEBYTECODE set, the suites' pytest processes still cache what they compile and what pytest
    rewrites, in the lab's state dir, not beside the sources; without it, Python's own place is left alone."""
    import subprocess
    import sys

    suites, state = tmp_path / "suites", tmp_path / "state"
    suites.mkdir()
    (suites / "test_x.py").write_text("def test_x():\n    assert 1 + 1 == 2\n")
    monkeypatch.setenv("PYTHONDONTWRITEBYTECODE", "1")
    monkeypatch.delenv("PYTHONPYCACHEPREFIX", raising=False)
    env = job.suite_env(state)
    subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:labgrid", str(suites)],
                   cwd=tmp_path, env=env, check=True, capture_output=True)
    assert list((state / "pycache").rglob("test_x.*pytest*.pyc")), "the rewritten test module was not cached"
    assert not list(suites.rglob("*.pyc"))
    monkeypatch.delenv("PYTHONDONTWRITEBYTECODE")
    assert "PYTHONPYCACHEPREFIX" not in job.suite_env(state)


@pytest.mark.slow
def test_station_quarantined_during_the_suites_is_no_go_and_a_later_signoff_agrees(tmp_path, lab, monkeypatch):
    """A worker quarantined a station while the suites ran: the nightly's own sign-off already knows it,
    and `hil signoff` on the same folder afterwards decides the same, for the same reasons."""
    from hil.lab.config import load_lab
    from hil.lab.quarantine import Quarantine
    from hil.report.cli import signoff_app

    real = job.run_suites

    def suites_then_quarantine(cmd, run, on_event, timeout, **kw):
        rc = real(cmd, run, on_event, timeout, **kw)
        Quarantine(load_lab(lab).state_dir).add("emu-1", "camera dark", by="gw0")
        return rc

    monkeypatch.setattr(job, "run_suites", suites_then_quarantine)
    build = signed_build(tmp_path / "good.bin")
    r = _nightly(lab, build)
    assert r.exit_code == 1 and "sign-off: NO-GO" in r.output, r.output
    night = sorted((tmp_path / "reports" / "nightly").iterdir())[-1]
    key = signoff.load_trusted(tmp_path / ".hil" / "keys" / "lab-signoff-ed25519.trusted-signers.pem")
    nightly_payload = signoff.verify(night / "signoff", key)
    assert any("broken station(s) emu-1: camera dark" in x for x in nightly_payload["reasons"]), nightly_payload
    later = CliRunner().invoke(signoff_app, ["--build", str(build), "--results", str(night), "-o",
                                             str(tmp_path / "later"), "--lab", str(lab)])
    assert later.exit_code == 1, later.output
    later_payload = signoff.verify(tmp_path / "later", key)
    assert (later_payload["decision"], later_payload["reasons"], later_payload["matrix"]) == \
        (nightly_payload["decision"], nightly_payload["reasons"], nightly_payload["matrix"])


def test_a_fault_quarantine_heals_at_the_next_night_an_operator_one_stays(tmp_path, lab, monkeypatch):
    """emu-1 was quarantined by a fault, emu-2 by a person, emu-3 by a fault and is still sick: at the start of
    the night emu-1 passes its health check and is readmitted with a line saying so; emu-2 and emu-3 stay out."""
    import contextlib

    from hil.lab import health
    from hil.lab.config import load_lab
    from hil.lab.quarantine import OPERATOR, Quarantine

    text = (ROOT / "lab_config.yaml").read_text()
    stations = "\n".join(ln for ln in text.splitlines() if ln.strip().startswith(("emu-2", "emu-3")))
    lab.write_text(lab.read_text().replace("stations:\n", "stations:\n" + stations + "\n"))
    cfg = load_lab(lab)
    assert set(cfg.stations) == {"emu-1", "emu-2", "emu-3"}
    quarantine = Quarantine(cfg.state_dir)
    quarantine.add("emu-1", "health check failed: link: no response within 10 s", by="worker gw0")
    quarantine.add("emu-2", "cracked screen", by=OPERATOR)
    quarantine.add("emu-3", "flashing failed: SAM-BA deadline", by="worker gw1")
    checked = []
    real_check = health.check

    def check(station, timeout=10.0):
        checked.append(station.name)
        report = real_check(station, timeout)
        if station.name != "emu-3":
            return report
        return health.Health(station.name, (health.Check("link", False, "no response within 10 s"),), None)

    monkeypatch.setattr(health, "check", check)
    run = job.open_run(cfg, {"sha256": "0" * 64})
    with contextlib.ExitStack() as stack:
        up = job.bring_up_all(cfg, stack, run, quarantine, lambda _n: None)
    assert sorted(up) == ["emu-1"]
    assert sorted(checked) == ["emu-1", "emu-3"]  # only the fault quarantines are checked
    assert run.meta["readmitted"] == {"emu-1": "readmitted: passed the health check (worker gw0 had quarantined "
                                               "it: health check failed: link: no response within 10 s)"}
    assert set(quarantine.entries()) == {"emu-2", "emu-3"}
    assert run.meta["unavailable"] == {
        "emu-2": "in quarantine since before the run: cracked screen",
        "emu-3": "in quarantine since before the run: flashing failed: SAM-BA deadline; "
                 "health check failed again: link: no response within 10 s"}
    assert run.meta["broken_stations"] == {}


@pytest.mark.slow
def test_unit_that_reports_another_version_after_flashing_is_broken(tmp_path, lab):
    """The flasher said done, but the unit answers GET_VERSION with another build's version: the station is
    quarantined as broken, whatever the operator meant to flash."""
    build = signed_build(tmp_path / "v2.bin", version="2.0.0")  # the stand-in flasher leaves 1.0.0 running
    r = _nightly(lab, build)
    assert r.exit_code == 2 and "no station is usable" in r.output, r.output
    assert "emu-1: flashed, but its unit reports version 1.0.0" in " ".join(r.output.split()), r.output  # why, at once
    meta = json.loads(next((tmp_path / "reports" / "nightly").glob("*/run.json")).read_text())
    assert meta["broken_stations"] == {"emu-1": "flashed, but its unit reports version 1.0.0, not the build's 2.0.0"}


@pytest.mark.slow(minutes=1.1)
def test_the_repositorys_lab_holds_its_release_to_the_production_bootloader(tmp_path):
    """The shipped emulated lab, its real flasher and a real check: the nightly flashes a production build
    and declares it, so the units' bootloaders must be production ones, and the check that a
    developer-signed image is refused runs and passes: neither skipped nor failed."""
    from farm_helpers import lab_in

    lab = lab_in(tmp_path)
    check = "suites/security/test_firmware.py::test_device_refuses_bad_firmware[developer-signed]"
    text = "\n".join(ln for ln in lab.read_text().splitlines() if not ln.strip().startswith(("emu-2", "emu-3", "emu-4")))
    text = text.replace("suites: [suites]", f"suites: ['{ROOT / check}']").replace("reports_dir: reports",
                                                                                 f"reports_dir: {tmp_path / 'reports'}")
    lab.write_text(text.replace("samba_applet: firmware", f"samba_applet: {ROOT / 'firmware'}") + "\n")
    app = typer.Typer()
    app.command()(nightly)
    r = CliRunner().invoke(app, ["--lab", str(lab)])
    night = sorted((tmp_path / "reports" / "nightly").iterdir())[-1]
    outcomes = {(rec.station, rec.status) for rec in read_results(night / "allure-results").final().values()}
    assert outcomes == {("emu-1", "passed")}, r.output
    assert read_plan(night / "allure-results").flavour == "production"
