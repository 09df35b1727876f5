"""The health check a station passes before its first test (LAVA-style): the link answers and reports a
version, the camera sees a lit screen, the NFC reader answers. A check is skipped only where the
station has no such resource (or its profile says the station's build has no debug link); a check that
cannot run is a failure, never a pass.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from hil.errors import HilError, InfrastructureError
from hil.lab.station import Station
from hil.machine import scaled

class StationUnhealthy(InfrastructureError):
    """The station failed its health check; the message lists every failing check."""


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool | None  # None: skipped, the station has no such resource
    detail: str


@dataclass(frozen=True)
class Health:
    station: str
    checks: tuple[Check, ...]
    version: str | None
    note: str = ""  # what was tried on the station before this check (a power cycle)

    @property
    def ok(self) -> bool:
        return all(c.ok is not False for c in self.checks)

    @property
    def reason(self) -> str:
        failing = "; ".join(f"{c.name}: {c.detail}" for c in self.checks if c.ok is False)
        return f"{failing} ({self.note})" if failing and self.note else failing


def check_link(station: Station, timeout: float) -> str:
    with station.client(timeout=timeout) as prime:
        version = prime.version()
    if not version.strip():
        raise StationUnhealthy("the device reported an empty version")
    return version


def check_camera(station: Station, timeout: float) -> str:
    """A frame arrives in time and the panel is found in it, where the station's calibration says."""
    from hil.vision.locate import Calibration, locate

    cal = station.camera_calibration
    with station.open_camera(open_timeout=timeout) as cam:
        frame = cam.grab(timeout)
    if cal is not None and cal.corners is not None:
        drift = Calibration.from_config(cal).check(frame)
        return f"panel within {drift:.1f} px of its calibration"
    loc = locate(frame)
    return f"panel found ({loc.method})"


def check_nfc(station: Station, timeout: float) -> str:
    """The reader opens and activates the Prime's ISO-DEP card."""
    from hil.stimuli.nfc import reader

    session = reader(station.nfc).connect(timeout)
    try:
        return f"card {session.identifier.hex()} answers"
    finally:
        session.close()


CHECKS: dict[str, tuple[str, Callable[[Station, float], str]]] = {
    "link": ("debug", check_link),
    "camera": ("camera", check_camera),
    "nfc": ("nfc", check_nfc),
}


def check(station: Station, timeout: float = 10.0) -> Health:
    """Run every check the station's resources allow, all at once (a dead unit costs one timeout, not one
    per check), each within ``timeout`` (idle-machine seconds, scaled by how busy this host is); never
    raises for a failing check."""
    timeout = scaled(timeout)
    # the production lane may run on camera, robot and relay alone: a build without the link is not asked for it
    no_link = station.profile.link_missing(station.flavour)
    wanted = {name: fn for name, (resource, fn) in CHECKS.items()
              if getattr(station, resource) is not None and not (name == "link" and no_link)}
    with ThreadPoolExecutor(max_workers=max(1, len(wanted))) as pool:
        running = {name: pool.submit(_timed, fn, station, timeout) for name, fn in wanted.items()}
    results, version = [], None
    for name, (resource, _) in CHECKS.items():
        if name not in running:
            results.append(Check(name, None, no_link if name == "link" and no_link else f"no {resource} on this station"))
            continue
        try:
            detail, took = running[name].result()
        except (HilError, OSError, ImportError) as e:
            results.append(Check(name, False, str(e) or type(e).__name__))
            continue
        if name == "link":
            version, detail = detail, f"version {detail}"
        results.append(Check(name, True, f"{detail} ({took:.1f}s)"))
    return Health(station.name, tuple(results), version)


def _timed(fn: Callable[[Station, float], str], station: Station, timeout: float) -> tuple[str, float]:
    start = time.monotonic()
    return fn(station, timeout), time.monotonic() - start
