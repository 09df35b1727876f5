"""The machine factor that host-side deadlines scale by."""

import pytest

from hil import machine


def test_factor_is_measured_once_and_bounded():
    f = machine.factor()
    assert 1.0 <= f <= machine.MAX_FACTOR
    assert machine.factor() is f  # measured once per process
    assert machine.scaled(10.0) == pytest.approx(10.0 * f)


def test_a_busy_machine_gets_longer_deadlines(monkeypatch):
    """The probe got a core half of the time: a factor of 2; a factor is never below 1."""
    clock = {"wall": 0.0, "cpu": 0.0}

    def thread_time():  # each look at the CPU clock: one probe step of CPU, twice that of wall time
        clock["cpu"] += machine.PROBE_CPU_S
        clock["wall"] += 2 * machine.PROBE_CPU_S
        return clock["cpu"]

    monkeypatch.setattr(machine.time, "perf_counter", lambda: clock["wall"])
    monkeypatch.setattr(machine.time, "thread_time", thread_time)
    assert machine.measure() == pytest.approx(2.0)
    monkeypatch.setattr(machine.time, "perf_counter", lambda: clock["cpu"])  # wall time lagging CPU time
    assert machine.measure() == 1.0


def test_timeouts_of_these_tests_are_scaled(request):
    marker = request.node.get_closest_marker("timeout")
    assert marker is not None and marker.args[0] == pytest.approx(machine.scaled(300))
