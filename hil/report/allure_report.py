"""The Allure report of a run as lab engineers read it: categories that file broken results (our
infrastructure) apart from failed ones (KeyOS), the environment and executor of the run, and history
carried from night to night, generated with Allure 3 (the npm `allure` CLI; no Java).

Allure 3 keeps history in one JSON-lines file that each generated report reads and appends to
(`historyPath` in its config); the lab keeps it beside the nightly history, so trends span nights. Its
report takes the categories from its config (`categories`, Allure 2's `matchedStatuses` rules accepted);
`categories.json` in the results is what Allure 2 reads. `scripts/setup.sh` installs the pinned CLI into
the venv (`<venv>/allure`) where npm is present.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

from hil.errors import HilError

CATEGORIES = [
    {"name": "Lab faults (infrastructure)", "matchedStatuses": ["broken"],
     "description": "broken: the lab could not get a verdict (link lost, camera dark, station unhealthy)"},
    {"name": "KeyOS regressions", "matchedStatuses": ["failed"],
     "description": "failed: the device answered, and not as KeyOS must"},
]
NPM_PACKAGE = "allure@3.18.0"
LOCAL = Path(sys.prefix) / "allure"  # the venv's own Allure 3 (scripts/setup.sh)
INSTALL = f"npm install --prefix {LOCAL} {NPM_PACKAGE}"
HISTORY = "allure-history.jsonl"
REPORT = "allure-report"


class AllureMissing(HilError):
    """No Allure 3 CLI in the venv or on PATH."""


def _property(value: object) -> str:
    """A value for a Java properties file: one line, separators and backslashes escaped."""
    text = re.sub(r"[\x00-\x1f\x7f]", " ", str(value))
    return re.sub(r"([\\=:#!])", r"\\\1", text)


def write_metadata(results: Path, *, run_id: str, lab: str, firmware: dict, harness: str,
                   stations: dict[str, str]) -> None:
    """categories.json, environment.properties and executor.json in the results folder. `stations` maps
    each station to what its unit reported (or why it was left out)."""
    results = Path(results)
    results.mkdir(parents=True, exist_ok=True)
    (results / "categories.json").write_text(json.dumps(CATEGORIES, indent=2))
    env = {"build": firmware.get("file", "?"), "build.version": firmware.get("version", "?"),
           "build.hash": firmware.get("hash", "?"), "lab": lab, "harness": harness,
           **{f"station.{name}": what for name, what in sorted(stations.items())}}
    (results / "environment.properties").write_text(
        "".join(f"{_property(k).replace(' ', '_')}={_property(v)}\n" for k, v in env.items()))
    executor = {"name": f"prime-hil nightly on {lab}", "type": "prime-hil", "buildName": run_id,
                "reportName": f"{lab} {run_id}: {firmware.get('version', '?')}"}
    (results / "executor.json").write_text(json.dumps(executor, indent=2))


def allure3() -> str:
    """The Allure 3 CLI: the venv's, else `allure` on PATH when it is Allure 3 (Allure 2 reads another config)."""
    local = LOCAL / "node_modules" / ".bin" / "allure"
    if local.is_file():
        return str(local)
    exe = shutil.which("allure")
    if exe is not None:
        proc = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=60)
        if proc.stdout.strip().startswith("3."):
            return exe
    found = f"{exe} is not Allure 3" if exe else "Allure 3 is not installed"
    raise AllureMissing(f"{found}; `{INSTALL}` (Node.js, no Java; `make setup` does it where npm is present)")


def _nights_before(history: Path, name: str) -> list[str] | None:
    """The history's lines before the entry of report `name`, or None when that report has none yet."""
    lines = history.read_text().splitlines() if history.exists() else []
    for n, line in enumerate(lines):
        try:
            if json.loads(line).get("name") == name:
                return lines[:n]
        except (json.JSONDecodeError, AttributeError):
            raise HilError(f"{history}:{n + 1}: corrupt Allure history entry; remove that line") from None
    return None


def generate(run_dir: Path, history: Path) -> Path:
    """`allure generate` of the run's results into `<run>/allure-report` (made afresh), with the lab's
    history file. The first report of a run appends its night to that file; a later one reads only the
    nights before it, so a regenerated report neither counts its night twice nor sees later ones.
    Raises AllureMissing (saying how to install it) when there is no Allure 3."""
    exe = allure3()
    run_dir = Path(run_dir).resolve()
    results = run_dir / "allure-results"
    if not results.is_dir():
        raise HilError(f"{run_dir}: no allure-results folder; give a nightly run folder")
    name = f"prime-hil {run_dir.name}"
    history = Path(history).resolve()
    before = _nights_before(history, name)
    if before is not None:
        history = run_dir / "allure-history-before.jsonl"
        history.write_text("".join(f"{line}\n" for line in before))
    output = run_dir / REPORT
    shutil.rmtree(output, ignore_errors=True)  # Allure 3 nests the report in a sub-folder if any is left
    config = run_dir / "allurerc.json"
    config.write_text(json.dumps({"name": name, "output": str(output), "historyPath": str(history),
                                  "appendHistory": before is None, "categories": CATEGORIES}, indent=2))
    proc = subprocess.run([exe, "generate", str(results), "--config", str(config), "--output", str(output)],
                          cwd=run_dir, capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
        raise HilError(f"allure generate exited {proc.returncode}: {tail[0]}")
    return output
