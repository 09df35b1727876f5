"""The emulated Prime's boot chain: the SAMA5D2 boot ROM, then keyos-boot.

ROM: a valid MBR whose bootable FAT partition holds ``boot.bin``/``boot.cip`` (an AT91 image: the word
at 0x14 is its size) is booted; anything else falls back to the SAM-BA monitor, as the real ROM does.
keyos-boot (`boot/keyos-boot/src/{entrypoint,verify}.rs`): load ``1:keyos/app.bin`` (else
``1:keyos.update/app.bin``), verify its cosign2 header against the known signers (the emulator's are the test keys in
``firmware/``) and require a trust the bootloader's flavour boots: FullyTrusted for production, and
also ThirdParty for development, whose builds xtask ``builder.rs`` signs ``cosign2 sign --developer``
(keyos.md §10; ``verify.rs`` is not public, so the development rule is the profile's ``assumed:`` one).
On failure it shows the FirmwareVerification error page, whose Support button shows the fw-error QR.
The anti-rollback value plays the secure element's firmware timestamp: an image older than the
newest one that booted is refused, and booting raises it.

The Boot Menu (`boot_screen.rs` ``try_boot_menu`` / ``show_boot_screen(BootScreenPage::Menu)``): after
the loading screen the bootloader watches the power button for 1 s, each counted click restarting that
second; at the second click it shows the Boot Menu instead of verifying, whatever is installed, so it
is reachable from a unit that would show the error page. Its pages are touch-driven (FT3269). The page
is `menu_page.rs` ``MenuPage::new``: the title "BOOT MENU", a menu of "System Information", "Recovery" and
"(Debug) SAM-BA mode", then the buttons "Start KeyOS" and "Shut Down" at the bottom. System Information
and Recovery boot the recovery image, which the emulator does not have: their taps are logged and change
nothing. ``menu_page.rs`` adds the SAM-BA entry only ``#[cfg(not(feature = "production"))]`` (and
``boot_common::enter_sam_ba_mode`` exists only then): a production bootloader's menu has two entries, and
a production unit reaches SAM-BA only through the ROM, by the CD pads shorted at power-on (KeyOS
``DEVELOPMENT.md`` "Recovering a Bricked Device"; ``SambaPort.boot``). Where the menu sits is the
emulator's own: seeds 0 and 1 (``ui.CLASSIC_SEEDS``) keep one layout, every other seed moves the menu
down, so a point remembered from one unit misses on another.
"""

from __future__ import annotations

import io
import struct
from dataclasses import dataclass
from pathlib import Path

import segno
from PIL import Image, ImageDraw

from hil.emulator import render
from hil.emulator.build import Build, BuildError
from hil.emulator.defects import Defects
from hil.emulator.emmc import Emmc
from hil.emulator.ui import CLASSIC_SEEDS
from hil.flash import bootimg, cosign2
from hil.link.protocol import HEIGHT, WIDTH

# boot/keyos-boot/src/system_errors.rs, SystemErrorCode::FirmwareVerification, main image
FW_ERROR_TITLE = "Firmware Error"
FW_ERROR_MESSAGE = ("KeyOS is unable to verify the", "signature of the installed", "firmware.", "",
                    "Use Recovery mode to install", "Foundation-signed firmware.")
FW_ERROR_URL = "https://foundation.xyz/fw-error"  # blassets/fw_error_qr.png
QR_SIZE = 380  # system_error_page.rs QR_SIZE_PX
MARGIN, BUTTON_H, GAP = 32, 64, 16
DARK, WHITE, GREY = (0, 0, 0, 255), (255, 255, 255, 255), (90, 90, 90, 255)


@dataclass(frozen=True)
class BootOutcome:
    mode: str  # "keyos", "error" (bootloader error page) or "samba" (the ROM found nothing to boot)
    reason: str
    build: Build | None = None
    header: cosign2.Header | None = None
    reproducible_hash: str | None = None


class AntiRollback:
    """The firmware timestamp the secure element keeps (a u32 in a file next to the eMMC)."""

    def __init__(self, path: Path):
        self.path = Path(path)

    @property
    def value(self) -> int:
        return struct.unpack("<I", self.path.read_bytes())[0] if self.path.exists() else 0

    def raise_to(self, timestamp: int) -> None:
        if timestamp > self.value:
            self.path.write_bytes(struct.pack("<I", timestamp))


def rom_finds_bootloader(emmc: Emmc) -> str | None:
    """Why the ROM would fall back to SAM-BA, or None when it finds a bootloader to run."""
    with emmc.file() as fp:
        try:
            boot = bootimg.partition_table(emmc.read_pages(0, 1), emmc.size)[0]
            loader = next(filter(None, (bootimg.read_file(fp, boot, n) for n in bootimg.BOOTLOADERS)), b"")
        except bootimg.BootImageError as e:
            return str(e)
    if len(loader) < 0x18 or struct.unpack_from("<I", loader, 0x14)[0] != len(loader):
        return "no valid boot program on the eMMC (boot.bin missing or its size word at 0x14 is wrong)"
    return None


