"""A station: the resources wired to one Prime, by the names of docs/architecture.md.

A `Station` is plain data (frozen; a changed copy is ``station.model_copy(update=...)``): drivers take its endpoints and do not care whether it is a bench unit, an
emulated Prime started here, or (issue 8) a labgrid place expanded into network endpoints.
`bring_up` turns a station of the lab file into a live `Station`; for an emulated station it starts
the emulator and stops it on exit.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from pydantic import Field

from hil.emulator.build import DEFAULT_FLAVOUR
from hil.errors import InfrastructureError
from hil.lab.config import LabConfig, RobotCalibration, StationConfig, Wiring
from hil.link.client import PrimeClient
from hil.link.resolve import open_client
from hil.profile import DEFAULT_PROFILE, Profile, profile_named

if TYPE_CHECKING:
    from hil.stimuli import robot


class Station(Wiring):
    """A live station: its wiring (the lab file's fields, or an emulator's endpoints), its profile loaded, and
    the build flavour the unit is expected to run where the lab knows it."""

    name: str
    profile: Profile = Field(repr=False)
    flavour: str | None = None

    def client(self, timeout: float = 5.0) -> PrimeClient:
        """An unopened `PrimeClient` on this station's debug link, configured from its profile."""
        if self.debug is None:
            raise InfrastructureError(f"station {self.name}: no debug link configured")
        return open_client(self.debug, self.profile, timeout, self)

    def open_camera(self, **kw: Any):
        """The camera watching this station's display, opened (`hil.vision.camera.Camera`; close it), in the
        capture mode its calibration was measured in."""
        from hil.vision.camera import Camera

        if self.camera is None:
            raise InfrastructureError(f"station {self.name}: no camera configured")
        cal = self.camera_calibration
        return Camera(self.camera, mode=cal.mode if cal else None, **kw)

    def display(self, camera, **kw: Any):
        """The display as ``camera`` (this station's, open) sees it (`hil.vision.display.Display`), located by
        the panel calibration measured at commissioning where there is one."""
        from hil.vision.display import Display
        from hil.vision.locate import Calibration

        cal = self.camera_calibration
        return Display(camera, calibration=Calibration.from_config(cal) if cal and cal.corners else None, **kw)

    @classmethod
    def from_endpoints(cls, name: str, profile: Profile, endpoints: dict[str, Any], **more: Any) -> Station:
        known = {k: endpoints[k] for k in Wiring.endpoints() if endpoints.get(k) is not None}
        if endpoints.get("robot_calibration") is not None:  # an emulated bench announces its jig geometry
            known["robot_calibration"] = RobotCalibration(points=endpoints["robot_calibration"])
        if endpoints.get("cd_relay") is not None:  # and which channel of its relay board shorts the CD pads
            known["cd_relay"] = endpoints["cd_relay"]
        return cls(name=name, profile=profile, **known, **more)


def from_config(name: str, cfg: StationConfig, profile: Profile) -> Station:
    return Station(name=name, profile=profile, **{k: getattr(cfg, k) for k in Wiring.model_fields})


@contextmanager
def bring_up(lab: LabConfig, name: str) -> Iterator[Station]:
    """A live station. Emulated: its own emulator process for as long as the block runs."""
    cfg = lab.stations[name]
    profile = lab.profile(cfg.profile)
    if cfg.emulated is None:
        yield from_config(name, cfg, profile)
        return
    from hil.emulator.launcher import EmulatorProcess  # here: a worker of a lab run only reaches wired stations

    spec = cfg.emulated
    with EmulatorProcess(count=1, seed=spec.seed, flavour=spec.flavour, version=spec.version, pin=spec.pin) as emu:
        endpoints = emu.devices[0]
        yield Station.from_endpoints(name, profile, endpoints, tags=cfg.tags, flavour=spec.flavour)


def to_config(station: Station) -> StationConfig:
    """The live station as a wired entry of a lab file, so pytest workers reach a station this process
    brought up (the nightly writes such a file for its run)."""
    wired = {k: getattr(station, k) for k in Wiring.model_fields if k != "tags"}
    declared = (f"flavour={station.flavour}",) if station.flavour and f"flavour={station.flavour}" not in station.tags else ()
    return StationConfig(profile=station.profile.name, tags=station.tags + declared, **wired)


def robot_calibration(station: Station) -> robot.Calibration:
    """The station's display-to-robot map: the points its lab entry records, else the file `hil touch
    calibrate` stored for it.  An emulated bench announces its jig's points with its endpoints, as a lab
    entry would (not in the device profile: a jig belongs to a bench, not to a hardware revision)."""
    from hil.stimuli import robot  # numpy: only where a robot presses (not in the controller's start-up)

    if station.robot_calibration is not None:
        return robot.Calibration.fit(station.robot_calibration.points)
    return robot.Calibration.load(robot.calibration_path(station.name, robot.CALIBRATION_DIR))


@contextmanager
def device_station(device: str | None, profile: str | None = None, *, flavour: str = DEFAULT_FLAVOUR,
                   seed: int = 0, defects: tuple[str, ...] = (), apps: str | None = None) -> Iterator[Station]:
    """The station a ``--device`` string stands for.  ``emulator`` (or None) starts an emulated Prime
    of the given build flavour for as long as the block runs."""
    if device in (None, "emulator"):
        from hil.emulator.launcher import EmulatorProcess

        with EmulatorProcess(count=1, seed=seed, flavour=flavour, defects=defects, apps=apps) as emu:
            endpoints = emu.devices[0]
            yield Station.from_endpoints("emulator", profile_named(profile or endpoints["profile"]), endpoints)
        return
    yield Station(name=device, profile=profile_named(profile or DEFAULT_PROFILE), debug=device)
