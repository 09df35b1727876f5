"""Putting a KeyOS build on a Prime: a full reflash through SAM-BA, an app.bin update, an app sideload.

Everything about the image is checked before the device is touched (signatures against the key
set, chip, partition table, rollback against the version the device reports). The device is then
put in SAM-BA mode by `hil.flash.samba_entry.reach_samba` (REBOOT_SAMBA over the debug link on development
builds; otherwise ``enter_samba``: the station's jig by its route, CD pads on production, Boot Menu on
development, or an operator).
What is installed is read back first: the same image hash means nothing is written, an older
image than the installed one (cosign2 timestamp, the anti-rollback value) is refused. A full
reflash invalidates the MBR first and writes it last, so a cable pull or power cut at any offset
leaves a device whose ROM finds nothing to boot and stays in SAM-BA, where the next run recovers it.
After the reboot the device must report the flashed version over GET_VERSION.
"""

from __future__ import annotations

import tarfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from fs.errors import FSError
from pyfatfs import PyFATException

from hil import machine
from hil.errors import ConfigError, InfrastructureError
from hil.flash import bootimg, cosign2, manifest
from hil.flash.samba import EmmcFile, Samba, SambaError, Sdmmc
from hil.flash.samba_entry import SambaUnreachable, reach_samba
from hil.link.client import DeviceError, PrimeClient
from hil.link.transport import LinkError

Progress = Callable[[str, int, int], None]  # (phase, done, total)


class ImageError(ConfigError):
    """An image, bundle or request refused before the device is touched."""


class RollbackRefused(ImageError):
    """The image is older than what the device runs; pass allow_rollback to force it."""


class FlashFailed(InfrastructureError):
    """The device did not end up running the flashed build."""


@dataclass(frozen=True)
class Firmware:
    """A checked image: a full ``boot.img`` or a bare ``app.bin``."""

    path: Path
    kind: str  # "boot.img" or "app.bin"
    data: bytes
    app: cosign2.Verified

    @property
    def version(self) -> str:
        return self.app.header.version

    @property
    def timestamp(self) -> int:
        return self.app.header.timestamp

    @property
    def hash(self) -> str:
        return self.app.reproducible_hash


PRODUCTION_POLICY = frozenset({cosign2.Trust.FULLY_TRUSTED})


def check_app(data: bytes, keys: cosign2.KeySet, what: str,
              boots: frozenset[cosign2.Trust] = PRODUCTION_POLICY) -> cosign2.Verified:
    """A KeyOS image the device would boot: PRM1, signatures verify, a trust its bootloader boots
    (``boots``, from the station's profile; a production bootloader: FullyTrusted by ``keys``)."""
    try:
        verified = cosign2.verify(data, keys.pubkeys)
    except cosign2.Cosign2Error as e:
        raise ImageError(f"{what}: {e}") from None
    if verified.header.magic != cosign2.Magic.ATSAMA5D27_KEYOS.value:
        raise ImageError(f"{what}: magic {verified.header.magic.decode()} is an image for the nRF52 BLE chip, "
                         f"not the Prime's SAMA5D27 (PRM1)")
    if verified.trust not in boots:
        raise ImageError(f"{what}: trust is {verified.trust.value} against key set {keys.name}; the unit's "
                         f"bootloader boots only {', '.join(sorted(t.value for t in boots))} firmware")
    return verified


def read_image(path: Path) -> tuple[str, bytes, bytes, str]:
    """What the harness flashes from ``path``: (kind, file bytes, the cosign2 app image, where that
    image is named in errors). A boot.img's app image is its ``keyos/app.bin``."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise ImageError(f"{path}: cannot read ({e.strerror})") from None
    if data[:4] in {m.value for m in cosign2.Magic}:
        return "app.bin", data, data, str(path)
    if data[510:512] == b"\x55\xaa":
        try:
            image = bootimg.BootImage.read(path)
        except bootimg.BootImageError as e:
            raise ImageError(f"{path}: {e}") from None
        return "boot.img", data, image.app, f"{path}: {bootimg.APP_IMAGE}"
    raise ImageError(f"{path}: neither a cosign2-signed app.bin (PRM1) nor a boot.img (MBR); "
                     f"build one with `hil firmware build-emulated` or KeyOS's xtask")


def load_firmware(path: Path, keys: cosign2.KeySet, boots: frozenset[cosign2.Trust] = PRODUCTION_POLICY) -> Firmware:
    kind, data, app, where = read_image(path)
    return Firmware(Path(path), kind, data, check_app(app, keys, where, boots))


def boot_policy(levels: tuple[str, ...]) -> frozenset[cosign2.Trust]:
    """A profile's ``boots`` list as trust levels."""
    return frozenset(cosign2.Trust(level) for level in levels)


@dataclass(frozen=True)
class FlashResult:
    action: str  # "flashed", "updated" or "skipped"
    version: str
    hash: str
    chunks_patched: int = 0


