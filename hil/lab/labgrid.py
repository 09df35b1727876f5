"""The farm on labgrid (issue 8): stations spread over several bench hosts, leased through a labgrid
coordinator (labgrid 26.0.1, pinned in pyproject's `labgrid` extra) instead of file locks.

A station is a labgrid *place* of the same name, matching the resource group `<bench>/<station>/*` that
the bench's exporter publishes (`exporter_config`). Its tags (board, rev, flavour, nfc, bench,
health=ok) are what workers reserve by; quarantine removes `health=ok` and puts the reason in the
place's comment. A worker reserves by tags, acquires the allocated place, builds its `Station` from
the place's resources once, and health-checks it. The reservation token is the lease token the
bench's `hil bridge` asks for (`LG_TOKEN`, labgrid's own variable for it).

labgrid's lock is advisory for everything the exporter does not run itself, so `check()` runs before
each test: the place must still be acquired by this worker and none of its resources orphaned.
labgrid has no documented Python client API; `Coordinator` uses `ClientSession` and its gRPC stub as
`labgrid-client` does, and keeps one session per process (the coordinator rejects a second one from
the same process: lab-across-hosts.md §1.9).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit

import yaml
from pydantic import ValidationError

from hil.errors import ConfigError, HilError, InfrastructureError
from hil.lab.config import LabConfig, RobotCalibration
from hil.profile import Profile, load_profile
from hil.lab.lease import NoStationFree
from hil.lab.station import Station
from hil.link.bridge import lease_token
from hil.profile import PROFILES_DIR

SCHEME = "labgrid://"
INSTRUMENTS = {"nfc": "PrimeNfc", "robot": "PrimeRobot", "relay": "PrimeRelay"}  # station key: resource class
DEFAULT_PORT = 20408
HEALTH = "health"
FLASHED = ("flavour", "build")  # tags the nightly sets on the places it flashed
QUARANTINED = "quarantined: "
# where each endpoint of a station listens on its bench, from its `bridge_port` (`hil bridge` serves them there)
PORT_OFFSETS = {"debug": 0, "camera": 1, "nfc": 2, "robot": 3, "relay": 4}


class CoordinatorUnavailable(InfrastructureError):
    """The labgrid coordinator cannot be reached (or restarted: it then forgot every lease)."""


class PlaceLost(InfrastructureError):
    """This worker's place was taken away, or its bench's resources vanished, mid-run."""


class LabgridError(InfrastructureError):
    """The coordinator refused a request; the message is its own."""


def is_url(lab: str | None) -> bool:
    return bool(lab) and lab.startswith(SCHEME)


@dataclass(frozen=True)
class LabUrl:
    """`labgrid://HOST:PORT?board=prime&flavour=development`: the coordinator and the tags to reserve by."""

    address: str
    tags: dict[str, str]

    @classmethod
    def parse(cls, url: str) -> LabUrl:
        parts = urlsplit(url)
        try:
            port = parts.port or DEFAULT_PORT
        except ValueError:
            port = None
        if parts.scheme != "labgrid" or not parts.hostname or port is None:
            raise ConfigError(f"{url!r}: expected labgrid://HOST:PORT[?tag=value&...]")
        tags = dict(parse_qsl(parts.query, strict_parsing=False))
        bad = [f"{k}={v}" for k, v in tags.items() if not _tag_ok(k, v)]
        if bad:
            raise ConfigError(f"{url}: tags {', '.join(bad)} must be lowercase letters, digits or '_'")
        return cls(f"{parts.hostname}:{port}", {**tags, HEALTH: "ok"})


def _tag_ok(key: str, value: str) -> bool:
    return bool(re.fullmatch(r"[a-z][a-z0-9_]+", key) and re.fullmatch(r"[a-z0-9_]*", value))


# ------------------------------------------------------------------------------ the coordinator


class Coordinator:
    """One session with the coordinator, with a bounded wait on every call."""

    def __init__(self, address: str, timeout: float = 10.0) -> None:
        from labgrid.remote.client import ClientSession

        self.address, self.timeout = address, timeout
        self.loop = _shared_loop()
        asyncio.set_event_loop(self.loop)  # grpc.aio binds its channel to the calling thread's loop
        self.session = ClientSession(address, self.loop)
        try:
            self._run(self.session.start(), "connect")
        except BaseException:
            self.close()
            raise
        if self.session.stopping.is_set():
            self.close()
            raise CoordinatorUnavailable(f"labgrid coordinator {address} is unavailable; is it running "
                                         "(`systemctl status labgrid-coordinator`)?")

    @property
    def me(self) -> str:
        return f"{self.session.gethostname()}/{self.session.getuser()}"

    def _run(self, coro, what: str):
        import grpc
        from labgrid.remote.client import Error

        try:
            return self.loop.run_until_complete(asyncio.wait_for(coro, self.timeout))
        except TimeoutError:
            raise CoordinatorUnavailable(f"labgrid coordinator {self.address}: no answer to {what} within "
                                         f"{self.timeout:g} s") from None
        except grpc.aio.AioRpcError as e:
            if e.code() == grpc.StatusCode.UNAVAILABLE:
                raise CoordinatorUnavailable(f"labgrid coordinator {self.address} unavailable ({what})") from None
            raise LabgridError(f"labgrid coordinator {self.address}: {what}: {e.details()}") from None
        except Error as e:
            raise CoordinatorUnavailable(f"labgrid coordinator {self.address}: {what}: {e}") from None

    def refresh(self) -> None:
        """Bring the session's view of places and resources up to date."""
        if self.session.stopping.is_set() or not self._run(self.session.sync_with_coordinator(), "sync"):
            raise CoordinatorUnavailable(f"lost the labgrid coordinator {self.address} (restarted or down); "
                                         "it drops every lease when it restarts")

    @property
    def places(self) -> dict:
        return self.session.places

    @property
    def resources(self) -> dict:
        return self.session.resources

    def call(self, method: str, what: str, **request):
        """One gRPC call (`AddPlace`, `SetPlaceTags`, ...) with its request fields, then a sync."""
        from labgrid.remote.generated import labgrid_coordinator_pb2 as pb

        req = getattr(pb, f"{method}Request")(**request)
        out = self._run(getattr(self.session.stub, method)(req), what)
        self.refresh()
        return out

    def reserve(self, tags: dict[str, str]) -> str:
        from labgrid.remote.common import Reservation
        from labgrid.remote.generated import labgrid_coordinator_pb2 as pb

        resp = self.call("CreateReservation", f"reserve {_tags(tags)}",
                         filters={"main": pb.Reservation.Filter(filter=tags)}, prio=0.0)
        return Reservation.from_pb2(resp.reservation).token

    def poll(self, token: str):
        from labgrid.remote.common import Reservation

        return Reservation.from_pb2(self.call("PollReservation", f"poll reservation {token}", token=token).reservation)

    def reservations(self) -> list:
        from labgrid.remote.common import Reservation

        return [Reservation.from_pb2(r) for r in self.call("GetReservations", "list reservations").reservations]

    def close(self) -> None:
        session, self.session = self.session, None
        if session is None:
            return
        with contextlib.suppress(Exception):  # closing a dead session: nothing left to save
            if getattr(session, "pump_task", None) is not None:
                self.loop.run_until_complete(asyncio.wait_for(session.stop(), 5))
            self.loop.run_until_complete(asyncio.wait_for(session.close(), 5))


