"""The KeyOS usb-debug wire format (keyos.md §5.1), shared by the harness and the emulated Prime.

Pure encode/decode, no I/O: a transport moves frame bodies, this module gives them meaning.
OUT frame body: ``[CMD:1][PAYLOAD]``.  IN frame body: ``[0x01][log bytes]`` or
``[0x02][STATUS][payload]``.  Every decoder treats its input as untrusted and raises
:class:`ProtocolError` with the reason instead of guessing.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass

from PIL import Image

from hil.errors import HilError
from hil.profile import Cmd

MAX_OUT = 65535  # one bulk OUT transfer
MAX_FRAME = 2 * 1024 * 1024  # one IN frame
PACKET = 512  # bulk max packet size: an OUT of a multiple of this needs a ZLP
MAX_CHUNK = 65534  # LOAD_APP_CHUNK payload
MAX_SIDELOAD_PATH = 503
MAX_CERT_PEM = 16 * 1024
WIDTH, HEIGHT = 480, 800
SCREENSHOT_BYTES = WIDTH * HEIGHT * 4
LOG_RECORD_END = 0x1E


class ProtocolError(HilError):
    """Bytes that do not follow the usb-debug format."""


class FrameKind(enum.IntEnum):
    LOG = 0x01
    RESPONSE = 0x02


class Status(enum.IntEnum):
    OK = 0x00
    ERR = 0x01
    LOCKED = 0x02


class LaunchStatus(enum.IntEnum):
    LAUNCHED = 0
    ALREADY_RUNNING = 1
    APP_ID_NOT_FOUND = 2
    SIGNATURE_REJECTED = 3
    NO_CERTIFICATE = 4
    NOT_READY = 6
    INTERNAL_ERROR = 7
    CERT_EXPIRED = 8
    CERT_NOT_YET_ACTIVE = 9
    KEYOS_VERSION_TOO_OLD = 10


KERNEL_CMD_CHARS = "himptPscaok"

# Commands whose OK carries no payload, only the ack (os/usb-debug/protocol/src/lib.rs): a payload in
# their answer means the answer belongs to another command (a late or repeated reply).
ACK_ONLY = frozenset({Cmd.SWIPE, Cmd.POWER_BTN, Cmd.REBOOT_SAMBA, Cmd.CLOSE_APP, Cmd.INPUT_TEXT,
                      Cmd.LOAD_APP_BEGIN, Cmd.LOAD_APP_FILE_BEGIN, Cmd.LOAD_APP_CHUNK, Cmd.LOAD_APP_END,
                      Cmd.INSTALL_CERTIFICATE, Cmd.SET_SYSTEM_TIME})


# ---------------------------------------------------------------- requests (host -> device)


def request(cmd: Cmd, payload: bytes = b"") -> bytes:
    body = bytes([cmd]) + payload
    if len(body) > MAX_OUT:
        raise ProtocolError(f"{cmd.name}: request of {len(body)} bytes exceeds the {MAX_OUT}-byte OUT limit")
    return body


def _u16(name: str, v: int) -> bytes:
    if not 0 <= v <= 0xFFFF:
        raise ProtocolError(f"{name}={v} does not fit in u16")
    return struct.pack("<H", v)


def swipe(sx: int, sy: int, ex: int, ey: int, duration_ms: int, steps: int) -> bytes:
    if not 0 <= steps <= 0xFF:
        raise ProtocolError(f"steps={steps} does not fit in u8")
    payload = b"".join(_u16(n, v) for n, v in
                       (("sx", sx), ("sy", sy), ("ex", ex), ("ey", ey), ("duration_ms", duration_ms)))
    return request(Cmd.SWIPE, payload + bytes([steps]))


def tap(x: int, y: int, duration_ms: int = 50) -> bytes:
    """A tap as passport-drive sends it: a SWIPE with equal ends and no drag steps."""
    return swipe(x, y, x, y, duration_ms, 0)


def power_btn(long: bool) -> bytes:
    return request(Cmd.POWER_BTN, bytes([1 if long else 0]))


def close_app(pid: int) -> bytes:
    return request(Cmd.CLOSE_APP, _u16("pid", pid))


def kernel_cmd(char: str) -> bytes:
    if len(char) != 1 or char not in KERNEL_CMD_CHARS:
        raise ProtocolError(f"kernel command {char!r} is not one of {KERNEL_CMD_CHARS}")
    return request(Cmd.KERNEL_CMD, char.encode())


def input_text(text: str) -> bytes:
    return request(Cmd.INPUT_TEXT, text.encode("utf-8"))


def app_id_bytes(app_id: str | bytes) -> bytes:
    """Accepts 16 raw bytes or ``0x`` + 32 hex digits, as manifests spell it."""
    if isinstance(app_id, bytes):
        raw = app_id
    else:
        text = app_id[2:] if app_id.lower().startswith("0x") else app_id
        try:
            raw = bytes.fromhex(text)
        except ValueError:
            raise ProtocolError(f"app id {app_id!r} is not hex") from None
    if len(raw) != 16:
        raise ProtocolError(f"app id must be 16 bytes, got {len(raw)}")
    return raw


def launch_app(app_id: str | bytes) -> bytes:
    return request(Cmd.LAUNCH_APP, app_id_bytes(app_id))


def load_app_begin(app_id: str | bytes) -> bytes:
    return request(Cmd.LOAD_APP_BEGIN, app_id_bytes(app_id))


def check_sideload_path(path: str) -> bytes:
    """The device's path rules for a sideloaded file; returns the encoded path."""
    raw = path.encode("utf-8")
    if not raw or len(raw) > MAX_SIDELOAD_PATH:
        raise ProtocolError(f"sideload path {path!r}: must be 1..{MAX_SIDELOAD_PATH} bytes")
    # os/usb-debug/src/dispatch.rs is_valid_upload_relative_path
    if path.startswith("/") or any(part in ("", ".", "..") for part in path.split("/")):
        raise ProtocolError(f"sideload path {path!r}: must be relative, without empty, '.' or '..' parts")
    return raw


