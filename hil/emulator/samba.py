"""The emulated Prime's SAM-BA boot ROM monitor on a pty, with the SD/MMC applet's mailbox.

What KeyOS's flasher (`utils/sambuca`) relies on, enforced: binary mode after ``N#`` (terminal mode
before it, as the ROM starts), the chip id registers, SRAM at 0x200000 and the L2 cache usable as
SRAM at 0x220000 only once ``SFR_L2CC_HRAMC`` is 0, the applet running only if the bytes uploaded to
0x220000 are the applet this device was given, its mailbox (cmd, status, args; ack = 0xFFFFFFFF -
cmd) with initialise / read pages / write pages over :class:`Emmc`, and the reset controller.
Status codes are those of Microchip's SAM-BA 3 applets (``applet.h``).

While the device is not in SAM-BA mode nothing answers on the pty and what arrives is dropped,
as with a USB CDC device that is not enumerated.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import struct
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path

from PIL import Image

from hil.emulator import bootloader
from hil.emulator.defects import Defects
from hil.emulator.emmc import PAGE, Emmc, PowerCut
from hil.emulator.pty import PtyDevice
from hil.flash import bootimg, emulated

CIDR, EXID = 0xFC069000, 0xFC069004
SAMA5D27_CIDR, SAMA5D27_EXID = 0x8A5C08C2, 0x00000000
SFR_L2CC_HRAMC = 0xF8030058
RSTC_CR, BSC_CR = 0xF8048000, 0xF8048054
SRAM0 = (0x200000, 0x220000)
L2_SRAM = (0x220000, 0x240000)
APPLET_ADDR, MAILBOX, MAILBOX_END = 0x220000, 0x220004, 0x220100
BUFFER_ADDR, BUFFER_SIZE = 0x224000, 0x18000
VERSION = b"v3.0 emulated SAMA5D27 ROM\n\r"
PTY_READ = 4096  # the most one read of a pty returns (the Linux n_tty read buffer, N_TTY_BUF_SIZE)

APPLET_SUCCESS, APPLET_DEV_UNKNOWN, APPLET_FAIL = 0x00, 0x01, 0x0F
CMD_INITIALIZE, CMD_READ_PAGES, CMD_WRITE_PAGES = 0x00, 0x32, 0x33


class SambaMonitor(PtyDevice):
    """The ROM monitor: a pty whose slave path is the station's ``samba`` port."""

    name = "samba"

    def __init__(self, emmc: Emmc, applet: bytes, on_reset: Callable[[], None] = lambda: None,
                 on_power_cut: Callable[[], None] = lambda: None):
        super().__init__()
        self.emmc = emmc
        self.applet = applet
        self.on_reset = on_reset
        self.on_power_cut = on_power_cut
        self.active = False  # in SAM-BA mode and enumerated
        self._reset_state()

    # ------------------------------------------------------------ lifecycle

    def enter(self) -> None:
        """The ROM runs the monitor (a fresh one: terminal mode, L2 as cache, no applet)."""
        self._reset_state()
        self.active = True

    def leave(self) -> None:
        self.active = False

    def usb_reset(self) -> None:
        """The cable was pulled and plugged back: the CDC endpoint starts afresh, so a command or an
        S payload cut in half is lost; the monitor keeps running with its memory and mode."""
        self._buf.clear()
        self._pending = self._target = None

    def _reset_state(self) -> None:
        self.binary = False
        self.l2_sram = False
        self.sram0 = bytearray(SRAM0[1] - SRAM0[0])
        self.l2 = bytearray(L2_SRAM[1] - L2_SRAM[0])
        self.initialised = False
        self._buf = bytearray()
        self._pending: tuple[int, int] | None = None  # S: (address, bytes still to come)
        self._target: memoryview | None = None  # the memory the rest of that payload goes to, where mapped
        self._answers: list[bytes | memoryview] = []  # what the commands of one read answer, sent as one write

    # ------------------------------------------------------------ the wire

    def on_bytes(self, data: bytes) -> None:
        if self.active:
            self._feed(data)

    def payload_target(self) -> memoryview | None:
        """The rest of an S payload goes straight to the memory it is for (when no command bytes wait): the
        cable's bytes are taken as they come, with no work per read beyond the read. Its tail, shorter than a
        read of the pty, is read with the commands after it (one read, not two)."""
        target = self._target
        return target if target is not None and len(target) >= PTY_READ and self.active and not self._buf else None

    def on_payload(self, n: int) -> None:
        if self._pending is not None:  # else the cable was pulled meanwhile: what arrived is lost
            addr, left = self._pending
            self._pending = (addr + n, left - n) if left > n else None
            self._target = self._target[n:] if left > n else None

    def _feed(self, data: bytes) -> None:
        if self._buf:
            data = bytes(self._buf) + data
            self._buf.clear()
        view, pos = memoryview(data), 0
        while pos < len(data) and self.active:
            if self._pending:  # S payload: straight into memory
                addr, left = self._pending
                take = min(left, len(data) - pos)
                self._store(addr, view[pos:pos + take])
                pos += take
                self._pending = (addr + take, left - take) if left > take else None
                self._target = self._target[take:] if self._pending and self._target is not None else None
                continue
            end = data.find(b"#", pos)
            if end < 0:
                if len(data) - pos <= 64:  # no command is longer: more is yet to come
                    self._buf += data[pos:]
                break  # else line noise, dropped as the ROM does
            line, pos = data[pos:end], end + 1
            self._command(line)
        self._send_answers()

    def _command(self, line: bytes) -> None:
        if not line:
            return
        op = line[:1]
        try:
            nums = [int(a, 16) for a in line[1:].split(b",") if a]
        except ValueError:
            return  # a malformed number: the ROM ignores the command
        if self._answers and op in b"WSG":  # these change memory: what R lent from it goes out first
            self._send_answers()
        if op == b"N":
            self.binary = True
            self._answer(b"\n\r")
        elif op == b"T":
            self.binary = False
            self._answer(b"\n\r>")
        elif op == b"V":
            self._answer(VERSION + (b"" if self.binary else b">"))
        elif op == b"w" and nums:
            value = struct.unpack("<I", self._load(nums[0], 4))[0]
            self._answer(struct.pack("<I", value) if self.binary else b"\n\r0x%08X\n\r>" % value)
        elif op == b"W" and len(nums) == 2:
            self._write_word(nums[0], nums[1])
            self._prompt()
        elif op == b"S" and len(nums) == 2:
            self._pending = (nums[0], nums[1]) if nums[1] else None
            region = self._region(nums[0], nums[1]) if nums[1] else None
            self._target = memoryview(region[0])[region[1]:region[1] + nums[1]] if region else None
        elif op == b"R" and len(nums) == 2:
            self._answer(self._load(nums[0], nums[1]))
            self._prompt()
        elif op == b"G" and nums:
            self._go(nums[0])
            self._prompt()

    def _answer(self, data: bytes | memoryview) -> None:
        self._answers.append(data)

    def _send_answers(self) -> None:
        """The answers so far as one write (the host reads them as a stream; a syscall per ``w`` cost more
        than the copy)."""
        answers, self._answers = self._answers, []
        if answers:
            self.write(answers[0] if len(answers) == 1 else b"".join(answers))

    def _prompt(self) -> None:
        if not self.binary:
            self._answer(b"\n\r>")

    # ------------------------------------------------------------ memory

    def _region(self, addr: int, length: int) -> tuple[bytearray, int] | None:
        if SRAM0[0] <= addr and addr + length <= SRAM0[1]:
            return self.sram0, addr - SRAM0[0]
        if self.l2_sram and L2_SRAM[0] <= addr and addr + length <= L2_SRAM[1]:
            return self.l2, addr - L2_SRAM[0]
        return None

    def _load(self, addr: int, length: int) -> bytes | memoryview:
        """What a read of ``length`` bytes at ``addr`` sees; memory is lent, not copied (an R of a 64 KiB chunk
        goes out from it at once, before the next command can change it)."""
        if length == 4 and addr in (CIDR, EXID, SFR_L2CC_HRAMC):
            value = {CIDR: SAMA5D27_CIDR, EXID: SAMA5D27_EXID, SFR_L2CC_HRAMC: int(not self.l2_sram)}[addr]
            return struct.pack("<I", value)
        region = self._region(addr, length)
        if region is None:
            return bytes(length)  # nothing mapped there: reads as zeros
        mem, off = region
        return memoryview(mem)[off:off + length]

    def _store(self, addr: int, data: bytes | memoryview) -> None:
        region = self._region(addr, len(data))
        if region is not None:
            mem, off = region
            mem[off:off + len(data)] = data

    def _write_word(self, addr: int, value: int) -> None:
        if addr == SFR_L2CC_HRAMC:
            self.l2_sram = value & 1 == 0
        elif addr == RSTC_CR and value >> 24 == 0xA5 and value & 1:
            self.active = False
            self.on_reset()
        elif addr != BSC_CR:
            self._store(addr, struct.pack("<I", value))

    # ------------------------------------------------------------ the applet

    def _go(self, addr: int) -> None:
        if addr != APPLET_ADDR or not self._applet_loaded():
            return  # jumping into anything but the applet it knows: the emulated core does nothing
        cmd, _status, *args = struct.unpack("<11I", self._load(MAILBOX, 44))
        try:
            status, out = self._applet(cmd, args)
        except PowerCut:
            self.active = False
            self.on_power_cut()
            return
        self._store(MAILBOX, struct.pack(f"<{2 + len(out)}I", 0xFFFFFFFF - cmd, status, *out))

    def _applet_loaded(self) -> bool:
        region = self._region(APPLET_ADDR, len(self.applet))
        if region is None:
            return False
        mem, off = region
        start, stop = MAILBOX - APPLET_ADDR, MAILBOX_END - APPLET_ADDR  # the mailbox is scratch
        # bytearray slices compare with memcmp (memoryviews compare byte by byte: 60 us per G on 4 KiB)
        return (mem[off:off + start] == self.applet[:start]
                and mem[off + stop:off + len(self.applet)] == self.applet[stop:])

    def _applet(self, cmd: int, args: list[int]) -> tuple[int, list[int]]:
        if cmd == CMD_INITIALIZE:
            _comm, _trace, _, _, instance, ioset, partition, bus_width, voltages = args
            if instance != 0 or ioset != 1 or partition != 0 or bus_width not in (1, 4, 8) or not 0 < voltages < 8:
                return APPLET_DEV_UNKNOWN, []
            self.initialised = True
            return APPLET_SUCCESS, [BUFFER_ADDR, BUFFER_SIZE, PAGE, self.emmc.pages, 0]
        if cmd not in (CMD_READ_PAGES, CMD_WRITE_PAGES):
            return APPLET_FAIL, []
        page, count = args[0], args[1]
        if not self.initialised or count * PAGE > BUFFER_SIZE or page + count > self.emmc.pages:
            return APPLET_FAIL, []
        mem, off = self._region(BUFFER_ADDR, count * PAGE)
        buffer = memoryview(mem)[off:off + count * PAGE]  # the eMMC's pages move straight to or from SRAM
        if cmd == CMD_READ_PAGES:
            self.emmc.read_pages_into(page, buffer)
        else:
            self.emmc.write_pages(page, buffer)
        return APPLET_SUCCESS, [count]


