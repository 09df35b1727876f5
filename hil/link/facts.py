"""The device facts the harness takes on trust: every ``assumed:`` note in the device profiles, the
wire codec, the SAM-BA driver and the rest of the harness and its suites, so that a lab knows what to settle on
a real unit (``hil profile facts``)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import typer

from hil.flash import samba
from hil.link import protocol
from hil.profile import PROFILES_DIR

ROOT = PROFILES_DIR.parent
_NOTE = re.compile(r"\bassumed:\s*(?P<why>.*)$")
_SCOPE = re.compile(r"^\s*(?:async\s+)?(?:def|class)\s+(\w+)")
_HARNESS = ("hil", "suites")  # besides the profiles, the codec and the driver; the emulator's own model is not a fact
_NOT_FACTS = ("hil/emulator/", "hil/link/facts.py")  # the harness relies on (nor this tool's own text)

app = typer.Typer(no_args_is_help=True, add_completion=False, help="Device profiles and the facts they rest on.")


@dataclass(frozen=True)
class Fact:
    source: Path
    line: int
    what: str  # the setting or code the note is on
    why: str


def assumed_facts(path: Path) -> list[Fact]:
    """The ``assumed: why`` notes in one file, with what each is written on: a comment's setting or the code
    below it; in a docstring, the function or class it documents (the module, at the top)."""
    facts = []
    lines = path.read_text().splitlines()
    for number, line in enumerate(lines, 1):
        m = _NOTE.search(line)
        if not m:
            continue
        comment = line.find("#", 0, m.start())
        if comment >= 0:
            below = (ln.strip() for ln in lines[number:] if ln.strip() and not ln.strip().startswith("#"))
            what = line[:comment].strip() or next(below, "(end of file)")  # a note on its own line: the code below
        else:
            scopes = (s[1] for ln in reversed(lines[:number]) if (s := _SCOPE.match(ln)))
            what = next(scopes, path.stem)
        facts.append(Fact(path, number, what, " ".join([m["why"].strip(), *_rest(lines[number:], comment >= 0)])))
    return facts


def _rest(after: list[str], comment: bool) -> list[str]:
    """The lines a note runs on over: a comment's comment lines, a docstring's lines to its end or a blank."""
    rest = []
    for line in after:
        text = line.strip()
        if not text or _NOTE.search(text) or comment != text.startswith("#"):
            break
        rest.append(text.lstrip("#").strip() if comment else text.split('"""')[0].strip())
        if '"""' in text:
            break
    return [r for r in rest if r]


def sources(profile: str | None = None) -> list[Path]:
    """The profile files (one, or all), the wire codec, the SAM-BA monitor's driver, then every other module of
    the harness and its suites with a note."""
    profiles = [PROFILES_DIR / f"{profile}.yaml"] if profile else sorted(PROFILES_DIR.glob("*.yaml"))
    first = [*profiles, Path(protocol.__file__).resolve(), Path(samba.__file__).resolve()]
    rest = sorted(path for top in _HARNESS for path in (ROOT / top).rglob("*.py")
                  if path not in first and not str(path.relative_to(ROOT)).startswith(_NOT_FACTS)
                  and "assumed:" in path.read_text())
    return [*first, *rest]


@app.command("facts")
def facts(profile: str = typer.Argument(None, help="one profile (default: all)")) -> None:
    """List the device facts marked ``assumed:`` (not yet backed by KeyOS source)."""
    for path in sources(profile):
        if not path.is_file():
            typer.echo(f"error: no device profile {profile!r} in {PROFILES_DIR}", err=True)
            raise typer.Exit(2)
        for fact in assumed_facts(path):
            typer.echo(f"{_shown(path)}:{fact.line}: {fact.what}  assumed: {fact.why}")


def _shown(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)
