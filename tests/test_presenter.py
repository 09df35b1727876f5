"""The QR presenter over real HTTP on loopback: the page, single frames, and the MJPEG stream read by
OpenCV and decoded by zxing-cpp into a complete UR."""

import urllib.request

import cv2
import numpy as np
import pytest
import zxingcpp

from hil.stimuli.presenter import Presenter, ur_parts
from hil.stimuli.ur import URDecoder, byte_string_ur, ur_byte_string


@pytest.fixture
def presenter():
    p = Presenter()
    p.start("http://127.0.0.1:0")
    yield p
    p.stop()


def get(url: str) -> tuple[str, bytes]:
    with urllib.request.urlopen(url, timeout=5) as r:
        return r.headers["Content-Type"], r.read()


def test_page_and_still_frame(presenter):
    ctype, page = get(presenter.url + "/")
    assert ctype.startswith("text/html") and b'src="stream.mjpg"' in page
    presenter.show(["bitcoin:bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq"])
    ctype, jpeg = get(presenter.url + "/frame.jpg")
    frame = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_GRAYSCALE)
    assert ctype == "image/jpeg" and frame.shape == (480, 480)
    assert zxingcpp.read_barcodes(frame)[0].text == "bitcoin:bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq"
    with pytest.raises(urllib.error.HTTPError):
        get(presenter.url + "/nope")


def test_animated_ur_through_the_mjpeg_stream(presenter):
    psbt = b"psbt\xff" + bytes(range(256)) * 3
    parts = ur_parts(byte_string_ur("psbt", psbt), max_fragment_len=150)
    presenter.show(parts, fps=15)
    assert presenter.frame_count == len(parts) > 1
    cap = cv2.VideoCapture(presenter.url + "/stream.mjpg", cv2.CAP_FFMPEG)
    dec, frames = URDecoder(), 0
    try:
        assert cap.isOpened()
        while not dec.is_complete() and frames < 3 * len(parts):
            ok, frame = cap.read()
            assert ok, "the stream ended"
            frames += 1
            for r in zxingcpp.read_barcodes(frame):
                dec.receive_part(r.text)
    finally:
        cap.release()
    assert ur_byte_string(dec.result) == psbt


def test_bad_addresses_and_rates():
    with pytest.raises(ValueError, match="http://HOST:PORT"):
        Presenter().start("ftp://x:1")
    with pytest.raises(ValueError, match="fps"):
        Presenter(["x"], fps=0)


def test_restart_after_stop_serves_again():
    p = Presenter(["one"])
    first = p.start("127.0.0.1:0")
    p.stop()
    second = p.start("http://127.0.0.1:0")
    try:
        with pytest.raises(RuntimeError, match="already serves"):
            p.start("http://127.0.0.1:0")
        cap = cv2.VideoCapture(second + "/stream.mjpg", cv2.CAP_FFMPEG)
        ok, frame = cap.read()
        cap.release()
        assert first.startswith("http://127.0.0.1:") and ok and zxingcpp.read_barcodes(frame)[0].text == "one"
    finally:
        p.stop()


@pytest.mark.parametrize("size", [600, 2300, 5200])
def test_ur_loop_completes_within_a_round_and_a_quarter_from_any_start(size):
    """A camera that joins anywhere and misses nothing needs seqLen parts from a round's start and
    at most seqLen + seqLen // 4 from anywhere else; each round's mixed parts are new."""
    message = bytes((i * 7 + 3) % 251 for i in range(size))
    parts = ur_parts(byte_string_ur("psbt", message), 200)
    seq_len = int(parts[0].split("/")[1].split("-")[1])
    needed = []
    for start in range(len(parts)):
        dec, shown = URDecoder(), 0
        while not dec.is_complete():
            dec.receive_part(parts[(start + shown) % len(parts)])
            shown += 1
        assert ur_byte_string(dec.result) == message
        needed.append(shown)
    assert needed[0] == seq_len
    assert max(needed) <= seq_len + seq_len // 4 < len(parts)
    mixed = [p for p in parts if int(p.split("/")[1].split("-")[0]) > seq_len]
    assert len(mixed) == len(set(mixed)) == 3 * (seq_len // 4)


def test_rates_above_what_the_primes_camera_can_follow_are_refused():
    with pytest.raises(ValueError, match="at most 15"):
        Presenter(["a", "b"], fps=16)


def test_a_stream_behind_is_sent_every_frame_late_up_to_one_loop():
    p = Presenter(["a", "b", "c"], fps=0.01)  # 100 s a frame: the test runs well inside frame 10
    p._t0 -= 10.5 / 0.01
    gen = p.generation
    assert p.after(None)[0] == (gen, 10)
    (_, tick), jpeg, shown_at = p.after((gen, 8))
    assert tick == 9 and shown_at == pytest.approx(p._t0 + 900) and jpeg == p._jpegs[0]  # late, not lost
    assert p.after((gen, 6))[0] == (gen, 10)  # more than a loop behind: back to the frame up now
    assert p.after((gen - 1, 9))[0] == (gen, 10)  # new content starts at the frame up now
