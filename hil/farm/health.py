"""The health check a station passes before its first test (LAVA-style): the link answers and reports a
version, the camera sees a lit screen, the NFC reader answers. A check is skipped only where the
station has no such resource (or its profile says the station's build has no debug link); a check that
cannot run is a failure, never a pass.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from hil.errors import HilError, InfrastructureError
from hil.farm.station import Station

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

    @property
    def ok(self) -> bool:
        return all(c.ok is not False for c in self.checks)

    @property
    def reason(self) -> str:
        return "; ".join(f"{c.name}: {c.detail}" for c in self.checks if c.ok is False)


def check_link(station: Station, timeout: float) -> str:
    with station.client(timeout=timeout) as prime:
        version = prime.version()
    if not version.strip():
        raise StationUnhealthy("the device reported an empty version")
    return version


def check_camera(station: Station, timeout: float) -> str:
    """A frame arrives in time and the panel is found in it, where the station's calibration says."""
    from hil.vision.camera import Camera
    from hil.vision.locate import Calibration, locate

    with Camera(station.camera, open_timeout=timeout) as cam:
        frame = cam.grab(timeout)
    cal = station.camera_calibration
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
    """Run every check the station's resources allow; never raises for a failing check."""
    results, version = [], None
    for name, (resource, fn) in CHECKS.items():
        if getattr(station, resource) is None:
            results.append(Check(name, None, f"no {resource} on this station"))
            continue
        if name == "link" and (why := station.profile.link_missing(station.flavour)):
            results.append(Check(name, None, why))  # the production lane runs on camera, robot and relay
            continue
        start = time.monotonic()
        try:
            detail = fn(station, timeout)
        except (HilError, OSError, ImportError) as e:
            results.append(Check(name, False, str(e) or type(e).__name__))
            continue
        if name == "link":
            version, detail = detail, f"version {detail}"
        results.append(Check(name, True, f"{detail} ({time.monotonic() - start:.1f}s)"))
    return Health(station.name, tuple(results), version)
