"""The nightly's flashing step on a labgrid lab: each place leased under its own token, all flashed at once,
tagged with the build (what the suites' workers reserve by), or quarantined with the reason.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlencode

from hil.errors import ConfigError, HilError
from hil.lab.config import LabConfig
from hil.lab.exporter import station_from_place
from hil.lab.labgrid import FLASHED, HEALTH, SCHEME, Coordinator, LabUrl
from hil.lab.nightly import measure
from hil.lab.places import PlaceLease, identity, quarantine, station_tag
from hil.lab.station import Station
from hil.link.bridge import lease_token


def _lab_places(lab: LabConfig, coord: Coordinator) -> list[str]:
    """The nightly's places: the lab file's bench stations, or, when it has none, every place matching the
    coordinator URL's tags (but `flavour` and `build`, which the nightly's flash sets)."""
    wanted = {k: v for k, v in LabUrl.parse(lab.coordinator).tags.items() if k not in (HEALTH, *FLASHED)}
    return [n for n, st in lab.stations.items() if st.bench is not None] or \
        sorted(n for n, p in coord.places.items() if wanted.items() <= p.tags.items())


@contextlib.contextmanager
def _nightly_session(lab: LabConfig, worker: str = "nightly"):
    """The nightly's one coordinator session, as labgrid user `hil-<worker>-<pid>` (so `reap` knows it)."""
    assert lab.coordinator is not None
    saved = os.environ.get("LG_USERNAME")
    os.environ["LG_USERNAME"] = identity(worker)
    coord = Coordinator(LabUrl.parse(lab.coordinator).address)
    try:
        coord.refresh()
        yield coord
    finally:
        coord.close()
        if saved is None:
            os.environ.pop("LG_USERNAME", None)
        else:
            os.environ["LG_USERNAME"] = saved


def flash_places(lab: LabConfig, flasher, run, progress, flavour: str, build: str) -> dict[str, Station]:
    """The nightly's flashing step on labgrid. Each place (`_lab_places`) is leased (reserved by its
    `station` tag) and its station built, one after the other, in this process's one coordinator session;
    then all are flashed at once, as the file-lock nightly does, each thread presenting its own place's
    lease token to the bridges (`hil.link.bridge.lease_token`); the flasher never calls the coordinator. A place
    flashed is tagged with the build's `flavour` and `build` (the tag the suites' workers reserve by, see
    `run_url`); a place out of service is left out; one that cannot be leased or flashed loses its `build`
    tag and is quarantined with the reason. `run.meta` records both. Returns the usable stations."""
    with _nightly_session(lab) as coord:
        leases: dict[str, tuple[PlaceLease, Station]] = {}
        failed: dict[str, str] = {}
        outcome: dict[str, str | None] = {}
        try:
            for name in _lab_places(lab, coord):
                place = coord.places.get(name)
                if place is None or place.tags.get(HEALTH) != "ok":
                    why = "no labgrid place; run `hil lab sync`" if place is None else f"in quarantine: {place.comment}"
                    run.meta["broken_stations"][name] = why
                    continue
                try:
                    leases[name] = _lease(coord, name)
                except (HilError, OSError) as e:
                    failed[name] = f"leasing failed on bench {place.tags.get('bench', '?')}: {e}"

            def one(name: str) -> str | None:
                lease, station = leases[name]
                try:
                    with lease_token(lease.token):
                        flashed = flasher(station, lambda frac: progress(name, frac))
                        run.meta.setdefault("flashed", {})[name] = "flashed" if flashed else "already on the build"
                        why = measure(station, run.meta["firmware"].get("version"))  # what the unit booted
                except (HilError, OSError) as e:
                    return f"flashing failed on bench {lease.bench}: {e}"
                if why:
                    return why
                progress(name, 1.0)
                return None

            with ThreadPoolExecutor(max_workers=max(1, len(leases))) as pool:
                outcome = dict(zip(leases, pool.map(one, leases)))
        finally:
            for lease, _station in leases.values():
                lease.release()
        failed.update({n: why for n, why in outcome.items() if why is not None})
        for name, why in failed.items():
            with contextlib.suppress(HilError):
                coord.call("SetPlaceTags", f"place {name}: no build", placename=name, tags={"build": ""})
                quarantine(coord, name, why)
            run.meta["broken_stations"][name] = why
        done = {n: leases[n][1].model_copy(update={"flavour": flavour}) for n in leases if outcome[n] is None}
        for name in done:
            coord.call("SetPlaceTags", f"place {name}: flashed", placename=name,
                       tags={"flavour": flavour, "build": build})
        return done


def _lease(coord: Coordinator, name: str) -> tuple[PlaceLease, Station]:
    """The place of station ``name`` leased (reserved by its `station` tag, in service) and its station built."""
    lease = PlaceLease(coord, {"station": station_tag(name), HEALTH: "ok"}, 60)
    try:
        return lease, station_from_place(coord, name, lease.token)
    except BaseException:
        lease.release()
        raise


@contextlib.contextmanager
def leased_place(lab: LabConfig, name: str, worker: str) -> Iterator[Station]:
    """One place of a labgrid lab leased as the nightly leases its places, as labgrid user `hil-<worker>-<pid>`,
    its lease token presented to the bridges, for as long as the block runs. A place the coordinator does not
    have, or has out of service, is a one-line `ConfigError`."""
    with _nightly_session(lab, worker) as coord:
        place = coord.places.get(name)
        if place is None:
            raise ConfigError(f"no labgrid place {name!r} on {lab.coordinator}; places: "
                              f"{', '.join(sorted(coord.places)) or 'none'} (`hil lab sync` makes them)")
        if place.tags.get(HEALTH) != "ok":
            raise ConfigError(f"labgrid place {name} is in quarantine: {place.comment}; `hil farm readmit {name} "
                              f"--lab {lab.coordinator}` once the unit is fixed")
        lease, station = _lease(coord, name)
        try:
            with lease_token(lease.token):
                yield station
        finally:
            lease.release()


def build_tag(firmware_hash: str) -> str:
    """The `build` tag of the places a nightly flashed with the build of this hash."""
    return firmware_hash[:16].lower()


def run_url(url: str, flavour: str, build: str) -> str:
    """The labgrid URL the nightly's workers lease by: the lab's, held to the places flashed with the build."""
    lab = LabUrl.parse(url)
    tags = {k: v for k, v in lab.tags.items() if k != HEALTH} | {"flavour": flavour, "build": build}
    return f"{SCHEME}{lab.address}?{urlencode(tags)}"


def quarantined_places(lab: LabConfig) -> dict[str, str]:
    """The nightly's places now out of service, with their comment (the reason): after the suites this adds
    the places workers quarantined during the run to the summary's broken stations."""
    with _nightly_session(lab) as coord:
        return {n: coord.places[n].comment for n in _lab_places(lab, coord)
                if n in coord.places and coord.places[n].tags.get(HEALTH) != "ok"}
