"""`hil lab sync|exporter-config|status|reap|quarantine|readmit`: the lab's labgrid places as code."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Optional

import typer

from hil.errors import HilError

lab_app = typer.Typer(no_args_is_help=True, add_completion=False,
                      help="A lab across bench hosts on labgrid: places, exporter configs, stale leases.")

LabOpt = Annotated[Optional[str], typer.Option("--lab", help="lab file (default: lab_config.yaml of the repo)")]
CoordOpt = Annotated[Optional[str], typer.Option("--coordinator", help="labgrid://HOST:PORT (default: the lab file's)")]


def _fail(e: HilError) -> typer.Exit:
    typer.echo(f"lab: {e}", err=True)
    return typer.Exit(2)


def _coordinator(lab: str | None, coordinator: str | None):
    from hil.lab.config import load_lab
    from hil.lab.labgrid import Coordinator, LabUrl

    url = coordinator
    if url is None:
        url = load_lab(lab).coordinator
        if url is None:
            raise HilError("the lab file has no `coordinator`; pass --coordinator labgrid://HOST:PORT")
    return Coordinator(LabUrl.parse(url).address)


@contextmanager
def _connected(lab: str | None, coordinator: str | None) -> Iterator:
    """The coordinator for one command, closed when it is done; a HilError ends the command (exit 2)."""
    try:
        coord = _coordinator(lab, coordinator)
        try:
            yield coord
        finally:
            coord.close()
    except HilError as e:
        raise _fail(e) from None


@lab_app.command()
def sync(lab: LabOpt = None, coordinator: CoordOpt = None) -> None:
    """Create or update a labgrid place per station (match `<bench>/<station>/*`, tags, health=ok)."""
    from hil.lab import places
    from hil.lab.config import load_lab

    with _connected(lab, coordinator) as coord:
        changes = places.sync(load_lab(lab), coord)
    for line in changes or ["places already match the lab file"]:
        typer.echo(line)


@lab_app.command("exporter-config")
def exporter_config(bench: str, lab: LabOpt = None) -> None:
    """Print BENCH's labgrid exporter YAML (run `labgrid-exporter` on the bench with it)."""
    from hil.lab import exporter
    from hil.lab.config import load_lab

    try:
        typer.echo(exporter.exporter_config(load_lab(lab), bench), nl=False)
    except HilError as e:
        raise _fail(e) from None


@lab_app.command()
def status(lab: LabOpt = None, coordinator: CoordOpt = None) -> None:
    """Every place: bench, tags, who holds it, quarantine comment."""
    from rich.console import Console
    from rich.table import Table

    with _connected(lab, coordinator) as coord:
        coord.refresh()
        table = Table(title=f"labgrid {coord.address}")
        for col in ("place", "bench", "tags", "acquired by", "comment"):
            table.add_column(col)
        for name, p in sorted(coord.places.items()):
            tags = " ".join(f"{k}={v}" for k, v in sorted(p.tags.items()) if k != "bench")
            table.add_row(name, p.tags.get("bench", "?"), tags, p.acquired or "-", p.comment)
    Console().print(table)


@lab_app.command()
def reap(lab: LabOpt = None, coordinator: CoordOpt = None) -> None:
    """Release places and cancel reservations left by crashed runs of this host (holder process gone)."""
    from hil.lab import places

    with _connected(lab, coordinator) as coord:
        done = places.reap(coord)
    for line in done or ["nothing to reap"]:
        typer.echo(line)


@lab_app.command("quarantine")
def quarantine_cmd(place: str, reason: Annotated[str, typer.Option("--reason", help="why (the place's comment)")],
                   lab: LabOpt = None, coordinator: CoordOpt = None) -> None:
    """Take a place out of service: removes health=ok, sets the reason as its comment."""
    from hil.lab import places

    with _connected(lab, coordinator) as coord:
        places.quarantine(coord, place, reason)
    typer.echo(f"{place}: quarantined ({reason})")


@lab_app.command()
def readmit(place: str, lab: LabOpt = None, coordinator: CoordOpt = None) -> None:
    """Put a quarantined place back into service (health=ok, comment cleared)."""
    from hil.lab import places

    with _connected(lab, coordinator) as coord:
        was = places.readmit(coord, place)
    typer.echo(f"{place}: readmitted" + (f" (was: {was})" if was else ""))
