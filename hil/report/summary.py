"""The nightly summary as one standalone HTML page (no scripts, no external files). Every string that
came from a device or a test (messages, names, labels) goes through Jinja2 autoescaping."""

from __future__ import annotations

import time
from pathlib import Path

import jinja2

from hil.report.allure import STATUSES, Results
from hil.report.history import Diff, Night

TEMPLATES = Path(__file__).parent / "templates"


def environment() -> jinja2.Environment:
    return jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True,
                              undefined=jinja2.StrictUndefined)


def iso(t: float) -> str:
    """ISO 8601 UTC, to the second."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def render(night: Night, diff: Diff, results: Results, verdict: str | None = None) -> str:
    """`verdict` is the sign-off's ("GO", "NO-GO"), linked with the Allure report beside the summary."""
    suites: dict[str, dict[str, int]] = {}
    for r in results.final().values():
        suites.setdefault(r.suite, dict.fromkeys(STATUSES, 0))[r.status] += 1
    sections = [
        ("New failures", [f"{t} ({s})" for t, s in diff.new_failures.items()]),
        ("Fixed", diff.fixed),
        ("Flaky", [f"{t}: " + ", ".join(f"{st or '-'} #{a} {s}" for st, a, s in o) for t, o in diff.flaky.items()]),
        ("Broken stations", [f"{s}: {why}" for s, why in diff.broken_stations.items()]),
        ("Still failing", diff.still_failing),
    ]
    records = sorted(results.records, key=lambda r: (r.test_id, r.attempt))
    return environment().get_template("summary.html.j2").render(
        night=night, diff=diff, sections=sections, suites=dict(sorted(suites.items())), statuses=STATUSES,
        records=records, started=iso(night.started), finished=iso(night.finished), verdict=verdict,
        css=(TEMPLATES / "base.css").read_text())
