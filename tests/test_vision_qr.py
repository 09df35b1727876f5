"""QR codes on the display through the camera: the bootloader's error screens and an animated UR."""

import io
import itertools

import numpy as np
import pytest
import segno
from PIL import Image

from hil.errors import InfrastructureError
from hil.stimuli.ur import NotUR, URCorrupt, UREncoder, byte_string_ur, ur_byte_string
from hil.vision import qr
from hil.vision.display import Display
from tests.vision_helpers import FilmedScreen

KINDS = ["custom-fw", "fw-error", "pubkey-error", "rec-error", "sys-error", "tamper-error"]


def on_panel(code_image: Image.Image, size: int = 400) -> Image.Image:
    """A QR image drawn in the middle of a white 480x800 panel, the way the bootloader shows it."""
    panel = Image.new("RGBA", (480, 800), "white")
    panel.paste(code_image.convert("RGBA").resize((size, size), Image.NEAREST), ((480 - size) // 2, 200))
    return panel


def qr_image(text: str) -> Image.Image:
    buf = io.BytesIO()
    segno.make(text, error="m", micro=False).save(buf, kind="png", scale=6, border=4)
    return Image.open(io.BytesIO(buf.getvalue()))


@pytest.mark.parametrize("kind", KINDS)
def test_bootloader_error_qr_assets_classify(release_1_0_0, kind):
    asset = Image.open(release_1_0_0 / "blassets" / f"{kind.replace('-', '_')}_qr.png")
    codes = qr.decode(np.asarray(asset.convert("RGB"))[..., ::-1])
    assert [qr.classify_error(c.text) for c in codes] == [kind]


@pytest.mark.parametrize("kind, optics", [("tamper-error", "hard"), ("custom-fw", "default")])
def test_error_screen_through_the_camera(release_1_0_0, kind, optics):
    asset = Image.open(release_1_0_0 / "blassets" / f"{kind.replace('-', '_')}_qr.png")
    assert qr.error_screen(Display(FilmedScreen(on_panel(asset), optics)), timeout=2) == kind


@pytest.mark.parametrize("text", ["https://foundation.xyz/tamper-error/", "http://foundation.xyz/tamper-error",
                                  "https://foundation.xyz.evil/tamper-error", "https://foundation.xyz/other"])
def test_look_alike_links_are_not_error_screens(text):
    assert qr.classify_error(text) is None


def test_other_code_is_not_an_error_screen():
    with pytest.raises(ValueError, match="not bootloader error screens"):
        qr.error_screen(Display(FilmedScreen(on_panel(qr_image("hello")))), timeout=1)


def test_blank_display_times_out_as_broken():
    with pytest.raises(qr.QrTimeout):
        qr.read_display(Display(FilmedScreen(Image.new("RGBA", (480, 800), "white"))), timeout=0.3)


def test_animated_ur_gathered_across_frames():
    payload = bytes(range(256)) * 3
    enc = UREncoder(byte_string_ur("psbt", payload), max_fragment_len=100)
    frames = [on_panel(qr_image(enc.next_part().upper())) for _ in range(enc.fountain.seq_len + 4)]
    cam = FilmedScreen(frames[0], "hard")
    display = Display(cam)
    cycle = itertools.cycle(frames)

    def grab():
        cam.show(next(cycle))
        return display.rectified()[0]

    ur = qr.collect_ur(grab, timeout=30)
    assert ur.type == "psbt" and ur_byte_string(ur) == payload


def test_non_ur_code_in_a_ur_scan_is_broken():
    image = np.asarray(on_panel(qr_image("not a ur")).convert("RGB"))[..., ::-1]
    with pytest.raises(NotUR) as e:
        qr.collect_ur(lambda: image, timeout=2)
    assert isinstance(e.value, InfrastructureError)


def test_corrupt_ur_read_from_a_qr_is_a_device_failure():
    """The QR decodes cleanly (its error correction holds), but the UR in it fails its own CRC:
    that is what the device showed, so the check fails rather than reporting the lab broken."""
    text = UREncoder(byte_string_ur("psbt", bytes(600)), max_fragment_len=100).next_part()
    bad = text[:-1] + ("a" if text[-1] != "a" else "e")  # the last byteword letter: the CRC no longer matches
    image = np.asarray(on_panel(qr_image(bad)).convert("RGB"))[..., ::-1].copy()
    with pytest.raises(URCorrupt, match="checksum mismatch") as e:
        qr.collect_ur(lambda: image, timeout=2)
    assert isinstance(e.value, AssertionError) and not isinstance(e.value, InfrastructureError)


def test_incomplete_ur_times_out():
    enc = UREncoder(byte_string_ur("psbt", bytes(600)), max_fragment_len=100)
    image = np.asarray(on_panel(qr_image(enc.next_part())).convert("RGB"))[..., ::-1].copy()
    with pytest.raises(qr.QrTimeout, match="incomplete"):
        qr.collect_ur(lambda: image, timeout=0.5)
