"""Reading Allure results back: statuses, farm labels, retries, and a corrupt folder named, not hidden."""

import json
import subprocess
import sys
from pathlib import Path

from farm_helpers import write_result

from hil.report.allure import read_results


def test_reads_labels_and_final_attempt(tmp_path):
    write_result(tmp_path, "suites.test_isolation", "test_a", "broken", station="emu-1", attempt=1,
                 extra_labels={"retried": "true"})
    write_result(tmp_path, "suites.test_isolation", "test_a", "passed", station="emu-2", attempt=2,
                 evidence={"screen": b"ocr text"})
    res = read_results(tmp_path)
    assert res.problems == []
    final = res.final()["suites.test_isolation::test_a"]
    assert (final.status, final.station, final.profile, final.attempt) == ("passed", "emu-2", "prime-emulated", 2)
    assert [r.status for r in res.by_test()["suites.test_isolation::test_a"]] == ["broken", "passed"]
    assert final.labels["serial"] == "SER-emu-2" and len(final.attachments) == 1


def test_corrupt_and_missing_evidence_are_problems(tmp_path):
    write_result(tmp_path, "suites.test_x", "test_ok", "passed")
    (tmp_path / "0000-result.json").write_text('{"status": "passed", "name": ')
    (tmp_path / "0001-result.json").write_text('{"status": "great", "name": "t"}')
    gone = write_result(tmp_path, "suites.test_x", "test_ev", "passed", evidence={"frame": b"x"})
    for f in tmp_path.glob("*-attachment.txt"):
        f.unlink()
    res = read_results(tmp_path)
    assert len(res.records) == 2
    text = "\n".join(res.problems)
    assert "0000-result.json: unreadable Allure result" in text
    assert "0001-result.json: unreadable Allure result (status 'great'" in text
    assert f"{gone.name}: evidence missing" in text


def test_missing_folder_is_a_problem(tmp_path):
    assert "no such results folder" in read_results(tmp_path / "nope").problems[0]


def test_metadata_files_file_broken_as_lab_faults_and_failed_as_regressions(tmp_path):
    from hil.report.allure_report import write_metadata

    write_metadata(tmp_path, run_id="20261206T000000Z", lab="emulated",
                   firmware={"file": "app.bin", "version": "1.0.0", "hash": "ab" * 32}, harness="834b809",
                   stations={"emu-1": "flashed (ran the suites)", "emu-2": "broken: camera dark\nline=2"})
    cats = {c["name"]: c["matchedStatuses"] for c in json.loads((tmp_path / "categories.json").read_text())}
    assert cats == {"Lab faults (infrastructure)": ["broken"], "KeyOS regressions": ["failed"]}
    env = (tmp_path / "environment.properties").read_text().splitlines()
    assert "build.version=1.0.0" in env and "harness=834b809" in env
    assert r"station.emu-2=broken\: camera dark line\=2" in env  # one line each, separators escaped
    executor = json.loads((tmp_path / "executor.json").read_text())
    assert executor["buildName"] == "20261206T000000Z" and "1.0.0" in executor["reportName"]


def test_report_allure_says_how_to_install_or_generates_with_history(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from hil.cli import app

    run = tmp_path / "reports" / "nightly" / "n1"
    write_result(run / "allure-results", "suites.test_x", "test_a", "passed")
    lab = tmp_path / "lab.yaml"
    root = Path(__file__).resolve().parents[1]
    lab.write_text((root / "lab_config.yaml").read_text().replace("reports_dir: reports", f"reports_dir: {tmp_path / 'reports'}")
                   .replace("profiles_dir: device_profiles", f"profiles_dir: {root / 'device_profiles'}")
                   .replace("signoff_criteria: signoff", f"signoff_criteria: {root}/signoff"))
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}:/usr/bin:/bin")  # no allure there
    r = CliRunner().invoke(app, ["report", "allure", str(run), "--lab", str(lab)])
    assert r.exit_code == 3 and "npm install -g allure" in r.output, r.output
    (tmp_path / "bin").mkdir()
    fake = tmp_path / "bin" / "allure"  # records how it was called, writes a report
    fake.write_text(f'#!/bin/sh\necho "$@" > {tmp_path}/args\nmkdir -p "$6" && echo ok > "$6/index.html"\n')
    fake.chmod(0o755)
    r = CliRunner().invoke(app, ["report", "allure", str(run), "--lab", str(lab)])
    assert r.exit_code == 0, r.output
    assert (run / "allure-report" / "index.html").is_file()
    assert (tmp_path / "args").read_text().split()[:2] == ["generate", str(run / "allure-results")]
    config = json.loads((run / "allurerc.json").read_text())
    assert config["historyPath"] == str(tmp_path / "reports" / "allure-history.jsonl")


def test_no_phantom_teardown_entries(tmp_path):
    """The pinned pytest/allure-pytest pair writes no `<fixture>::<lambda>` teardown (allure-python#918)."""
    (tmp_path / "test_f.py").write_text("import pytest\n@pytest.fixture\ndef f():\n    yield 1\n"
                                        "def test_a(f):\n    assert f\n")
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--rootdir", str(tmp_path),
                        "--alluredir", str(tmp_path / "out"), str(tmp_path / "test_f.py")],
                       cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    containers = [json.loads(p.read_text()) for p in (tmp_path / "out").glob("*-container.json")]
    names = [a["name"] for c in containers for a in c.get("afters", [])]
    assert any(n.startswith("f::") for n in names) and not [n for n in names if "<lambda>" in n], names
