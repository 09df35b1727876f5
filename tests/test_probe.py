"""ProbeRun reads a probe's log records fail-closed: only a complete, un-overrun run is evidence,
a panic of the probe is a device failure, anything else missing is broken (docs/probe.md §3-4)."""

from __future__ import annotations

import json
from collections import deque
from types import SimpleNamespace

import pytest

from hil import probe as P
from hil.errors import InfrastructureError

APP = P.probe_app_id("unit")
PID = 17
PLAN = [P.send("os/gui-server", "RequestRedraw", wait=False), P.send("os/security", "GetSeed", wait=False)]


class ScriptedClient:
    """Stands in for PrimeClient.logs: hands out the scripted records, then reports silence."""

    device = "prime-test"

    def __init__(self, lines=(), process_list: str = ""):
        self.queue = deque(lines)
        self._process_list = process_list

    def logs(self, timeout: float):
        while self.queue:
            yield self.queue.popleft()

    def process_list(self) -> str:
        return self._process_list


def rec(step, **fields) -> str:
    return P.PREFIX + json.dumps({"app": APP, "pid": PID, "step": step, **fields}, sort_keys=True,
                                 separators=(",", ":"))


def step_rec(i: int, result: str = "Ok") -> str:
    return rec(i, **{**PLAN[i], "id": 10 + i, "result": result})


def run_of(lines, plan=PLAN) -> P.ProbeRun:
    return P.ProbeRun(ScriptedClient(lines), APP, PID, plan)


def test_complete_run_gives_one_record_per_step():
    run = run_of([rec("start", steps=2), step_rec(0), step_rec(1, "AccessDenied"), rec("end")])
    assert [r["result"] for r in run.finish(timeout=1)] == ["Ok", "AccessDenied"]


def test_records_of_other_apps_and_pids_are_not_taken():
    other = P.PREFIX + json.dumps({"app": APP, "pid": PID + 1, "step": 0, "op": "send", "result": "Ok"})
    run = run_of([rec("start", steps=2), other, step_rec(0), step_rec(1), rec("end")])
    run.finish(timeout=1)
    assert run.records[0]["pid"] == PID


def test_missing_start_record_is_broken():
    run = run_of([step_rec(0), step_rec(1), rec("end")])
    with pytest.raises(P.ProbeBroken, match="without a start record"):
        run.finish(timeout=1)


def test_start_with_fewer_steps_than_the_plan_is_broken():
    run = run_of([rec("start", steps=0), rec("end")])
    with pytest.raises(P.ProbeBroken, match="0 steps, the plan has 2"):
        run.finish(timeout=1)


def test_short_run_is_broken():
    run = run_of([rec("start", steps=2), step_rec(0), rec("end")])
    with pytest.raises(P.ProbeBroken, match=r"steps \[1\] never arrived"):
        run.finish(timeout=1)


class LateClient(ScriptedClient):
    """The records arrive only once ``at`` seconds of a fake clock have passed; each read of the log takes one."""

    def __init__(self, clock: list[float], at: float, lines):
        super().__init__(lines)
        self.clock, self.at = clock, at

    def logs(self, timeout: float):
        self.clock[0] += 1.0
        if self.clock[0] >= self.at:
            yield from super().logs(timeout)


def test_a_probe_run_late_on_a_loaded_host_is_waited_for(monkeypatch):
    """4 s on a host at twice the idle time is within the 2 idle seconds given: a loaded host runs the probe
    late, not wrongly (unscaled, a probe check there could end broken with nothing wrong)."""
    import hil.machine

    clock = [0.0]
    monkeypatch.setattr(P, "time", SimpleNamespace(monotonic=lambda: clock[0]))
    monkeypatch.setattr(hil.machine, "factor", lambda: 2.0)
    lines = [rec("start", steps=2), step_rec(0), step_rec(1), rec("end")]
    assert len(P.ProbeRun(LateClient(clock, 4.0, lines), APP, PID, PLAN).finish(timeout=2)) == 2
    clock[0] = 0.0
    with pytest.raises(P.ProbeBroken, match="did not arrive within 2 s"):
        P.ProbeRun(LateClient(clock, 6.0, lines), APP, PID, PLAN).finish(timeout=2)


