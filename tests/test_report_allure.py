"""Reading Allure results back: statuses, farm labels, retries, and a corrupt folder named, not hidden."""

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