class SambaPort:
    """The SAM-BA peripheral of an emulated Prime: its eMMC, boot chain and ROM monitor.

    It attaches itself as ``prime.firmware``: the Prime asks it at every power-on what boots
    (:meth:`boot`), shows its screen while no KeyOS runs, and hands it REBOOT_SAMBA.
    A factory-fresh eMMC is provisioned with a boot.img of the build the Prime was started with.
    """

    def __init__(self):
        self.prime = None
        self.mode = "keyos"  # "keyos", "error" (bootloader error page), "menu" (Boot Menu), "samba"
        self.qr_shown = False
        self.outcome: bootloader.BootOutcome | None = None
        self._tmp: tempfile.TemporaryDirectory | None = None

    def start(self, prime, emmc_dir: str | None = None, keys: str = "test",
              applet: Path = emulated.APPLET) -> tuple[str, str]:
        if emmc_dir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix=f"hil-emmc-{prime.serial}-")
            emmc_dir = self._tmp.name
        folder = Path(emmc_dir)
        image = folder / "emmc.img"
        if not image.exists():
            folder.mkdir(parents=True, exist_ok=True)
            subprocess.run(["cp", "--sparse=always", str(_factory_image(prime.build)), str(image)], check=True)
        self.prime = prime
        self.known_signers = emulated.keyset(keys).pubkeys
        self.defects = Defects.of(prime.build.defects)  # the bootloader's: fixed when the unit is made
        self.flavour = prime.build.flavour  # so is its trust policy (bootloader.BOOTS)
        self.anti_rollback = bootloader.AntiRollback(folder / "se-firmware-timestamp")
        self.emmc = Emmc(image, bootimg.EMULATED.total_bytes)
        self.monitor = SambaMonitor(self.emmc, Path(applet).read_bytes(), on_reset=self._reset,
                                    on_power_cut=self._power_cut)
        path = self.monitor.start_pty()
        with prime.lock:
            prime.firmware = self
            prime.on_link_reset(self.monitor.leave)  # power cut, reboot: USB re-enumerates
            prime.reboot()  # boot what the eMMC holds
        return "samba", path

    def stop(self) -> None:
        if self.prime is not None:
            with self.prime.lock:
                self.prime.firmware = None
        self.monitor.stop()
        self.emmc.close()
        if self._tmp is not None:
            self._tmp.cleanup()

    # ------------------------------------------------------------ what the Prime asks

    def boot(self) -> bool:
        """Power-on: True when KeyOS boots (``prime.build`` is then the installed build). With the CD pads
        shorted the ROM does not boot from the eMMC and starts its monitor (KeyOS DEVELOPMENT.md,
        "Recovering a Bricked Device"), whatever the eMMC holds and whatever the bootloader's flavour."""
        if self.prime.cd_pads_shorted:
            self.outcome = bootloader.BootOutcome("samba", "the CD pads are shorted: the ROM skips the eMMC")
        else:
            self.outcome = bootloader.boot(self.emmc, self.known_signers, self.anti_rollback, self.defects,
                                           self.flavour)
        self.mode, self.qr_shown = self.outcome.mode, False
        if self.mode == "keyos":
            self.monitor.leave()
            self.prime.build = self.outcome.build
            return True
        self.prime.log(f"ERROR:boot: {self.outcome.reason}")
        if self.mode == "samba":
            self.monitor.enter()
        return False

    def enter_samba(self) -> None:
        """REBOOT_SAMBA: the bootloader writes the boot-sequence bits and resets into the ROM monitor."""
        self.mode = "samba"
        self.monitor.enter()

    @property
    def _menu_flavour(self) -> str:
        """The flavour whose Boot Menu the bootloader draws (``menu_page.rs`` cfg ``production``)."""
        return "development" if self.defects.has("bootloader-menu-offers-samba") else self.flavour

    def boot_menu(self) -> None:
        """Clicks at the logo: keyos-boot shows its Boot Menu."""
        self.mode, self.qr_shown = "menu", False
        self.prime.log("INFO:boot: Boot Menu")

    def screen(self) -> Image.Image | None:
        """What the panel shows while no KeyOS runs (None while KeyOS runs)."""
        if self.mode == "keyos":
            return None
        if self.mode == "samba":
            return Image.new("RGBA", (480, 800), (0, 0, 0, 255))  # the ROM never turns the display on
        if self.mode == "menu":
            return bootloader.menu_page(self.prime.seed, self._menu_flavour)
        return bootloader.qr_page() if self.qr_shown else bootloader.error_page()

    def touch(self, x: int, y: int) -> None:
        """A tap on the bootloader's pages."""
        if self.mode == "menu":
            entry = bootloader.menu_button(x, y, self.prime.seed, self._menu_flavour)
            if entry in ("system_info", "recovery"):
                self.prime.log(f"INFO:boot: Boot Menu: {bootloader.MENU_ENTRIES[entry]} (no recovery image emulated)")
            elif entry == "samba":
                self.prime.log("INFO:boot: Boot Menu: SAM-BA mode")
                self.enter_samba()
                self.prime.invalidate()
            elif entry == "continue":
                self.prime.power_on()  # verify and boot what is installed
            elif entry == "shut_down":
                self.prime.power_cut()
            return
        button = bootloader.page_button(x, y, self.qr_shown)
        if button in ("support", "back"):
            self.qr_shown = button == "support"
            self.prime.invalidate()
        elif button == "shut_down":
            self.prime.power_cut()

    # ------------------------------------------------------------ from the monitor thread

    def _reset(self) -> None:
        with self.prime.lock:
            self.prime.reboot()

    def _power_cut(self) -> None:
        with self.prime.lock:
            self.prime.power_cut()


