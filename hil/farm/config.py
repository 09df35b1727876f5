"""The lab on paper: `lab_config.yaml` (stations and what is wired to each) and `device_profiles/*.yaml`
(what a hardware revision / build flavour looks like), validated by pydantic.

A typo must not become a station that silently lacks its camera, so every model forbids unknown keys,
and every error names the file, the line and the field (from the YAML node marks).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from hil.errors import ConfigError
from hil.link.protocol import Cmd

DEFAULT_LAB = Path(__file__).resolve().parents[2] / "lab_config.yaml"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


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


class StationConfig(_Strict):
    """What is wired to one Prime. Keys follow docs/architecture.md ("A station's resources")."""

    profile: str
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
    hub_port: str | None = Field(None, description="switchable hub port for power cycling, uhubctl form HUB:PORT")
    control: str | None = Field(None, description="emulator only (faults, power); tests use it, the harness never does")
    tags: tuple[str, ...] = ()
    emulated: EmulatedSpec | None = None
    bench: str | None = Field(None, description="bench host it is wired to (issue 8, hil/farm/labgrid.py); its "
                              "endpoints are then the bench's, served by `hil bridge` there")
    bridge_port: int | None = Field(None, ge=0, le=65535, description="TCP port of its `hil bridge` on the bench")

    @model_validator(mode="after")
    def _wired_or_emulated(self) -> StationConfig:
        wired = [k for k in ("debug", "usb_port", "samba", "camera", "qr_display", "nfc", "robot", "relay", "hub_port",
                           "control")
                 if getattr(self, k) is not None]
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
            from hil.stimuli.nfc_readers import check_reader

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


# ------------------------------------------------------------------------------------ profiles

_USB_ID = r"[0-9a-f]{4}:[0-9a-f]{4}"


class UsbIds(_Strict):
    keyos: str = Field("1307:0165", pattern=_USB_ID)
    legacy: str = Field("2c97:7011", pattern=_USB_ID)
    samba: str = Field("03eb:6124", pattern=_USB_ID)
    backend: str = Field("libusb1", description="pyusb backend that reaches the unit: 'libusb1' or "
                         "'module:Factory' called with the station's debug/serial/usb_port (hil.link.usb.load_backend)")


class Display(_Strict):
    width: int = Field(480, gt=0)
    height: int = Field(800, gt=0)


class Rect(_Strict):
    x0: int
    y0: int
    x1: int
    y1: int

    @model_validator(mode="after")
    def _ordered(self) -> Rect:
        if self.x1 <= self.x0 or self.y1 <= self.y0:
            raise ValueError("needs x0 < x1 and y0 < y1")
        return self

    @property
    def centre(self) -> tuple[int, int]:
        return (self.x0 + self.x1) // 2, (self.y0 + self.y1) // 2


class PinPad(_Strict):
    """Centres of the PIN-entry keys on the lock screen, in display coordinates."""

    keys: dict[Literal["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"], tuple[int, int]]
    enter: tuple[int, int]
    delete: tuple[int, int]

    @field_validator("keys")
    @classmethod
    def _all_digits(cls, v: dict[str, tuple[int, int]]) -> dict[str, tuple[int, int]]:
        missing = sorted(set("0123456789") - set(v))
        if missing:
            raise ValueError(f"missing digits {', '.join(missing)}")
        return v


class Touch(_Strict):
    """Touch geometry; the virtual home button lies below the LCD (keyos.md §4)."""

    offset_y: int = -30
    home_button: Rect = Rect(x0=0, y0=850, x1=200, y1=971)
    pin_pad: PinPad | None = None
    boot_menu_samba: tuple[int, int] | None = Field(None, description="centre of the bootloader Boot Menu's "
                                                    "'SAM-BA mode' entry (hil.stimuli.boot_menu)")


class Camera(_Strict):
    """The Prime's own camera (what the QR presenter must fill)."""

    width: int = 480
    height: int = 480
    fps: int = 30


