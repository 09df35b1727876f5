"""The usb-debug codec against the exact bytes of keyos.md §5.1 / §9 (os/usb-debug/protocol/src/lib.rs)."""

import struct

import numpy as np
import pytest
from PIL import Image

from hil.link import protocol as p
from hil.link.protocol import Cmd, LaunchStatus, ProtocolError, Status

LOCK_SCREEN_APP = "0x0a000000000000000000000000000000"  # gui-app-lock-screen (keyos.md §2.3)


def test_command_bytes_match_the_table():
    assert {c.name: c.value for c in Cmd} == {
        "SCREENSHOT": 0x01, "SWIPE": 0x02, "POWER_BTN": 0x03, "REBOOT_SAMBA": 0x04, "CLOSE_APP": 0x05,
        "KERNEL_CMD": 0x06, "INPUT_TEXT": 0x07, "GET_VERSION": 0x08, "LAUNCH_APP": 0x09,
        "GET_DEVELOPER_MODE": 0x0A, "LOAD_APP_BEGIN": 0x0B, "LOAD_APP_FILE_BEGIN": 0x0C,
        "LOAD_APP_CHUNK": 0x0D, "LOAD_APP_END": 0x0E, "GET_PROCESS_LIST": 0x0F,
        "GET_ALLOWED_PUBLISHER_COUNT": 0x11, "INSTALL_CERTIFICATE": 0x13, "GET_SYSTEM_TIME": 0x14,
        "SET_SYSTEM_TIME": 0x15}


def test_swipe_payload_is_eleven_bytes_little_endian():
    body = p.swipe(1, 2, 0x0304, 800, 50, 7)
    assert body == bytes.fromhex("02" "0100" "0200" "0403" "2003" "3200" "07")
    assert len(body) - 1 == 11
    assert p.parse_swipe(body[1:]) == (1, 2, 0x0304, 800, 50, 7)


def test_tap_is_a_swipe_with_equal_ends_no_steps_50ms():
    assert p.tap(240, 400) == bytes.fromhex("02" "f000" "9001" "f000" "9001" "3200" "00")


@pytest.mark.parametrize("payload", [bytes(10), bytes(12)])
def test_swipe_decoding_needs_exactly_eleven_bytes(payload):
    with pytest.raises(ProtocolError, match="11 bytes"):
        p.parse_swipe(payload)


@pytest.mark.parametrize("args", [(70000, 0, 0, 0, 0, 0), (0, 0, 0, 0, 0, 256), (-1, 0, 0, 0, 0, 0)])
def test_swipe_values_out_of_range_are_refused(args):
    with pytest.raises(ProtocolError):
        p.swipe(*args)


def test_small_commands():
    assert p.power_btn(False) == b"\x03\x00"
    assert p.power_btn(True) == b"\x03\x01"
    assert p.close_app(0x1234) == b"\x05\x34\x12"
    assert p.kernel_cmd("t") == b"\x06t"
    assert p.input_text("é1") == b"\x07\xc3\xa91"
    assert p.set_system_time(1_700_000_000) == b"\x15" + struct.pack("<Q", 1_700_000_000)
    assert p.request(Cmd.SCREENSHOT) == b"\x01"


def test_kernel_cmd_only_accepts_the_kernel_debug_chars():
    with pytest.raises(ProtocolError):
        p.kernel_cmd("x")
    with pytest.raises(ProtocolError):
        p.kernel_cmd("pt")


def test_launch_request_carries_the_16_byte_app_id():
    assert p.launch_app(LOCK_SCREEN_APP) == b"\x09\x0a" + bytes(15)
    assert p.load_app_begin(bytes(range(16))) == b"\x0b" + bytes(range(16))
    with pytest.raises(ProtocolError, match="16 bytes"):
        p.launch_app("0x0a00")
    with pytest.raises(ProtocolError, match="not hex"):
        p.launch_app("0xzz" + "0" * 30)


def test_launch_reply_pid_and_status():
    assert p.launch_reply(7, LaunchStatus.ALREADY_RUNNING) == b"\x07\x00\x01"
    assert p.parse_launch(b"\x07\x00\x00") == (7, LaunchStatus.LAUNCHED)
    assert p.parse_launch(b"\x00\x00\x02") == (0, LaunchStatus.APP_ID_NOT_FOUND)
    assert p.parse_launch(b"\x00\x00\x0a") == (0, LaunchStatus.KEYOS_VERSION_TOO_OLD)
    # older builds send only the pid
    assert p.parse_launch(b"\x2a\x01") == (0x12A, LaunchStatus.LAUNCHED)


