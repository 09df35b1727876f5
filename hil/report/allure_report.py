"""The Allure report of a run as lab engineers read it: categories that file broken results (our
infrastructure) apart from failed ones (KeyOS), the environment and executor of the run, and history
carried from night to night, generated with Allure 3 (the npm `allure` CLI; no Java).

Allure 3 keeps history in one JSON-lines file that each generated report reads and appends to
(`historyPath` in its config); the lab keeps it beside the nightly history, so trends span nights.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

from hil.errors import HilError

CATEGORIES = [
    {"name": "Lab faults (infrastructure)", "matchedStatuses": ["broken"],
     "description": "broken: the lab could not get a verdict (link lost, camera dark, station unhealthy)"},
    {"name": "KeyOS regressions", "matchedStatuses": ["failed"],
     "description": "failed: the device answered, and not as KeyOS must"},
]
INSTALL = "npm install -g allure"
HISTORY = "allure-history.jsonl"
REPORT = "allure-report"


class AllureMissing(HilError):
    """No Allure 3 CLI on PATH."""


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
                "reportName": f"{lab} {run_id}: {firmware.get('version', '?')}", "reportUrl": f"../{REPORT}/index.html"}
    (results / "executor.json").write_text(json.dumps(executor, indent=2))


def generate(run_dir: Path, history: Path) -> Path:
    """`allure generate` of the run's results into `<run>/allure-report`, reading and extending the lab's
    history file. Raises AllureMissing (saying how to install it) when Allure 3 is not on PATH."""
    exe = shutil.which("allure")
    if exe is None:
        raise AllureMissing(f"Allure 3 is not installed; `{INSTALL}` (Node.js, no Java), then "
                            f"`hil report allure {run_dir}`")
    run_dir = Path(run_dir).resolve()
    results = run_dir / "allure-results"
    if not results.is_dir():
        raise HilError(f"{run_dir}: no allure-results folder; give a nightly run folder")
    config = run_dir / "allurerc.json"
    config.write_text(json.dumps({"name": f"prime-hil {run_dir.name}", "output": str(run_dir / REPORT),
                                  "historyPath": str(Path(history).resolve())}, indent=2))
    proc = subprocess.run([exe, "generate", str(results), "--config", str(config), "--output", str(run_dir / REPORT)],
                          cwd=run_dir, capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
        raise HilError(f"allure generate exited {proc.returncode}: {tail[0]}")
    return run_dir / REPORT