class Flasher:
    """Flashes one Prime wired to a SAM-BA port (and, usually, a debug link)."""

    def __init__(self, samba_port: str, applet: bytes, keys: cosign2.KeySet, *,
                 link: Callable[[], PrimeClient] | None = None, enter_samba: Callable[[], None] | None = None,
                 progress: Progress = lambda phase, done, total: None, timeout: float = 60.0,
                 io_timeout: float = 10.0):
        """``timeout`` bounds waiting for the device to enter SAM-BA and to boot again;
        ``io_timeout`` bounds each answer of the monitor and its applet (both idle-machine seconds,
        scaled by how busy this host is)."""
        self.samba_port, self.applet, self.keys = samba_port, applet, keys
        self.link, self.enter_samba, self.progress = link, enter_samba, progress
        self.timeout, self.io_timeout = machine.scaled(timeout), machine.scaled(io_timeout)

    def flash(self, firmware: Firmware, *, force: bool = False, allow_rollback: bool = False,
              booted: Callable[[], None] | None = None) -> FlashResult:
        """``booted`` waits for the evidence of what the unit did with the image where the flasher's own (the
        flashed version over the link) does not serve; it runs before the monitor's port is let go."""
        running = self._running_version()
        if running is not None and not allow_rollback and _older(firmware.version, running):
            raise RollbackRefused(f"{firmware.path}: version {firmware.version} is older than the running "
                                  f"{running}; refusing a rollback (pass --allow-rollback to force it)")
        samba = self._samba()
        try:
            sd = samba.sdmmc(self.applet)
            installed = _installed(sd)
            if installed is not None and installed.reproducible_hash == firmware.hash and not force:
                self._reboot(samba, firmware.version, booted)
                return FlashResult("skipped", firmware.version, firmware.hash)
            if installed is not None and installed.header.timestamp > firmware.timestamp and not allow_rollback:
                self._reboot(samba, installed.header.version, None)
                raise RollbackRefused(
                    f"{firmware.path}: built {firmware.app.header.date} ({firmware.timestamp}), older than the "
                    f"installed {installed.header.version} ({installed.header.timestamp}); refusing a rollback "
                    f"(pass --allow-rollback to force it)")
            if firmware.kind == "boot.img":
                patched = self._write_image(sd, firmware.data)
                action = "flashed"
            else:
                self._update_app(sd, firmware.data)
                patched, action = 0, "updated"
            self._reboot(samba, firmware.version, booted)
        finally:
            samba.close()
        return FlashResult(action, firmware.version, firmware.hash, patched)

    # ------------------------------------------------------------ steps

    def _running_version(self) -> str | None:
        if self.link is None:
            return None
        try:
            with self.link() as client:
                return client.version()
        except LinkError:
            return None  # no KeyOS answering (off, in SAM-BA, at the bootloader's error page)

    def _samba(self) -> Samba:
        """A connected monitor: the one already running, else after asking the device to enter it."""
        try:
            return self._connect(0)
        except SambaError:
            self._enter_samba()
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                return self._connect(max(0.0, deadline - time.monotonic()))
            except SambaError as e:
                if time.monotonic() > deadline:
                    raise FlashFailed(f"{self.samba_port}: no SAM-BA monitor within {self.timeout:.0f} s "
                                      f"after asking the device to enter it ({e})") from None
                time.sleep(0.2)  # the port may not exist yet: the device is still re-enumerating

    def _connect(self, wait: float) -> Samba:
        samba = Samba.open(self.samba_port, timeout=self.io_timeout)
        try:
            samba.connect(timeout=wait)
        except SambaError:
            samba.close()
            raise
        return samba

    def _enter_samba(self) -> None:
        try:
            reach_samba(self.link, self.enter_samba)
        except SambaUnreachable as e:
            raise FlashFailed(str(e)) from None

    def _write_image(self, sd: Sdmmc, data: bytes) -> int:
        page = sd.page_size
        body = data[:len(data.rstrip(b"\0"))]  # past the last used byte lies free space only
        body += bytes(-len(body) % page)
        if len(body) > sd.pages * page:
            raise ImageError(f"image needs {len(body)} bytes, the eMMC has {sd.pages * page}")
        sd.write_pages(0, bytes(page))  # no MBR until the rest is in place: a cut now leaves SAM-BA
        rest = body[page:]
        sd.write(page, rest, lambda n: self.progress("write", n, len(rest)))
        stats = sd.verify(page, rest, lambda n: self.progress("verify", n, len(rest)))
        sd.write_pages(0, body[:page])
        stats_mbr = sd.verify(0, body[:page])
        return stats.chunks_patched + stats_mbr.chunks_patched

    def _update_app(self, sd: Sdmmc, app: bytes) -> None:
        disk = EmmcFile(sd, sd.pages * sd.page_size, writable=True)
        try:
            system = bootimg.partition_table(disk.read(bootimg.SECTOR), sd.pages * sd.page_size)[1]
            with bootimg.mount(disk, system) as fs:
                self.progress("write", 0, len(app))
                fs.makedirs("keyos.update", recreate=True)
                if fs.exists(bootimg.UPDATED_APP_IMAGE):  # left by an update cut short; pyfatfs 1.1
                    fs.remove(bootimg.UPDATED_APP_IMAGE)  # cannot truncate a file in place
                fs.writebytes(bootimg.UPDATED_APP_IMAGE, app)  # the bootloader's fallback while keyos/ is empty
                if fs.exists(bootimg.APP_IMAGE):
                    fs.remove(bootimg.APP_IMAGE)
                fs.move(bootimg.UPDATED_APP_IMAGE, bootimg.APP_IMAGE)
                self.progress("write", len(app), len(app))
        except (bootimg.BootImageError, PyFATException, FSError) as e:
            raise FlashFailed(f"the device's eMMC cannot take an app.bin update ({e}); flash a full boot.img") from None
        fresh = EmmcFile(sd, sd.pages * sd.page_size)
        if bootimg.read_file(fresh, system, bootimg.APP_IMAGE) != app:
            raise FlashFailed(f"{bootimg.APP_IMAGE} read back from the eMMC differs from the image")

    def _reboot(self, samba: Samba, version: str, booted: Callable[[], None] | None) -> None:
        """Reset into what the eMMC holds and wait for KeyOS to report ``version`` (or for ``booted``). The
        monitor's port stays open until then: the reset is the last bytes sent and is never answered, and a
        bench's ser2net (4.3) drops what its client sent last when the client hangs up at once (5 of 40
        sessions on a loaded host), which left the unit in SAM-BA. A unit without the link and without
        ``booted`` gets no such wait."""
        samba.reboot_to_normal()
        if booted is not None:
            booted()
            return
        if self.link is None:
            return
        deadline = time.monotonic() + self.timeout
        seen = "nothing"
        while time.monotonic() < deadline:
            try:
                with self.link() as client:
                    seen = client.version()
                if seen == version:
                    return
            except (LinkError, DeviceError) as e:
                seen = str(e)
            time.sleep(0.25)
        raise FlashFailed(f"after flashing {version}, GET_VERSION reported {seen!r} "
                          f"(the device did not boot the flashed build)")