@pytest.mark.parametrize("payload", [b"", b"\x01", b"\x00\x00\x00\x00"])
def test_launch_reply_of_wrong_length_is_refused(payload):
    with pytest.raises(ProtocolError):
        p.parse_launch(payload)


def test_launch_status_5_is_unassigned():
    with pytest.raises(ProtocolError, match="unknown launch status 5"):
        p.parse_launch(b"\x01\x00\x05")


def test_file_begin_is_size_u64_then_path():
    assert p.load_app_file_begin(5, "app.elf") == b"\x0c" + struct.pack("<Q", 5) + b"app.elf"
    assert p.parse_file_begin(struct.pack("<Q", 9) + b"resources/.foundation/icon.raw") == \
        (9, "resources/.foundation/icon.raw")


@pytest.mark.parametrize("path", ["", "/icon.raw", "images/", "images//logo.raw", "../icon.raw",
                                  "images/../icon.raw", "./icon.raw", "a" * 504])
def test_sideload_path_rules(path):
    with pytest.raises(ProtocolError, match="sideload path"):
        p.load_app_file_begin(1, path)


def test_sideload_path_limit_is_503_bytes():
    assert p.check_sideload_path("a" * 503) == b"a" * 503
    assert len(p.load_app_file_begin(0, "a" * 503)) == 512  # one bulk packet: cmd + size + path


def test_file_begin_path_must_be_utf8():
    with pytest.raises(ProtocolError, match="UTF-8"):
        p.parse_file_begin(struct.pack("<Q", 1) + b"\xff.bin")


def test_chunk_and_out_transfer_limits():
    assert len(p.load_app_chunk(bytes(65534))) == 65535
    with pytest.raises(ProtocolError):
        p.load_app_chunk(bytes(65535))
    with pytest.raises(ProtocolError, match="65535"):
        p.input_text("x" * 65535)


def test_install_certificate():
    fp = "ab" * 32
    assert p.install_certificate(fp, b"PEM") == b"\x13" + fp.encode() + b"PEM"
    for bad_fp in ("AB" * 32, "ab" * 31, "zz" * 32):
        with pytest.raises(ProtocolError, match="fingerprint"):
            p.install_certificate(bad_fp, b"PEM")
    for bad_pem in (b"", bytes(16 * 1024 + 1)):
        with pytest.raises(ProtocolError, match="PEM"):
            p.install_certificate(fp, bad_pem)


def test_retired_and_unknown_command_bytes_are_protocol_errors():
    for byte in (0x10, 0x12, 0x16, 0xFF):
        with pytest.raises(ProtocolError, match=f"0x{byte:02x}"):
            p.parse_request(bytes([byte]))
    with pytest.raises(ProtocolError):
        p.parse_request(b"")
    assert p.parse_request(b"\x08") == (Cmd.GET_VERSION, b"")


# ---------------------------------------------------------------- IN frames


def test_response_frames_and_status_bytes():
    assert p.response(Status.OK, b"1.0.0") == b"\x02\x001.0.0"
    assert p.decode_frame(b"\x02\x001.0.0") == p.Response(Status.OK, b"1.0.0")
    assert p.decode_frame(b"\x02\x01") == p.Response(Status.ERR, b"")
    assert p.decode_frame(b"\x02\x02") == p.Response(Status.LOCKED, b"")


def test_unknown_status_byte_is_refused():
    with pytest.raises(ProtocolError, match="unknown status byte 0x03"):
        p.decode_frame(b"\x02\x03")


@pytest.mark.parametrize("frame, reason", [(b"", "empty"), (b"\x02", "status"), (b"\x00abc", "kind 0x00"),
                                           (b"\x7f", "kind 0x7f")])
def test_malformed_frames(frame, reason):
    with pytest.raises(ProtocolError, match=reason):
        p.decode_frame(frame)


