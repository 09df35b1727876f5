"""The Prime's own camera (OVM7690, frames cropped to 480x480) looking at the lab's QR monitor.

The monitor is the harness's QR presenter: this peripheral reads its MJPEG stream at `qr_display`
(given at start, or a free loopback port announced as the station's `qr_display` for the harness to
bind), captures it as the sensor would (30 captures a second, each over its exposure: shutter.py),
decodes every new capture with zxing-cpp, gathers animated BC-UR parts, and routes each complete
payload as KeyOS's scanner does: by the apps' `qrMatchRules` (UR sub-rules by `ur_type`, QR sub-rules by
length and regex, priority 1-5; several apps at the best priority => the user picks one). The camera
works only while the device is on and unlocked. Simplification: KeyOS scans once the user opens the
scanner; the emulated camera scans whenever the device is unlocked (there is no scanner screen), and
a code that stays in view is delivered once.
"""

from __future__ import annotations

import hashlib
import http.client
import random
import re
import socket
import threading
import tomllib
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import cv2
import numpy as np
import zxingcpp

from hil.emulator.apps import bitcoin
from hil.emulator.shutter import CAMERA_PERIOD_S, MonitorStream, Shutter
from hil.stimuli.ur import URDecoder, URError

if TYPE_CHECKING:
    from hil.emulator.prime import Prime

FRAME = 480
READ_TIMEOUT_S = 2.0
RETRY_S = 0.3
FORGET_AFTER_BLANK_FRAMES = 24  # this many captures (0.8 s) without a code and the same code scans again


@dataclass(frozen=True)
class Scan:
    """A complete scan: a UR (`ur_type` set, `data` its CBOR) or a plain QR (`text` or binary `data`)."""

    ur_type: str | None = None
    data: bytes = b""
    text: str | None = None

    def digest(self) -> bytes:
        return hashlib.sha256(repr((self.ur_type, self.data, self.text)).encode()).digest()


@dataclass(frozen=True)
class SubRule:
    ur_type: str | None = None
    min_len: int | None = None
    max_len: int | None = None
    regex: re.Pattern | None = None

    def matches(self, scan: Scan) -> bool:
        if self.ur_type is not None:
            return scan.ur_type == self.ur_type
        if scan.ur_type is not None or scan.text is None:
            return False
        n = len(scan.text)
        return ((self.min_len is None or n >= self.min_len) and (self.max_len is None or n <= self.max_len)
                and (self.regex is None or self.regex.search(scan.text) is not None))


@dataclass(frozen=True)
class MatchRule:
    app_id: bytes
    rule_id: str
    label: str
    priority: int
    sub_rules: tuple[SubRule, ...]


def parse_rules(app_id: bytes, raw: list[dict]) -> list[MatchRule]:
    """`qrMatchRules` entries of a ManifestV0 (camelCase outside, snake_case sub-rule fields)."""
    rules = []
    for entry in raw:
        priority = entry.get("priority", 3)
        if not (isinstance(priority, int) and 1 <= priority <= 5):
            raise ValueError(f"qrMatchRules {entry.get('id')!r}: priority must be 1-5, not {priority!r}")
        subs = []
        for name, tagged in entry["subRules"].items():
            (kind, fields), = tagged.items()
            if kind == "UR":
                subs.append(SubRule(ur_type=fields["ur_type"]))
            elif kind == "QR":
                pattern = fields.get("regex_pattern")
                subs.append(SubRule(min_len=fields.get("min_len"), max_len=fields.get("max_len"),
                                    regex=re.compile(pattern) if pattern else None))
            else:
                raise ValueError(f"qrMatchRules {entry['id']!r}.{name}: sub-rule must be UR or QR, not {kind!r}")
        label = entry.get("idLocalizations", {}).get("en", entry["id"])
        rules.append(MatchRule(app_id, entry["id"], label, priority, tuple(subs)))
    return rules


RULES = parse_rules(bitcoin.APP_ID, tomllib.loads(bitcoin.QR_MATCH_RULES_TOML)["qrMatchRules"])
"""The rules of the apps that declare qrMatchRules (of the built-in apps, only the Bitcoin Wallet)."""


def route(scan: Scan, rules: list[MatchRule] = RULES) -> list[MatchRule]:
    """The rules `scan` matches at the best (lowest) priority, one per app."""
    hits = [r for r in rules if any(s.matches(scan) for s in r.sub_rules)]
    if not hits:
        return []
    best = min(r.priority for r in hits)
    by_app: dict[bytes, MatchRule] = {}
    for r in hits:
        if r.priority == best:
            by_app.setdefault(r.app_id, r)
    return list(by_app.values())


class Assembler:
    """Turns decoded symbols into complete scans: plain QRs at once, UR parts once all have arrived.
    A scan already delivered is not delivered again while it stays in view."""

    def __init__(self):
        self.decoder = URDecoder()
        self.last: bytes | None = None

    def feed(self, text: str | None, data: bytes) -> tuple[Scan | None, str | None]:
        """(a new complete scan or None, an error line or None)."""
        if text is not None and text[:3].lower() == "ur:":
            try:
                self.decoder.receive_part(text)
            except URError:
                self.decoder = URDecoder()  # another message, or garbage: start over with this part
                try:
                    self.decoder.receive_part(text)
                except URError as e:
                    return None, str(e)
            if not self.decoder.is_complete():
                return None, None
            ur, self.decoder = self.decoder.result, URDecoder()
            scan = Scan(ur_type=ur.type, data=ur.cbor)
        else:
            scan = Scan(text=text, data=data)
        if scan.digest() == self.last:
            return None, None
        self.last = scan.digest()
        return scan, None


