"""Nightly history and diff: new failures, fixed, flaky across retries and stations, broken stations."""

import pytest
from farm_helpers import write_result

from hil.errors import ConfigError
from hil.report.allure import read_results
from hil.report.history import History, Night, diff
from hil.report.summary import render


def _night(folder, run_id, broken=None, build="f"):
    return Night.from_results(read_results(folder), run_id=run_id, started=1.0, finished=2.0, lab="lab",
                              firmware={"hash": build}, broken_stations=broken or {})


def test_diff_against_previous_night(tmp_path):
    m = "suites.test_perm"
    write_result(tmp_path / "n1", m, "test_regress", "passed")
    write_result(tmp_path / "n1", m, "test_fixed", "failed")
    write_result(tmp_path / "n1", m, "test_still", "failed")
    write_result(tmp_path / "n2", m, "test_regress", "failed", message="AccessDenied missing")
    write_result(tmp_path / "n2", m, "test_fixed", "passed")
    write_result(tmp_path / "n2", m, "test_still", "failed")
    write_result(tmp_path / "n2", m, "test_flaky", "broken", station="emu-1", attempt=1)
    write_result(tmp_path / "n2", m, "test_flaky", "passed", station="emu-2", attempt=2)
    h = History(tmp_path / "history.jsonl")
    h.append(_night(tmp_path / "n1", "n1", build="old"))
    n2 = _night(tmp_path / "n2", "n2", broken={"emu-1": "camera dark"}, build="new")
    d = diff(h.last(before="n2"), n2)
    assert d.previous == "n1"
    assert d.new_failures == {f"{m}::test_regress": "failed"}
    assert d.fixed == [f"{m}::test_fixed"] and d.still_failing == [f"{m}::test_still"]
    assert d.flaky == {f"{m}::test_flaky": [["emu-1", 1, "broken"], ["emu-2", 2, "passed"]]}
    assert d.broken_stations == {"emu-1": "camera dark"}
    assert d.totals == {"passed": 2, "failed": 2, "broken": 0, "skipped": 0}
    assert "new failures: 1" in d.text() and "emu-1#1 broken" in d.text()


def test_same_build_changing_outcome_across_stations_is_flaky(tmp_path):
    write_result(tmp_path / "n1", "suites.a", "test_x", "passed", station="emu-1")
    write_result(tmp_path / "n2", "suites.a", "test_x", "failed", station="emu-3")
    d = diff(_night(tmp_path / "n1", "n1"), _night(tmp_path / "n2", "n2"))
    assert d.new_failures == {} and d.flaky == {"suites.a::test_x": [["emu-1", 1, "passed"], ["emu-3", 1, "failed"]]}


def test_same_build_broken_last_night_is_not_flaky_tonight(tmp_path):
    """A broken attempt was the lab's fault; only a changed verdict on the same build is flakiness."""
    m = "suites.test_perm"
    write_result(tmp_path / "n1", m, "test_lab_fault", "broken")
    write_result(tmp_path / "n1", m, "test_verdict", "failed")
    write_result(tmp_path / "n2", m, "test_lab_fault", "passed")
    write_result(tmp_path / "n2", m, "test_verdict", "passed")
    d = diff(_night(tmp_path / "n1", "n1"), _night(tmp_path / "n2", "n2"))
    assert d.flaky == {f"{m}::test_verdict": [["emu-1", 1, "failed"], ["emu-1", 1, "passed"]]}
    assert f"{m}::test_lab_fault" not in d.flaky


def test_first_night_has_no_previous(tmp_path):
    write_result(tmp_path, "suites.a", "test_x", "failed")
    d = diff(None, _night(tmp_path, "n1"))
    assert d.previous is None and d.new_failures == {"suites.a::test_x": "failed"}


def test_corrupt_history_line_named(tmp_path):
    (tmp_path / "h.jsonl").write_text('{"run_id": "x"\n')
    with pytest.raises(ConfigError, match=r"h.jsonl:1: corrupt history record"):
        History(tmp_path / "h.jsonl").nights()


def test_summary_escapes_device_text(tmp_path):
    write_result(tmp_path, "suites.a", "test_x", "failed", message="<script>alert(1)</script> & <b>",
                 station="<img src=x>")
    n = _night(tmp_path, "n1")
    html = render(n, diff(None, n), read_results(tmp_path))
    assert "<script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt; &amp; &lt;b&gt;" in html
    assert "<img" not in html and "suites.a::test_x" in html