BOOTS = {"production": frozenset({cosign2.Trust.FULLY_TRUSTED}),
         "development": frozenset({cosign2.Trust.FULLY_TRUSTED, cosign2.Trust.THIRD_PARTY})}


def boot(emmc: Emmc, known_signers: frozenset[bytes], anti_rollback: AntiRollback,
         defects: Defects = Defects(), flavour: str = "production") -> BootOutcome:
    """Power-on: what the ROM and keyos-boot make of the eMMC's contents (``defects``: the seeded
    regressions this bootloader carries)."""
    why = rom_finds_bootloader(emmc)
    if why:
        return BootOutcome("samba", why)
    with emmc.file() as fp:
        try:
            system = bootimg.partition_table(emmc.read_pages(0, 1), emmc.size)[1]
            image = bootimg.read_file(fp, system, bootimg.APP_IMAGE)
            if image is None:
                image = bootimg.read_file(fp, system, bootimg.UPDATED_APP_IMAGE)
        except bootimg.BootImageError as e:
            return BootOutcome("error", str(e))
    if image is None:
        return BootOutcome("error", f"no {bootimg.APP_IMAGE} on PRIME")
    try:
        verified = cosign2.verify(image, known_signers)
    except cosign2.Cosign2Error as e:
        return BootOutcome("error", f"app.bin: {e}")
    header = verified.header
    if defects.has("bootloader-raises-anti-rollback-before-verifying"):
        anti_rollback.raise_to(header.timestamp)
    trusted = set(BOOTS[flavour])
    if defects.has("bootloader-accepts-partially-trusted"):
        trusted.add(cosign2.Trust.PARTIALLY_TRUSTED)
    if defects.has("bootloader-accepts-third-party"):
        trusted.add(cosign2.Trust.THIRD_PARTY)
    if verified.trust not in trusted:
        allowed = " or ".join(sorted(t.value for t in BOOTS[flavour]))
        return BootOutcome("error", f"app.bin is {verified.trust.value}; this {flavour} bootloader boots only "
                                    f"{allowed}", header=header)
    if header.magic != cosign2.Magic.ATSAMA5D27_KEYOS.value and not defects.has("bootloader-ignores-chip"):
        return BootOutcome("error", f"app.bin has magic {header.magic!r}, not an image for this chip", header=header)
    slack = 1 if defects.has("bootloader-anti-rollback-a-second-slack") else 0
    if header.timestamp < anti_rollback.value - slack and not defects.has("bootloader-ignores-anti-rollback"):
        return BootOutcome("error", f"app.bin timestamp {header.timestamp} is older than the anti-rollback "
                                    f"value {anti_rollback.value}", header=header)
    try:
        build = Build.from_payload(image[cosign2.DEFAULT_SIZE:])
    except BuildError as e:
        return BootOutcome("error", str(e), header=header)
    if build.version != header.version:
        return BootOutcome("error", f"build says version {build.version}, its header {header.version}", header=header)
    anti_rollback.raise_to(header.timestamp)  # assumed: keyos.md §3.5 has os/update set it; a boot raising it is unverified
    return BootOutcome("keyos", "verified", build, header, verified.reproducible_hash)


# ------------------------------------------------------------ the error pages

def _button(top: int) -> tuple[int, int, int, int]:
    return (MARGIN, top, WIDTH - MARGIN, top + BUTTON_H)


SHUT_DOWN_BUTTON = _button(HEIGHT - 40 - BUTTON_H)
SUPPORT_BUTTON = _button(SHUT_DOWN_BUTTON[1] - GAP - BUTTON_H)
RECOVERY_BUTTON = _button(SUPPORT_BUTTON[1] - GAP - BUTTON_H)
BACK_BUTTON = SHUT_DOWN_BUTTON


def _page(title: str) -> tuple[Image.Image, ImageDraw.ImageDraw]:
    image = Image.new("RGBA", (WIDTH, HEIGHT), DARK)
    draw = ImageDraw.Draw(image)
    draw.text((WIDTH / 2, 40 + BUTTON_H / 2), title, font=render.font(36, True), fill=WHITE, anchor="mm")
    draw.line((MARGIN, 40 + BUTTON_H, WIDTH - MARGIN, 40 + BUTTON_H), fill=GREY, width=1)
    return image, draw


def _draw_button(draw: ImageDraw.ImageDraw, box, label: str, primary: bool) -> None:
    draw.rounded_rectangle(box, radius=12, fill=WHITE if primary else DARK, outline=WHITE, width=2)
    draw.text(((box[0] + box[2]) / 2, (box[1] + box[3]) / 2), label, font=render.font(28, True),
              fill=DARK if primary else WHITE, anchor="mm")


