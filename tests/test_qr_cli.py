"""`hil qr encode` writes frames a camera decodes back to the payload, and the UR parts as text."""

import base64

import zxingcpp
from PIL import Image
from typer.testing import CliRunner

from hil.machine import scaled
from hil.stimuli.cli import qr_app
from hil.stimuli.ur import URDecoder, ur_byte_string

runner = CliRunner()
PSBT = b"psbt\xff" + bytes(range(256)) * 4


def test_encode_base64_psbt_as_animated_ur(tmp_path):
    src = tmp_path / "tx.psbt"
    src.write_text(base64.b64encode(PSBT).decode())
    out = tmp_path / "frames"
    result = runner.invoke(qr_app, ["encode", str(src), "--ur", "psbt", "--fragment", "100", "-o", str(out)])
    assert result.exit_code == 0, result.output
    parts = (out / "parts.txt").read_text().split()
    pngs = sorted(out.glob("frame-*.png"))
    assert len(pngs) == len(parts) > 1
    dec = URDecoder()
    for png in pngs:
        (r,) = zxingcpp.read_barcodes(Image.open(png))
        dec.receive_part(r.text)
        if dec.is_complete():
            break
    assert dec.result.type == "psbt" and ur_byte_string(dec.result) == PSBT
    # a file of part strings is shown part by part, as written
    again = tmp_path / "again"
    assert runner.invoke(qr_app, ["encode", str(out / "parts.txt"), "-o", str(again)]).exit_code == 0
    assert (again / "parts.txt").read_text().split() == parts


def test_encode_plain_text_is_one_frame(tmp_path):
    result = runner.invoke(qr_app, ["encode", "policy: 2 of 3", "-o", str(tmp_path)])
    assert result.exit_code == 0, result.output
    (r,) = zxingcpp.read_barcodes(Image.open(tmp_path / "frame-0001.png"))
    assert r.text == "policy: 2 of 3" and not (tmp_path / "parts.txt").exists()


def test_unknown_ur_type_is_refused_before_writing(tmp_path):
    out = tmp_path / "none"
    result = runner.invoke(qr_app, ["encode", "x", "--ur", "crypto-seed", "-o", str(out)])
    assert result.exit_code != 0 and "use one of" in result.output and not out.exists()


def test_show_serves_until_interrupted():
    """`hil qr show` in its own process: prints the URL, serves the frame, exits cleanly on Ctrl-C."""
    import signal
    import subprocess
    import sys
    import urllib.request

    import cv2
    import numpy as np

    # Ctrl-C as a terminal delivers it: a shell's background job (a CI runner may start make so) inherits SIGINT
    # ignored, and Python then installs no KeyboardInterrupt for it
    code = ("import signal; signal.signal(signal.SIGINT, signal.default_int_handler); "
            "from hil.stimuli.cli import qr_app; qr_app(['show', 'hello lab', '--address', 'http://127.0.0.1:0'])")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        url = line.split("open ")[1].split("/ ")[0]
        with urllib.request.urlopen(url + "/frame.jpg", timeout=5) as r:
            frame = cv2.imdecode(np.frombuffer(r.read(), np.uint8), cv2.IMREAD_GRAYSCALE)
        assert zxingcpp.read_barcodes(frame)[0].text == "hello lab"
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=scaled(10)) == 0  # ten seconds on an idle machine
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
