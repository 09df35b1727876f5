"""The device side of the usb-debug protocol: decode a request, apply it to the Prime, answer.

Follows ``os/usb-debug/src/dispatch.rs``: a production build answers Err to REBOOT_SAMBA, KERNEL_CMD
and SET_SYSTEM_TIME and Locked to screenshot/swipe/power/text/close while locked; LAUNCH_APP,
LOAD_APP_*, INSTALL_CERTIFICATE and SET_SYSTEM_TIME check the lock in every build; a malformed
request is answered Err; an empty one is ignored.  Sideloads are staged in
``keyos/sideloaded-apps/<hex>.part`` and swapped in by LOAD_APP_END.

SWIPE and POWER_BTN hold the link for the gesture, as ``dispatch.rs`` sleeps through ``duration_ms``
(up to 65.5 s) and the press (200 ms / 3 s) before its Ack; the rest of the device (screen, camera,
control) runs on meanwhile.  assumed: when the host leaves mid-gesture, the gesture lands at once and
the link is free for the next host.  KeyOS's simulator (``os/usb-debug/src/sim.rs``) would refuse
newcomers until the sleep ends; a lab whose test timed out would then find a healthy unit unreachable.
"""

from __future__ import annotations

import struct
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable

from hil.link import protocol as p
from hil.link.protocol import Cmd, LaunchStatus, Status

if TYPE_CHECKING:
    from hil.emulator.prime import Prime

SIDELOAD_ROOT = "keyos/sideloaded-apps"
POWER_SHORT_MS, POWER_LONG_MS = 200, 3000
REBOOT_AFTER_ACK_S = 0.1
PRODUCTION_REFUSED = {Cmd.REBOOT_SAMBA, Cmd.KERNEL_CMD, Cmd.SET_SYSTEM_TIME}
GESTURES = {Cmd.SWIPE, Cmd.POWER_BTN}  # held for their duration before the Ack
PRODUCTION_NEEDS_UNLOCK = {Cmd.SCREENSHOT, Cmd.SWIPE, Cmd.POWER_BTN, Cmd.INPUT_TEXT, Cmd.CLOSE_APP}
LAUNCH_OUTCOMES = {"Launched": LaunchStatus.LAUNCHED, "AlreadyRunning": LaunchStatus.ALREADY_RUNNING,
                   "AppIdNotFound": LaunchStatus.APP_ID_NOT_FOUND, "NotReady": LaunchStatus.NOT_READY}
LAUNCH_FAILURES = {"SignatureRejected": LaunchStatus.SIGNATURE_REJECTED, "NoCertificate": LaunchStatus.NO_CERTIFICATE,
                   "PublisherCertificateExpired": LaunchStatus.CERT_EXPIRED,
                   "PublisherCertificateNotYetActive": LaunchStatus.CERT_NOT_YET_ACTIVE,
                   "KeyOsVersionTooOld": LaunchStatus.KEYOS_VERSION_TOO_OLD, "Internal": LaunchStatus.INTERNAL_ERROR}

OK, ERR, LOCKED = p.response(Status.OK), p.response(Status.ERR), p.response(Status.LOCKED)


def valid_upload_path(path: str) -> bool:
    """The device's own rule: relative, no empty, '.' or '..' components, no trailing '/'."""
    return bool(path) and not path.startswith("/") and all(part not in ("", ".", "..") for part in path.split("/"))


@dataclass
class Upload:
    app_id: bytes
    files: dict[str, bytes] = field(default_factory=dict)  # relative path -> contents, complete files
    current: tuple[str, int, bytearray] | None = None  # (path, expected size, written so far)


def handle(prime: Prime, body: bytes, hold: Callable[[float], None] = time.sleep) -> list[bytes]:
    """Frame bodies answering one request body (none for an empty request).  ``hold(seconds)`` waits
    out a gesture; the transport ends it early when its host is gone."""
    return prime.usb_debug.handle(body, hold)


