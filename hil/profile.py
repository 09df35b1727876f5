"""The device profile (`device_profiles/*.yaml`): what a hardware revision / build flavour looks like, as
pure data at the bottom of the house. The link, the flasher, the stimuli and the lab all read it; it reads
nothing of theirs.
"""

from __future__ import annotations

import enum
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from hil.errors import ConfigError
from hil.yamlfile import Strict as _Strict
from hil.yamlfile import load_yaml_model

PROFILES_DIR = Path(__file__).resolve().parents[1] / "device_profiles"
DEFAULT_PROFILE = "prime-rev-b"  # what is plugged into a lab host; the emulator names its own


class Cmd(enum.IntEnum):
    """The usb-debug commands (keyos.md §5.1): what a flavour's rules name, what hil.link.protocol encodes."""

    SCREENSHOT = 0x01
    SWIPE = 0x02
    POWER_BTN = 0x03
    REBOOT_SAMBA = 0x04
    CLOSE_APP = 0x05
    KERNEL_CMD = 0x06
    INPUT_TEXT = 0x07
    GET_VERSION = 0x08
    LAUNCH_APP = 0x09
    GET_DEVELOPER_MODE = 0x0A
    LOAD_APP_BEGIN = 0x0B
    LOAD_APP_FILE_BEGIN = 0x0C
    LOAD_APP_CHUNK = 0x0D
    LOAD_APP_END = 0x0E
    GET_PROCESS_LIST = 0x0F
    GET_ALLOWED_PUBLISHER_COUNT = 0x11
    INSTALL_CERTIFICATE = 0x13
    GET_SYSTEM_TIME = 0x14
    SET_SYSTEM_TIME = 0x15


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
    modal_height: int = Field(600, gt=0, description="a SlideUpFixedPopup modal (a permission prompt) fills the "
                              "panel's bottom this tall (api/gui-server/src/consts.rs MODAL_HEIGHT); a press "
                              "above it cancels it (os/gui-server/src/modal.rs modal_process_touch)")


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


class Touch(_Strict):
    """Touch geometry; the virtual home button lies below the LCD (keyos.md §4)."""

    offset_y: int = -30
    home_button: Rect = Rect(x0=0, y0=850, x1=200, y1=971)
    boot_menu_samba: tuple[int, int] | None = Field(None, description="centre of the bootloader Boot Menu's "
                                                    "'SAM-BA mode' entry, measured on a unit: tapped only where no "
                                                    "camera reads the menu (hil.stimuli.boot_menu)")
    # assumed: the time keyos-boot takes to draw its menu after the last click (menu_page.rs gives none). Waited
    # out only by a bench without a camera, where nothing reports the menu (no debug link) and a tap before it lands
    # nowhere; a camera reads the menu as soon as it shows.
    boot_menu_settle_s: float = Field(0.5, ge=0, description="seconds a bench without a camera waits after the "
                                      "clicks before tapping boot_menu_samba")


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
    samba_in_boot_menu: bool = Field(True, description="the flavour's bootloader offers '(Debug) SAM-BA mode' in its "
                                     "Boot Menu (keyos-boot menu_page.rs: only cfg(not(feature = \"production\"))); "
                                     "without it the lab reaches SAM-BA by the CD pads (hil.stimuli.cd_pads)")

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
        default_factory=lambda: {"error": "Firmware Error", "menu": "BOOT MENU"},
        description="titles of keyos-boot's pages, read by the camera when no KeyOS answers")
    onboarding_process: str = Field("gui-app-onboarding", description="the process GET_PROCESS_LIST shows while "
                                    "onboarding runs (gui-server answers Locked then, as on the lock screen)")
    physical: bool = Field(True, description="real hardware; false for emulated units and KeyOS's simulator "
                           "(tests marked hardware_only skip)")
    kernel_log: Literal["debug-link", "uart"] = Field("uart", description="where the kernel's own println! lines "
                                                      "(the '[!] Denying message send' evidence, xous/kernel/src/"
                                                      "syscall.rs) reach the lab: streamed over the usb-debug link, or only "
                                                      "on the kernel's serial console (xous/kernel/src/debug/serial.rs)")
    cd_pads_hold_s: float = Field(2.0, gt=0, description="how long the CD pads stay shorted after the power-on "
                                  "click before the jig lets go (KeyOS DEVELOPMENT.md: remove the short once the "
                                  "screen is blank, i.e. the ROM has started SAM-BA)")
    developer_mode_answer: Literal["setting", "reachable"] = Field(
        "reachable", description="what GET_DEVELOPER_MODE answers: the Settings toggle, or 1 whenever the link "
        "answers at all (os/usb-debug/src/dispatch.rs: `cfg!(keyos) || self.developer_mode_enabled()`, \"being "
        "reachable at all is the answer on hardware\"); only where it is the setting can a check read the toggle")
    allows_wipe: bool = Field(False, description="units of this profile may lose their seed: only then may a test "
                              "marked destructive type wrong PINs on purpose (hil.lab.pin_guard)")

    def boots(self, flavour: str | None) -> tuple[str, ...]:
        """The trust levels the bootloader of a ``flavour`` unit boots; FullyTrusted alone when unknown."""
        rules = self.flavours.get(flavour) if flavour else None  # type: ignore[call-overload]
        return rules.boots if rules is not None else ("FullyTrusted",)

    def samba_in_boot_menu(self, flavour: str | None) -> bool | None:
        """Whether a ``flavour`` unit's Boot Menu has the SAM-BA entry; None when the flavour is unknown."""
        rules = self.flavours.get(flavour) if flavour else None  # type: ignore[call-overload]
        return rules.samba_in_boot_menu if rules is not None else None

    def developer_mode_unreadable(self) -> str | None:
        """Why the link cannot tell whether a tap turned Developer Mode off, or None where it can."""
        if self.developer_mode_answer == "setting":
            return None
        return (f"profile {self.name}: GET_DEVELOPER_MODE answers 1 whenever the link answers (os/usb-debug/src/"
                "dispatch.rs on hardware), so the Settings toggle's state cannot be read over the link")

    def link_missing(self, flavour: str | None) -> str | None:
        """Why a ``flavour`` build has no debug link, or None when it has one (or the flavour is unknown)."""
        rules = self.flavours.get(flavour) if flavour else None  # type: ignore[call-overload]
        if rules is None or rules.debug_link:
            return None
        return f"profile {self.name}: a {flavour} build has no debug link (usb-debug is not in it)"

    def allows(self, flavour: str, command: str) -> bool:
        rules = self.flavours.get(flavour)  # type: ignore[call-overload]
        return rules is not None and command in rules.allowed



def load_profile(name: str, profiles_dir: Path) -> Profile:
    path = profiles_dir / f"{name}.yaml"
    if not path.is_file():
        known = sorted(f.stem for f in profiles_dir.glob("*.yaml"))
        raise ConfigError(f"no device profile {name!r} in {profiles_dir}; known: {', '.join(known) or 'none'}")
    prof: Profile = load_yaml_model(path, Profile, name=name)
    return prof


def profile_named(name: str) -> Profile:
    return load_profile(name, PROFILES_DIR)
