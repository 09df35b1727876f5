"""The TCP transport and the device client against a scripted fake device (bad input included)."""

import socket
import struct
import threading
import time

import pytest
from PIL import Image

from hil.errors import InfrastructureError
from hil.link import protocol as p
from hil.link.client import DeviceError, DeviceLocked, LaunchResult, PrimeClient, ResponseTimeout
from hil.link.protocol import LaunchStatus, Status
from hil.link.tcp import TcpTransport
from hil.link.transport import LinkClosed

from fake_device import ScriptedDevice, frames, ok


@pytest.fixture
def device():
    made = []

    def make(handler, timeout=2.0, stall_timeout=2.0, frame_timeout=30.0, pixel_order="BGRA"):
        dev = ScriptedDevice(handler)
        made.append(dev)
        client = PrimeClient(TcpTransport("127.0.0.1", dev.port, stall_timeout=stall_timeout,
                                          frame_timeout=frame_timeout),
                             pixel_order=pixel_order, home_button=(100, 910), timeout=timeout)
        client.open()
        made.append(client)
        return dev, client

    yield make
    for thing in reversed(made):
        (thing.close if isinstance(thing, PrimeClient) else thing.stop)()


def test_version_round_trip(device):
    dev, prime = device(lambda body: ok(b"1.0.0"))
    assert prime.version() == "1.0.0"
    assert dev.requests == [b"\x08"]


def test_tap_home_and_power(device):
    dev, prime = device(lambda body: ok())
    prime.tap(240, 400)
    prime.home()
    prime.press_power(long=False)
    assert dev.requests == [p.tap(240, 400), p.tap(100, 910), b"\x03\x00"]


def test_log_frames_before_a_response_are_queued_in_order(device):
    def handler(body):
        return frames(p.log_frame(["INFO: first"]) + b"INFO: sec", b"\x01ond\x1e",
                      p.response(Status.OK, b"1.0.0"), b"\x01INFO: after\x1e")
    dev, prime = device(handler)
    assert prime.version() == "1.0.0"
    assert list(prime.logs(timeout=0.3)) == ["INFO: first", "INFO: second", "INFO: after"]


def test_err_and_locked_are_distinct_and_name_device_and_command(device):
    answers = iter([frames(p.response(Status.ERR)), frames(p.response(Status.LOCKED)), ok(b"1.0.0")])
    dev, prime = device(lambda body: next(answers))
    with pytest.raises(DeviceError) as err:
        prime.kernel_cmd("p")
    assert f"tcp:127.0.0.1:{dev.port}" in str(err.value) and "KERNEL_CMD" in str(err.value)
    with pytest.raises(DeviceLocked) as locked:
        prime.screenshot()
    assert locked.value.command == "SCREENSHOT" and not isinstance(locked.value, DeviceError)
    assert prime.version() == "1.0.0"  # a refusal is an answer: the link stays up


def test_launch_returns_a_typed_result(device):
    answers = iter([ok(b"\x05\x00\x00"), ok(b"\x00\x00\x02"), ok(b"\x09\x00")])
    dev, prime = device(lambda body: next(answers))
    assert prime.launch_app("0x" + "11" * 16) == LaunchResult(5, LaunchStatus.LAUNCHED)
    assert prime.launch_app("0x" + "22" * 16).status is LaunchStatus.APP_ID_NOT_FOUND
    assert prime.launch_app(bytes(16)) == LaunchResult(9, LaunchStatus.LAUNCHED)


def test_screenshot_uses_the_profile_pixel_order(device):
    img = Image.new("RGBA", (480, 800), (200, 100, 50, 255))
    dev, prime = device(lambda body: ok(p.encode_screenshot(img, "BGRA")))
    shot = prime.screenshot()
    assert shot.size == (480, 800) and shot.getpixel((10, 10)) == (200, 100, 50, 255)


def test_small_queries(device):
    replies = {0x0A: b"\x01", 0x0F: b"PID NAME\n1 kernel", 0x11: b"\x01\x00\x02\x00",
               0x14: struct.pack("<Q", 1_764_000_000)}
    dev, prime = device(lambda body: ok(replies.get(body[0], b"")))
    assert prime.developer_mode() is True
    assert prime.process_list().startswith("PID")
    assert prime.publisher_count() == (1, 2)
    assert prime.system_time() == 1_764_000_000
    prime.set_system_time(1_764_000_001)
    assert dev.requests[-1] == b"\x15" + struct.pack("<Q", 1_764_000_001)