def error_page() -> Image.Image:
    """The FirmwareVerification page: title, message, Begin Firmware Recovery / Support / Shut Down."""
    image, draw = _page(FW_ERROR_TITLE)
    y = 40 + BUTTON_H + 40
    for line in FW_ERROR_MESSAGE:
        draw.text((WIDTH / 2, y), line, font=render.font(28), fill=WHITE, anchor="mm")
        y += 40
    _draw_button(draw, RECOVERY_BUTTON, "Begin Firmware Recovery", True)
    _draw_button(draw, SUPPORT_BUTTON, "Support", False)
    _draw_button(draw, SHUT_DOWN_BUTTON, "Shut Down", False)
    return image


BOOT_MENU_TITLE = "BOOT MENU"  # menu_page.rs
MENU_ENTRIES = {"system_info": "System Information", "recovery": "Recovery", "samba": "(Debug) SAM-BA mode"}
PRODUCTION_ENTRIES = ("system_info", "recovery")  # menu_page.rs: the SAM-BA entry is cfg(not(feature = "production"))
MENU_ROW_H = 72
MENU_TOP = 40 + BUTTON_H + 24
MENU_SHIFTS = (60, 120, 180)  # how far a non-classic seed moves the menu down: each more than half a row


def menu_entries(flavour: str) -> dict[str, str]:
    """The Boot Menu's entries a ``flavour`` bootloader draws (name: label)."""
    return {n: label for n, label in MENU_ENTRIES.items() if flavour != "production" or n in PRODUCTION_ENTRIES}


def menu_buttons(seed: int = 0, flavour: str = "development") -> dict[str, tuple[tuple[int, int, int, int], str]]:
    """The Boot Menu's entries and buttons (name: box, label) on the ``flavour`` unit with ``seed``."""
    top = MENU_TOP + (0 if seed in CLASSIC_SEEDS else MENU_SHIFTS[seed % len(MENU_SHIFTS)])
    rows = {name: ((MARGIN, top + i * MENU_ROW_H, WIDTH - MARGIN, top + (i + 1) * MENU_ROW_H), label)
            for i, (name, label) in enumerate(menu_entries(flavour).items())}
    return rows | {"continue": (SUPPORT_BUTTON, "Start KeyOS"), "shut_down": (SHUT_DOWN_BUTTON, "Shut Down")}


def menu_page(seed: int = 0, flavour: str = "development") -> Image.Image:
    """The Boot Menu: its entries (three; two in production), then Start KeyOS / Shut Down."""
    image, draw = _page(BOOT_MENU_TITLE)
    for name, (box, label) in menu_buttons(seed, flavour).items():
        if name in MENU_ENTRIES:
            draw.line((box[0], box[3], box[2], box[3]), fill=GREY, width=1)
            draw.text((box[0] + 8, (box[1] + box[3]) / 2), label, font=render.font(28), fill=WHITE, anchor="lm")
            draw.text((box[2] - 8, (box[1] + box[3]) / 2), ">", font=render.font(28), fill=GREY, anchor="rm")
        else:
            _draw_button(draw, box, label, name == "continue")
    return image


def menu_button(x: int, y: int, seed: int = 0, flavour: str = "development") -> str | None:
    """Which Boot Menu entry a tap at (x, y) hits on the ``flavour`` unit with ``seed``."""
    return next((name for name, ((x0, y0, x1, y1), _) in menu_buttons(seed, flavour).items()
                 if x0 <= x < x1 and y0 <= y < y1), None)


def qr_page(url: str = FW_ERROR_URL) -> Image.Image:
    """The Support page: the error's QR code (380 px, ECC level Q as in blassets/) and its URL."""
    image, draw = _page("Support")
    y = 40 + BUTTON_H + 30
    for line in ("Visit by scanning with", "your phone camera."):
        draw.text((WIDTH / 2, y), line, font=render.font(26), fill=WHITE, anchor="mm")
        y += 34
    image.paste(qr_image(url), ((WIDTH - QR_SIZE) // 2, y))
    draw.text((WIDTH / 2, y + QR_SIZE + 30), url, font=render.font(22), fill=WHITE, anchor="mm")
    _draw_button(draw, BACK_BUTTON, "Back", True)
    return image


def qr_image(url: str) -> Image.Image:
    qr = segno.make(url, error="q", boost_error=False, micro=False)
    side = qr.symbol_size(scale=1, border=2)[0]
    buf = io.BytesIO()
    qr.save(buf, kind="png", scale=max(QR_SIZE // side, 1), border=2, dark="black", light="white")
    buf.seek(0)
    return Image.open(buf).convert("RGBA").resize((QR_SIZE, QR_SIZE), Image.NEAREST)


def page_button(x: int, y: int, qr_shown: bool) -> str | None:
    """Which button of the shown page a tap at (x, y) hits."""
    buttons = {"back": BACK_BUTTON} if qr_shown else {
        "recovery": RECOVERY_BUTTON, "support": SUPPORT_BUTTON, "shut_down": SHUT_DOWN_BUTTON}
    return next((name for name, (x0, y0, x1, y1) in buttons.items() if x0 <= x < x1 and y0 <= y < y1), None)

