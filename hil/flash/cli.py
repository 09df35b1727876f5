"""`hil firmware …` (inspect, verify-release, build-emulated) and `hil flash`.

Bad input ends with one line on stderr naming the file and the problem, and exit code 1; nothing
has been sent to a device by then.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Optional

import typer

from hil.errors import HilError
from hil.flash import cosign2
from hil.terminal import printable

firmware_app = typer.Typer(no_args_is_help=True, add_completion=False,
                           help="Firmware images: inspect, verify, build the emulator's.")

KeysOpt = Annotated[str, typer.Option("--keys", help="key set: production, test, or a key set TOML file")]


def _fail(message: str) -> None:
    typer.echo(printable(f"error: {message}"), err=True)
    raise typer.Exit(1)


def _keyset(name: str) -> cosign2.KeySet:
    from hil.flash import emulated

    try:
        return emulated.keyset(name)
    except ValueError as e:
        _fail(str(e))


@firmware_app.command()
def inspect(file: Path, json_out: Annotated[bool, typer.Option("--json")] = False,
            keys: KeysOpt = "production") -> None:
    """Show the cosign2 header of what the harness would flash (an app.bin, or a boot.img's
    keyos/app.bin); exit 0 only if it is signed by the chosen key set. A file that does not parse is
    an error, not a trust level."""
    from hil.flash.flasher import ImageError, read_image

    keyset = _keyset(keys)
    try:
        kind, _, data, where = read_image(file)
        header = cosign2.parse_unverified(data)
    except (ImageError, cosign2.Cosign2Error) as e:
        _fail(str(e) if isinstance(e, ImageError) else f"{file}: {e}")
    info: dict = {"file": str(file), "kind": kind, "image": where,
                  "magic": header.magic.decode("ascii", "replace"), "chip": header.chip.name,
                  "version": header.version_raw.split(b"\0")[0].decode("utf-8", "replace"),
                  "date": header.date_raw.split(b"\0")[0].decode("utf-8", "replace"), "timestamp": header.timestamp,
                  "size": header.bin_size, "header_size": header.size,
                  "signers": [{"pubkey": p.hex(), "name": keyset.name_of(p)}
                              for p in (header.pubkey1, header.pubkey2) if any(p)],
                  "reproducible_hash": cosign2.reproducible_hash(data)}
    error = None
    try:
        info["trust"] = cosign2.verify(data, keyset.pubkeys).trust.value
        if info["trust"] not in (cosign2.Trust.FULLY_TRUSTED.value, cosign2.Trust.PARTIALLY_TRUSTED.value):
            error = f"{where}: trust {info['trust']}: not signed by key set {keyset.name}"
    except cosign2.Cosign2Error as e:
        info["trust"] = "untrusted"  # a header that parses, with signatures that do not verify
        error = f"{where}: {e}"
    info["keys"] = keyset.name
    if json_out:
        typer.echo(json.dumps({**info, "ok": error is None, "error": error}, indent=2))
    else:
        for key in ("file", "kind", "image", "magic", "chip", "version", "date", "timestamp", "size", "header_size",
                    "trust", "keys", "reproducible_hash"):
            typer.echo(f"{key:18} {info[key]}")
        for i, signer in enumerate(info["signers"], 1):
            typer.echo(f"{'signer ' + str(i):18} {signer['pubkey']} ({signer['name'] or 'unknown'})")
    if error:
        _fail(error)


@firmware_app.command("verify-release")
def verify_release(bundle: Path, keys: KeysOpt = "production") -> None:
    """Check a KeyOS-v<ver>.bin release bundle: its signature and every file's hash."""
    from hil.flash import release

    keyset = _keyset(keys)
    try:
        rel = release.read(bundle.read_bytes(), keyset)
    except OSError as e:
        _fail(f"{bundle}: cannot read ({e.strerror})")
    except (release.ReleaseError, cosign2.Cosign2Error) as e:
        _fail(f"{bundle}: {e}")
    typer.echo(f"{bundle}: {rel.version}, {rel.bundle.trust.value} by key set {keyset.name}")
    for name, data in rel.files.items():
        trust = rel.verified[name].trust.value if name in rel.verified else "unsigned"
        typer.echo(f"  {name}  {len(data)} B  {trust}")


