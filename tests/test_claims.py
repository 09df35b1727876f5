"""The claims catalogue is complete: every cell of every claim names checks or a reason, every check it
names is a test the suites have, and docs/claims.md is its current rendering."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from hil.report.claims import DIMENSIONS, RENDERED, ROOT, CatalogueError, load, missing_checks, render


@pytest.fixture(scope="module")
def collected() -> set[str]:
    """The node ids of suites/, as pytest collects them (no device needed to collect)."""
    proc = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--collect-only", "-q", "-m", "",
                           "suites"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    nodes = set(re.findall(r"^(suites/\S+::\S+)$", proc.stdout, re.MULTILINE))
    assert nodes, proc.stdout[-2000:]
    return nodes


def test_every_cell_has_checks_or_a_reason():
    catalogue = load()
    assert catalogue.claims
    for claim in catalogue.claims:
        assert set(claim.cells) == set(DIMENSIONS), claim.id


def test_every_named_check_exists(collected):
    assert missing_checks(load(), collected) == []


def test_a_check_that_does_not_exist_is_reported(collected):
    catalogue = load()
    catalogue.claims[0].cells["binding"].checks.append("suites/security/test_isolation.py::test_no_such_check")
    assert missing_checks(catalogue, collected) == ["suites/security/test_isolation.py::test_no_such_check"]


def test_rendered_doc_is_current():
    assert RENDERED.read_text(encoding="utf-8") == render(load()), \
        "docs/claims.md is stale: run `python -m hil.report.claims`"


@pytest.mark.parametrize("cell, message", [
    ("{}", "names no check and gives no reason"),
    ("{reason: '  '}", "names no check and gives no reason"),
    ("{checks: [a], colour: red}", "Extra inputs"),
])
def test_an_uncovered_or_malformed_cell_is_a_one_line_error(tmp_path, cell, message):
    cells = ", ".join(f"{d}: {{reason: r}}" for d in DIMENSIONS[1:])
    path = tmp_path / "claims.yaml"
    path.write_text(f"claims:\n  - {{id: c, claim: x, source: y, cells: {{binding: {cell}, {cells}}}}}\n")
    with pytest.raises(CatalogueError, match=message) as e:
        load(path)
    assert "claims.0.cells.binding" in str(e.value) and "\n" not in str(e.value)


def test_a_claim_missing_a_dimension_is_refused(tmp_path):
    path = tmp_path / "claims.yaml"
    path.write_text("claims:\n  - {id: c, claim: x, source: y, cells: {binding: {reason: r}}}\n")
    with pytest.raises(CatalogueError, match="missing"):
        load(path)


def test_unreadable_yaml_is_a_one_line_error(tmp_path):
    path = tmp_path / "claims.yaml"
    path.write_text("claims:\n  - id: c\n    source: a: b: c\n")
    with pytest.raises(CatalogueError, match="cannot read the claims catalogue") as e:
        load(path)
    assert "\n" not in str(e.value)

