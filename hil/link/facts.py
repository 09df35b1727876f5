"""The device facts the harness takes on trust: every ``assumed:`` note in the device profiles, the
wire codec and the SAM-BA driver, so that a lab knows what to settle on a real unit (``hil profile facts``)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import typer

from hil.flash import samba
from hil.link import protocol
from hil.profile import PROFILES_DIR

_NOTE = re.compile(r"#\s*assumed:\s*(?P<why>.*)$")

app = typer.Typer(no_args_is_help=True, add_completion=False, help="Device profiles and the facts they rest on.")


@dataclass(frozen=True)
class Fact:
    source: Path
    line: int
    what: str  # the setting or code the note is on
    why: str


def assumed_facts(path: Path) -> list[Fact]:
    """The ``# assumed: why`` notes in one file, with the setting each is written on."""
    facts = []
    lines = path.read_text().splitlines()
    for number, line in enumerate(lines, 1):
        m = _NOTE.search(line)
        if m:
            below = (ln.strip() for ln in lines[number:] if ln.strip() and not ln.strip().startswith("#"))
            what = line[:m.start()].strip() or next(below, "(end of file)")  # a note on its own line: the code below
            facts.append(Fact(path, number, what, m["why"].strip()))
    return facts


def sources(profile: str | None = None) -> list[Path]:
    """The profile files (one, or all), the wire codec and the SAM-BA monitor's driver."""
    profiles = [PROFILES_DIR / f"{profile}.yaml"] if profile else sorted(PROFILES_DIR.glob("*.yaml"))
    return [*profiles, Path(protocol.__file__), Path(samba.__file__)]


@app.command("facts")
def facts(profile: str = typer.Argument(None, help="one profile (default: all)")) -> None:
    """List the device facts marked ``assumed:`` (not yet backed by KeyOS source)."""
    for path in sources(profile):
        if not path.is_file():
            typer.echo(f"error: no device profile {profile!r} in {PROFILES_DIR}", err=True)
            raise typer.Exit(2)
        for fact in assumed_facts(path):
            typer.echo(f"{path.name}:{fact.line}: {fact.what}  assumed: {fact.why}")
