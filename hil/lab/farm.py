"""One farm, two lease backends: this process's share of the lab, at most one leased, live, healthy station at
a time. How stations are held is the backend's (`Leases`): file locks on one host (`FileStations`), or labgrid
places across bench hosts (`hil.lab.places.PlaceLeases`). Taking a station, its health check, quarantine,
moving on after a fault and the labels every result carries are written once, here.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from contextlib import AbstractContextManager
from typing import Protocol

from hil.errors import HilError, InfrastructureError
from hil.lab import health
from hil.lab.config import LabConfig
from hil.lab.lease import FileLease, FileLeases, Holder, Lease, LeaseLost, NoStationFree
from hil.lab.quarantine import Quarantine
from hil.lab.station import Station, bring_up
from hil.stimuli.hub_port import HubPort


class Leases(Protocol):
    """How a farm holds its stations."""

    may_return: bool  # after a fault, a healthy station may be taken again when no other is free

    def acquire(self, exclude: frozenset[str], timeout: float) -> Lease:
        """A lease on a station not in `exclude` (nor quarantined), waiting up to `timeout`; else `NoStationFree`."""

    def bring_up(self, lease: Lease) -> AbstractContextManager[Station]:
        """The live station of a lease, for as long as the block runs."""

    def recover(self, station: Station, report: health.Health) -> health.Health:
        """What the backend can do for a station that failed its health check before it is quarantined."""

    def take_out_of_service(self, lease: Lease, reason: str, by: str) -> None:
        """Quarantine the leased station with the reason."""

    def where(self, lease: Lease) -> str:
        """How a quarantine reason names where the station is ("" on one host)."""

    def labels(self, lease: Lease) -> dict[str, str]:
        """What a result names of the lease beyond the station."""

    def close(self) -> None: ...


class Farm:
    """This process's share of the lab: at most one leased, live, healthy station at a time."""

    def __init__(self, leases: Leases, holder: Holder, firmware: str | None, lease_timeout: float) -> None:
        self.leases, self.holder, self.firmware, self.lease_timeout = leases, holder, firmware, lease_timeout
        self.worker = holder.worker
        self.lease: Lease | None = None
        self.station: Station | None = None
        self.version: str | None = None
        self.lost: str | None = None  # why this worker has no station any more
        self._up = contextlib.ExitStack()
        self._last: dict[str, str] = {}

    def current(self) -> Station:
        """The worker's station, leasing and health-checking one at first use."""
        if self.lost:
            raise LeaseLost(self.lost)
        if self.station is not None:
            try:
                self.lease.check()
            except LeaseLost as e:
                self.lost = f"{e} (the rest of {self.worker}'s tests are broken)"
                self.drop()
                raise
            return self.station
        return self._take(frozenset())

    def _take(self, exclude: frozenset[str], timeout: float | None = None) -> Station:
        deadline = time.monotonic() + (self.lease_timeout if timeout is None else timeout)
        while True:
            lease = self.leases.acquire(exclude, max(0.0, deadline - time.monotonic()))
            name = lease.station
            try:
                station = self._up.enter_context(self.leases.bring_up(lease))
                report = self.leases.recover(station, health.check(station))
            except BaseException:
                try:
                    self._up.close()
                finally:
                    lease.release()
                raise
            if report.ok:
                self.lease, self.station, self.version = lease, station, report.version
                return station
            try:
                self.leases.take_out_of_service(lease, f"health check failed{self.leases.where(lease)}: {report.reason}",
                                                str(self.holder))
            finally:
                self._up.close()
                lease.release()
            exclude = exclude | {name}

    def replace_after_fault(self, fault: str) -> health.Health | None:
        """After an infrastructure fault: quarantine the station if it is now unhealthy, then move to
        another station; back to the same one only if the backend allows it, the station is healthy and no
        other is free. Returns the health check of the faulted station (evidence for the interrupted attempt),
        None when the station was gone already."""
        station, lease = self.station, self.lease
        if station is None or lease is None:
            return None
        report: health.Health | None = None
        try:
            lease.check()
            report = self.leases.recover(station, health.check(station))
            if not report.ok:
                self.leases.take_out_of_service(
                    lease, f"{fault}; then health check failed{self.leases.where(lease)}: {report.reason}",
                    str(self.holder))
        except InfrastructureError:
            pass  # the station is gone already: nothing of ours to check or quarantine
        self.drop()
        if report is not None and report.ok and self.leases.may_return:
            try:  # a healthy station is not worth waiting for another: take a free one now or stay
                self._take(frozenset({station.name}), timeout=0.0)
            except NoStationFree:
                self._take(frozenset())
        else:
            self._take(frozenset({station.name}))
        return report

    def drop(self) -> None:
        """Let go of the station: its bring-up closed and its lease released, even when the closing fails (a
        place left held stays busy for every host until its holder is reaped)."""
        self.labels()
        try:
            self._up.close()
        finally:
            if self.lease is not None:
                self.lease.release()
            self.lease = self.station = None

    def labels(self) -> dict[str, str]:
        """Where the test runs; after the station was lost, where it last ran (empty before any lease)."""
        st, lease = self.station, self.lease
        if st is not None and lease is not None:
            self._last = {"station": st.name, **self.leases.labels(lease), "serial": st.serial or "unknown",
                          "profile": st.profile.name, "firmware": self.firmware or f"version:{self.version}",
                          "version": self.version or "unknown"}  # measured: what the unit answered to GET_VERSION
        return dict(self._last)

    def close(self) -> None:
        try:
            self.drop()
        finally:
            self.leases.close()