_LOOP: asyncio.AbstractEventLoop | None = None


def _shared_loop() -> asyncio.AbstractEventLoop:
    """One event loop for every session of the process, never closed: gRPC's completion-queue poller keeps
    posting to the loop it started on. Callers take turns (one session per process at a time)."""
    global _LOOP
    if _LOOP is None:
        _LOOP = asyncio.new_event_loop()
    return _LOOP


def _tags(tags: dict[str, str]) -> str:
    return " ".join(f"{k}={v}" for k, v in sorted(tags.items()))


# ------------------------------------------------------------------------------ places as code


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
    bad = [f"{k}={v}" for k, v in tags.items() if not _tag_ok(k, v)]
    if bad:
        raise ConfigError(f"{lab.source}: station {name}: tags {', '.join(bad)} must be lowercase letters, digits "
                          "or '_' (labgrid compares them as written)")
    return tags


def station_tag(name: str) -> str:
    """A station name as a tag value (lowercase letters, digits, '_')."""
    return re.sub(r"[^a-z0-9_]", "_", name.lower())


def sync(lab: LabConfig, coord: Coordinator) -> list[str]:
    """Create or update one place per station on a bench: its match and tags. A quarantined place keeps its
    quarantine (no `health=ok` back); only `readmit` restores it. The `flavour` and `build` a flash set
    (`flash_places`) stay: they say what the unit runs, which the lab file cannot know. Returns what
    changed, one line each."""
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
        flashed = {k: place.tags[k] for k in FLASHED if place.tags.get(k)}  # what the unit runs now
        want = {**tags, **flashed, **({} if quarantined else {HEALTH: "ok"})}
        stale = {k: "" for k in place.tags if k not in want and k != HEALTH}
        if {k: v for k, v in place.tags.items() if k != HEALTH or not quarantined} != want or stale:
            coord.call("SetPlaceTags", f"place {name}: set tags", placename=name, tags={**stale, **want})
            done.append(f"{name}: tags {_tags(want)}" + (" (quarantined: kept out of service)" if quarantined else ""))
    return done


