"""The lab on paper: `lab_config.yaml` (stations and what is wired to each), validated by pydantic.

Device profiles are `hil.profile`; both are read by `hil.yamlfile`, so every model forbids unknown keys and
every error names the file, the line and the field.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from hil.errors import ConfigError
from hil.lab.labgrid import is_url
from hil.profile import Profile, load_profile
from hil.stimuli.nfc_readers import check_reader
from hil.yamlfile import Strict as _Strict
from hil.yamlfile import load_yaml_model

DEFAULT_LAB = Path(__file__).resolve().parents[2] / "lab_config.yaml"


# ------------------------------------------------------------------------------------ stations


class EmulatedSpec(_Strict):
    """An emulated Prime started for the station by `hil.emulator.launcher.EmulatorProcess`."""

    seed: int = 0
    flavour: Literal["production", "development"] = "development"  # of the build it boots before any flash
    version: str = "1.0.0"
    pin: str | None = None


class CaptureMode(_Strict):
    """How the station's camera must capture (hil.vision.camera.CaptureMode): set through OpenCV on a camera
    device and read back on open; on a stream only the frame size can be checked. Without it a V4L2 camera
    opens at its driver's default (often 640x480), far below what the calibration's corners assume."""

    width: int = Field(gt=0)
    height: int = Field(gt=0)
    fps: float | None = Field(None, gt=0)
    focus: float | None = Field(None, description="manual focus (autofocus off); the driver's units")
    exposure: float | None = Field(None, description="manual exposure (auto exposure off); the driver's units")


class CameraCalibration(_Strict):
    """Where the panel sits in the camera image (TL, TR, BR, BL; hil.vision.locate.Calibration); absent
    corners mean: locate the panel each time. ``mode``: the capture mode those corners were measured in."""

    corners: tuple[tuple[float, float], tuple[float, float], tuple[float, float], tuple[float, float]] | None = None
    tolerance: float = Field(6.0, gt=0, description="frame pixels the panel may move before recalibration")
    mode: CaptureMode | None = None


class RobotCalibration(_Strict):
    """Display pixels and the robot millimetres where the stylus touched them (hil.stimuli.robot.Calibration.fit:
    at least 3, not collinear). Absent on a wired station: the file `hil touch calibrate` stored for it.
    Points rather than a fitted matrix, so the lab file says what was measured and a bad point shows."""

    points: tuple[tuple[tuple[float, float], tuple[float, float]], ...] = Field(min_length=3)


class Wiring(_Strict):
    """What is wired to one Prime, by the names of docs/architecture.md ("A station's resources"): the fields
    a station's lab-file entry (`StationConfig`) and the live station (`hil.lab.station.Station`) share."""

    serial: str | None = None
    debug: str | None = None
    usb_port: str | None = None
    samba: str | None = None
    camera: str | None = None
    camera_calibration: CameraCalibration | None = None
    qr_display: str | None = None
    nfc: str | None = None
    robot: str | None = None
    robot_calibration: RobotCalibration | None = None
    relay: str | None = None
    cd_relay: int | None = Field(None, ge=2, le=8, description="channel of the `relay` board wired across the "
                                 "unit's CD pads (channel 1 is the power button): shorted at power-on, the ROM starts "
                                 "SAM-BA; a production unit's only way there (hil.stimuli.cd_pads)")
    hub_port: str | None = Field(None, description="switchable hub port for power cycling, uhubctl form HUB:PORT")
    tags: tuple[str, ...] = ()

    @classmethod
    def endpoints(cls) -> tuple[str, ...]:
        """The addresses among the fields (what an emulator announces, what a lab file wires)."""
        return tuple(k for k, f in cls.model_fields.items() if f.annotation == (str | None))


class StationConfig(Wiring):
    """A station's entry in the lab file: its wiring, the profile by name, and how it comes to life."""

    profile: str
    emulated: EmulatedSpec | None = None
    bench: str | None = Field(None, description="bench host it is wired to (issue 8, hil/lab/labgrid.py); its "
                              "endpoints are then the bench's, served by `hil bridge` there")
    bridge_port: int | None = Field(None, ge=0, le=65535, description="TCP port of its `hil bridge` on the bench")

    @model_validator(mode="after")
    def _wired_or_emulated(self) -> StationConfig:
        wired = [k for k in Wiring.endpoints() if k != "serial" and getattr(self, k) is not None]
        if self.emulated is not None and wired:
            raise ValueError(f"an emulated station gets its endpoints from the emulator; remove {', '.join(wired)}")
        if self.emulated is None and (self.debug is None or self.usb_port is None):
            raise ValueError("a wired station needs at least `debug` and `usb_port` (or an `emulated:` block)")
        return self

    @field_validator("nfc")
    @classmethod
    def _reader_can(cls, v: str | None) -> str | None:
        """The reader must both read the Prime's card and present tags to it (hil.stimuli.nfc_readers)."""
        if v is not None:
            try:
                check_reader(v)
            except ConfigError as e:
                raise ValueError(str(e)) from None
        return v


