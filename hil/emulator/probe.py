"""The probe app, as the emulated Prime runs it (the contract is ``docs/probe.md``).

A sideloaded app whose ``app.elf`` (after its cosign2 header) carries :data:`PROBE_MARKER` is the
probe. At launch it reads ``resources/probe-plan.json`` from its own bundle, runs each step through
the same kernel, fs server and secure element every app goes through, and reports every outcome as
the OS returned it: one log record ``PROBE {json}`` per step, between a ``start`` and an ``end``
record. A step that parks on a permission prompt blocks the plan until the prompt is answered.
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any, Callable, Protocol

PROBE_MARKER = b"keyos-probe/1"
PLAN_PATH = "resources/probe-plan.json"
PREFIX = "PROBE "
OPS = ("send", "open", "read_memory", "connect", "draw_prompt", "await_locked", "panic")
DEFAULT_TIMEOUT_S = 120.0
STEP_PACE_S = 0.005  # keep the records well inside what the 16 KiB log ring holds between reads


class PlanError(ValueError):
    """A plan the probe cannot run; reported as the start record's ``error``."""


class ProbeHost(Protocol):
    """What the probe reaches on the device; each returns the OS's answer as a record dict."""

    def probe_send(self, pid: int, server: str, message: str | None, mid: int | None, wait: bool,
                   timeout: float) -> dict[str, Any]: ...

    def probe_open(self, pid: int, location: str, path: str, mode: str, timeout: float) -> dict[str, Any]: ...

    def probe_read_memory(self, pid: int, target: str, address: int, length: int) -> dict[str, Any]: ...

    def probe_connect(self, pid: int, server: str) -> dict[str, Any]: ...

    def probe_draw_prompt(self, pid: int, title: str, body: str, buttons: list[str]) -> dict[str, Any]: ...

    def probe_await_locked(self, pid: int, timeout: float) -> dict[str, Any]: ...

    def probe_panic(self, pid: int, message: str) -> None: ...


def is_probe(elf_binary: bytes) -> bool:
    return elf_binary.startswith(b"\x7fELF") and PROBE_MARKER in elf_binary[:4096]


def parse_plan(raw: bytes) -> list[dict[str, Any]]:
    """Validate the plan before anything runs, so a bad plan never half-runs."""
    try:
        doc = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise PlanError(f"probe-plan.json is not JSON: {e}") from None
    if not isinstance(doc, dict) or doc.get("probe") != 1 or not isinstance(doc.get("steps"), list):
        raise PlanError('probe-plan.json must be {"probe": 1, "steps": [...]}')
    steps = doc["steps"]
    for i, step in enumerate(steps):
        if not isinstance(step, dict) or step.get("op") not in OPS:
            raise PlanError(f"step {i}: op must be one of {', '.join(OPS)}")
        op = step["op"]
        need = {"send": ("server",), "open": ("location", "path", "mode"), "read_memory": ("target", "address", "length"),
                "connect": ("server",), "draw_prompt": ("title", "body", "buttons"), "await_locked": (),
                "panic": ("message",)}[op]
        missing = [k for k in need if k not in step]
        if missing:
            raise PlanError(f"step {i} ({op}): missing {', '.join(missing)}")
        if op == "send" and ("message" in step) == ("id" in step):
            raise PlanError(f"step {i} (send): give exactly one of message or id")
        if op == "open" and step["mode"] not in ("read", "write"):
            raise PlanError(f"step {i} (open): mode must be read or write")
    return steps


class ProbeRun(threading.Thread):
    """One launched probe process running its plan."""

    def __init__(self, host: ProbeHost, pid: int, app_id: bytes, plan: bytes | None, log: Callable[[str], None]):
        super().__init__(name=f"probe-{pid}", daemon=True)
        self.host, self.pid, self.app_id, self.plan, self._log = host, pid, app_id, plan, log
        self.stopped = threading.Event()

    def record(self, **fields: Any) -> None:
        self._log(PREFIX + json.dumps({"app": f"0x{self.app_id.hex()}", "pid": self.pid, **fields},
                                      sort_keys=True, separators=(",", ":")))

    def run(self) -> None:
        if self.plan is None:
            self.record(step="start", steps=0, error=f"{PLAN_PATH} missing from the bundle")
            self.record(step="end")
            return
        try:
            steps = parse_plan(self.plan)
        except PlanError as e:
            self.record(step="start", steps=0, error=str(e))
            self.record(step="end")
            return
        self.record(step="start", steps=len(steps))
        for i, step in enumerate(steps):
            if self.stopped.is_set():
                return
            if step["op"] == "panic":
                self.host.probe_panic(self.pid, str(step["message"]))
                return
            outcome = self._run(step)
            if self.stopped.is_set():
                return
            echo = {k: v for k, v in step.items() if k != "buttons"}
            self.record(**{**echo, **outcome, "step": i})
            time.sleep(STEP_PACE_S)
        self.record(step="end")

    def _run(self, step: dict[str, Any]) -> dict[str, Any]:
        h, pid = self.host, self.pid
        timeout = float(step.get("timeout_s", DEFAULT_TIMEOUT_S))
        op = step["op"]
        if op == "send":
            return h.probe_send(pid, step["server"], step.get("message"), step.get("id"),
                                bool(step.get("wait", True)), timeout)
        if op == "open":
            return h.probe_open(pid, step["location"], step["path"], step["mode"], timeout)
        if op == "read_memory":
            return h.probe_read_memory(pid, step["target"], int(step["address"]), int(step["length"]))
        if op == "connect":
            return h.probe_connect(pid, step["server"])
        if op == "await_locked":
            return h.probe_await_locked(pid, timeout)
        return h.probe_draw_prompt(pid, str(step["title"]), str(step["body"]), [str(b) for b in step["buttons"]])

