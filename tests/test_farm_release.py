"""A worker lets go of its station whatever goes wrong while it closes the station's bring-up: a lease left held
keeps the unit busy for every other worker and host until its holder is reaped."""

import contextlib
from types import SimpleNamespace

import pytest

from hil.lab import farm, health
from hil.lab.lease import Holder


class Lease:
    station = "s1"

    def __init__(self, log):
        self.log = log

    def release(self):
        self.log.append("released")

    def check(self):
        pass


class Leases:
    def __init__(self, log):
        self.log = log

    def acquire(self, exclude, timeout):
        return Lease(self.log)

    @contextlib.contextmanager
    def bring_up(self, lease):
        yield SimpleNamespace(name="s1", serial="EMU-1", profile=SimpleNamespace(name="prime-emulated"))
        raise OSError("the bench's bridge went away while closing")

    def recover(self, station, report):
        return report

    def labels(self, lease):
        return {}

    def close(self):
        self.log.append("closed")


def test_a_station_whose_closing_fails_is_released_all_the_same(monkeypatch):
    log = []
    monkeypatch.setattr(health, "check", lambda station: health.Health("s1", (), "1.0.0"))
    f = farm.Farm(Leases(log), Holder.me("gw0", "run"), None, lease_timeout=1.0)
    f.current()
    with pytest.raises(OSError, match="went away"):
        f.close()
    assert log == ["released", "closed"] and f.lease is None
