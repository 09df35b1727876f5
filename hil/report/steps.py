"""The evidence steps of a check: what its fixtures saw, as (step title, evidence items) for Allure.
A screen reader's readings (hil.vision.readings) and a probe's runs: the probe's report (plan, records,
the kernel's denials) and the excerpt of the device log read while it ran."""

from __future__ import annotations

import json
import re
from dataclasses import asdict

from hil.probe import Probe
from hil.vision import evidence as ev
from hil.vision.readings import Readings

LOG_EXCERPT = 200  # the last lines of device log a probe run read


def _clean(text: str) -> str:
    """Device text made safe for a report: no control characters (a terminal's escapes among them)."""
    return re.sub(r"[\x00-\x08\x0b-\x1f\x7f]", "?", text)


def probe_steps(probe: Probe) -> list[tuple[str, list[ev.Evidence]]]:
    out = []
    for run in probe.runs:
        report = {"app": run.app_id, "pid": run.pid, "plan": run.plan, "records": run.records, "ended": run.ended,
                  "error": run.error, "panic": run.panic, "denies": [asdict(d) for d in run.denies]}
        state = "panicked" if run.panic else "ended" if run.ended else "did not end"
        log = "\n".join(_clean(line) for line in run.lines[-LOG_EXCERPT:])
        out.append((f"probe {run.app_id} (PID {run.pid}): {len(run.records)}/{len(run.plan)} steps, {state}",
                    [ev.text("probe report", json.dumps(report, indent=1, default=str), "application/json"),
                     ev.text(f"device log excerpt (last {min(LOG_EXCERPT, len(run.lines))} of {len(run.lines)} lines)",
                             log)]))
    return out


def steps_of(value: object) -> list[tuple[str, list[ev.Evidence]]]:
    """The evidence steps a fixture value holds, if it is one that looks at the device."""
    if isinstance(value, Probe):
        return probe_steps(value)
    readings = getattr(value, "readings", None)
    return readings.steps() if isinstance(readings, Readings) else []
