"""The test plan: what a run set out to check, recorded as `plan.json` in its results folder before any
test runs. Allure writes nothing for a module that never ran or failed to import, so without the plan
the sign-off could only judge what happens to be on disk.

The plan is every collected test id; what `-k`/`-m` deselected, a file or node id named on the command
line and `--ignore` make it partial (never a release); what `--deselect` left out (the nightly's resume:
tests that already have a result) is still planned. Modules that could not be collected are listed by name.

The plan carries its pytest session's id and every result the same id (the `session` label): results an
earlier session left in the same `--alluredir` are not this run's. A resumed part (`--deselect` into a
folder with a plan) keeps the earlier parts' sessions as `resumed_sessions`.
"""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path

import pytest
from pydantic import BaseModel, ConfigDict, ValidationError

PLAN = "plan.json"
SESSION = pytest.StashKey[str]()


class Plan(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    tests: tuple[str, ...]  # every collected test id (pytest node ids)
    collection_errors: dict[str, str] = {}  # module -> why it could not be collected
    filters: dict[str, str] = {}  # "-k"/"-m" where it deselected planned tests; "paths"/"--ignore" that narrowed it
    deselected_by_filters: tuple[str, ...] = ()
    flavour: str | None = None
    lab: str | None = None
    session: str | None = None  # the pytest session that wrote it; its results carry it as the `session` label
    resumed_sessions: tuple[str, ...] = ()  # earlier parts of the same run (the nightly's resume)

    @property
    def partial(self) -> bool:
        return bool(self.deselected_by_filters or self.filters)

    @property
    def sessions(self) -> set[str]:
        """The sessions whose results are this run's."""
        return {self.session, *self.resumed_sessions} - {None}


def session_id(config: pytest.Config) -> str:
    """One id for the whole pytest session, the same on every xdist worker (xdist's testrunuid). Never
    xdist's environment variable: a pytest started from inside a worker inherits it, yet is another session."""
    if SESSION not in config.stash:
        workerinput = getattr(config, "workerinput", None)
        config.stash[SESSION] = (workerinput["testrunuid"] if workerinput is not None
                                 else config.getoption("testrunuid", None) or uuid.uuid4().hex)
    return config.stash[SESSION]


def narrowing(config: pytest.Config) -> dict[str, str]:
    """Command-line choices that leave checks out without deselecting them: a node id named as a path, and
    `--ignore`. A folder or a file is a suite set (a lab file's `suites:` lists them): the sign-off's required
    checks (the claims catalogue's) catch one that leaves a claim's check out."""
    out = {}
    paths = [a for a in config.args if "::" in a]
    if paths:
        out["paths"] = " ".join(paths)
    ignored = [*(config.getoption("ignore") or ()), *(config.getoption("ignore_glob") or ())]
    if ignored:
        out["--ignore"] = " ".join(map(str, ignored))
    return out


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
        self.session: str | None = None

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        if report.failed:
            lines = str(report.longrepr).strip().splitlines()
            self.errors[report.nodeid or "."] = lines[-1] if lines else "collection error"

    @pytest.hookimpl(hookwrapper=True)
    def pytest_collection_modifyitems(self, session: pytest.Session, config: pytest.Config, items: list[pytest.Item]):
        planned = [i.nodeid for i in items]
        yield
        import allure

        session = session_id(config)
        for item in items:
            item.add_marker(allure.label("nodeid", item.nodeid))
            item.add_marker(allure.label("session", session))
        resumed = set(config.getoption("deselect") or ())
        kept = {i.nodeid for i in items} | resumed
        dropped = tuple(t for t in planned if t not in kept)
        filters = {opt: val for opt, val in (("-k", config.option.keyword), ("-m", config.option.markexpr)) if val}
        self.session = session
        earlier = self._earlier_sessions() if resumed else ()
        plan = Plan(tests=tuple(planned), collection_errors=self.errors,
                    filters={**(filters if dropped else {}), **narrowing(config)},
                    deselected_by_filters=dropped, flavour=config.getoption("--flavour", None),
                    lab=config.getoption("--lab", None), session=session, resumed_sessions=earlier)
        self.folder.mkdir(parents=True, exist_ok=True)
        tmp = self.folder / f".{PLAN}.{os.getpid()}"
        tmp.write_text(json.dumps(plan.model_dump(mode="json"), indent=2))
        tmp.replace(self.folder / PLAN)


    def _earlier_sessions(self) -> tuple[str, ...]:
        """The sessions of the plan this part resumes (an unreadable or session-less one resumes nothing)."""
        try:
            before = read_plan(self.folder)
        except ValueError:
            return ()
        if before is None or before.session is None:
            return ()
        return tuple(s for s in dict.fromkeys((*before.resumed_sessions, before.session)) if s != self.session)


def register(config: pytest.Config) -> None:
    """Record the plan of a run that writes Allure results (`--alluredir`)."""
    folder = getattr(config.option, "allure_report_dir", None)
    if folder:
        config.pluginmanager.register(PlanRecorder(Path(folder)), "hil-plan")
