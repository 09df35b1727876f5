"""What every usb-debug transport (USB bulk endpoints, TCP) offers the client: whole frame bodies.

A transport only moves bodies; it never retries and never reconnects.  Once a frame is cut short,
oversized or the peer is gone, the transport closes itself and every later call raises
:class:`LinkClosed`, so a lost device stays visibly lost.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod

from hil.errors import ConfigError, InfrastructureError


class DeviceNotFound(ConfigError):
    """A ``--device`` that names nothing usable; the message says what was found there instead."""


class LinkError(InfrastructureError):
    """The debug link failed.  The message names the device (and the command when one was running)."""

    def __init__(self, device: str, reason: str, command: str | None = None):
        self.device, self.reason, self.command = device, reason, command
        where = f"{device}, {command}" if command else device
        super().__init__(f"{where}: {reason}")


class LinkTimeout(LinkError):
    """Nothing arrived in time.  Raised by ``read_frame`` only between frames; the link stays usable."""


class LinkClosed(LinkError):
    """The link is gone (peer closed, frame cut short or malformed); the transport is closed."""


class Transport(ABC):
    """Moves usb-debug frame bodies to and from one device.

    Once a frame's first byte arrives, the rest must keep coming whatever the caller's timeout for
    that first byte was: ``stall_timeout`` bounds each pause inside the frame, ``frame_timeout`` the
    whole frame, so a device dripping a byte now and then cannot hold a 2 MiB frame open for hours.
    """

    name: str  # how the device is named in errors: the --device string

    def __init__(self, name: str, stall_timeout: float = 5.0, frame_timeout: float = 30.0):
        self.name = name
        self.stall_timeout = stall_timeout
        self.frame_timeout = frame_timeout
        self._open = False
        self._complete_by: float | None = None

    @property
    def is_open(self) -> bool:
        return self._open

    def open(self) -> Transport:
        if not self._open:
            self._open_link()
            self._open = True
        return self

    def close(self) -> None:
        if self._open:
            self._open = False
            self._close_link()

    def __enter__(self) -> Transport:
        return self.open()

    def __exit__(self, *exc) -> None:
        self.close()

    def write_frame(self, body: bytes, timeout: float) -> None:
        self._check_open()
        self._write(body, timeout)

    def read_frame(self, timeout: float, complete_by: float | None = None) -> bytes:
        """One whole IN frame body.  :class:`LinkTimeout` if none starts within ``timeout``; a frame
        not complete by ``complete_by`` (monotonic, the caller's command deadline) closes the link."""
        self._check_open()
        self._complete_by = complete_by
        try:
            return self._read(timeout)
        finally:
            self._complete_by = None

    def lost(self, reason: str) -> LinkClosed:
        """Close the link and return the error to raise."""
        self.close()
        return LinkClosed(self.name, reason)

    def frame_end(self) -> float:
        """The monotonic time by which a frame whose first byte arrived just now must be complete."""
        end = time.monotonic() + self.frame_timeout
        return end if self._complete_by is None else min(end, self._complete_by)

    def next_deadline(self, frame_end: float) -> float:
        """How long the next piece of a started frame may take: a stall, but never past ``frame_end``."""
        return min(time.monotonic() + self.stall_timeout, frame_end)

    def timed_out(self, got: int, deadline: float, frame_end: float | None, size: int | None = None) -> LinkError:
        """The error for a read that missed ``deadline`` with ``got`` bytes of the frame (of ``size``) in."""
        if frame_end is None:
            return LinkTimeout(self.name, "no frame arrived in time")
        arrived = f"{got} of {size} bytes" if size is not None else f"{got} bytes"
        if deadline >= frame_end:
            if frame_end == self._complete_by:
                return self.lost(f"answer not complete by the command's deadline ({arrived} arrived)")
            return self.lost(f"frame not complete within {self.frame_timeout:g} s ({arrived} arrived)")
        return self.lost(f"device stopped sending mid-frame (no data for {self.stall_timeout:g} s, "
                         f"{arrived} arrived)")

    def _check_open(self) -> None:
        if not self._open:
            raise LinkClosed(self.name, "link is closed")

    @abstractmethod
    def _open_link(self) -> None: ...

    @abstractmethod
    def _close_link(self) -> None: ...

    @abstractmethod
    def _write(self, body: bytes, timeout: float) -> None: ...

    @abstractmethod
    def _read(self, timeout: float) -> bytes: ...