# cosign2 header errors a build-emulated option can cause, and how to fix each.
_HEADER_FIELDS = {
    "VersionTooLong": ("--version", "the header holds at most 20 bytes of version (e.g. 1.2.3-rc.1)"),
    "InvalidTimestamp": ("--timestamp", f"give seconds since 1970 in 0..{2**32 - 1}"),
}


@firmware_app.command("build-emulated")
def build_emulated(version: Annotated[str, typer.Option()] = "1.0.0",
                   flavour: Annotated[str, typer.Option(help="production or development")] = "production",
                   timestamp: Annotated[Optional[int], typer.Option(help="cosign2 timestamp (default: from the version)")] = None,
                   defect: Annotated[Optional[list[str]], typer.Option(help="seeded defect (repeat)")] = None,
                   out: Annotated[Optional[Path], typer.Option("-o", "--out", help="app.bin, or *.img for a boot.img; "
                                                                   "default: the nightly build under firmware/emulated/build/")] = None) -> None:
    """Build a test-signed emulated KeyOS image for the emulated Prime."""
    from hil.emulator.build import Build, BuildError
    from hil.emulator.defects import CATALOG
    from hil.flash import emulated

    unknown = [d for d in defect or [] if d not in CATALOG]
    if unknown:
        _fail(f"unknown defect {unknown[0]!r}; known: {', '.join(sorted(CATALOG))}")
    if not cosign2.is_semver(version):
        _fail(f"version {version!r} is not SemVer (e.g. 1.2.3)")
    try:
        build = Build(version=version, flavour=flavour, defects=tuple(defect or ()))
    except BuildError as e:
        _fail(str(e))
    if out is None and not defect and timestamp is None:
        out = emulated.default_build(flavour, version)
    elif out is None:
        _fail("-o FILE is needed for a build with defects or a timestamp (the default build has neither)")
    try:
        if out.suffix == ".img":
            emulated.write_boot_image(out, build, timestamp)
        else:
            out.write_bytes(emulated.app_image(build, timestamp))
    except cosign2.Cosign2Error as e:
        option, fix = _HEADER_FIELDS.get(e.code, ("image", "see hil firmware inspect"))
        _fail(f"{option}: {e}; {fix}")
    except OSError as e:
        _fail(f"{out}: cannot write ({e.strerror}); pick a file in an existing, writable directory")
    typer.echo(str(out))


def _ask_operator(route: str) -> Callable[[], None]:
    """A person presses the station's route into SAM-BA: the Boot Menu's entry (development bootloaders), or
    the CD pads short (production ones, whose Boot Menu has no SAM-BA entry: keyos-boot menu_page.rs)."""
    how = ("Short the CD pads, hold the power button 10 s, click it once, release the short when the screen "
           "is blank" if route == "cd-pads" else
           "Hold the power button 10 s, click it 3 times at the logo, choose \"(Debug) SAM-BA mode\" in the Boot Menu")
    return lambda: typer.prompt(f"{how}, then press Enter", default="", show_default=False, err=True)


