"""The `hil` command. Each area registers one sub-command group; heavy imports stay inside commands."""

import typer

from hil.emulator.cli import app as emulator_app
from hil.lab.cli import app as farm_app
from hil.lab.cli import nightly, station_app
from hil.lab.lab_cli import lab_app
from hil.lab.bridge import bridge
from hil.flash.cli import firmware_app, flash
from hil.link.cli import app as device_app
from hil.link.facts import app as profile_app
from hil.report.cli import report_app, signoff_app
from hil.stimuli.cli import nfc_app, qr_app, touch_app
from hil.vision.cli import app as vision_app

app = typer.Typer(no_args_is_help=True, add_completion=False,
                  help="prime-hil: drive Passport Primes (real or emulated), flash them, run the lab's suites "
                       "and its nightly, and sign off releases.")
app.add_typer(device_app, name="device")
app.add_typer(emulator_app, name="emulator")
app.add_typer(firmware_app, name="firmware")
app.command("flash")(flash)
app.add_typer(vision_app, name="vision")
app.add_typer(qr_app, name="qr")
app.add_typer(nfc_app, name="nfc")
app.add_typer(touch_app, name="touch")
app.add_typer(farm_app, name="farm")
app.add_typer(station_app, name="station")
app.command("nightly")(nightly)
app.add_typer(lab_app, name="lab")
app.command("bridge")(bridge)
app.add_typer(signoff_app, name="signoff")
app.add_typer(report_app, name="report")
app.add_typer(profile_app, name="profile")
