"""labgrid places as code: one place per station, tagged with what it offers and `health=ok` while in service
(`hil lab sync`, quarantine, readmit); a worker's lease on one (`PlaceLease`: reserved by tags, acquired), the
reaper of crashed holders, and the farm's lease backend on labgrid (`PlaceLeases`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import socket
import time
from collections.abc import Iterator

from hil.errors import ConfigError, HilError
from hil.lab.config import LabConfig
from hil.lab.exporter import station_from_place
from hil.lab.health import Health
from hil.lab.labgrid import (FLASHED, HEALTH, PIN, QUARANTINED, Coordinator, CoordinatorUnavailable, LabgridError,
                             LabUrl, PlaceLost, show_tags, tag_ok)
from hil.lab.lease import NoStationFree
from hil.lab.station import Station

log = logging.getLogger("hil.lab")


def bench_of(lab: LabConfig, name: str) -> str:
    st = lab.stations[name]
    if st.bench is None:
        raise ConfigError(f"{lab.source}: station {name} has no `bench`; a labgrid lab places every station "
                          "on a bench host")
    if st.bench not in lab.benches:
        raise ConfigError(f"{lab.source}: station {name}: bench {st.bench!r} is not under `benches` "
                          f"(known: {', '.join(lab.benches) or 'none'})")
    return st.bench


def place_tags(lab: LabConfig, name: str) -> dict[str, str]:
    """What workers reserve by. `key=value` entries of the station's `tags` come first; the rest is
    derived from the station so that the file cannot contradict itself."""
    st = lab.stations[name]
    tags = dict(t.split("=", 1) for t in st.tags if "=" in t)
    tags.setdefault("board", "prime")
    flavour = st.emulated.flavour if st.emulated else tags.get("flavour")
    if flavour:
        tags["flavour"] = flavour
    tags["nfc"] = "yes" if st.nfc else "no"
    tags["bench"] = bench_of(lab, name)
    tags["station"] = station_tag(name)  # so one place can be reserved by name (the nightly flashes each)
    bad = [f"{k}={v}" for k, v in tags.items() if not tag_ok(k, v)]
    if bad:
        raise ConfigError(f"{lab.source}: station {name}: tags {', '.join(bad)} must be lowercase letters, digits "
                          "or '_' (labgrid compares them as written)")
    return tags


def station_tag(name: str) -> str:
    """A station name as a tag value (lowercase letters, digits, '_')."""
    return re.sub(r"[^a-z0-9_]", "_", name.lower())


def sync(lab: LabConfig, coord: Coordinator) -> list[str]:
    """Create or update one place per station on a bench: its match and tags. A quarantined place keeps its
    quarantine (no `health=ok` back) and a blocked PIN its `pin` tag; only `readmit` restores them. The
    `flavour` and `build` a flash set (`flash_places`) stay: they say what the unit runs, which the lab file
    cannot know. Returns what changed, one line each."""
    done = []
    names = [n for n, st in lab.stations.items() if st.bench is not None]
    if not names:
        raise ConfigError(f"{lab.source}: no station has a `bench`; nothing to place on labgrid")
    coord.refresh()
    for name in names:
        tags = place_tags(lab, name)
        pattern = f"{tags['bench']}/{name}/*"
        place = coord.places.get(name)
        if place is None:
            coord.call("AddPlace", f"create place {name}", name=name)
            done.append(f"{name}: created")
            place = coord.places[name]
        if not place.hasmatch(pattern.split("/")):
            for m in list(place.matches):
                coord.call("DeletePlaceMatch", f"place {name}: drop match {m}", placename=name,
                           pattern=f"{m.exporter}/{m.group}/{m.cls}" + (f"/{m.name}" if m.name else ""))
            coord.call("AddPlaceMatch", f"place {name}: match {pattern}", placename=name, pattern=pattern)
            done.append(f"{name}: match {pattern}")
        quarantined = place.comment.startswith(QUARANTINED)
        kept = {k: place.tags[k] for k in (*FLASHED, PIN) if place.tags.get(k)}  # what the unit runs, its PIN state
        want = {**tags, **kept, **({} if quarantined else {HEALTH: "ok"})}
        stale = {k: "" for k in place.tags if k not in want and k != HEALTH}
        if {k: v for k, v in place.tags.items() if k != HEALTH or not quarantined} != want or stale:
            coord.call("SetPlaceTags", f"place {name}: set tags", placename=name, tags={**stale, **want})
            done.append(f"{name}: tags {show_tags(want)}" + (" (quarantined: kept out of service)" if quarantined else ""))
    return done


def quarantine(coord: Coordinator, place: str, reason: str) -> None:
    coord.refresh()
    if place not in coord.places:
        raise ConfigError(f"no place {place!r} on labgrid coordinator {coord.address}")
    coord.call("SetPlaceTags", f"place {place}: quarantine", placename=place, tags={HEALTH: ""})
    coord.call("SetPlaceComment", f"place {place}: comment", placename=place,
               comment=f"{QUARANTINED}{reason} ({time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())})")


def readmit(coord: Coordinator, place: str) -> str:
    """Put the place back into service, its PIN entry unblocked (the operator checked the unit's PIN);
    returns the comment it had."""
    coord.refresh()
    if place not in coord.places:
        raise ConfigError(f"no place {place!r} on labgrid coordinator {coord.address}")
    was = coord.places[place].comment
    coord.call("SetPlaceComment", f"place {place}: comment", placename=place, comment="")
    coord.call("SetPlaceTags", f"place {place}: readmit", placename=place, tags={HEALTH: "ok", PIN: ""})
    return was


def free_places(coord: Coordinator, tags: dict[str, str]) -> list[str]:
    coord.refresh()
    return sorted(n for n, p in coord.places.items()
                  if not p.acquired and not p.reservation and tags.items() <= p.tags.items())


def auto_workers(url: str) -> int:
    """`-n auto`: one worker per free place matching the URL's tags (at least one, which then waits)."""
    lab = LabUrl.parse(url)
    coord = Coordinator(lab.address)
    try:
        return max(1, len(free_places(coord, lab.tags)))
    finally:
        coord.close()


def identity(worker: str) -> str:
    """A worker's labgrid user: `hil-<worker>-<pid>`, so the reaper can tell a crashed holder."""
    return f"hil-{worker}-{os.getpid()}"


class PlaceLease:
    """One place reserved by tags and acquired by this process; `release` cancels both. A place in
    `exclude` (one just lost) is passed over: its reservation is kept while another one is made, so
    the coordinator allocates a different place, and cancelled after."""

    def __init__(self, coord: Coordinator, tags: dict[str, str], timeout: float, exclude: frozenset[str] = frozenset(),
                 poll: float = 0.2) -> None:
        self.coord = coord
        deadline = time.monotonic() + timeout
        self.token: str | None = None
        self.place: str | None = None
        passed_over: list[str] = []
        try:
            self.token = coord.reserve(tags)
            while True:
                res = coord.poll(self.token)
                if res.state.name == "allocated" and res.allocations["main"][0] in exclude:
                    passed_over.append(self.token)
                    self.token = coord.reserve(tags)
                    continue
                if res.state.name == "allocated":
                    self.place = res.allocations["main"][0]
                    break
                if res.state.name != "waiting":
                    raise NoStationFree(f"reservation {self.token} for {show_tags(tags)} is {res.state.name}")
                if time.monotonic() > deadline:
                    other = f" other than {', '.join(sorted(exclude))}" if exclude else ""
                    raise NoStationFree(f"no place{other} with tags {show_tags(tags)} free within {timeout:g} s on labgrid "
                                        f"coordinator {coord.address} (see `labgrid-client who`, `hil lab status`)")
                time.sleep(poll)
            coord.call("AcquirePlace", f"acquire place {self.place}", placename=self.place)
        except BaseException:
            self.release()
            raise
        finally:
            for token in passed_over:
                with contextlib.suppress(HilError):
                    coord.call("CancelReservation", "cancel reservation", token=token)
        self.bench = coord.places[self.place].tags.get("bench", "?")

    @property
    def station(self) -> str | None:
        """The place's name, which is its station's."""
        return self.place

    def check(self) -> None:
        """Raise `PlaceLost` unless the place is still ours and every resource is there."""
        where = f"bench {self.bench}, place {self.place}"
        try:
            self.coord.refresh()
        except CoordinatorUnavailable as e:
            raise PlaceLost(f"{where}: {e}") from None
        place = self.coord.places.get(self.place)
        if place is None or place.acquired != self.coord.me:
            by = place.acquired if place is not None and place.acquired else "nobody"
            raise PlaceLost(f"{where}: taken away from {self.coord.me} (now acquired by {by})")
        for exporter, group, _cls, name in place.acquired_resources:
            entry = self.coord.resources.get(exporter, {}).get(group, {}).get(name)
            if entry is None or not entry.data.get("avail"):
                state = "unavailable" if entry is not None and entry.data else "orphaned: its exporter is gone"
                raise PlaceLost(f"{where}: resource {group}/{name} is {state} (is labgrid-exporter on bench "
                                f"{exporter} running?)")

    def release(self) -> None:
        """Release and cancel. A failure is logged, not raised (the place may be kicked, the coordinator
        restarted): a place left held is freed when its holder's process is reaped (`reap`)."""
        if self.place is not None:
            try:
                self.coord.call("ReleasePlace", "release", placename=self.place)
            except HilError as e:
                log.warning("place %s left held by %s: %s; `labgrid-client -p %s release` frees it now",
                            self.place, self.coord.me, e, self.place)
        if self.token is not None:
            with contextlib.suppress(HilError):
                self.coord.call("CancelReservation", "cancel reservation", token=self.token)
        self.place = self.token = None


def reap(coord: Coordinator) -> list[str]:
    """Release places and cancel reservations held by `hil-*` workers of this host whose process is gone."""
    coord.refresh()
    me = socket.gethostname() if "LG_HOSTNAME" not in os.environ else os.environ["LG_HOSTNAME"]

    def dead(holder: str) -> bool:
        host, _, user = holder.partition("/")
        pid = user.rsplit("-", 1)[-1]
        if host != me or not user.startswith("hil-") or not pid.isdigit():
            return False
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False
        return False

    done = []
    for name, place in sorted(coord.places.items()):
        if place.acquired and dead(place.acquired):
            coord.call("ReleasePlace", f"release {name}", placename=name, fromuser=place.acquired)
            done.append(f"{name}: released (held by {place.acquired}, whose process is gone)")
    for res in coord.reservations():
        if dead(f"{res.owner}"):
            try:
                coord.call("CancelReservation", f"cancel {res.token}", token=res.token)
            except LabgridError:
                continue
            done.append(f"reservation {res.token}: cancelled (owner {res.owner} is gone)")
    return done


class PlaceLeases:
    """`hil.lab.farm.Leases` on labgrid: this worker's places, reserved by the URL's tags, quarantined by
    their `health` tag; the station is the place's resources (its bench's bridges)."""

    may_return = False  # a lost place was taken by someone, a faulty one is suspect: never the same one again

    def __init__(self, url: str, worker: str) -> None:
        self.url = LabUrl.parse(url)
        os.environ["LG_USERNAME"] = identity(worker)
        self.coord: Coordinator | None = None

    def _coordinator(self) -> Coordinator:
        if self.coord is None or self.coord.session is None or self.coord.session.stopping.is_set():
            if self.coord is not None:
                self.coord.close()
                self.coord = None
            self.coord = Coordinator(self.url.address)
        return self.coord

    def acquire(self, exclude: frozenset[str], timeout: float) -> PlaceLease:
        return PlaceLease(self._coordinator(), self.url.tags, timeout, exclude)

    @contextlib.contextmanager
    def bring_up(self, lease: PlaceLease) -> Iterator[Station]:
        os.environ["LG_TOKEN"] = lease.token  # what the bench's bridge asks for
        yield station_from_place(lease.coord, lease.place, lease.token)

    def recover(self, station: Station, report: Health) -> Health:
        return report

    def take_out_of_service(self, lease: PlaceLease, reason: str, by: str) -> None:
        quarantine(lease.coord, lease.place, reason)

    def where(self, lease: PlaceLease) -> str:
        return f" on bench {lease.bench}"

    def labels(self, lease: PlaceLease) -> dict[str, str]:
        return {"place": lease.place, "bench": lease.bench}

    def close(self) -> None:
        if self.coord is not None:
            self.coord.close()
            self.coord = None
