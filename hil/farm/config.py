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


TrustLevel = Literal["FullyTrusted", "PartiallyTrusted", "ThirdParty"]


class FlavourRules(_Strict):
    """Which usb-debug commands a build flavour answers, which need the device unlocked, and which
    cosign2 trust levels the flavour's bootloader boots (what the flasher lets onto such a unit)."""

    allowed: tuple[str, ...]
    need_unlocked: tuple[str, ...] = ()
    boots: tuple[TrustLevel, ...] = ("FullyTrusted",)
    debug_link: bool = Field(True, description="the build has the usb-debug interface at all (xtask: a "
                             "--production-firmware build has it only with --log-usb-debug)")

    @field_validator("allowed", "need_unlocked")
    @classmethod
    def _known(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        bad = [c for c in v if c not in Cmd.__members__]
        if bad:
            raise ValueError(f"unknown usb-debug command(s) {', '.join(bad)}; known: {', '.join(Cmd.__members__)}")
        return v


class Link(_Strict):
    """Time and memory limits of the debug link. Each limit covers a whole command, from sending it to
    the last byte of its answer, whatever the device drips meanwhile."""

    command_s: float = Field(5.0, gt=0, description="a command's limit (passport-drive load_app.rs: 5 s)")
    command_limits_s: dict[str, float] = Field(
        default_factory=lambda: {"LOAD_APP_FILE_BEGIN": 10.0, "LOAD_APP_CHUNK": 10.0, "LOAD_APP_END": 15.0},
        description="per-command limits (passport-drive load_app.rs: 10 s file begin and chunks, 15 s "
                    "LOAD_APP_END for the rename and refresh_installed_app)")
    settle_s: float = Field(0.05, gt=0, description="quiet time that ends the drain of a link just opened")
    log_backlog_bytes: int = Field(8 * 1024 * 1024, gt=0, description="log records kept between reads; the "
                                   "oldest are dropped, and counted, beyond this")

    @field_validator("command_limits_s")
    @classmethod
    def _commands(cls, v: dict[str, float]) -> dict[str, float]:
        bad = [c for c in v if c not in Cmd.__members__]
        if bad:
            raise ValueError(f"unknown usb-debug command(s) {', '.join(bad)}; known: {', '.join(Cmd.__members__)}")
        if any(t <= 0 for t in v.values()):
            raise ValueError("every limit must be positive")
        return v


class Profile(_Strict):
    name: str
    description: str = ""
    usb: UsbIds = UsbIds()
    display: Display = Display()
    screenshot_byte_order: Literal["BGRA", "RGBA"]
    camera: Camera = Camera()
    touch: Touch = Touch()
    link: Link = Link()
    flavours: dict[Literal["production", "development"], FlavourRules]
    firmware_keys: str = Field("production", description="cosign2 key set the units' bootloader trusts: "
                               "production, test or a key set TOML path (what `hil flash` checks images against)")
    bootloader_titles: dict[Literal["error", "menu"], str] = Field(
        default_factory=lambda: {"error": "Firmware Error", "menu": "Boot Menu"},
        description="titles of keyos-boot's pages, read by the camera when no KeyOS answers")
    onboarding_process: str = Field("gui-app-onboarding", description="the process GET_PROCESS_LIST shows while "
                                    "onboarding runs (gui-server answers Locked then, as on the lock screen)")
    physical: bool = Field(True, description="real hardware; false for emulated units and KeyOS's simulator "
                           "(tests marked hardware_only skip)")
    kernel_log: Literal["debug-link", "uart"] = Field("uart", description="where the kernel's own println! lines "
                                                      "(the '[!] Denying message send' evidence, xous/kernel/src/"
                                                      "syscall.rs) reach the lab: streamed over the usb-debug link, or only "
                                                      "on the kernel's serial console (xous/kernel/src/debug/serial.rs)")
    allows_wipe: bool = Field(False, description="units of this profile may lose their seed: only then may a test "
                              "marked destructive type wrong PINs on purpose (hil.farm.pin_guard)")

    def boots(self, flavour: str | None) -> tuple[str, ...]:
        """The trust levels the bootloader of a ``flavour`` unit boots; FullyTrusted alone when unknown."""
        rules = self.flavours.get(flavour) if flavour else None  # type: ignore[call-overload]
        return rules.boots if rules is not None else ("FullyTrusted",)

    def link_missing(self, flavour: str | None) -> str | None:
        """Why a ``flavour`` build has no debug link, or None when it has one (or the flavour is unknown)."""
        rules = self.flavours.get(flavour) if flavour else None  # type: ignore[call-overload]
        if rules is None or rules.debug_link:
            return None
        return f"profile {self.name}: a {flavour} build has no debug link (usb-debug is not in it)"

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


class _StrictLoader(yaml.SafeLoader):
    """PyYAML's safe loader, but a key given twice is an error (PyYAML keeps the last one silently) and an
    integer too long for Python is a YAML error at its line, not a ValueError traceback."""

    def construct_mapping(self, node: yaml.Node, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in getattr(node, "value", ()):
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key!r} appears twice; keep one", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep)

    def construct_yaml_int(self, node: yaml.ScalarNode) -> int:
        try:
            return super().construct_yaml_int(node)
        except ValueError:
            raise yaml.constructor.ConstructorError(
                None, None, f"an integer of {len(node.value)} characters is too long; write at most 4300 digits",
                node.start_mark) from None


_StrictLoader.add_constructor("tag:yaml.org,2002:int", _StrictLoader.construct_yaml_int)


def read_yaml(path: Path) -> tuple[Any, yaml.Node | None]:
    """A YAML file we load (lab, profile, criteria) as data and its node tree; every flaw a ConfigError."""
    try:
        text = path.read_bytes().decode("utf-8")
    except OSError as e:
        raise ConfigError(f"{path}: cannot read ({e.strerror}); check the path") from None
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: not UTF-8 text (byte {e.start}); save the file as UTF-8") from None
    loader = None
    try:
        loader = _StrictLoader(text)
        root = loader.get_single_node()
        return (loader.construct_document(root) if root is not None else None), root
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise ConfigError(f"{where}: not valid YAML ({getattr(e, 'problem', e)})") from None
    except RecursionError:
        raise ConfigError(f"{path}: nested too deeply to read; flatten the file") from None
    finally:
        if loader is not None:
            loader.dispose()


def load_yaml_model(path: Path, model: type[BaseModel], **extra: Any) -> Any:
    data, root = read_yaml(path)
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
    if not lab.signoff_criteria.is_file():
        raise ConfigError(f"{p}: signoff_criteria: {lab.signoff_criteria} does not exist; point it at a criteria "
                          "file (e.g. signoff_criteria.yaml), relative to the lab file")
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