def test_sideload_sends_the_load_app_sequence(device, tmp_path):
    dev, prime = device(lambda body: ok())
    (tmp_path / "resources").mkdir()
    (tmp_path / "app.elf").write_bytes(b"E" * 70000)
    (tmp_path / "resources" / "icon.raw").write_bytes(b"")
    prime.sideload("0x" + "ab" * 16, tmp_path)
    assert [r[0] for r in dev.requests] == [0x0B, 0x0C, 0x0D, 0x0D, 0x0C, 0x0E]
    assert dev.requests[1] == p.load_app_file_begin(70000, "app.elf")
    assert len(dev.requests[2]) == 65535 and len(dev.requests[3]) == 1 + 70000 - 65534
    assert dev.requests[4] == p.load_app_file_begin(0, "resources/icon.raw")


def test_sideload_with_a_bad_path_sends_nothing(device):
    dev, prime = device(lambda body: ok(b"1.0.0"))
    with pytest.raises(p.ProtocolError, match="sideload path"):
        prime.sideload(bytes(16), {"app.elf": b"x", "../evil": b"y"})
    assert prime.version() == "1.0.0" and dev.requests == [b"\x08"]


# ---------------------------------------------------------------- bad input: the link closes, loudly


def assert_closed(prime, exc, *words):
    assert isinstance(exc, LinkClosed) and isinstance(exc, InfrastructureError)
    for w in (prime.device, *words):
        assert w in str(exc)
    assert not prime.transport.is_open
    with pytest.raises(LinkClosed, match="link is closed"):
        prime.version()


def test_unknown_status_byte_closes_the_link(device):
    dev, prime = device(lambda body: frames(b"\x02\x07"))
    with pytest.raises(LinkClosed) as e:
        prime.version()
    assert_closed(prime, e.value, "GET_VERSION", "unknown status byte 0x07")


def test_garbage_frame_kind_closes_the_link(device):
    dev, prime = device(lambda body: frames(b"\xde\xad\xbe\xef"))
    with pytest.raises(LinkClosed) as e:
        prime.screenshot()
    assert_closed(prime, e.value, "SCREENSHOT", "garbage")


def test_oversized_length_is_refused_before_reading(device):
    dev, prime = device(lambda body: struct.pack("<I", p.MAX_FRAME + 1) + b"\x02\x00")
    with pytest.raises(LinkClosed) as e:
        prime.version()
    assert_closed(prime, e.value, "GET_VERSION", "limit")


def test_truncated_frame_then_close(device):
    def cut_frame_and_hang_up(body):
        dev.conn.sendall(struct.pack("<I", 100) + b"\x02\x00abc")

    dev, prime = device(cut_frame_and_hang_up)
    with pytest.raises(LinkClosed) as e:
        prime.version()
    assert_closed(prime, e.value, "GET_VERSION", "mid-frame")


def test_device_that_stops_mid_frame(device):
    dev, prime = device(lambda body: struct.pack("<I", p.SCREENSHOT_BYTES + 2) + b"\x02\x00" + bytes(1000),
                        stall_timeout=0.3)
    t0 = time.monotonic()
    with pytest.raises(LinkClosed) as e:
        prime.screenshot()
    assert time.monotonic() - t0 < 3
    assert_closed(prime, e.value, "SCREENSHOT", "stopped sending mid-frame")


def test_slow_drip_frame_hits_the_frame_deadline(device):
    """One byte every 50 ms never trips the 0.3 s stall limit; the whole-frame limit ends it."""
    def drip(body):
        try:
            dev.conn.sendall(struct.pack("<I", 1000))
            for _ in range(1000):
                dev.conn.sendall(b"\x02")
                time.sleep(0.05)
        except OSError:
            pass  # the client gave up and closed

    dev, prime = device(drip, stall_timeout=0.3, frame_timeout=0.6)
    t0 = time.monotonic()
    with pytest.raises(LinkClosed) as e:
        prime.version()
    assert time.monotonic() - t0 < 3
    assert_closed(prime, e.value, "GET_VERSION", "frame not complete within 0.6 s", "of 1000 bytes arrived")


def chatter(dev, answer: bytes = b""):
    """A handler: send ``answer``, then a log frame every 20 ms until the client hangs up (10 s at most)."""
    def handler(body):
        try:
            dev[0].conn.sendall(answer)
            for i in range(500):
                dev[0].conn.sendall(frames(p.log_frame([f"INFO: tick {i}"])))
                time.sleep(0.02)
        except OSError:
            pass
    return handler


def test_log_chatter_does_not_extend_the_response_timeout(device):
    holder = []
    dev, prime = device(chatter(holder), timeout=0.3)
    holder.append(dev)
    t0 = time.monotonic()
    with pytest.raises(ResponseTimeout) as e:
        prime.version()
    assert time.monotonic() - t0 < 1.5
    assert_closed(prime, e.value, "GET_VERSION", "no response within 0.3 s")