def _factory_image(build) -> Path:
    """A boot.img of ``build``, made once per build and kept in a cache shared by all emulators
    (building one takes a second; copying it sparsely, milliseconds)."""
    key = hashlib.sha256(build.payload()).hexdigest()[:16]
    path = Path(tempfile.gettempdir()) / "prime-hil-emmc-cache" / f"{key}.img"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f"{key}.{os.getpid()}.{threading.get_ident()}.partial")
        emulated.write_boot_image(partial, build)
        os.replace(partial, path)  # atomic: a concurrent emulator sees all of it or none
    return path


def control(prime, request: dict) -> dict:
    """The ``flash`` control command: ``fault`` ``power_cut`` (``after_bytes`` more eMMC bytes are
    written, then the power fails), ``bad_writes`` (the next ``count`` page writes store a flipped
    byte) or ``cable_pull`` (USB re-enumerates: half-received commands are lost); the reply gives
    the boot mode and why."""
    firmware = prime.firmware
    if not isinstance(firmware, SambaPort):
        raise ValueError("this device has no SAM-BA peripheral")
    fault, n = request.get("fault"), request.get("after_bytes", request.get("count"))
    if fault == "cable_pull":
        firmware.monitor.usb_reset()
    elif fault == "power_cut" and isinstance(n, int) and n >= 0:
        firmware.emmc.arm_power_cut(n)
    elif fault == "bad_writes" and isinstance(n, int) and n >= 0:
        firmware.emmc.arm_bad_writes(n)
    elif fault is not None:
        raise ValueError("flash needs 'fault': power_cut with 'after_bytes', bad_writes with 'count', or cable_pull")
    outcome = firmware.outcome
    return {"mode": firmware.mode, "reason": outcome.reason if outcome else "",
            "anti_rollback": firmware.anti_rollback.value}
