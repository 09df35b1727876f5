"""One station of the lab flashed as the nightly flashes its stations (`hil flash --lab LAB --station NAME`): the
nightly's flasher (`hil.lab.nightly.samba_flasher`: the lab's applet and key set, the image checked before the unit
is touched, the station's SAM-BA port and its route there by relay, CD relay or robot, then GET_VERSION), under
the station's lease: the lab's file lock, or, on a ``labgrid://`` lab, its place's lease (`leased_place`)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path

from hil.errors import ConfigError
from hil.lab.config import LabConfig
from hil.lab.lease import FileLeases, Holder
from hil.lab.nightly import samba_flasher
from hil.lab.station import Station, bring_up

WORKER = "hil flash"


def flash_station(lab: LabConfig, name: str, build: Path, flavour: str | None,
                  progress: Callable[[float], None]) -> bool:
    """Flash ``build`` onto station ``name``; False when it already runs it. ``flavour`` is the bootloader's, whose
    trust policy the image must meet and whose route into SAM-BA the jig takes (None: the station's declared one).
    An unknown station is a one-line `ConfigError`."""
    if not lab.coordinator and name not in lab.stations:
        raise ConfigError(f"no station {name!r} in {lab.source}; stations: {', '.join(lab.stations) or 'none'}")
    own = {name: lab.stations[name]} if name in lab.stations else {}  # its trust policy, not the whole lab's
    with _leased(lab, name) as station:
        flavour = flavour or station.flavour
        flash = samba_flasher(lab.model_copy(update={"stations": own}), build, flavour)  # checks the image first
        return flash(station.model_copy(update={"flavour": flavour}), progress)


@contextlib.contextmanager
def _leased(lab: LabConfig, name: str) -> Iterator[Station]:
    if lab.coordinator:
        from hil.lab.place_flash import leased_place

        with leased_place(lab, name, "flash") as station:
            yield station
        return
    lease = FileLeases(lab.state_dir).acquire(name, Holder.me(WORKER, "flash"))  # held by another: says by whom
    try:
        with bring_up(lab, name) as station:
            yield station
    finally:
        lease.release()
