"""Reading Allure results back: statuses, farm labels, retries, and a corrupt folder named, not hidden."""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

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
    from hil.report import allure_report

    run = tmp_path / "reports" / "nightly" / "n1"
    write_result(run / "allure-results", "suites.test_x", "test_a", "passed")
    lab = tmp_path / "lab.yaml"
    root = Path(__file__).resolve().parents[1]
    lab.write_text((root / "lab_config.yaml").read_text().replace("reports_dir: reports", f"reports_dir: {tmp_path / 'reports'}")
                   .replace("profiles_dir: device_profiles", f"profiles_dir: {root / 'device_profiles'}")
                   .replace("signoff_criteria: signoff", f"signoff_criteria: {root}/signoff"))
    monkeypatch.setattr(allure_report, "LOCAL", tmp_path / "no-venv-allure")
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}:/usr/bin:/bin")
    (tmp_path / "bin").mkdir()
    fake = tmp_path / "bin" / "allure"
    fake.write_text("#!/bin/sh\necho 2.30.0\n")  # Allure 2 on PATH is not taken
    fake.chmod(0o755)
    r = CliRunner().invoke(app, ["report", "allure", str(run), "--lab", str(lab)])
    assert r.exit_code == 3 and "is not Allure 3" in r.output and "npm install --prefix" in r.output, r.output
    # Allure 3 on PATH: records how it was called, writes a report
    fake.write_text(f'#!/bin/sh\n[ "$1" = --version ] && echo 3.18.0 && exit 0\necho "$@" > {tmp_path}/args\n'
                    'mkdir -p "$6" && echo ok > "$6/index.html"\n')
    r = CliRunner().invoke(app, ["report", "allure", str(run), "--lab", str(lab)])
    assert r.exit_code == 0, r.output
    assert (run / "allure-report" / "index.html").is_file()
    assert (tmp_path / "args").read_text().split()[:2] == ["generate", str(run / "allure-results")]
    config = json.loads((run / "allurerc.json").read_text())
    assert config["historyPath"] == str(tmp_path / "reports" / "allure-history.jsonl") and config["appendHistory"]
    assert [c["matchedStatuses"] for c in config["categories"]] == [["broken"], ["failed"]]


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


@pytest.mark.slow
def test_allure3_report_files_lab_faults_apart_and_carries_history(tmp_path):
    """The real Allure 3 on a real allure-pytest run, two nights: broken under lab faults, failed under KeyOS
    regressions, the environment and executor shown, and the second night's trend holds the first."""
    from hil.report import allure_report

    try:
        allure_report.allure3()
    except allure_report.AllureMissing as e:
        pytest.skip(str(e))
    (tmp_path / "test_night.py").write_text("def test_ok():\n    pass\n"
                                            "def test_regression():\n    assert 'locked' == 'unlocked'\n"
                                            "def test_lab_fault():\n    raise ConnectionError('debug link lost')\n")
    history = tmp_path / "reports" / allure_report.HISTORY
    for night in ("n1", "n2"):
        results = tmp_path / night / "allure-results"
        r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--rootdir", str(tmp_path),
                            "--alluredir", str(results), str(tmp_path / "test_night.py")],
                           cwd=tmp_path, capture_output=True, text=True, timeout=120)
        assert r.returncode == 1, r.stdout + r.stderr
        allure_report.write_metadata(results, run_id=night, lab="emulated", harness="834b809",
                                     firmware={"file": "app.bin", "version": "1.0.0", "hash": "ab" * 32},
                                     stations={"emu-1": "flashed (ran the suites)"})
        report = allure_report.generate(tmp_path / night, history)
    widgets = report / "widgets"
    categories = json.loads((widgets / "categories.json").read_text())["nodes"].values()
    assert {c["name"]: c["statistic"] for c in categories if c["type"] == "category"} == {
        "Lab faults (infrastructure)": {"total": 1, "broken": 1}, "KeyOS regressions": {"total": 1, "failed": 1}}
    env = {e["name"]: e["values"] for e in json.loads((widgets / "allure_environment.json").read_text())}
    assert env["build.version"] == ["1.0.0"] and env["station.emu-1"] == ["flashed (ran the suites)"]
    executor = json.loads(re.search(r'"executor":(\{[^}]*\})', (report / "index.html").read_text()).group(1))
    assert executor["buildName"] == "n2" and executor["name"] == "prime-hil nightly on emulated"
    assert _trend(report) == ["prime-hil n1", "current"]
    regression = next(json.loads(p.read_text()) for p in (report / "data" / "test-results").glob("*.json")
                      if json.loads(p.read_text())["name"] == "test_regression")
    assert [h["status"] for h in regression["history"]] == ["failed"]
    assert len(history.read_text().splitlines()) == 2
    allure_report.generate(tmp_path / "n1", history)  # made again: the first night, without the second
    assert len(history.read_text().splitlines()) == 2
    assert _trend(tmp_path / "n1" / "allure-report") == ["current"]


def _trend(report: Path) -> list[str]:
    """The nights in the report's status trend chart."""
    charts = json.loads((report / "widgets" / "charts.json").read_text())["general"].values()
    return next([point["name"] for point in c["data"]] for c in charts if c["type"] == "statusDynamics")


def test_an_attachment_source_that_is_a_path_is_a_problem_not_evidence(tmp_path):
    """allure-pytest names attachments by file name; `../x` or an absolute path would sign a file from
    outside the results folder."""
    (tmp_path / "outside.txt").write_text("x")
    res = tmp_path / "res"
    res.mkdir()
    (res / "ok-attachment.txt").write_text("ok")
    doc = {"name": "t", "status": "passed", "attachments": [
        {"name": "fine", "source": "ok-attachment.txt"}, {"name": "up", "source": "../outside.txt"},
        {"name": "abs", "source": str(tmp_path / "outside.txt")}]}
    (res / "a-result.json").write_text(json.dumps(doc))
    out = read_results(res)
    assert out.records[0].attachments == ("ok-attachment.txt",) and out.records[0].attachment_names == ("fine",)
    assert len(out.problems) == 1 and "'../outside.txt'" in out.problems[0] and str(tmp_path / "outside.txt") in \
        out.problems[0] and "not a file name in the results folder" in out.problems[0]