def _rom(station):
    """The unit's SAM-BA ROM (`SambaRom`: its tty and USB port path) when no --samba names it, found from its
    --device: a tty the ROM owns, or the ROM that `back_to_samba` brings up on the device's USB port path
    (REBOOT_SAMBA, else the station's route); None where the device names no port path (tcp:, usb:SERIAL)."""
    from hil.lab.first_contact import back_to_samba
    from hil.link.resolve import BUS_PORT, SambaRom, resolve_tty
    from hil.link.usb import host_sysfs

    device, usb = station.debug or "", station.profile.usb
    try:
        if device.startswith("/"):
            device = resolve_tty(device, host_sysfs(usb.backend), (usb.keyos, usb.legacy), usb.samba)
    except SambaRom as rom:
        return rom  # the unit is in SAM-BA already
    kind, _, port = device.partition(":")
    if kind != "usb" or not BUS_PORT.fullmatch(port):
        return None
    return back_to_samba(port, station.model_copy(update={"usb_port": port}))


def flash(image: Annotated[Path, typer.Argument(help="boot.img, app.bin, or an app bundle (directory or .app)")],
          device: Annotated[Optional[str], typer.Option(help="debug link: emulator, tcp:HOST:PORT, usb:…, /dev/ttyACM0")] = None,
          samba: Annotated[Optional[str], typer.Option(help="SAM-BA serial port (default: the station's, or the ROM "
                                                   "found on the --device's USB port path)")] = None,
          profile: Annotated[Optional[str], typer.Option(help="device profile name")] = None,
          applet: Annotated[Optional[Path], typer.Option(help="Microchip SD/MMC applet binary")] = None,
          keys: Annotated[Optional[str], typer.Option("--keys", help="key set the device trusts: production, test "
                                                      "or a key set TOML (default: the device profile's firmware_keys)")] = None,
          flavour: Annotated[Optional[str], typer.Option(help="development or production: the unit's bootloader, "
                                                         "whose trust policy the profile gives (default: the "
                                                         "station's; unknown: FullyTrusted only)")] = None,
          force: Annotated[bool, typer.Option(help="write even when the device runs the same image")] = False,
          operator: Annotated[bool, typer.Option(help="prompt a person to take the unit into SAM-BA (CD pads on "
                                                 "a production bootloader, Boot Menu on a development one)")] = False,
          allow_rollback: Annotated[bool, typer.Option("--allow-rollback", help="DANGER: install an OLDER image "
                                                       "than the device runs")] = False,
          lab: Annotated[Optional[str], typer.Option(help="with --station: a lab file, or a labgrid://HOST:PORT "
                                                     "URL as `hil nightly --lab` takes it")] = None,
          station: Annotated[Optional[str], typer.Option(help="flash this station of the lab (default lab: the "
                                                         "repo's lab_config.yaml) as the nightly does")] = None) -> None:
    """Flash a Prime over USB-C: full reflash (boot.img), app.bin update, or app sideload. Production
    builds refuse REBOOT_SAMBA and their Boot Menu has no SAM-BA entry: the station's relay across the CD
    pads takes them there (development: relay and robot through the Boot Menu), else --operator asks a person.
    With --station, one station of the lab, flashed, leased and routed into SAM-BA as the nightly does it."""
    from rich.console import Console
    from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn

    from hil.flash import emulated, flasher
    from hil.lab.first_contact import keyos_booted
    from hil.lab.station import device_station
    from hil.link.resolve import open_client
    from hil.stimuli.boot_menu import flasher_route, route

    console = Console(stderr=True)
    if lab is not None or station is not None:
        given = [name for name, value in (("--device", device), ("--samba", samba), ("--profile", profile),
                                          ("--applet", applet), ("--keys", keys), ("--operator", operator),
                                          ("--force", force), ("--allow-rollback", allow_rollback)) if value]
        if given:
            _fail(f"{', '.join(given)}: not with --lab/--station, where the lab file gives the station's wiring, "
                  f"applet and key set")
        return _flash_station(image, lab, station, flavour, console)
    if allow_rollback:
        console.print("[bold red]WARNING: --allow-rollback: an older image may replace a newer one[/]")
    try:
        with device_station(device, profile, flavour="development") as station:
            keyset = _keyset(keys or station.profile.firmware_keys)  # checked before the device is touched
            try:
                sideload = image.is_dir() or image.suffix == ".app"
                bundle = flasher.check_bundle(image, keyset)[1] if sideload else None  # before the device is touched
                boots = flasher.boot_policy(station.profile.boots(flavour or station.flavour))
                firmware = None if sideload else flasher.load_firmware(image, keyset, boots)
                applet_bytes = (applet or emulated.APPLET).read_bytes()
            except OSError as e:
                _fail(f"{e.filename}: cannot read ({e.strerror})")
            if sideload:
                link = (lambda: open_client(station.debug, station.profile)) if station.debug else None
                if link is None:
                    _fail(f"{station.name}: no debug link to sideload over; pass --device")
                with link() as client:
                    app = flasher.sideload(client, image, keyset)
                console.print(printable(f"sideloaded {app.name} ({app.app_id}), {len(bundle)} files"), markup=False)
                return
            station = station.model_copy(update={"flavour": flavour or station.flavour})  # its bootloader's: the route
            port = samba or station.samba
            if not port and (rom := _rom(station)) is not None:  # KeyOS comes back on the ROM's port path
                port, station = rom.tty, station.model_copy(update={"debug": f"usb:{rom.port}", "usb_port": rom.port})
            if not port:
                _fail(f"{station.name}: no SAM-BA port; pass --samba PORT, or a --device that names the unit's USB "
                      f"port (usb:BUS-PORT, or a tty of the unit)")
            no_link = station.profile.link_missing(station.flavour)  # a production build without usb-debug
            link = (lambda: open_client(station.debug, station.profile, station=station)) \
                if station.debug and not no_link else None
            buttons = contextlib.nullcontext(_ask_operator(route(station))) if operator else \
                flasher_route(station, otherwise="or pass --operator to have a person take it there")
            with buttons as enter_samba, Progress("{task.description}", BarColumn(), DownloadColumn(),
                                                  TransferSpeedColumn(), console=console, transient=True) as bar:
                tasks: dict[str, int] = {}

                def progress(phase: str, done: int, total: int) -> None:
                    if phase not in tasks:
                        tasks[phase] = bar.add_task(phase, total=total)
                    bar.update(tasks[phase], completed=done)

                unit = flasher.Flasher(port, applet_bytes, keyset, link=link, progress=progress,
                                       enter_samba=enter_samba)
                result = unit.flash(firmware, force=force, allow_rollback=allow_rollback,
                                    booted=keyos_booted(station, unit.timeout) if link is None else None)
    except HilError as e:
        _fail(str(e))
    console.print(printable(f"{result.action} {image}: KeyOS {result.version} ({result.hash[:16]}…)"
                            + (f", {result.chunks_patched} chunk(s) rewritten after verify" if result.chunks_patched else "")),
                  markup=False)


def _flash_station(image: Path, lab: str | None, name: str | None, flavour: str | None, console) -> None:
    """`hil flash IMAGE --station NAME [--lab LAB]`: `hil.lab.station_flash`, with a progress bar."""
    from rich.progress import BarColumn, Progress

    from hil.lab.config import lab_from_option
    from hil.lab.station_flash import flash_station

    try:
        cfg = lab_from_option(lab)
        if name is None:
            _fail(f"--lab: which station? pass --station NAME (stations of {cfg.source}: "
                  f"{', '.join(cfg.stations) or 'none'})")
        if image.is_dir() or image.suffix == ".app":
            _fail(f"{image}: an app bundle is sideloaded over a debug link (--device), not flashed onto a station")
        with Progress("{task.description}", BarColumn(), console=console, transient=True) as bar:
            task = bar.add_task(f"flash {name}", total=1.0)
            flashed = flash_station(cfg, name, image, flavour, lambda frac: bar.update(task, completed=frac))
    except HilError as e:
        _fail(str(e))
    console.print(printable(f"{'flashed' if flashed else 'already on the build:'} station {name}: {image}"), markup=False,
                  soft_wrap=True)
