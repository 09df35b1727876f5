"""The suites catch regressions: every seeded defect turns its named suite red (a *failed* test, not a
broken one), and the good build keeps every suite green. Each run is its own ``pytest`` process against
its own emulated Prime, as a lab would run it, started by the test that judges it (`make test`'s six
workers run six at a time; the processes are forked from one that imported the libraries once: `forked_pytest`)."""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

import forked_pytest
import pytest

from hil.emulator.defects import CATALOG
from hil.lab.nightly import UNUSED_PLUGINS, suite_env
from hil.machine import scaled

ROOT = Path(__file__).resolve().parents[1]
RUN_S = 900  # one suite run on an idle machine (the hang limit below is scaled by tests/conftest.py)
# the runs' bytecode, compiled once for all of them where PYTHONDONTWRITEBYTECODE keeps it out of the tree
ENV = suite_env(Path(tempfile.gettempdir()) / "hil-seeded-defects")
pytestmark = [pytest.mark.slow, pytest.mark.timeout(RUN_S + 60)]


@pytest.fixture(scope="session", autouse=True)
def fork_server():
    """The runs' server, stopped and reaped when this worker's session ends (`forked_pytest.stop_server`)."""
    yield
    forked_pytest.stop_server()


def run_suites(*args: str) -> tuple[int, str]:
    """One suite run in a fresh process (`forked_pytest`); returns (exit code, output)."""
    args = ("-p", "no:cacheprovider", *UNUSED_PLUGINS, "-q", "-rfE", "--device=emulator", *args)
    return forked_pytest.run_pytest(list(args), ROOT, ENV, scaled(RUN_S))


def failed_not_broken(output: str) -> set[str]:
    """Tests that failed on the device's behaviour (the plugin lists infrastructure faults as BROKEN)."""
    failed = set(re.findall(r"^FAILED (\S+)", output, re.MULTILINE))
    broken = set(re.findall(r"^BROKEN (\S+)", output, re.MULTILINE))
    return failed - broken


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow(minutes=2)) if "test_firmware.py" in CATALOG[n][1]
                                  else n for n in sorted(CATALOG)])  # the firmware lane's flash and recovery first
def test_each_defect_turns_its_suite_red(name):
    _, suite, flavour = CATALOG[name]
    code, out = run_suites("-x", "--emulator-flavour", flavour, "--emulator-defect", name, suite)
    caught = failed_not_broken(out)
    assert code == 1 and caught, f"{name} ({CATALOG[name][0]}) was not caught by {suite}:\n{out[-3000:]}"
    assert all(node.startswith(suite) for node in caught)


SUITES = sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "suites" / "security").glob("test_*.py"))
# the runs of a minute or more in `make test` (the firmware suite's power-button holds), started first
MINUTES = {"suites/security/test_firmware.py": 4, "suites/security/test_permissions.py": 1}


@pytest.mark.parametrize("suite", [pytest.param(s, marks=pytest.mark.slow(minutes=MINUTES[s])) if s in MINUTES else s
                                   for s in SUITES])
@pytest.mark.parametrize("flavour", ["development", "production"])
def test_good_build_keeps_every_suite_green(flavour, suite):
    """One run per suite file, so `make test`'s workers share the good builds' runs."""
    code, out = run_suites("--emulator-flavour", flavour, suite)
    assert code == 0, f"the good {flavour} build is not green on {suite}:\n{out[-4000:]}"
    assert re.search(r"\d+ passed", out), out[-2000:]


def test_permissions_suite_runs_against_the_release_1_0_0_apps(release_1_0_0):
    apps = str(release_1_0_0 / "apps")
    code, out = run_suites("--emulator-apps", apps, "--manifests", apps, "suites/security/test_permissions.py",
                           "-k", "declared_messages_delivered")
    assert code == 0, out[-4000:]
    assert re.search(r"^12 passed", out.splitlines()[-1]) or "12 passed" in out, out[-2000:]