def test_empty_plan_with_no_records_is_broken_not_passed():
    with pytest.raises(P.ProbeBroken):
        run_of([]).finish(timeout=0.2)


def test_rejected_plan_is_broken():
    run = run_of([rec("start", steps=0, error="probe-plan.json is not JSON"), rec("end")])
    with pytest.raises(P.ProbeBroken, match="rejected its plan"):
        run.finish(timeout=1)


def test_record_for_a_step_not_in_the_plan_is_broken():
    with pytest.raises(P.ProbeBroken, match="does not have"):
        run_of([rec("start", steps=2), rec(5, op="send", result="Ok")]).finish(timeout=1)
    with pytest.raises(P.ProbeBroken, match="does not have"):
        run_of([rec("start", steps=2), rec(0, op="open", result="Ok")]).finish(timeout=1)


def test_garbage_record_is_broken():
    with pytest.raises(P.ProbeBroken, match="not JSON"):
        run_of([rec("start", steps=2), P.PREFIX + "{oops"]).finish(timeout=1)


def test_possible_ring_overrun_is_broken_even_with_every_record():
    noise = [f"INFO:other: {'x' * 200}"] * (P.LOG_RING_BYTES // 200)
    run = run_of([rec("start", steps=2), step_rec(0), *noise, step_rec(1), rec("end")])
    with pytest.raises(P.ProbeBroken, match="log ring may have dropped"):
        run.finish(timeout=1)


def test_a_run_well_inside_the_ring_is_not_called_overrun():
    noise = [f"INFO:other: {'x' * 200}"] * 20
    run = run_of([rec("start", steps=2), step_rec(0), *noise, step_rec(1), rec("end")])
    assert len(run.finish(timeout=1)) == 2


def test_panic_of_the_probe_is_a_device_failure_with_its_message():
    run = run_of([rec("start", steps=2), step_rec(0), f"[LOG] PANIC in PID {PID}: server hung up on send"])
    with pytest.raises(P.ProbePanicked, match="server hung up on send") as e:
        run.finish(timeout=1)
    assert isinstance(e.value, AssertionError) and not isinstance(e.value, InfrastructureError)


def test_panic_of_the_probe_fails_a_step_wait_too():
    run = run_of([rec("start", steps=2), f"[LOG] PANIC in PID {PID}: boom"])
    with pytest.raises(P.ProbePanicked, match="boom"):
        run.step(0, timeout=1)


def test_panic_of_another_pid_is_not_the_probes():
    run = run_of([rec("start", steps=2), f"[LOG] PANIC in PID {PID + 1}: boom", step_rec(0), step_rec(1),
                  rec("end")])
    assert len(run.finish(timeout=1)) == 2 and run.panic is None


def test_waiting_for_an_expected_panic_does_not_raise():
    run = run_of([rec("start", steps=2), step_rec(0), f"[LOG] PANIC in PID {PID}: on purpose"])
    run.wait(lambda: run.panic is not None, 1, "the PANIC line")
    assert run.panic == "on purpose"


def test_silence_is_broken():
    run = run_of([rec("start", steps=2), step_rec(0)])
    with pytest.raises(P.ProbeBroken, match="end record did not arrive"):
        run.finish(timeout=0.2)


def test_deny_lines_are_parsed():
    run = run_of([rec("start", steps=2), step_rec(0),
                  f"[!] Denying message send from {PID} to 0a0b0c@5, msgid=11", step_rec(1, "AccessDenied"),
                  rec("end")])
    run.finish(timeout=1)
    assert [(d.sid, d.server_pid) for d in run.deny_for(11)] == [("0a0b0c", 5)]


def test_processes_come_from_the_process_list_production_builds_answer():
    t = ("PROC 3\n"
         "R 1 0 kernel w 0 516 0\n"
         "R 7 9 gui-app-settings w 0 420 3\n"
         "S 12 9 probe r 1 128 2\n")
    client = ScriptedClient(process_list=t)
    assert P.processes(client) == {1: "kernel", 7: "gui-app-settings", 12: "probe"}
    assert P.running(client, "gui-app-settings") == {7}
    assert P.running(client, "gui-app-bitcoin") == set()
