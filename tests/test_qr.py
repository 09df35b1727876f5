"""QR rendering for the Prime's camera: never Micro QR, frames of the camera's size, read back by zxing-cpp."""

import pytest
import zxingcpp

from hil.stimuli import qr
from hil.stimuli.ur import UREncoder, byte_string_ur


def test_short_payload_is_not_micro_qr():
    assert not qr.symbol("hi").is_micro


def test_ur_part_renders_in_alphanumeric_mode_and_reads_back():
    part = UREncoder(byte_string_ur("psbt", bytes(range(256)) * 2), 200).next_part()
    assert qr.symbol(part).mode == "alphanumeric"
    frame = qr.render(part)
    assert frame.size == (qr.FRAME_SIZE, qr.FRAME_SIZE) and frame.mode == "L"
    (result,) = zxingcpp.read_barcodes(frame)
    assert result.text.lower() == part


def test_symbol_fills_the_frame():
    frame = qr.render("bitcoin:bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq", size=480)
    xs = [x for x in range(480) if frame.getpixel((x, 240)) < 128]
    assert xs[-1] - xs[0] > 480 * 0.6  # at least 60 % of the width is code


def test_too_dense_for_the_frame_is_refused():
    with pytest.raises(ValueError, match="does not fit"):
        qr.render("X" * 2000, size=100)
