"""The farm on labgrid (issue 8): stations spread over several bench hosts, leased through a labgrid
coordinator (labgrid 26.0.1, pinned in pyproject's `labgrid` extra) instead of file locks. This module is the
coordinator's client; places as code and their leases are `hil.lab.places`, what a bench's exporter publishes
is `hil.lab.exporter`, the nightly's flashing on labgrid is `hil.lab.place_flash`.

A station is a labgrid *place* of the same name, matching the resource group `<bench>/<station>/*` that
the bench's exporter publishes (`hil.lab.exporter`). Its tags (board, rev, flavour, nfc, bench,
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
import re
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlsplit


from hil.errors import ConfigError, InfrastructureError
from hil.machine import scaled

SCHEME = "labgrid://"
DEFAULT_PORT = 20408
HEALTH = "health"
PIN, PIN_BLOCKED = "pin", "blocked"  # a place whose unit rejected the test PIN (hil.lab.pin_guard.PlacePinGuard)
FLASHED = ("flavour", "build")  # tags the nightly sets on the places it flashed
QUARANTINED = "quarantined: "


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
        bad = [f"{k}={v}" for k, v in tags.items() if not tag_ok(k, v)]
        if bad:
            raise ConfigError(f"{url}: tags {', '.join(bad)} must be lowercase letters, digits or '_'")
        return cls(f"{parts.hostname}:{port}", {**tags, HEALTH: "ok"})


def tag_ok(key: str, value: str) -> bool:
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

        timeout = scaled(self.timeout)  # the coordinator may share this host's cores (a lab of one host)
        try:
            return self.loop.run_until_complete(asyncio.wait_for(coro, timeout))
        except TimeoutError:
            raise CoordinatorUnavailable(f"labgrid coordinator {self.address}: no answer to {what} within "
                                         f"{timeout:.3g} s") from None
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

        resp = self.call("CreateReservation", f"reserve {show_tags(tags)}",
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


def show_tags(tags: dict[str, str]) -> str:
    return " ".join(f"{k}={v}" for k, v in sorted(tags.items()))