def load_app_file_begin(size: int, path: str) -> bytes:
    return request(Cmd.LOAD_APP_FILE_BEGIN, struct.pack("<Q", size) + check_sideload_path(path))


def load_app_chunk(data: bytes) -> bytes:
    if len(data) > MAX_CHUNK:
        raise ProtocolError(f"chunk of {len(data)} bytes exceeds {MAX_CHUNK}")
    return request(Cmd.LOAD_APP_CHUNK, data)


def install_certificate(fingerprint: str, pem: bytes) -> bytes:
    if len(fingerprint) != 64 or fingerprint != fingerprint.lower() or any(c not in "0123456789abcdef" for c in fingerprint):
        raise ProtocolError("certificate fingerprint must be 64 lowercase hex characters")
    if not pem or len(pem) > MAX_CERT_PEM:
        raise ProtocolError(f"certificate PEM must be 1..{MAX_CERT_PEM} bytes, got {len(pem)}")
    return request(Cmd.INSTALL_CERTIFICATE, fingerprint.encode() + pem)


def set_system_time(unix_secs: int) -> bytes:
    return request(Cmd.SET_SYSTEM_TIME, struct.pack("<Q", unix_secs))


# ---------------------------------------------------------------- frames (device -> host)


@dataclass(frozen=True)
class Response:
    status: Status
    payload: bytes


@dataclass(frozen=True)
class Log:
    data: bytes  # raw log bytes; records end with 0x1E and may continue in the next log frame


class LogRecords:
    """Reassembles 0x1E-terminated log records across log frames.

    Bytes are joined before decoding so a record (or a UTF-8 sequence) cut between two frames comes
    out whole.  A record that never ends is emitted once it reaches ``max_record`` bytes, so a
    device that never sends 0x1E cannot grow host memory without bound.
    """

    def __init__(self, max_record: int = 64 * 1024):
        self.max_record = max_record
        self._pending = b""

    def feed(self, data: bytes) -> list[str]:
        *records, self._pending = (self._pending + data).split(bytes([LOG_RECORD_END]))
        if len(self._pending) >= self.max_record:
            records.append(self._pending)
            self._pending = b""
        return [r.decode("utf-8", "replace") for r in records]


def decode_frame(body: bytes) -> Response | Log:
    if not body:
        raise ProtocolError("empty frame")
    if len(body) > MAX_FRAME:
        raise ProtocolError(f"frame of {len(body)} bytes exceeds the {MAX_FRAME}-byte limit")
    kind = body[0]
    if kind == FrameKind.LOG:
        return Log(body[1:])
    if kind == FrameKind.RESPONSE:
        if len(body) < 2:
            raise ProtocolError("response frame without a status byte")
        try:
            status = Status(body[1])
        except ValueError:
            raise ProtocolError(f"unknown status byte 0x{body[1]:02x}") from None
        return Response(status, body[2:])
    raise ProtocolError(f"unknown frame kind 0x{kind:02x}")


def response(status: Status, payload: bytes = b"") -> bytes:
    return bytes([FrameKind.RESPONSE, status]) + payload


def log_frame(records: list[str]) -> bytes:
    return bytes([FrameKind.LOG]) + b"".join(r.encode("utf-8") + bytes([LOG_RECORD_END]) for r in records)


def parse_launch(payload: bytes) -> tuple[int, LaunchStatus]:
    """pid u16 + status u8; older builds send only the pid (status absent = Launched)."""
    if len(payload) == 2:
        return struct.unpack("<H", payload)[0], LaunchStatus.LAUNCHED
    if len(payload) != 3:
        raise ProtocolError(f"LAUNCH_APP reply must be 2 or 3 bytes, got {len(payload)}")
    pid, code = struct.unpack("<HB", payload)
    try:
        return pid, LaunchStatus(code)
    except ValueError:
        raise ProtocolError(f"unknown launch status {code}") from None


