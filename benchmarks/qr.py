"""How many animated-QR frames it takes to move a 2 KB PSBT into a camera, against the lower bound.

The lower bound is the fragment count (seqLen): no receiver can finish with fewer parts than
fragments. The ratio frames/seqLen says what the fountain code costs when the camera starts mid-loop
and misses frames. Two paths:
  * frames: parts rendered as the presenter renders them (qr.render), JPEG-compressed, read by
    zxing-cpp, with a random start and a share of frames lost (the camera missing a refresh);
  * stream: the real presenter over HTTP read by OpenCV's MJPEG client, as the emulated Prime reads it.

Run: .venv/bin/python benchmarks/qr.py
"""

from __future__ import annotations

import io
import random
import statistics
import time

import cv2
import numpy as np
import zxingcpp
from embit import bip39
from PIL import Image

from hil.stimuli import qr
from hil.stimuli.presenter import Presenter, ur_parts
from hil.stimuli.psbt import build_spend
from hil.stimuli.ur import URDecoder, UREncoder, byte_string_ur, ur_byte_string

MNEMONIC = bip39.mnemonic_from_bytes(bytes(range(16)))


def psbt_2k() -> bytes:
    inputs = 1
    while len(raw := build_spend(MNEMONIC, 100_000, inputs=inputs).serialize()) < 2048:
        inputs += 1
    return raw


def camera_view(image: Image.Image) -> np.ndarray:
    buf = io.BytesIO()
    image.save(buf, format="JPEG", quality=70)
    return cv2.GaussianBlur(cv2.imdecode(np.frombuffer(buf.getvalue(), np.uint8), cv2.IMREAD_GRAYSCALE), (3, 3), 0.8)


def frames_needed(psbt: bytes, fragment: int, loss: float, rnd: random.Random, limit: int = 2000) -> tuple[int, int]:
    """(display frames shown until the camera completes, seqLen), starting at a random point of the loop."""
    enc = UREncoder(byte_string_ur("psbt", psbt), fragment)
    for _ in range(rnd.randrange(enc.fountain.seq_len)):
        enc.next_part()
    dec, shown = URDecoder(), 0
    while not dec.is_complete():
        shown += 1
        part = enc.next_part()
        if shown > limit:
            raise RuntimeError("did not complete")
        if rnd.random() < loss:
            continue
        for symbol in zxingcpp.read_barcodes(camera_view(qr.render(part))):
            dec.receive_part(symbol.text)
    assert ur_byte_string(dec.result) == psbt
    return shown, enc.fountain.seq_len


def stream_run(psbt: bytes, fragment: int, fps: float, rnd: random.Random) -> tuple[int, int, float]:
    """(distinct parts the stream delivered until complete, seqLen, seconds), the camera joining the
    loop at a random moment."""
    parts = ur_parts(byte_string_ur("psbt", psbt), fragment)
    with Presenter(parts, fps) as presenter:
        time.sleep(rnd.uniform(0, len(parts) / fps))
        cap = cv2.VideoCapture(presenter.url + "/stream.mjpg", cv2.CAP_FFMPEG)
        dec, seen, t0 = URDecoder(), set(), time.monotonic()
        try:
            while not dec.is_complete() and time.monotonic() - t0 < 60:
                ok, frame = cap.read()
                if not ok:
                    raise RuntimeError("the presenter stream ended")
                for symbol in zxingcpp.read_barcodes(frame):
                    seen.add(symbol.text)
                    dec.receive_part(symbol.text)
        finally:
            cap.release()
    return len(seen), UREncoder(byte_string_ur("psbt", psbt), fragment).fountain.seq_len, time.monotonic() - t0


def main() -> None:
    psbt = psbt_2k()
    print(f"PSBT: {len(psbt)} bytes (embit, with the non-witness UTXOs wallets attach)\n")
    print(f"{'fragment':>8} {'QR ver':>6} {'loss':>5} {'seqLen':>6} {'frames (median, max of 9)':>27} {'ratio':>6}")
    rnd = random.Random(1)
    for fragment in (100, 200, 400):
        version = qr.symbol(UREncoder(byte_string_ur("psbt", psbt), fragment).next_part()).version
        for loss in (0.0, 0.2, 0.4):
            runs = [frames_needed(psbt, fragment, loss, rnd) for _ in range(9)]
            seq_len = runs[0][1]
            shown = [r[0] for r in runs]
            med = statistics.median(shown)
            print(f"{fragment:>8} {version:>6} {loss:>5.0%} {seq_len:>6} {med:>18.1f}, {max(shown):>6} {med / seq_len:>6.2f}")
    print("\nreal MJPEG stream (presenter over HTTP -> OpenCV -> zxing-cpp):")
    for fragment, fps in ((200, 8.0), (200, 15.0)):
        for _ in range(3):
            parts, seq_len, seconds = stream_run(psbt, fragment, fps, rnd)
            print(f"  fragment {fragment}, {fps:g} fps: {parts} distinct parts for seqLen {seq_len} "
                  f"(ratio {parts / seq_len:.2f}), {seconds:.1f} s vs {seq_len / fps:.1f} s at the bound")


if __name__ == "__main__":
    main()