def test_logs_end_at_their_deadline_while_the_device_keeps_logging(device):
    holder = []
    dev, prime = device(chatter(holder, ok(b"1.0.0")))
    holder.append(dev)
    assert prime.version() == "1.0.0"
    t0 = time.monotonic()
    records = list(prime.logs(timeout=0.3))
    assert time.monotonic() - t0 < 1.5
    assert records[:2] == ["INFO: tick 0", "INFO: tick 1"] and prime.transport.is_open


def test_wrong_sized_screenshot_is_malformed(device):
    dev, prime = device(lambda body: ok(bytes(100)))
    with pytest.raises(LinkClosed) as e:
        prime.screenshot()
    assert_closed(prime, e.value, "SCREENSHOT", "1536000")


def test_no_response_times_out_and_closes(device):
    dev, prime = device(lambda body: b"", timeout=0.3)
    t0 = time.monotonic()
    with pytest.raises(ResponseTimeout) as e:
        prime.version()
    assert 0.25 < time.monotonic() - t0 < 3
    assert_closed(prime, e.value, "GET_VERSION", "no response within 0.3 s")


def test_peer_closing_between_frames(device):
    dev, prime = device(lambda body: None)
    with pytest.raises(LinkClosed) as e:
        prime.version()
    assert_closed(prime, e.value, "GET_VERSION", "closed the connection")


def test_unsolicited_response_while_following_logs(device):
    dev, prime = device(lambda body: ok(b"1.0.0") + frames(p.response(Status.OK)))
    prime.version()
    with pytest.raises(LinkClosed) as e:
        list(prime.logs(timeout=1))
    assert_closed(prime, e.value, "logs", "no command outstanding")


def test_logs_end_after_quiet_timeout(device):
    dev, prime = device(lambda body: ok())
    t0 = time.monotonic()
    assert list(prime.logs(timeout=0.2)) == []
    assert time.monotonic() - t0 < 2 and prime.transport.is_open


def test_connect_refused_names_the_device():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    with pytest.raises(LinkClosed, match=f"tcp:127.0.0.1:{port}: cannot connect"):
        TcpTransport("127.0.0.1", port).open()


@pytest.mark.parametrize("call,answer", [
    (lambda prime: prime.tap(1, 1), ok(b"\x05\x00\x00")),  # a LAUNCH_APP answer met by SWIPE, whose ack is empty
    (lambda prime: prime.version(), ok(b"\x05\x00\x00")),  # ... met by GET_VERSION, whose answer is text
], ids=["ack", "version"])
def test_an_answer_that_cannot_belong_to_the_command_closes_the_link(device, call, answer):
    dev, prime = device(lambda body: answer)
    with pytest.raises(LinkClosed):
        call(prime)
    assert not prime.transport.is_open


def test_a_slow_drip_cannot_stretch_the_command_deadline(device):
    """One byte every 50 ms trips neither the stall limit nor the 30 s frame limit: the command's own
    deadline ends it."""
    def drip(body):
        try:
            dev.conn.sendall(struct.pack("<I", 1000))
            for _ in range(1000):
                dev.conn.sendall(b"\x02")
                time.sleep(0.05)
        except OSError:
            pass  # the client gave up and closed

    dev, prime = device(drip, timeout=1.0, stall_timeout=0.3, frame_timeout=30.0)
    t0 = time.monotonic()
    with pytest.raises(LinkClosed) as e:
        prime.version()
    assert time.monotonic() - t0 < 10
    assert_closed(prime, e.value, "GET_VERSION", "not complete by the command's deadline")


def test_per_command_limits_come_from_the_profile(device):
    """LOAD_APP_END may take 15 s on a unit (passport-drive load_app.rs); other commands keep theirs."""
    from hil.profile import profile_named

    limits = profile_named("prime-rev-b").link.command_limits_s
    assert limits["LOAD_APP_END"] == 15 and limits["LOAD_APP_CHUNK"] == 10
    slow_end = threading.Event()

    def handler(body):
        if body[0] == p.Cmd.LOAD_APP_END:
            slow_end.wait(0.6)  # longer than the 0.3 s default, inside LOAD_APP_END's own limit
        return ok()

    dev, prime = device(handler, timeout=0.3)
    prime.limits = {"LOAD_APP_END": 5.0}
    prime.sideload(bytes(16), {"app.elf": b"x"})
    assert dev.requests[-1] == bytes([p.Cmd.LOAD_APP_END])


def test_log_backlog_is_bounded_in_bytes_and_counts_what_it_drops(device):
    record = "INFO: " + "x" * 1000

    def flood(body):
        return frames(*[p.log_frame([record] * 100)] * 30, p.response(Status.OK, b"1.0.0"))

    dev, prime = device(flood)
    prime.max_log_bytes = 200_000
    assert prime.version() == "1.0.0"
    kept = list(prime.logs(timeout=0))
    assert 0 < sum(map(len, kept)) <= 200_000
    assert prime.dropped_log_records == 3000 - len(kept)