class Bench(_Strict):
    """A bench host of a labgrid lab: runs a labgrid exporter and `hil bridge` for its stations."""

    host: str = Field(description="address the controller reaches the bench at")


class SigningKey(_Strict):
    """The lab's sign-off key (Ed25519, PEM). `generate` is for the emulated lab only: a test key is
    created on first use; a real lab keeps its key provisioned and never generates one."""

    path: Path
    generate: bool = False
    # who signs with it, as the sign-off names them (a person or a service, and in what capacity)
    name: str = "unnamed signer"
    role: str = "role not stated in the lab file"

    @property
    def trusted_signers(self) -> Path:
        """The public half, beside the key: all `hil signoff verify` needs (never the private key)."""
        return self.path.with_name(self.path.stem + ".trusted-signers.pem")


class LabConfig(_Strict):
    name: str = "lab"
    state_dir: Path = Path(".hil")
    reports_dir: Path = Path("reports")
    profiles_dir: Path = Path("device_profiles")
    suites: tuple[Path, ...] = (Path("suites"),)
    signoff_criteria: Path = Path("signoff_criteria.yaml")
    signing_key: SigningKey
    firmware_keys: str = Field("production", description="key set the units trust: production, test or a TOML path")
    samba_applet: Path | None = Field(None, description="Microchip SD/MMC applet the flasher loads into SAM-BA")
    stations: dict[str, StationConfig]
    benches: dict[str, Bench] = Field(default_factory=dict, description="bench hosts of a labgrid lab (issue 8)")
    coordinator: str | None = Field(None, description="labgrid://HOST:PORT of the lab's labgrid coordinator")
    source: Path | None = Field(None, exclude=True)

    @field_validator("stations")
    @classmethod
    def _names(cls, v: dict[str, StationConfig]) -> dict[str, StationConfig]:
        if not v:
            raise ValueError("the lab has no stations")
        for name in v:
            if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", name):
                raise ValueError(f"station name {name!r} must be letters, digits, '.', '_' or '-'")
        return v

    def resolved(self, base: Path) -> LabConfig:
        """Paths in the file are relative to the file."""
        def rel(p: Path) -> Path:
            return p if p.is_absolute() else (base / p).resolve()

        return self.model_copy(update={
            "state_dir": rel(self.state_dir), "reports_dir": rel(self.reports_dir),
            "profiles_dir": rel(self.profiles_dir), "signoff_criteria": rel(self.signoff_criteria),
            "signing_key": self.signing_key.model_copy(update={"path": rel(self.signing_key.path)}),
            "samba_applet": rel(self.samba_applet) if self.samba_applet else None,
            "suites": tuple(rel(p) for p in self.suites),
            "firmware_keys": str(rel(Path(self.firmware_keys))) if self.firmware_keys.endswith(".toml")
            else self.firmware_keys,
        })

    def profile(self, name: str) -> Profile:
        return load_profile(name, self.profiles_dir)


def lab_from_option(lab: str | None) -> LabConfig:
    """What a ``--lab`` option names: a lab file (default: the repository's), or a ``labgrid://`` URL, which is the
    repository's lab file with its stations leased as places on that coordinator (issue 8)."""
    if is_url(lab):
        return load_lab().model_copy(update={"coordinator": lab})
    return load_lab(lab)


def load_lab(path: str | Path | None = None) -> LabConfig:
    """Read and validate a lab file, check every station's profile exists, resolve paths."""
    p = Path(path) if path else DEFAULT_LAB
    lab: LabConfig = load_yaml_model(p, LabConfig).resolved(p.resolve().parent)
    lab = lab.model_copy(update={"source": p.resolve()})
    if not lab.signoff_criteria.is_file():
        raise ConfigError(f"{p}: signoff_criteria: {lab.signoff_criteria} does not exist; point it at a criteria "
                          "file (e.g. signoff_criteria.yaml), relative to the lab file")
    for name, st in lab.stations.items():
        try:
            lab.profile(st.profile)
        except ConfigError as e:
            raise ConfigError(f"{p}: station {name}: {e}") from None
    return lab

