"""The test plan a run records before anything runs: every collected id, what -k/-m left out, modules
that did not collect; what --deselect left out (the nightly's resume) is still planned."""

import json
import subprocess
import sys

import pytest

from hil.report.allure import read_results
from hil.report.plan import read_plan


def test_plan_records_collection_filters_and_import_errors(tmp_path):
    (tmp_path / "test_a.py").write_text("def test_one(): pass\ndef test_two(): pass\ndef test_three(): pass\n")
    (tmp_path / "test_bad.py").write_text("import no_such_module_xyz\n")
    out = tmp_path / "results"
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--rootdir", str(tmp_path),
                        "-k", "one or two", "--deselect", "test_a.py::test_two", "--continue-on-collection-errors",
                        "--alluredir", str(out), str(tmp_path)], cwd=tmp_path, capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 1, r.stdout + r.stderr  # the import error
    plan = read_plan(out)
    assert plan.tests == ("test_a.py::test_one", "test_a.py::test_two", "test_a.py::test_three")
    assert plan.partial and plan.deselected_by_filters == ("test_a.py::test_three",)
    assert plan.filters == {"-k": "one or two"}
    assert list(plan.collection_errors) == ["test_bad.py"] and "no_such_module_xyz" in plan.collection_errors["test_bad.py"]
    assert [x.test_id for x in read_results(out).records] == ["test_a.py::test_one"]  # matched by node id


def test_damaged_plan_is_an_error_naming_it(tmp_path):
    (tmp_path / "plan.json").write_text(json.dumps({"tests": "nope"}))
    with pytest.raises(ValueError, match="plan.json: not a test plan"):
        read_plan(tmp_path)
    assert read_plan(tmp_path / "none") is None


def _pytest(tmp_path, out, *args):
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--rootdir", str(tmp_path),
                           "--alluredir", str(out), *args], cwd=tmp_path, capture_output=True, text=True, timeout=120)


def test_a_node_id_or_ignore_narrows_the_plan_and_results_carry_its_session(tmp_path):
    """Naming a node id instead of a suite file or folder, or --ignore, leaves checks out without deselecting
    them: the plan says so (partial, never a release); a suite file left out is the required checks' to catch. Every result carries the plan's session;
    a resumed part (--deselect into the same folder) keeps the earlier session as its own."""
    (tmp_path / "test_a.py").write_text("def test_one(): pass\ndef test_two(): pass\n")
    (tmp_path / "test_b.py").write_text("def test_three(): pass\n")
    out = tmp_path / "whole"
    r = _pytest(tmp_path, out, str(tmp_path))
    assert r.returncode == 0, r.stdout + r.stderr
    plan = read_plan(out)
    assert not plan.partial and plan.filters == {} and plan.session
    assert {x.labels["session"] for x in read_results(out).records} == {plan.session}
    r = _pytest(tmp_path, out, str(tmp_path), "--deselect", "test_a.py::test_one")
    resumed = read_plan(out)
    assert resumed.session != plan.session and resumed.resumed_sessions == (plan.session,)
    assert resumed.sessions == {plan.session, resumed.session} and not resumed.partial
    r = _pytest(tmp_path, tmp_path / "file", "test_a.py", "--ignore", "test_b.py")
    assert r.returncode == 0, r.stdout + r.stderr
    assert read_plan(tmp_path / "file").filters == {"--ignore": "test_b.py"}
    r = _pytest(tmp_path, tmp_path / "node", "test_a.py::test_one")
    assert r.returncode == 0, r.stdout + r.stderr
    narrowed = read_plan(tmp_path / "node")
    assert narrowed.partial and narrowed.filters == {"paths": "test_a.py::test_one"}
    assert narrowed.resumed_sessions == ()
