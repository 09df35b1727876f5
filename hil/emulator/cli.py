"""`hil emulator`: run emulated Primes from a shell (prints one JSON endpoint line per device)."""

from __future__ import annotations

import typer

from hil.emulator.build import DEFAULT_FLAVOUR, FLAVOURS
from hil.provisioning import TEST_PIN

app = typer.Typer(no_args_is_help=True, add_completion=False, help=__doc__)


def start(count: int = typer.Option(1, min=1, max=64, help="devices to run"),
          seed: int = typer.Option(0, help="same seed, same serials and security words"),
          flavour: str = typer.Option(DEFAULT_FLAVOUR, help=" or ".join(FLAVOURS)),
          version: str = typer.Option("1.0.0", help="KeyOS version the build reports"),
          pin: str = typer.Option(TEST_PIN, help="the PIN set on every device (6+ digits)"),
          defect: list[str] = typer.Option([], help="a seeded defect the build carries (repeatable; see "
                                                    "hil/emulator/defects.py)"),
          apps: str = typer.Option(None, help="install the built-in apps of a release: a directory of "
                                              "<app>/manifest.json")) -> None:
    """Run COUNT emulated Primes until SIGINT/SIGTERM."""
    from hil.emulator.build import BuildError
    from hil.emulator.defects import Defects, UnknownDefect
    from hil.emulator.launcher import run
    from hil.flash.manifest import ManifestError, load_dir
    from hil.emulator.secure_element import SecureElement

    if not SecureElement.valid_pin(pin):
        raise typer.BadParameter("the PIN must be at least 6 digits", param_hint="--pin")
    try:
        Defects.of(defect)
    except UnknownDefect as e:
        raise typer.BadParameter(str(e), param_hint="--defect") from None
    if apps is not None:
        try:
            load_dir(apps)
        except ManifestError as e:  # one line: the usage box would bury the file name and the fix
            typer.echo(f"hil emulator start: --apps: {e}", err=True)
            raise typer.Exit(2) from None
    try:
        run(count=count, seed=seed, flavour=flavour, version=version, pin=pin, defects=tuple(defect), apps=apps)
    except BuildError as e:
        raise typer.BadParameter(str(e)) from None


app.command("start")(start)