def launch_reply(pid: int, status: LaunchStatus) -> bytes:
    return struct.pack("<HB", pid, status)


def parse_u64(payload: bytes, what: str) -> int:
    if len(payload) != 8:
        raise ProtocolError(f"{what} must be 8 bytes, got {len(payload)}")
    return struct.unpack("<Q", payload)[0]


def parse_text(payload: bytes, what: str) -> str:
    try:
        return payload.decode("utf-8")
    except UnicodeDecodeError:
        raise ProtocolError(f"{what} reply is not UTF-8") from None


def parse_version(payload: bytes) -> str:
    """GET_VERSION: the KeyOS version as UTF-8 text (``dispatch.rs``), printable and non-empty."""
    text = parse_text(payload, "GET_VERSION")
    if not text or not text.isprintable():
        raise ProtocolError(f"GET_VERSION reply {text[:40]!r} is not a version string")
    return text


def parse_bool(payload: bytes, what: str) -> bool:
    if len(payload) != 1:
        raise ProtocolError(f"{what} reply must be 1 byte, got {len(payload)}")
    return payload[0] != 0


def parse_publisher_count(payload: bytes) -> tuple[int, int]:
    if len(payload) != 4:
        raise ProtocolError(f"GET_ALLOWED_PUBLISHER_COUNT reply must be 4 bytes, got {len(payload)}")
    return struct.unpack("<HH", payload)


def parse_request(body: bytes) -> tuple[Cmd, bytes]:
    """Device side: split an OUT frame, refusing unknown or retired command bytes."""
    if not body:
        raise ProtocolError("empty request")
    try:
        return Cmd(body[0]), body[1:]
    except ValueError:
        raise ProtocolError(f"unknown command byte 0x{body[0]:02x}") from None


def parse_swipe(payload: bytes) -> tuple[int, int, int, int, int, int]:
    if len(payload) != 11:
        raise ProtocolError(f"SWIPE payload must be 11 bytes, got {len(payload)}")
    return struct.unpack("<HHHHHB", payload)


def parse_file_begin(payload: bytes) -> tuple[int, str]:
    if len(payload) < 9:
        raise ProtocolError("LOAD_APP_FILE_BEGIN payload too short")
    size = struct.unpack("<Q", payload[:8])[0]
    try:
        path = payload[8:].decode("utf-8")
    except UnicodeDecodeError:
        raise ProtocolError("sideload path is not UTF-8") from None
    check_sideload_path(path)
    return size, path


# ---------------------------------------------------------------- screenshots

# A screenshot is 480x800 pixels of 4 bytes.  The hardware sends its ARGB8888 framebuffer as
# little-endian words, i.e. bytes B,G,R,A; KeyOS's simulator sends R,G,B,A.  Which one a device
# sends is a device-profile setting (``display.screenshot_order``).
PIXEL_ORDERS = ("BGRA", "RGBA")


def _check_order(order: str) -> None:
    if order not in PIXEL_ORDERS:
        raise ProtocolError(f"pixel order {order!r} is not one of {PIXEL_ORDERS}")


def decode_screenshot(payload: bytes, order: str) -> Image.Image:
    """The SCREENSHOT payload as an RGBA image."""
    _check_order(order)
    if len(payload) != SCREENSHOT_BYTES:
        raise ProtocolError(f"SCREENSHOT reply must be {SCREENSHOT_BYTES} bytes, got {len(payload)}")
    return Image.frombuffer("RGBA", (WIDTH, HEIGHT), payload, "raw", order, 0, 1).copy()


def encode_screenshot(image: Image.Image, order: str) -> bytes:
    """Device side: an RGBA 480x800 image as the SCREENSHOT payload."""
    _check_order(order)
    if image.size != (WIDTH, HEIGHT):
        raise ProtocolError(f"screen image must be {WIDTH}x{HEIGHT}, got {image.size[0]}x{image.size[1]}")
    return image.convert("RGBA").tobytes("raw", order)


# ---------------------------------------------------------------- stream framing (TCP)

# KeyOS's simulator carries the same bodies over TCP, each preceded by its u32 LE length
# (os/usb-debug/protocol/src/stream.rs).  A length over MAX_FRAME is refused before allocating.
STREAM_HEADER = struct.Struct("<I")


def stream_frame(body: bytes) -> bytes:
    if len(body) > MAX_FRAME:
        raise ProtocolError(f"frame of {len(body)} bytes exceeds the {MAX_FRAME}-byte limit")
    return STREAM_HEADER.pack(len(body)) + body


def stream_length(header: bytes) -> int:
    (length,) = STREAM_HEADER.unpack(header)
    if length > MAX_FRAME:
        raise ProtocolError(f"frame length {length} exceeds the {MAX_FRAME}-byte limit")
    return length