class FlavourRules(_Strict):
    """Which usb-debug commands a build flavour answers, and which need the device unlocked."""

    allowed: tuple[str, ...]
    need_unlocked: tuple[str, ...] = ()

    @field_validator("allowed", "need_unlocked")
    @classmethod
    def _known(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        bad = [c for c in v if c not in Cmd.__members__]
        if bad:
            raise ValueError(f"unknown usb-debug command(s) {', '.join(bad)}; known: {', '.join(Cmd.__members__)}")
        return v


class Profile(_Strict):
    name: str
    description: str = ""
    usb: UsbIds = UsbIds()
    display: Display = Display()
    screenshot_byte_order: Literal["BGRA", "RGBA"]
    camera: Camera = Camera()
    touch: Touch = Touch()
    flavours: dict[Literal["production", "development"], FlavourRules]
    firmware_keys: str = Field("production", description="cosign2 key set the units' bootloader trusts: "
                               "production, test or a key set TOML path (what `hil flash` checks images against)")
    physical: bool = Field(True, description="real hardware; false for emulated units and KeyOS's simulator "
                           "(tests marked hardware_only skip)")
    kernel_log: Literal["debug-link", "uart"] = Field("uart", description="where the kernel's own println! lines "
                                                      "(the '[!] Denying message send' evidence, xous/kernel/src/"
                                                      "syscall.rs) reach the lab: streamed over the usb-debug link, or only "
                                                      "on the kernel's serial console (xous/kernel/src/debug/serial.rs)")
    allows_wipe: bool = Field(False, description="units of this profile may lose their seed: only then may a test "
                              "marked destructive type wrong PINs on purpose (hil.farm.pin_guard)")

    def allows(self, flavour: str, command: str) -> bool:
        rules = self.flavours.get(flavour)  # type: ignore[call-overload]
        return rules is not None and command in rules.allowed


# ------------------------------------------------------------------------------------ loading


def _node_at(node: yaml.Node | None, loc: tuple[Any, ...]) -> yaml.Node | None:
    """Follow a pydantic error location through the YAML node tree, as deep as it goes."""
    for key in loc:
        if isinstance(node, yaml.MappingNode):
            nxt = next((v for k, v in node.value if k.value == str(key)), None)
            if nxt is None:  # unknown key: point at the key itself
                nxt = next((k for k, _ in node.value if k.value == str(key)), None)
                return nxt or node
            node = nxt
        elif isinstance(node, yaml.SequenceNode) and isinstance(key, int) and key < len(node.value):
            node = node.value[key]
        else:
            break
    return node


def load_yaml_model(path: Path, model: type[BaseModel], **extra: Any) -> Any:
    try:
        text = path.read_text()
    except OSError as e:
        raise ConfigError(f"{path}: cannot read ({e.strerror}); check the path") from None
    try:
        data = yaml.safe_load(text)
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise ConfigError(f"{where}: not valid YAML ({getattr(e, 'problem', e)})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    try:
        return model.model_validate({**data, **extra})
    except ValidationError as e:
        lines = []
        for err in e.errors():
            node = _node_at(root, err["loc"])
            line = node.start_mark.line + 1 if node is not None else 1
            field = ".".join(str(p) for p in err["loc"]) or "(top level)"
            msg = "unknown field (typo?)" if err["type"] == "extra_forbidden" else err["msg"]
            lines.append(f"{path}:{line}: {field}: {msg}")
        raise ConfigError("\n".join(lines)) from None


def load_lab(path: str | Path | None = None) -> LabConfig:
    """Read and validate a lab file, check every station's profile exists, resolve paths."""
    p = Path(path) if path else DEFAULT_LAB
    lab: LabConfig = load_yaml_model(p, LabConfig).resolved(p.resolve().parent)
    lab = lab.model_copy(update={"source": p.resolve()})
    for name, st in lab.stations.items():
        try:
            lab.profile(st.profile)
        except ConfigError as e:
            raise ConfigError(f"{p}: station {name}: {e}") from None
    return lab


def load_profile(name: str, profiles_dir: Path) -> Profile:
    path = profiles_dir / f"{name}.yaml"
    if not path.is_file():
        known = sorted(f.stem for f in profiles_dir.glob("*.yaml"))
        raise ConfigError(f"no device profile {name!r} in {profiles_dir}; known: {', '.join(known) or 'none'}")
    prof: Profile = load_yaml_model(path, Profile, name=name)
    return prof
