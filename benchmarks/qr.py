"""How many animated-QR frames it takes to move a 2 KB PSBT into a camera, against the lower bound.

The lower bound is the fragment count (seqLen): no receiver can finish with fewer parts than
fragments. The ratio frames/seqLen says what the fountain code costs when the camera starts mid-loop
and misses frames. Two paths:
  * frames: the presenter's loop rendered as the presenter renders it (qr.render), JPEG-compressed,
    read by zxing-cpp, with a random start and a share of frames lost (glare, focus, a missed refresh);
  * stream: the real presenter over HTTP, captured as the emulated Prime's camera captures it (30
    captures a second, each integrating the monitor over its exposure, so a code changing mid-exposure
    comes out blended with the next: hil/emulator/shutter.py), decoded by zxing-cpp. The count is of
    display frames, from the first the camera received to the one whose capture completed the UR:
    frames the camera missed or could not read count, as they cost the user time.

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

from hil.emulator.qrcam import center_crop
from hil.emulator.shutter import CAMERA_PERIOD_S, MonitorStream, Shutter
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
    """(display frames shown until the camera completes, seqLen), starting at a random point of the
    presenter's loop (`ur_parts`)."""
    parts = ur_parts(byte_string_ur("psbt", psbt), fragment)
    start, views = rnd.randrange(len(parts)), {}
    dec, shown = URDecoder(), 0
    while not dec.is_complete():
        part = parts[(start + shown) % len(parts)]
        shown += 1
        if shown > limit:
            raise RuntimeError("did not complete")
        if rnd.random() < loss:
            continue
        if part not in views:
            views[part] = camera_view(qr.render(part))
        for symbol in zxingcpp.read_barcodes(views[part]):
            dec.receive_part(symbol.text)
    assert ur_byte_string(dec.result) == psbt
    return shown, UREncoder(byte_string_ur("psbt", psbt), fragment).fountain.seq_len


def stream_run(psbt: bytes, fragment: int, fps: float, rnd: random.Random) -> tuple[int, int]:
    """(display frames until the camera completes, seqLen), the camera joining the loop at a random
    moment with a random phase of its own clock."""
    parts = ur_parts(byte_string_ur("psbt", psbt), fragment)
    seq_len = UREncoder(byte_string_ur("psbt", psbt), fragment).fountain.seq_len
    with Presenter(parts, fps) as presenter:
        time.sleep(rnd.uniform(0, len(parts) / fps))  # the random start point
        stream = MonitorStream(presenter.url + "/stream.mjpg", timeout=5)
        shutter = Shutter(phase=rnd.uniform(0, CAMERA_PERIOD_S))
        dec, first, decoded = URDecoder(), None, (None, [])
        try:
            while not dec.is_complete():
                shown_at, picture, key = stream.read()
                first = shown_at if first is None else first
                for capture in shutter.show(shown_at, picture, key):
                    if capture is not decoded[0]:
                        decoded = capture, zxingcpp.read_barcodes(center_crop(capture))
                    for symbol in decoded[1]:
                        dec.receive_part(symbol.text)
                if (shown_at - first) * fps > 20 * seq_len:
                    raise RuntimeError("the camera did not complete within 20 loops' worth of frames")
        finally:
            stream.close()
    assert ur_byte_string(dec.result) == psbt
    return round((shown_at - first) * fps), seq_len


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
    print("\nreal MJPEG stream (presenter over HTTP -> the emulated Prime's camera, 30 captures/s, exposure 1/30 s"
          " -> zxing-cpp), 9 runs each:")
    for fragment, fps in ((200, 8.0), (200, 15.0)):
        runs = [stream_run(psbt, fragment, fps, rnd) for _ in range(9)]
        seq_len = runs[0][1]
        frames = sorted(r[0] for r in runs)
        print(f"  fragment {fragment}, {fps:g} fps, seqLen {seq_len}: frames {frames}; ratio median "
              f"{statistics.median(frames) / seq_len:.2f}, worst {frames[-1] / seq_len:.2f}")


if __name__ == "__main__":
    main()
