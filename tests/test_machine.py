"""The machine factor that host-side deadlines scale by."""

import pytest

from hil import machine


def test_factor_is_bounded_and_follows_the_load(monkeypatch):
    """The probe runs once per process; the load average is read at every use, and the higher one counts."""
    assert 1.0 <= machine.factor() <= machine.MAX_FACTOR
    assert machine.probe() is machine.probe()  # measured once per process
    monkeypatch.setattr(machine, "probe", lambda: 1.0)
    monkeypatch.setattr(machine.os, "sched_getaffinity", lambda _pid: {0, 1})
    monkeypatch.setattr(machine.os, "getloadavg", lambda: (0.5, 0.0, 0.0))
    assert machine.factor() == 1.0  # a quiet machine: the probe's 1, never below it
    monkeypatch.setattr(machine.os, "getloadavg", lambda: (6.0, 0.0, 0.0))
    assert machine.factor() == 3.0 and machine.scaled(10.0) == pytest.approx(30.0)  # busier since the probe
    monkeypatch.setattr(machine.os, "getloadavg", lambda: (100.0, 0.0, 0.0))
    assert machine.factor() == machine.MAX_FACTOR  # a real hang is still reported in bounded time


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


def test_timeouts_of_these_tests_are_scaled(request, monkeypatch):
    """The hook that sets each test's hang limit scales it by the factor at collection."""
    marker = request.node.get_closest_marker("timeout")
    assert marker is not None and 300 <= marker.args[0] <= 300 * machine.MAX_FACTOR
    hook = next(p for p in request.config.pluginmanager.get_plugins()
                if getattr(p, "__file__", "").endswith("tests/conftest.py")).pytest_collection_modifyitems

    class Item:
        def __init__(self, seconds):
            self.markers = {"timeout": pytest.mark.timeout(seconds).mark}

        def get_closest_marker(self, name):
            return self.markers.get(name)

        def add_marker(self, mark, append=True):
            self.markers[mark.name] = mark.mark

    monkeypatch.setattr(machine, "factor", lambda: 2.0)
    items = [Item(300), Item(45)]
    hook(request.config, items)
    assert [i.markers["timeout"].args[0] for i in items] == [600, 90]


def test_the_longest_slow_tests_are_handed_out_first(request):
    """`make test`'s order: slow(minutes=N) by N, then the other slow tests, then the rest, each in its module's order."""
    hook = next(p for p in request.config.pluginmanager.get_plugins()
                if getattr(p, "__file__", "").endswith("tests/conftest.py")).pytest_collection_modifyitems

    class Item:
        def __init__(self, name, slow=None):
            self.name, self.markers = name, {} if slow is None else {"slow": slow.mark}

        def get_closest_marker(self, name):
            return self.markers.get(name)

        def add_marker(self, mark, append=True):
            self.markers[mark.name] = mark.mark

    items = [Item("fast-a"), Item("lab-1", pytest.mark.slow), Item("one", pytest.mark.slow(minutes=1)),
             Item("fast-b"), Item("lab-2", pytest.mark.slow), Item("four", pytest.mark.slow(minutes=4))]
    hook(request.config, items)
    assert [i.name for i in items] == ["four", "one", "lab-1", "lab-2", "fast-a", "fast-b"]