class FileStations:
    """The stations of a lab file on this host, held by file locks (`hil.lab.lease`), quarantined in its
    state dir, brought up here (an emulated one starts its emulator) and power-cycled before quarantine."""

    may_return = True

    def __init__(self, lab: LabConfig, holder: Holder) -> None:
        self.lab, self.holder = lab, holder
        self.files = FileLeases(lab.state_dir)
        self.quarantine = Quarantine(lab.state_dir)

    def _order(self, exclude: frozenset[str]) -> list[str]:
        """Free candidates, starting at this worker's index so workers spread over the lab."""
        bad = self.quarantine.entries()
        names = [n for n in self.lab.stations if n not in exclude and n not in bad]
        worker = self.holder.worker
        idx = int(worker[2:]) if worker.startswith("gw") and worker[2:].isdigit() else 0
        return names[idx % len(names):] + names[:idx % len(names)] if names else []

    def acquire(self, exclude: frozenset[str], timeout: float) -> FileLease:
        candidates = self._order(exclude)
        if not candidates:
            bad = self.quarantine.entries()
            why = "; ".join(f"{n}: {e.reason}" for n, e in bad.items()) or "none configured"
            raise NoStationFree(f"no station left for {self.holder.worker} (excluded {sorted(exclude) or 'none'}; "
                                f"quarantined: {why})")
        return self.files.acquire_any(candidates, self.holder, timeout=timeout)

    def bring_up(self, lease: Lease) -> AbstractContextManager[Station]:
        return bring_up(self.lab, lease.station)

    def recover(self, station: Station, report: health.Health) -> health.Health:
        return power_cycled_if_unhealthy(station, report)

    def take_out_of_service(self, lease: Lease, reason: str, by: str) -> None:
        self.quarantine.add(lease.station, reason, by=by)

    def where(self, lease: Lease) -> str:
        return ""

    def labels(self, lease: Lease) -> dict[str, str]:
        return {}

    def close(self) -> None:
        pass


RECOVERY_SECONDS = 90.0  # a power-cycled Prime boots KeyOS well within this


def power_cycled_if_unhealthy(station: Station, report: health.Health) -> health.Health:
    """The recovery step before quarantine: a unit that failed its health check, on a station with a
    ``hub_port``, is power-cycled through uhubctl and checked again until healthy or out of time. Returns
    the last check; an unhealthy one names the power cycle, so the quarantine reason tells what was tried."""
    if report.ok or station.hub_port is None:
        return report
    try:
        HubPort(station.hub_port).cycle()
    except HilError as e:
        return dataclasses.replace(report, note=f"power cycle failed: {e}")
    deadline = time.monotonic() + RECOVERY_SECONDS
    while True:
        again = health.check(station)
        if again.ok or time.monotonic() > deadline:
            return dataclasses.replace(again, note="after a power cycle of hub port " + station.hub_port)
        time.sleep(1.0)
