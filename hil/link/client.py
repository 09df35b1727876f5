"""A Passport Prime over its usb-debug link: one plain method per command (keyos.md §5.1).

The device may send log frames at any time, also between a request and its response; the client
keeps their records in order for :meth:`PrimeClient.logs` instead of dropping them.  Anything the
device sends that does not decode closes the link: after garbage the next frame cannot be trusted
to answer the next command.

Responses carry no request id, so a late answer (sent after the host gave up, or kept by KeyOS's
simulator for its next client) or a repeated one would be taken for the next command's. The client
therefore drains the link when it opens (answers found there belong to an earlier client and are
dropped, log records are kept) and before every command (an answer arriving with nothing outstanding
closes the link), and an answer whose shape cannot belong to the command closes it too.
"""

from __future__ import annotations

import collections
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from PIL import Image

from hil.errors import HilError
from hil.link import protocol
from hil.link.protocol import Cmd, LaunchStatus, Status
from hil.link.transport import LinkClosed, LinkError, LinkTimeout, Transport

POWER_HOLD_S = {False: 0.2, True: 3.0}  # dispatch.rs POWER_BUTTON_{SHORT,LONG}_PRESS_MS


class CommandRefused(HilError):
    """The device answered, and said no.  A device decision, not a lab fault."""

    def __init__(self, device: str, command: str, detail: str = ""):
        self.device, self.command = device, command
        super().__init__(f"{device}, {command}: {self.what}{': ' + detail if detail else ''}")

    what = "refused"


class DeviceError(CommandRefused):
    """Status Err: the command is not allowed on this build or failed on the device."""

    what = "device answered Err"


class DeviceLocked(CommandRefused):
    """Status Locked: a production build refuses this while the lock screen is up."""

    what = "device answered Locked"


class ResponseTimeout(LinkClosed):
    """No response in time.  The link is closed: a late answer would be taken for the next one."""


@dataclass(frozen=True)
class LaunchResult:
    pid: int
    status: LaunchStatus


class PublisherCount(NamedTuple):
    usable: int
    installed: int