def _older(version: str, than: str) -> bool:
    try:
        return cosign2.semver_key(version) < cosign2.semver_key(than)
    except ValueError:
        return False  # a running version that is not SemVer gives no order; the timestamp check decides


def _installed(sd: Sdmmc) -> cosign2.Verified | None:
    """The app.bin on the device with its header parsed, None when there is none readable."""
    disk = EmmcFile(sd, sd.pages * sd.page_size)
    try:
        system = bootimg.partition_table(disk.read(bootimg.SECTOR), sd.pages * sd.page_size)[1]
        data = bootimg.read_file(disk, system, bootimg.APP_IMAGE)
        data = data if data is not None else bootimg.read_file(disk, system, bootimg.UPDATED_APP_IMAGE)
        return cosign2.verify(data) if data is not None else None
    except (bootimg.BootImageError, cosign2.Cosign2Error):
        return None


# ------------------------------------------------------------ sideload

def read_bundle(path: Path) -> dict[str, bytes]:
    """An app bundle: a directory or a ``foundation pack`` ``.app`` (gzip tar, manifest.json first)."""
    path = Path(path)
    if path.is_dir():
        return {p.relative_to(path).as_posix(): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}
    try:
        with tarfile.open(path, mode="r:gz") as tar:
            return {m.name.removeprefix("./"): tar.extractfile(m).read() for m in tar if m.isfile()}
    except (OSError, tarfile.TarError) as e:
        raise ImageError(f"{path}: not an app bundle directory or .app archive ({e})") from None


def check_bundle(path: Path, keys: cosign2.KeySet) -> tuple[manifest.Manifest, dict[str, bytes]]:
    """An app bundle's manifest and files once its manifest parses and both its cosign2-signed app.elf and
    manifest.json (as xtask ``builder.rs`` writes them) verify."""
    files = read_bundle(path)
    if "manifest.json" not in files or "app.elf" not in files:
        raise ImageError(f"{path}: an app bundle needs manifest.json and app.elf at its top level")
    app = manifest.loads(files["manifest.json"], f"{path}/manifest.json")
    for name in ("app.elf", "manifest.json"):
        try:
            cosign2.verify(files[name], keys.pubkeys)
        except cosign2.Cosign2Error as e:
            raise ImageError(f"{path}/{name}: {e}; sign it with cosign2 as KeyOS's builder does") from None
    return app, files


def sideload(client: PrimeClient, path: Path, keys: cosign2.KeySet) -> manifest.Manifest:
    """Check an app bundle and upload it unchanged with LOAD_APP_* (passport-drive ``load_app.rs``)."""
    app, files = check_bundle(path, keys)
    client.sideload(app.app_id_bytes, files)  # the files as built, byte for byte
    return app