def quarantine(coord: Coordinator, place: str, reason: str) -> None:
    coord.refresh()
    if place not in coord.places:
        raise ConfigError(f"no place {place!r} on labgrid coordinator {coord.address}")
    coord.call("SetPlaceTags", f"place {place}: quarantine", placename=place, tags={HEALTH: ""})
    coord.call("SetPlaceComment", f"place {place}: comment", placename=place,
               comment=f"{QUARANTINED}{reason} ({time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())})")


def readmit(coord: Coordinator, place: str) -> str:
    """Put the place back into service; returns the comment it had."""
    coord.refresh()
    if place not in coord.places:
        raise ConfigError(f"no place {place!r} on labgrid coordinator {coord.address}")
    was = coord.places[place].comment
    coord.call("SetPlaceComment", f"place {place}: comment", placename=place, comment="")
    coord.call("SetPlaceTags", f"place {place}: readmit", placename=place, tags={HEALTH: "ok"})
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


# ------------------------------------------------------------------------------ exporter config


def exporter_config(lab: LabConfig, bench: str, live: dict[str, dict] | None = None) -> str:
    """The labgrid exporter YAML of one bench: one resource group per station. A running bridge passes,
    per station, what it serves (`hil.lab.bridge.serve_station`) over the lab file's values; without it the
    endpoints are at `bridge_port` plus `PORT_OFFSETS`."""
    if bench not in lab.benches:
        raise ConfigError(f"{lab.source}: no bench {bench!r} (known: {', '.join(lab.benches) or 'none'})")
    host = lab.benches[bench].host
    groups = {}
    for name, st in lab.stations.items():
        if st.bench != bench:
            continue
        now = (live or {}).get(name, {})
        port = now.get("port", st.bridge_port)
        if port is None:
            raise ConfigError(f"{lab.source}: station {name} on bench {bench} has no `bridge_port`")
        group: dict = {
            "location": bench,
            "debug": {"cls": "PrimeDebugLink", "host": host, "port": port},
            "station": {"cls": "PrimeStation", "profile": st.profile, "usb_port": st.usb_port or "",
                        "serial": now.get("serial") or st.serial or ""},
        }
        if now.get("samba"):  # an emulated unit's SAM-BA pty; ser2net serves it on acquire, as a CDC port
            group["samba"] = {"cls": "RawSerialPort", "port": now["samba"], "speed": 115200}
        elif st.samba and st.usb_port:  # SAM-BA's CDC port, by USB port path; ser2net serves it on acquire
            vid, pid = lab.profile(st.profile).usb.samba.split(":")
            group["samba"] = {"cls": "USBSerialPort", "speed": 115200,
                              "match": {"@sys_name": st.usb_port, "ID_VENDOR_ID": vid, "ID_MODEL_ID": pid}}
        camera = now.get("camera")  # the bridge's camera relay, gated like the debug link
        if camera is None and st.camera and st.camera.startswith("http"):
            camera = f"http://{host}:{port + PORT_OFFSETS['camera']}{urlsplit(st.camera).path}"
        if camera is not None:
            group["camera"] = {"cls": "HTTPVideoStream", "url": camera}
        for kind, cls in INSTRUMENTS.items():  # the bridge's NFC service, robot and relay
            at = now.get(kind) or (port + PORT_OFFSETS[kind] if getattr(st, kind) and not live else None)
            if at:
                group[kind] = {"cls": cls, "host": host, "port": at}
        points = now.get("robot_calibration") or (st.robot_calibration.points if st.robot_calibration else None)
        if points:  # labgrid passes resource parameters as scalars: the points go as JSON
            group["station"]["robot_calibration"] = json.dumps(points)
        groups[name] = group
    if not groups:
        raise ConfigError(f"{lab.source}: bench {bench} has no stations")
    return yaml.safe_dump(groups, sort_keys=False)  # no comment line: the exporter reads it as a Jinja2 template