class PrimeClient:
    """Drives one Prime.  ``pixel_order`` and ``home_button`` come from the device profile."""

    def __init__(self, transport: Transport, *, pixel_order: str, home_button: tuple[int, int],
                 timeout: float = 5.0, limits: Mapping[str, float] | None = None, settle: float = 0.05,
                 max_log_bytes: int = 8 * 1024 * 1024):
        self.transport = transport
        self.pixel_order = pixel_order
        self.home_button = home_button
        self.timeout = timeout  # a command's limit, unless ``limits`` names the command
        self.limits = dict(limits or {})
        self.settle = settle  # quiet time that ends the drain on open
        self.stale_replies = 0  # answers to an earlier client's commands, dropped on open
        self.dropped_log_records = 0  # the oldest records, dropped to keep the backlog in max_log_bytes
        self.max_log_bytes = max_log_bytes
        self._fresh = True  # no command sent on this connection yet
        self._records: collections.deque[str] = collections.deque()
        self._record_bytes = 0
        self._splitter = protocol.LogRecords()

    @property
    def device(self) -> str:
        return self.transport.name

    def open(self) -> PrimeClient:
        self.transport.open()
        self._fresh = True
        self._drain(self.settle)
        return self

    def close(self) -> None:
        self.transport.close()

    def __enter__(self) -> PrimeClient:
        return self.open()

    def __exit__(self, *exc) -> None:
        self.close()

    # ------------------------------------------------------------ commands

    def screenshot(self) -> Image.Image:
        """The display as an RGBA 480x800 image."""
        payload = self._ok(protocol.request(Cmd.SCREENSHOT), "SCREENSHOT")
        return self._decoded("SCREENSHOT", protocol.decode_screenshot, payload, self.pixel_order)

    def tap(self, x: int, y: int) -> None:
        self.swipe(x, y, x, y, duration_ms=50, steps=0)

    def swipe(self, sx: int, sy: int, ex: int, ey: int, duration_ms: int = 300, steps: int = 10) -> None:
        self._ok(protocol.swipe(sx, sy, ex, ey, duration_ms, steps), "SWIPE", extra=duration_ms / 1000)

    def home(self) -> None:
        """Tap the virtual home button, the touch area below the panel."""
        self.tap(*self.home_button)

    def press_power(self, long: bool = False) -> None:
        self._ok(protocol.power_btn(long), "POWER_BTN", extra=POWER_HOLD_S[long])

    def type_text(self, text: str) -> None:
        self._ok(protocol.input_text(text), "INPUT_TEXT")

    def version(self) -> str:
        payload = self._ok(protocol.request(Cmd.GET_VERSION), "GET_VERSION")
        return self._decoded("GET_VERSION", protocol.parse_version, payload)

    def launch_app(self, app_id: str | bytes) -> LaunchResult:
        payload = self._ok(protocol.launch_app(app_id), "LAUNCH_APP")
        return LaunchResult(*self._decoded("LAUNCH_APP", protocol.parse_launch, payload))

    def close_app(self, pid: int) -> None:
        self._ok(protocol.close_app(pid), "CLOSE_APP")

    def developer_mode(self) -> bool:
        payload = self._ok(protocol.request(Cmd.GET_DEVELOPER_MODE), "GET_DEVELOPER_MODE")
        return self._decoded("GET_DEVELOPER_MODE", protocol.parse_bool, payload, "GET_DEVELOPER_MODE")

    def process_list(self) -> str:
        payload = self._ok(protocol.request(Cmd.GET_PROCESS_LIST), "GET_PROCESS_LIST")
        return self._decoded("GET_PROCESS_LIST", protocol.parse_text, payload, "GET_PROCESS_LIST")

    def kernel_cmd(self, char: str) -> str:
        payload = self._ok(protocol.kernel_cmd(char), f"KERNEL_CMD {char}")
        return self._decoded(f"KERNEL_CMD {char}", protocol.parse_text, payload, "KERNEL_CMD")

    def reboot_to_samba(self) -> None:
        self._ok(protocol.request(Cmd.REBOOT_SAMBA), "REBOOT_SAMBA")

    def system_time(self) -> int:
        payload = self._ok(protocol.request(Cmd.GET_SYSTEM_TIME), "GET_SYSTEM_TIME")
        return self._decoded("GET_SYSTEM_TIME", protocol.parse_u64, payload, "GET_SYSTEM_TIME")

    def set_system_time(self, unix_secs: int) -> None:
        self._ok(protocol.set_system_time(unix_secs), "SET_SYSTEM_TIME")

    def publisher_count(self) -> PublisherCount:
        payload = self._ok(protocol.request(Cmd.GET_ALLOWED_PUBLISHER_COUNT), "GET_ALLOWED_PUBLISHER_COUNT")
        return PublisherCount(*self._decoded("GET_ALLOWED_PUBLISHER_COUNT", protocol.parse_publisher_count, payload))

    def install_certificate(self, fingerprint: str, pem: bytes) -> None:
        self._ok(protocol.install_certificate(fingerprint, pem), "INSTALL_CERTIFICATE")

    def request(self, body: bytes) -> bytes:
        """One request as given, unchecked by the host (a suite's input that the device itself must refuse):
        the OK payload, or CommandRefused."""
        return self._ok(body, Cmd(body[0]).name)

    def sideload(self, app_id: str | bytes, files: Mapping[str, bytes] | Path) -> None:
        """Upload an app bundle (``{relative path: bytes}`` or a directory) with LOAD_APP_*.

        Every path is checked against the device's rules before the first byte is sent, so a bad
        bundle never leaves a half-staged upload behind.
        """
        if isinstance(files, Path):
            files = {p.relative_to(files).as_posix(): p.read_bytes()
                     for p in sorted(files.rglob("*")) if p.is_file()}
        requests = [protocol.load_app_begin(app_id)]
        for path, data in files.items():
            requests.append(protocol.load_app_file_begin(len(data), path))
            requests += [protocol.load_app_chunk(data[i:i + protocol.MAX_CHUNK])
                         for i in range(0, len(data), protocol.MAX_CHUNK)]
        requests.append(protocol.request(Cmd.LOAD_APP_END))
        for body in requests:
            self._ok(body, Cmd(body[0]).name)

    # ------------------------------------------------------------ logs

    def logs(self, timeout: float) -> Iterator[str]:
        """Log records: those queued while commands ran, then new ones for ``timeout`` seconds.

        ``timeout`` bounds the whole read, not a quiet spell: a device that never stops logging
        cannot hold the caller.  A response frame here (none was asked for) closes the link."""
        deadline = time.monotonic() + timeout
        while True:
            while self._records:
                record = self._records.popleft()
                self._record_bytes -= len(record)
                yield record
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not self._take_frame(remaining):  # a record begun in time may finish
                return

    def wait_log(self, timeout: float) -> None:
        """Until the device sends a log record (kept for `logs`) or ``timeout`` passes: what a poll of the
        device's state waits on between reads, so that what the device reports is looked at at once."""
        self._take_frame(timeout)

    def _take_frame(self, timeout: float) -> bool:
        """One frame the device sent unasked (log records, queued); False when none came in ``timeout``.
        A response frame here (none was asked for) closes the link."""
        try:
            frame = self.transport.read_frame(timeout)
        except LinkTimeout:
            return False
        except LinkError as e:
            raise type(e)(self.device, e.reason, "logs") from None
        if isinstance(self._decode(frame, "logs"), protocol.Response):
            self.transport.close()
            raise LinkClosed(self.device, "response frame arrived with no command outstanding; link closed", "logs")
        return True

    # ------------------------------------------------------------ plumbing

    def _drain(self, quiet: float, command: str | None = None) -> None:
        """Take what the device has already sent, until ``quiet`` passes with nothing new: log records
        are kept; an answer is an earlier client's when no command was sent on this link yet (dropped),
        else one that belongs to no command (the link is closed)."""
        try:
            while True:
                try:
                    frame = self.transport.read_frame(quiet)
                except LinkTimeout:
                    return
                if isinstance(self._decode(frame, command), protocol.Response):
                    if not self._fresh:
                        self.transport.close()
                        raise LinkClosed(self.device, "an answer arrived with no command outstanding (a late or "
                                         "repeated reply); link closed", command)
                    self.stale_replies += 1
        except LinkError as e:
            raise type(e)(self.device, e.reason, command) from None

    def _ok(self, body: bytes, command: str, extra: float = 0.0) -> bytes:
        """Send one command and return the payload of its OK response.  One deadline covers the
        whole command: log frames arriving meanwhile, or an answer dripping in, do not extend it."""
        timeout = self.limits.get(Cmd(body[0]).name, self.timeout) + extra
        self._drain(0.001, command)  # what is already here, without waiting
        self._fresh = False
        deadline = time.monotonic() + timeout
        try:
            self.transport.write_frame(body, timeout)
            while True:
                remaining = deadline - time.monotonic()
                try:
                    frame = self.transport.read_frame(remaining, complete_by=deadline) if remaining > 0 else None
                except LinkTimeout:
                    frame = None
                if frame is None:
                    self.transport.close()
                    raise ResponseTimeout(self.device, f"no response within {timeout:g} s; link closed",
                                          command) from None
                reply = self._decode(frame, command)
                if isinstance(reply, protocol.Response):
                    break
        except ResponseTimeout:
            raise
        except LinkError as e:
            raise type(e)(self.device, e.reason, command) from None
        if reply.status == Status.OK and body[0] in protocol.ACK_ONLY and reply.payload:
            self.transport.close()
            raise LinkClosed(self.device, f"a {len(reply.payload)}-byte answer cannot belong to this command (its "
                             "ack carries none): a late or repeated reply; link closed", command)
        if reply.status == Status.ERR:
            raise DeviceError(self.device, command)
        if reply.status == Status.LOCKED:
            raise DeviceLocked(self.device, command)
        return reply.payload

    def _decode(self, frame: bytes, command: str | None) -> protocol.Response | protocol.Log:
        try:
            reply = protocol.decode_frame(frame)
        except protocol.ProtocolError as e:
            self.transport.close()
            raise LinkClosed(self.device, f"garbage from device ({e}); link closed", command) from None
        if isinstance(reply, protocol.Log):
            for record in self._splitter.feed(reply.data):
                self._records.append(record)
                self._record_bytes += len(record)
            while self._record_bytes > self.max_log_bytes:
                self._record_bytes -= len(self._records.popleft())
                self.dropped_log_records += 1
        return reply

    def _decoded(self, command: str, parse, *args):
        try:
            return parse(*args)
        except protocol.ProtocolError as e:
            self.transport.close()
            raise LinkClosed(self.device, f"malformed reply ({e}); link closed", command) from None
