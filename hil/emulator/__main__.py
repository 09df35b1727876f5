"""`python -m hil.emulator --count N --seed S ...`: what EmulatorProcess runs."""

import typer

from hil.emulator.cli import start

typer.run(start)