class DebugProtocol:
    """The usb-debug service of one Prime; keeps the sideload session between requests."""

    def __init__(self, prime: Prime):
        self.prime = prime
        self.upload: Upload | None = None

    def log(self, level: str, message: str) -> None:
        self.prime.log(f"{level}:usb_debug: debug: {message}")

    def handle(self, body: bytes, hold: Callable[[float], None] = time.sleep) -> list[bytes]:
        if not body:
            return []
        prime = self.prime
        with prime.lock:
            try:
                cmd, payload = p.parse_request(body)
            except p.ProtocolError as e:
                self.log("WARN", str(e))
                return [ERR]
            seeded = {Cmd.REBOOT_SAMBA: "production-allows-reboot-samba", Cmd.SCREENSHOT: "screenshot-while-locked",
                      Cmd.KERNEL_CMD: "production-answers-kernel-cmd"}
            defect = cmd in seeded and prime.keyos.defects.has(seeded[cmd])
            if prime.build.production and cmd in PRODUCTION_REFUSED and not defect:
                self.log("WARN", f"command 0x{cmd:02x} is not available in production firmware")
                return [ERR]
            if prime.build.production and cmd in PRODUCTION_NEEDS_UNLOCK and prime.is_locked() and not defect:
                self.log("WARN", f"command 0x{cmd:02x} rejected: device is locked")
                return [LOCKED]
        command = getattr(self, f"_{cmd.name.lower()}")
        try:
            return [command(payload, hold) if cmd in GESTURES else command(payload)]
        except p.ProtocolError as e:
            self.log("WARN", f"{cmd.name}: {e}")
            return [ERR]

    # ------------------------------------------------------------ screen and input
    def _screenshot(self, payload: bytes) -> bytes:
        with self.prime.lock:
            image = self.prime.framebuffer()
        return p.response(Status.OK, p.encode_screenshot(image, "BGRA"))  # ARGB8888 words, little-endian

    def _swipe(self, payload: bytes, hold: Callable[[float], None]) -> bytes:
        sx, sy, ex, ey, duration_ms, steps = p.parse_swipe(payload)
        self.log("DEBUG", f"swipe ({sx},{sy}) -> ({ex},{ey}) duration={duration_ms}ms steps={steps}")
        hold(duration_ms / 1000)
        with self.prime.lock:
            self.prime.swipe(sx, sy, ex, ey, duration_ms, steps)
        return OK

    def _power_btn(self, payload: bytes, hold: Callable[[float], None]) -> bytes:
        if len(payload) != 1:
            raise p.ProtocolError("POWER_BTN payload must be 1 byte")
        long = payload[0] != 0
        hold((POWER_LONG_MS if long else POWER_SHORT_MS) / 1000)
        with self.prime.lock:
            self.prime.press_power(long)
        return OK

    def _input_text(self, payload: bytes) -> bytes:
        try:
            text = payload.decode("utf-8")
        except UnicodeDecodeError:
            raise p.ProtocolError("INPUT_TEXT is not UTF-8") from None
        with self.prime.lock:
            self.log("DEBUG", f"input_text ({len(text)} chars)")
            self.prime.type_text(text)
        return OK

    def _close_app(self, payload: bytes) -> bytes:
        if len(payload) != 2:
            raise p.ProtocolError("CLOSE_APP payload must be 2 bytes")
        pid = struct.unpack("<H", payload)[0]
        with self.prime.lock:
            if not self.prime.developer_mode and not self.prime.keyos.defects.has("close-app-ignores-developer-mode"):
                self.log("WARN", "close_app rejected: Developer Mode is disabled")
                return ERR
            if not self.prime.close_app(pid):
                self.log("ERROR", f"close_app pid={pid}: no app with that PID")
                return ERR
        return OK

    # ------------------------------------------------------------ system
    def _reboot_samba(self, payload: bytes) -> bytes:
        """Ack first; the unit resets into the boot ROM once the Ack is on its way, as KeyOS does."""
        self.log("DEBUG", "rebooting into SAM-BA mode")
        timer = threading.Timer(REBOOT_AFTER_ACK_S, self._enter_samba)
        timer.daemon = True
        timer.start()
        return OK

    def _enter_samba(self) -> None:
        with self.prime.lock:
            if self.prime.keyos_running:
                self.prime.reboot_to_samba()

    def _kernel_cmd(self, payload: bytes) -> bytes:
        if len(payload) != 1:
            raise p.ProtocolError("KERNEL_CMD payload must be 1 byte")
        with self.prime.lock:
            self.log("DEBUG", f"kernel cmd '{chr(payload[0])}'")
            return p.response(Status.OK, self.prime.keyos.kernel_cmd(chr(payload[0])).encode())

    def _get_process_list(self, payload: bytes) -> bytes:
        with self.prime.lock:
            self.log("INFO", "get process list 't'")
            return p.response(Status.OK, self.prime.keyos.kernel_cmd("t").encode())

    def _get_version(self, payload: bytes) -> bytes:
        return p.response(Status.OK, self.prime.build.version.encode())

    def _get_developer_mode(self, payload: bytes) -> bytes:
        return p.response(Status.OK, b"\x01" if self.prime.developer_mode else b"\x00")  # the Settings toggle

    def _get_system_time(self, payload: bytes) -> bytes:
        return p.response(Status.OK, struct.pack("<Q", self.prime.now()))

    def _set_system_time(self, payload: bytes) -> bytes:
        seconds = p.parse_u64(payload, "SET_SYSTEM_TIME payload")
        with self.prime.lock:
            if self.prime.keyos.defects.has("clock-ignores-developer-mode"):  # the defect: the lock alone
                refused = LOCKED if self.prime.is_locked() else None
            else:
                refused = self._locked_or_no_developer_mode("set_system_time")
            if refused:
                return refused
            if (seconds == 0 and not self.prime.keyos.defects.has("clock-takes-zero")) or seconds > 0xFFFFFFFF:
                self.log("WARN", f"set_system_time rejected: {seconds} is outside the RTC range")
                return ERR
            self.prime.clock_offset = seconds - int(time.time())
            self.log("INFO", f"system time set to {seconds} (unix seconds, UTC)")
        return OK

    def _locked_or_no_developer_mode(self, what: str) -> bytes | None:
        if self.prime.is_locked():
            self.log("WARN", f"{what} rejected: device is locked")
            return LOCKED
        lax = self.prime.keyos.defects.has("developer-mode-gates-production-only") and not self.prime.build.production
        if not self.prime.developer_mode and not lax:
            self.log("WARN", f"{what} rejected: Developer Mode is disabled")
            return ERR
        return None

    # ------------------------------------------------------------ apps
    def _launch_app(self, payload: bytes) -> bytes:
        if len(payload) != 16:
            raise p.ProtocolError(f"LAUNCH_APP payload must be 16 bytes, got {len(payload)}")
        with self.prime.lock:
            result = self.prime.launch_app(payload)
        if result.outcome == "Locked":
            self.log("WARN", "launch_app rejected: device is locked")
            return LOCKED
        status = LAUNCH_OUTCOMES.get(result.outcome)
        if status is None:
            status = LAUNCH_FAILURES[result.reason]
        self.log("INFO", f"launch_app {result.outcome} pid={result.pid}")
        return p.response(Status.OK, p.launch_reply(result.pid, status))

    def _get_allowed_publisher_count(self, payload: bytes) -> bytes:
        certs = self.prime.keyos.certificates
        now = self.prime.now()
        # cert.is_usable(), as app-manager judges a launch (os/usb-debug/src/dispatch.rs, os/app-manager/src/third_party_certs.rs)
        usable = [c for c in certs.values() if c.not_before <= now <= c.not_after]
        if self.prime.keyos.defects.has("publisher-count-misses-the-not-before-second"):
            usable = [c for c in usable if c.not_before != now]
        return p.response(Status.OK, struct.pack("<HH", min(len(usable), 0xFFFF), min(len(certs), 0xFFFF)))

    def _install_certificate(self, payload: bytes) -> bytes:
        limit = p.MAX_CERT_PEM - 1 if self.prime.keyos.defects.has("certificate-of-16-kib-refused") else p.MAX_CERT_PEM
        # a fingerprint and a non-empty PEM, refused at decoding, before any lock or Developer Mode check
        # (usb-debug-protocol Command::decode, dispatch.rs DebugProtocol::process)
        no_pem_taken = len(payload) == 64 and self.prime.keyos.defects.has("certificate-without-a-pem-decoded")
        if (len(payload) <= 64 and not no_pem_taken) or len(payload) - 64 > limit:
            raise p.ProtocolError("INSTALL_CERTIFICATE needs a fingerprint and a PEM of at most 16 KiB")
        fingerprint, pem = payload[:64].decode("ascii", "replace"), payload[64:]
        if any(c not in "0123456789abcdef" for c in fingerprint):
            raise p.ProtocolError("certificate fingerprint must be 64 lowercase hex characters")
        with self.prime.lock:
            if refused := self._locked_or_no_developer_mode("install_certificate"):
                return refused
            error = self.prime.keyos.import_certificate(pem, fingerprint)
            if error:
                self.log("WARN", f"install_certificate rejected: {error}")
                return ERR
            self.log("INFO", f"installed allowed publisher certificate with fingerprint {fingerprint}")
        return OK

    # ------------------------------------------------------------ sideloading
    def _load_app_begin(self, payload: bytes) -> bytes:
        if len(payload) != 16:
            raise p.ProtocolError(f"LOAD_APP_BEGIN payload must be 16 bytes, got {len(payload)}")
        with self.prime.lock:
            if refused := self._locked_or_no_developer_mode("load_app"):
                self.upload = None
                return refused
            kept = self.upload.files if self.upload is not None and self.upload.app_id == payload and \
                self.prime.keyos.defects.has("load-app-begin-keeps-the-unfinished-session") else {}
            self.upload = Upload(payload, dict(kept))
            self.log("INFO", f"load_app begin {SIDELOAD_ROOT}/{payload.hex()}")
        return OK

    def _load_app_file_begin(self, payload: bytes) -> bytes:
        if len(payload) < 9:
            raise p.ProtocolError("LOAD_APP_FILE_BEGIN payload too short")
        size = struct.unpack("<Q", payload[:8])[0]
        try:
            path = payload[8:].decode("utf-8")
        except UnicodeDecodeError:
            raise p.ProtocolError("sideload path is not UTF-8") from None
        with self.prime.lock:
            if refused := self._locked_during_upload("LOAD_APP_FILE_BEGIN"):
                return refused
            lax = self.prime.keyos.defects.has("sideload-path-dotdot") and valid_upload_path(path.replace("..", "p"))
            if len(payload) - 8 > p.MAX_SIDELOAD_PATH or not (valid_upload_path(path) or lax):
                self.log("WARN", f"LOAD_APP_FILE_BEGIN: invalid file path: {path!r}")
                return ERR
            if self.upload is None or self.upload.current is not None:
                self.log("WARN", "LOAD_APP_FILE_BEGIN: no active load_app session or previous file still open")
                return ERR
            if size == 0:
                self.upload.files[path] = b""
            else:
                self.upload.current = (path, size, bytearray())
        return OK

    def _load_app_chunk(self, payload: bytes) -> bytes:
        with self.prime.lock:
            if refused := self._locked_during_upload("LOAD_APP_CHUNK"):
                return refused
            if self.upload is None or self.upload.current is None:
                if self.prime.keyos.defects.has("load-app-chunk-without-a-file-crashes"):
                    raise RuntimeError("LOAD_APP_CHUNK: the open file taken for granted")  # the defect: an unwrap
                self.log("WARN", "LOAD_APP_CHUNK: no open file")
                return ERR
            path, size, data = self.upload.current
            overrun = self.prime.keyos.defects.has("load-app-chunk-overruns-its-size")
            if len(data) + len(payload) > size and not overrun:
                self.log("WARN", f"LOAD_APP_CHUNK: {path} would exceed expected size {size}")
                return ERR
            data += payload
            if len(data) == size or overrun and len(data) > size:
                self.upload.files[path] = bytes(data)
                self.upload.current = None
                self.log("INFO", f"load_app wrote {path}")
        return OK

    def _load_app_end(self, payload: bytes) -> bytes:
        with self.prime.lock:
            defects = self.prime.keyos.defects
            if not defects.has("load-app-end-while-locked") and (refused := self._locked_during_upload("LOAD_APP_END")):
                return refused
            upload, self.upload = self.upload, None
            if upload is None or upload.current is not None and not defects.has("load-app-end-takes-an-incomplete-file"):
                self.log("WARN", "LOAD_APP_END: no active load_app session or a file is incomplete")
                return ERR
            error = self.prime.keyos.install_bundle(upload.app_id, upload.files)
            if error:
                self.log("ERROR", f"LOAD_APP_END: {error}")
                return ERR
            self.log("INFO", f"load_app complete {SIDELOAD_ROOT}/{upload.app_id.hex()}")
        return OK

    def _locked_during_upload(self, what: str) -> bytes | None:
        if self.prime.is_locked():
            self.log("WARN", f"{what}: rejected: device is locked")
            self.upload = None
            return LOCKED
        return None