def free_loopback_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


def center_crop(frame: np.ndarray, size: int = FRAME) -> np.ndarray:
    """The sensor's square crop, scaled to `size` (the camera server hands apps 480x480)."""
    h, w = frame.shape[:2]
    side = min(h, w)
    y, x = (h - side) // 2, (w - side) // 2
    return cv2.resize(frame[y:y + side, x:x + side], (size, size), interpolation=cv2.INTER_AREA)


class QRCameraPeripheral:
    """Peripheral: endpoint key `qr_display` (the presenter's address this camera watches)."""

    def __init__(self):
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self.prime: Prime | None = None
        self.assembler = Assembler()
        self.frames_seen = 0
        self._blank = 0
        self._decoded: tuple[np.ndarray | None, list] = (None, [])

    def start(self, prime: Prime, qr_display: str | None = None) -> tuple[str, str]:
        self.prime = prime
        self.seed = prime.seed * 1000 + prime.index
        url = (qr_display or free_loopback_url()).rstrip("/")
        if urlsplit(url).scheme != "http":
            raise ValueError(f"qr_display {url!r} must be an http:// address of the QR presenter")
        self.stream = url + "/stream.mjpg"
        self._thread = threading.Thread(target=self._run, name="emu-qrcam", daemon=True)
        self._thread.start()
        return "qr_display", url

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=READ_TIMEOUT_S + 2)

    # ------------------------------------------------------------ the camera loop
    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                self.watch(MonitorStream(self.stream, READ_TIMEOUT_S))
            except (OSError, EOFError, ValueError, http.client.HTTPException):
                pass  # the monitor went dark (presenter stopped) or is not a presenter: look again shortly
            self._stopping.wait(RETRY_S)

    def watch(self, stream: MonitorStream) -> None:
        """Capture `stream` until it ends or the camera stops; each new capture goes to `look`."""
        shutter = Shutter(phase=random.Random(self.seed).random() * CAMERA_PERIOD_S)
        try:
            while not self._stopping.is_set():
                for capture in shutter.show(*stream.read()):
                    self.look(capture)
        finally:
            stream.close()

    def look(self, frame: np.ndarray) -> None:
        """One camera frame: decode while the device is awake and unlocked, then route what completes."""
        prime = self.prime
        with prime.lock:
            if not (prime.powered and prime.screen_on and not prime.booting and not prime.is_locked()):
                return
        self.frames_seen += 1
        if frame is not self._decoded[0]:  # a picture that stays up reads the same: decode it once
            self._decoded = frame, zxingcpp.read_barcodes(center_crop(frame), formats=zxingcpp.BarcodeFormat.QRCode)
        symbols = self._decoded[1]
        self._blank = 0 if symbols else self._blank + 1
        if self._blank >= FORGET_AFTER_BLANK_FRAMES:
            self.assembler.last = None
        for symbol in symbols:
            binary = symbol.content_type == zxingcpp.ContentType.Binary
            scan, error = self.assembler.feed(None if binary else symbol.text, symbol.bytes)
            with prime.lock:
                if error:
                    prime.log(f"WARN:camera: QR scan error: {error}")
                if scan is not None:
                    self.deliver(scan)

    def deliver(self, scan: Scan) -> None:
        """Route a complete scan to its app (caller holds `prime.lock`)."""
        prime = self.prime
        what = f"ur:{scan.ur_type}" if scan.ur_type else f"QR ({len(scan.text or scan.data)} chars)"
        matches = route(scan)
        if not matches:
            prime.log(f"INFO:launcher: scanned {what}: no app handles it")
            prime.ui.show_modal("Unknown QR Code", "No app on this Prime can use this QR code.", ["OK"],
                                lambda _answer: None)
            return
        if len(matches) == 1:
            self._open(matches[0], scan, what)
            return
        by_name = {prime.keyos.apps[m.app_id].name: m for m in matches if m.app_id in prime.keyos.apps}

        def chosen(answer: str | None) -> None:
            if answer in by_name:
                self._open(by_name[answer], scan, what)

        prime.ui.show_modal("Open With", f"Several apps can use this {what}.", [*by_name, "Cancel"], chosen)

    def _open(self, rule: MatchRule, scan: Scan, what: str) -> None:
        prime = self.prime
        result = prime.launch_app(rule.app_id)
        prime.log(f"INFO:launcher: scanned {what}, rule {rule.rule_id!r} -> launch {rule.app_id.hex()}: "
                  f"{result.outcome}")
        screen = prime.app_screens.get(result.pid)
        if screen is not None and hasattr(screen, "receive_scan"):
            screen.receive_scan(rule.rule_id, scan)
            prime.invalidate()