def station_from_place(coord: Coordinator, name: str, token: str, profiles_dir: Path | None = None) -> Station:
    """The place's acquired resources as a `Station` (looked up once; the caller keeps it); `token` is the
    lease token the bench's camera relay asks for. Profiles come from the repository's `device_profiles/`
    unless `profiles_dir` says otherwise."""
    place = coord.places[name]
    found: dict = {}
    bench = place.tags.get("bench", "?")
    for exporter, group, cls, res_name in place.acquired_resources:
        entry = coord.resources.get(exporter, {}).get(group, {}).get(res_name)
        if entry is None or not entry.data:  # an exporter that left deletes its resources to empty entries
            raise PlaceLost(f"bench {exporter}, place {name}: resource {group}/{res_name} is orphaned "
                            f"(exporter {exporter} gone)")
        found[cls] = entry.params
    if "PrimeDebugLink" not in found or "PrimeStation" not in found:
        raise PlaceLost(f"bench {bench}, place {name}: no PrimeDebugLink/PrimeStation resource; is the exporter "
                        f"of bench {bench} running with `hil lab exporter-config {bench}`?")
    link, info = found["PrimeDebugLink"], found["PrimeStation"]
    profile: Profile = load_profile(info["profile"], profiles_dir or PROFILES_DIR)
    samba = found.get("NetworkSerialPort")
    instruments = {kind: f"bridge:{found[cls]['host']}:{found[cls]['port']}"
                   for kind, cls in INSTRUMENTS.items() if cls in found}
    try:
        points = json.loads(info["robot_calibration"]) if info.get("robot_calibration") else None
        calibration = RobotCalibration(points=points) if points else None
    except (ValueError, ValidationError) as e:
        why = e.errors()[0]["msg"] if isinstance(e, ValidationError) else str(e)
        raise PlaceLost(f"bench {bench}, place {name}: the exporter's robot_calibration is not valid ({why}); "
                        f"regenerate it with `hil lab exporter-config {bench}`") from None
    return Station(name=name, profile=profile, debug=f"bridge:{link['host']}:{link['port']}",
                   usb_port=info.get("usb_port") or None, serial=info.get("serial") or None,
                   samba=f"rfc2217://{samba['host']}:{samba['port']}?ign_set_control" if samba else None,
                   camera=f"{found['HTTPVideoStream']['url']}?lease={token}" if "HTTPVideoStream" in found else None,
                   robot_calibration=calibration, **instruments,
                   tags=tuple(f"{k}={v}" for k, v in sorted(place.tags.items())),
                   flavour=place.tags.get("flavour"))


