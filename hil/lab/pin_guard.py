"""No seed at risk: the PIN is typed only onto a verified PIN screen, and one rejected PIN stops it.

A Prime erases its seed after 10 wrong PINs (keyos.md §2.2), and every test starts by unlocking. So:
- before typing, the PIN screen is found by what it shows (`hil.vision.pin_screen`) and its failed-
  attempt count read; a unit already showing a failed attempt is not typed on at all;
- after typing, the unit is unlocked (read over the link), or the count is read again;
- one rejected PIN blocks every further PIN entry on that unit, in every worker of every run, until an
  operator readmits it, and the station is quarantined with the reason. The block lives beside the lease:
  for file-locked stations a state file (`<state>/leases/<station>.pin.json`, under a file lock); for
  labgrid places, on the coordinator that every bench host and worker leases through (`PlacePinGuard`).
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from filelock import FileLock

from hil.lab.labgrid import PIN, PIN_BLOCKED, Coordinator
from hil.lab.places import quarantine as quarantine_place
from hil.lab.quarantine import Quarantine
from hil.link.client import PrimeClient
from hil.link.state import PinRejected, unlock
from hil.stimuli.touch import DebugTouch, Touch
from hil.vision.pin_screen import NotAPinScreen, PinScreen, read_pin_screen, wait_pin_screen


class PinBlocked(PinRejected):
    """A PIN was already rejected on this unit (this run or before): no PIN is typed on it again."""


class PinGuard:
    """The PIN state of one station: blocked (with why) or not. Without a state dir it lives in memory
    (a desk run with one device, where the session stops at the first rejection anyway)."""

    def __init__(self, station: str, state_dir: Path | None = None) -> None:
        self.station = station
        self.path = Path(state_dir) / "leases" / f"{station}.pin.json" if state_dir else None
        self._reason: str | None = None
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._lock = FileLock(self.path.with_suffix(".json.lock"), thread_local=False)

    def blocked(self) -> str | None:
        """Why PIN entry on this station is blocked, or None."""
        if self.path is None:
            return self._reason
        try:
            return json.loads(self.path.read_text())["reason"]
        except FileNotFoundError:
            return None
        except (json.JSONDecodeError, KeyError, TypeError):  # a corrupt record still blocks: fail closed
            return f"unreadable PIN state file {self.path}"

    def block(self, reason: str) -> None:
        if self.path is None:
            self._reason = self._reason or reason
            return
        with self._lock:
            if self.blocked() is None:  # the first reason stands
                tmp = self.path.with_suffix(".tmp")
                tmp.write_text(json.dumps({"reason": reason, "since": time.time(),
                                           "by": f"{os.getpid()}@{socket.gethostname()}"}))
                tmp.replace(self.path)

    def clear(self) -> None:
        """An operator readmitted the station (after checking the unit's PIN)."""
        self._reason = None
        if self.path is not None:
            with self._lock:
                self.path.unlink(missing_ok=True)


class PlacePinGuard:
    """The PIN state of a labgrid place, kept on its coordinator, which every host's workers ask: the tag
    ``pin=blocked``, set with the place's quarantine (whose comment carries the reason). Only the place's
    holder types a PIN, and each check reads the coordinator anew, so a block is seen at once everywhere;
    a coordinator that cannot be asked raises (no PIN typed)."""

    def __init__(self, coord: Coordinator, place: str) -> None:
        self.coord = coord
        self.station = place

    def blocked(self) -> str | None:
        self.coord.refresh()
        place = self.coord.places.get(self.station)
        if place is None:  # fail closed
            return f"place {self.station} is gone from labgrid coordinator {self.coord.address}"
        if place.tags.get(PIN) != PIN_BLOCKED:
            return None
        return place.comment or f"tag {PIN}={PIN_BLOCKED} on place {self.station}"

    def block(self, reason: str) -> None:
        if self.blocked() is None:  # the first reason stands
            self.coord.call("SetPlaceTags", f"place {self.station}: block PIN entry", placename=self.station,
                            tags={PIN: PIN_BLOCKED})
            quarantine_place(self.coord, self.station, f"PIN: {reason}")

    def clear(self) -> None:
        self.coord.call("SetPlaceTags", f"place {self.station}: unblock PIN entry", placename=self.station,
                        tags={PIN: ""})


def screenshot_bgr(prime: PrimeClient) -> np.ndarray:
    """The debug link's screenshot as a BGR array (what `read_pin_screen` takes)."""
    return np.ascontiguousarray(np.asarray(prime.screenshot().convert("RGB"))[:, :, ::-1])


def unlock_safely(prime: PrimeClient, pin: str, touch: Touch, look: Callable[[], np.ndarray],
                  guard: PinGuard | PlacePinGuard, quarantine: Quarantine | None = None) -> None:
    """`hil.link.state.unlock` with ``touch``, on the PIN screen that ``look()`` (a rectified 480x800 BGR
    view: a screenshot or the camera) shows; raise `PinRejected` (and block and quarantine the station)
    when it is not accepted, `PinBlocked` when an earlier rejection blocks it, `NotAPinScreen` when the
    screen is not verifiably the PIN screen (nothing typed)."""
    if (why := guard.blocked()) is not None:
        raise PinBlocked(f"station {guard.station}: no PIN entry ({why})")
    seen: list[PinScreen] = []

    def find_pad() -> PinScreen:
        before = wait_pin_screen(look, touch)
        if before.failed:
            _stop(guard, quarantine, f"{prime.device} shows {before.failed} failed PIN attempt(s) before the harness "
                                     "typed; not typing (check the provisioned PIN, then readmit)")
        seen.append(before)
        return before

    try:  # the link sees dark/lit by itself: only a glass-pressing touch goes to unlock
        unlock(prime, pin, find_pad, None if isinstance(touch, DebugTouch) else touch)
    except PinRejected:
        if not seen:  # stopped before typing: already blocked, with its reason
            raise
        try:
            after = f"{read_pin_screen(look()).remaining} remaining after"
        except NotAPinScreen as e:
            after = f"attempts after unreadable ({e})"
        _stop(guard, quarantine, f"{prime.device} rejected the test PIN (one attempt used: {seen[0].remaining} "
                                 f"remaining before, {after}); check the PIN the unit was provisioned with, then readmit")


def unlock_over_link(prime: PrimeClient, pin: str, guard: PinGuard, quarantine: Quarantine | None = None) -> None:
    """`unlock_safely` where the build shows and takes input over the debug link while locked."""
    unlock_safely(prime, pin, DebugTouch(prime, prime.home_button), lambda: screenshot_bgr(prime), guard, quarantine)


def _stop(guard: PinGuard | PlacePinGuard, quarantine: Quarantine | None, reason: str) -> None:
    guard.block(reason)
    if quarantine is not None:
        quarantine.add(guard.station, f"PIN: {reason}")
    raise PinRejected(f"station {guard.station}: {reason}")
