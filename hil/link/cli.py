"""`hil device`: drive one Prime by hand over its usb-debug link (screenshots, taps, apps, logs)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import typer

from hil.errors import HilError
from hil.provisioning import TEST_PIN
from hil.terminal import printable

app = typer.Typer(no_args_is_help=True, add_completion=False, help=__doc__)

DEVICE = typer.Option(..., "--device", envvar="HIL_DEVICE",
                      help="emulator | tcp:HOST:PORT | usb:SERIAL | usb:BUS-PORT | /dev/ttyACMn (env HIL_DEVICE)")
PROFILE = typer.Option(None, "--profile", help="device profile (default: prime-rev-b; the emulator's own)")
TIMEOUT = typer.Option(5.0, "--timeout", help="seconds to wait for each answer")
BOOT_TIMEOUT = 60.0  # seconds an emulator started here may take to boot


@contextmanager
def connected(device: str, profile: str | None, timeout: float, station_too: bool = False) -> Iterator:
    """The open client (and its station); any harness error becomes one line on stderr, exit status 1.
    An emulator started here is answered for only once it has booted (not its splash, not "booting")."""
    from hil.lab.station import device_station
    from hil.link.resolve import open_client
    from hil.link.state import wait_ready

    try:
        with device_station(device, profile) as station, \
                open_client(station.debug, station.profile, timeout, station) as prime:
            if device == "emulator":  # powered on just now, by us
                wait_ready(prime, BOOT_TIMEOUT)
            yield (prime, station) if station_too else prime
    except HilError as e:
        typer.echo(printable(f"hil device: {e}"), err=True)
        raise typer.Exit(1) from None


@app.command()
def info(device: str = DEVICE, profile: str = PROFILE, timeout: float = TIMEOUT) -> None:
    """Version, build flavour, lock state, Developer Mode, clock and publishers of the device."""
    from hil.link.state import detect_flavour, is_locked

    with connected(device, profile, timeout, station_too=True) as (prime, station):
        locked = is_locked(prime)
        rows = {
            "device": prime.device,
            "version": printable(prime.version()),
            "flavour": detect_flavour(prime, station.profile),
            "locked": "booting" if locked is None else str(locked).lower(),
            "developer mode": str(prime.developer_mode()).lower(),
            "system time": str(prime.system_time()),
            "publishers": "{} usable of {} installed".format(*prime.publisher_count()),
        }
    for key, value in rows.items():
        typer.echo(f"{key + ':':16}{value}")


@app.command()
def screenshot(output: Path = typer.Option(..., "-o", "--output", help="PNG file to write"),
               device: str = DEVICE, profile: str = PROFILE, timeout: float = TIMEOUT) -> None:
    """Save the display (480x800) as a PNG."""
    with connected(device, profile, timeout) as prime:
        image = prime.screenshot()
    image.save(output, format="PNG")
    typer.echo(f"{output}: {image.width}x{image.height}")


@app.command()
def unlock(pin: str = typer.Option(TEST_PIN, "--pin", help="the PIN the unit was provisioned with"),
           device: str = DEVICE, profile: str = PROFILE, timeout: float = TIMEOUT) -> None:
    """Unlock a locked Prime: type PIN on its lock screen through the debug link (one attempt of its 10),
    on the keys where the screenshot shows them.

    Only builds that take debug-link input while locked (development; the profile says which) can be
    unlocked so; a locked production build refuses it (KeyOS dispatch.rs) and is unlocked on the glass."""
    from hil.lab.pin_guard import PinGuard, unlock_over_link
    from hil.link.state import bring_home, detect_flavour, is_locked, takes_input_while_locked

    with connected(device, profile, timeout, station_too=True) as (prime, station):
        if is_locked(prime) is False:
            typer.echo(f"{prime.device}: already unlocked")
            return
        flavour = detect_flavour(prime, station.profile)
        if not takes_input_while_locked(station.profile, flavour):
            typer.echo(f"hil device: {prime.device} runs a {flavour} build, which refuses debug-link input while "
                       "locked; type the PIN on its screen (a lab station: its stylus robot, `hil touch`)", err=True)
            raise typer.Exit(1)
        bring_home(prime, station.profile, flavour, lambda _: unlock_over_link(prime, pin, PinGuard(station.name)))
    typer.echo(f"{prime.device}: unlocked")


@app.command()
def tap(x: int, y: int, device: str = DEVICE, profile: str = PROFILE, timeout: float = TIMEOUT) -> None:
    """Tap the display at X Y (y 850-971 is the virtual home button below the panel)."""
    with connected(device, profile, timeout) as prime:
        prime.tap(x, y)


@app.command("type")
def type_text(text: str, device: str = DEVICE, profile: str = PROFILE, timeout: float = TIMEOUT) -> None:
    """Type TEXT, one key press per character."""
    with connected(device, profile, timeout) as prime:
        prime.type_text(text)


@app.command()
def power(long: bool = typer.Option(False, "--long", help="hold 3 s (control center) instead of 200 ms (lock)"),
          device: str = DEVICE, profile: str = PROFILE, timeout: float = TIMEOUT) -> None:
    """Press the power button."""
    with connected(device, profile, timeout) as prime:
        prime.press_power(long=long)


@app.command()
def launch(app_id: str = typer.Argument(..., help="16-byte app id as 0x + 32 hex digits"),
           device: str = DEVICE, profile: str = PROFILE, timeout: float = TIMEOUT) -> None:
    """Launch an app; exit status 1 unless it launched or was already running."""
    from hil.link.protocol import LaunchStatus, ProtocolError

    with connected(device, profile, timeout) as prime:
        try:
            result = prime.launch_app(app_id)
        except ProtocolError as e:
            raise typer.BadParameter(str(e), param_hint="APP_ID") from None
    typer.echo(f"{result.status.name} pid={result.pid}")
    if result.status not in (LaunchStatus.LAUNCHED, LaunchStatus.ALREADY_RUNNING):
        raise typer.Exit(1)


@app.command()
def ps(device: str = DEVICE, profile: str = PROFILE, timeout: float = TIMEOUT) -> None:
    """The kernel's process list."""
    with connected(device, profile, timeout) as prime:
        typer.echo(printable(prime.process_list()).rstrip("\n"))


@app.command()
def logs(device: str = DEVICE, profile: str = PROFILE, timeout: float = TIMEOUT) -> None:
    """Follow the device's log until Ctrl-C (the last 16 KiB first)."""
    with connected(device, profile, timeout) as prime:
        try:
            while True:
                for record in prime.logs(timeout=1.0):
                    typer.echo(printable(record))
                sys.stdout.flush()
        except KeyboardInterrupt:
            pass