def test_frame_limit_is_2_mib():
    assert isinstance(p.decode_frame(b"\x01" + bytes(p.MAX_FRAME - 1)), p.Log)
    with pytest.raises(ProtocolError, match="limit"):
        p.decode_frame(b"\x01" + bytes(p.MAX_FRAME))


def test_log_frame_bytes():
    assert p.log_frame(["INFO: a", "WARN: é"]) == b"\x01INFO: a\x1eWARN: \xc3\xa9\x1e"
    assert p.decode_frame(b"\x01abc\x1e") == p.Log(b"abc\x1e")


def test_log_records_split_across_frames_come_out_whole():
    records = p.LogRecords()
    assert records.feed(b"INFO: one\x1eINFO: tw") == ["INFO: one"]
    assert records.feed(b"o \xc3") == []  # a UTF-8 sequence cut between frames too
    assert records.feed(b"\xa9\x1eINFO: three\x1e") == ["INFO: two é", "INFO: three"]
    assert records.feed(b"") == []


def test_a_record_that_never_ends_is_bounded():
    records = p.LogRecords(max_record=8)
    assert records.feed(b"0123") == []
    assert records.feed(b"4567") == ["01234567"]
    assert records.feed(b"x\x1e") == ["x"]


def test_small_replies():
    assert p.parse_publisher_count(b"\x02\x00\x03\x00") == (2, 3)
    assert p.parse_u64(struct.pack("<Q", 1_753_056_000), "GET_SYSTEM_TIME") == 1_753_056_000
    assert p.parse_bool(b"\x01", "GET_DEVELOPER_MODE") is True
    assert p.parse_text("1.0.0".encode(), "GET_VERSION") == "1.0.0"
    for bad, parse in ((b"\x01\x00", p.parse_publisher_count), (b"\x00" * 7, lambda b: p.parse_u64(b, "t")),
                       (b"", lambda b: p.parse_bool(b, "d")), (b"\xff", lambda b: p.parse_text(b, "v"))):
        with pytest.raises(ProtocolError):
            parse(bad)


# ---------------------------------------------------------------- screenshots


def test_screenshot_payload_is_1_536_000_bytes():
    assert p.SCREENSHOT_BYTES == 1_536_000
    with pytest.raises(ProtocolError, match="1536000"):
        p.decode_screenshot(bytes(1_535_999), "BGRA")


def test_pixel_orders():
    raw = bytes([10, 20, 30, 255]) * (480 * 800)
    assert p.decode_screenshot(raw, "BGRA").getpixel((0, 0)) == (30, 20, 10, 255)
    assert p.decode_screenshot(raw, "RGBA").getpixel((479, 799)) == (10, 20, 30, 255)
    with pytest.raises(ProtocolError, match="pixel order"):
        p.decode_screenshot(raw, "ARGB")


def test_screenshot_round_trip_and_size_check():
    img = Image.new("RGBA", (480, 800), (1, 2, 3, 4))
    img.putpixel((5, 6), (200, 100, 50, 255))
    for order in p.PIXEL_ORDERS:
        assert p.decode_screenshot(p.encode_screenshot(img, order), order).tobytes() == img.tobytes()
    with pytest.raises(ProtocolError, match="480x800"):
        p.encode_screenshot(Image.new("RGBA", (800, 480)), "BGRA")


def test_real_argb8888_splash_decodes_to_the_png(release_1_0_0):
    """blassets/light.raw is the bootloader's ARGB8888 conversion of light.png: BGRA bytes."""
    raw = (release_1_0_0 / "blassets" / "light.raw").read_bytes()
    png = np.asarray(Image.open(release_1_0_0 / "blassets" / "light.png").convert("RGBA"))
    assert len(raw) == p.SCREENSHOT_BYTES
    assert np.array_equal(np.asarray(p.decode_screenshot(raw, "BGRA")), png)
    # and the byte order matters: read as RGBA the picture differs
    assert not np.array_equal(np.asarray(p.decode_screenshot(raw, "RGBA")), png)


# ---------------------------------------------------------------- TCP stream framing


def test_stream_framing_is_u32_le_length():
    assert p.stream_frame(b"\x08") == b"\x01\x00\x00\x00\x08"
    assert p.stream_length(b"\x00\x00\x20\x00") == 2 * 1024 * 1024
    with pytest.raises(ProtocolError, match="limit"):
        p.stream_length(b"\x01\x00\x20\x00")