# ------------------------------------------------------------------------------ the lease


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
                    raise NoStationFree(f"reservation {self.token} for {_tags(tags)} is {res.state.name}")
                if time.monotonic() > deadline:
                    other = f" other than {', '.join(sorted(exclude))}" if exclude else ""
                    raise NoStationFree(f"no place{other} with tags {_tags(tags)} free within {timeout:g} s on labgrid "
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
        """Release and cancel; errors are ignored (the place may be kicked, the coordinator restarted)."""
        if self.place is not None:
            with contextlib.suppress(HilError):
                self.coord.call("ReleasePlace", "release", placename=self.place)
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


# ------------------------------------------------------------------------------ the nightly


def _lab_places(lab: LabConfig, coord: Coordinator) -> list[str]:
    """The nightly's places: the lab file's bench stations, or, when it has none, every place matching the
    coordinator URL's tags (but `flavour` and `build`, which the nightly's flash sets)."""
    wanted = {k: v for k, v in LabUrl.parse(lab.coordinator).tags.items() if k not in (HEALTH, *FLASHED)}
    return [n for n, st in lab.stations.items() if st.bench is not None] or \
        sorted(n for n, p in coord.places.items() if wanted.items() <= p.tags.items())


@contextlib.contextmanager
def _nightly_session(lab: LabConfig):
    """The nightly's one coordinator session, as labgrid user `hil-nightly-<pid>` (so `reap` knows it)."""
    assert lab.coordinator is not None
    saved = os.environ.get("LG_USERNAME")
    os.environ["LG_USERNAME"] = identity("nightly")
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
                    lease = PlaceLease(coord, {"station": station_tag(name), HEALTH: "ok"}, 60)
                except (HilError, OSError) as e:
                    failed[name] = f"leasing failed on bench {place.tags.get('bench', '?')}: {e}"
                    continue
                try:
                    leases[name] = lease, station_from_place(coord, name, lease.token)
                except (HilError, OSError) as e:
                    lease.release()
                    failed[name] = f"leasing failed on bench {lease.bench}: {e}"

            def one(name: str) -> str | None:
                lease, station = leases[name]
                from hil.lab.nightly import measure

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
        done = {n: replace(leases[n][1], flavour=flavour) for n in leases if outcome[n] is None}
        for name in done:
            coord.call("SetPlaceTags", f"place {name}: flashed", placename=name,
                       tags={"flavour": flavour, "build": build})
        return done


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


# ------------------------------------------------------------------------------ pytest_farm's Farm


class LabgridFarm:
    """What `hil.lab.pytest_farm.Farm` is for a lab file, on labgrid: this worker's one place."""

    def __init__(self, config, url: str) -> None:
        self.config, self.url = config, LabUrl.parse(url)
        self.worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
        os.environ["LG_USERNAME"] = identity(self.worker)
        self.firmware: str | None = config.getoption("farm_firmware")
        self.coord: Coordinator | None = None
        self.lease: PlaceLease | None = None
        self.station: Station | None = None
        self.version: str | None = None
        self.lost: str | None = None
        self._last: dict[str, str] = {}

    def _coordinator(self) -> Coordinator:
        if self.coord is None or self.coord.session is None or self.coord.session.stopping.is_set():
            if self.coord is not None:
                self.coord.close()
                self.coord = None
            self.coord = Coordinator(self.url.address)
        return self.coord

    def current(self) -> Station:
        if self.lost:
            raise PlaceLost(self.lost)
        if self.station is not None:
            self.lease.check()
            return self.station
        return self._take()

    def _take(self, exclude: frozenset[str] = frozenset()) -> Station:
        from hil.lab import health

        timeout = self.config.getoption("farm_lease_timeout")
        deadline = time.monotonic() + timeout
        while True:
            coord = self._coordinator()
            lease = PlaceLease(coord, self.url.tags, max(0.0, deadline - time.monotonic()), exclude)
            try:
                os.environ["LG_TOKEN"] = lease.token  # what the bench's bridge asks for
                station = station_from_place(coord, lease.place, lease.token)
                report = health.check(station)
            except BaseException:
                lease.release()
                raise
            if report.ok:
                self.lease, self.station, self.version = lease, station, report.version
                return station
            try:
                quarantine(coord, lease.place, f"health check failed on bench {lease.bench}: {report.reason}")
            finally:
                lease.release()

    def replace_after_fault(self, fault: str) -> None:
        """After an infrastructure fault: quarantine the place if it is now unhealthy, then lease another
        (never the same one: a lost place was taken by someone, a faulty one is suspect)."""
        from hil.lab import health

        lease, station = self.lease, self.station
        if lease is None or station is None:
            return
        try:
            lease.check()
            report = health.check(station)
            if not report.ok:
                quarantine(lease.coord, lease.place, f"{fault}; then health check failed on bench {lease.bench}: "
                                                     f"{report.reason}")
        except InfrastructureError:
            pass  # the place is gone already: nothing of ours to quarantine
        self.drop()
        self._take(exclude=frozenset({station.name}))

    def drop(self) -> None:
        if self.lease is not None:
            self.lease.release()
        self.lease = self.station = None

    def labels(self) -> dict[str, str]:
        """Where the test runs; after the place was lost, where it last ran (empty before any lease)."""
        st, lease = self.station, self.lease
        if st is not None and lease is not None:
            self._last = {"station": st.name, "place": lease.place, "bench": lease.bench,
                          "serial": st.serial or "unknown", "profile": st.profile.name,
                          "firmware": self.firmware or f"version:{self.version}",
                          "version": self.version or "unknown"}  # measured: what the unit answered to GET_VERSION
        return dict(self._last)

    def close(self) -> None:
        try:
            self.drop()
        finally:
            if self.coord is not None:
                self.coord.close()
                self.coord = None
