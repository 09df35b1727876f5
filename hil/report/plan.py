"""The test plan: what a run set out to check, recorded as `plan.json` in its results folder before any
test runs. Allure writes nothing for a module that never ran or failed to import, so without the plan
the sign-off could only judge what happens to be on disk.

The plan is every collected test id; what `-k`/`-m` deselected makes it partial (never a release);
what `--deselect` left out (the nightly's resume: tests that already have a result) is still planned.
Modules that could not be collected are listed by name.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from pydantic import BaseModel, ConfigDict, ValidationError

PLAN = "plan.json"


class Plan(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    tests: tuple[str, ...]  # every collected test id (pytest node ids)
    collection_errors: dict[str, str] = {}  # module -> why it could not be collected
    filters: dict[str, str] = {}  # "-k"/"-m" -> expression, where it deselected planned tests
    deselected_by_filters: tuple[str, ...] = ()
    flavour: str | None = None
    lab: str | None = None

    @property
    def partial(self) -> bool:
        return bool(self.deselected_by_filters)


def read_plan(folder: Path) -> Plan | None:
    """The plan beside a run's results; None where there is none. A plan that does not parse is an error
    naming the file (a damaged plan is not the absence of one)."""
    path = Path(folder) / PLAN
    if not path.is_file():
        return None
    try:
        return Plan.model_validate_json(path.read_text())
    except (OSError, UnicodeDecodeError, ValidationError) as e:
        raise ValueError(f"{path}: not a test plan ({str(e).splitlines()[0]}); re-run the suites") from None


class PlanRecorder:
    """A pytest plugin: writes the plan into the Allure results folder once collection is done (on each
    xdist worker; they collect the same tests), and labels every result with its node id, the key the
    sign-off matches results to the plan by."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self.errors: dict[str, str] = {}

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        if report.failed:
            lines = str(report.longrepr).strip().splitlines()
            self.errors[report.nodeid or "."] = lines[-1] if lines else "collection error"

    @pytest.hookimpl(hookwrapper=True)
    def pytest_collection_modifyitems(self, session: pytest.Session, config: pytest.Config, items: list[pytest.Item]):
        planned = [i.nodeid for i in items]
        yield
        import allure

        for item in items:
            item.add_marker(allure.label("nodeid", item.nodeid))
        kept = {i.nodeid for i in items} | set(config.getoption("deselect") or ())
        dropped = tuple(t for t in planned if t not in kept)
        filters = {opt: val for opt, val in (("-k", config.option.keyword), ("-m", config.option.markexpr)) if val}
        plan = Plan(tests=tuple(planned), collection_errors=self.errors, filters=filters if dropped else {},
                    deselected_by_filters=dropped, flavour=config.getoption("--flavour", None),
                    lab=config.getoption("--lab", None))
        self.folder.mkdir(parents=True, exist_ok=True)
        tmp = self.folder / f".{PLAN}.{os.getpid()}"
        tmp.write_text(json.dumps(plan.model_dump(mode="json"), indent=2))
        tmp.replace(self.folder / PLAN)


def register(config: pytest.Config) -> None:
    """Record the plan of a run that writes Allure results (`--alluredir`)."""
    folder = getattr(config.option, "allure_report_dir", None)
    if folder:
        config.pluginmanager.register(PlanRecorder(Path(folder)), "hil-plan")
