"""The Bitcoin app's transaction review lays out any address without overlap (taproot wraps to five rows)."""

import numpy as np
from embit import ec, script
from embit.networks import NETWORKS

from hil.emulator import render
from hil.emulator.apps import bitcoin


def text_bands(image, top: int, bottom: int) -> list[tuple[int, int]]:
    """(first, last) pixel rows of each horizontal band of ink between `top` and `bottom`."""
    grey = np.asarray(image.convert("L"))[top:bottom, :]
    inked = (grey < 128).any(axis=1)
    bands, start = [], None
    for y, on in enumerate(inked):
        if on and start is None:
            start = y
        elif not on and start is not None:
            bands.append((top + start, top + y - 1))
            start = None
    return bands


def review_image(address: str):
    canvas = render.Canvas(render.blank())
    bitcoin.draw_review(canvas, {"amount": 1_234_567, "fee": 2_345, "to": address, "outputs": 1})
    return canvas.image


def test_every_review_line_stands_apart_above_the_buttons():
    key = ec.PrivateKey(bytes(range(1, 33))).get_public_key()
    for address in (script.p2wpkh(key).address(NETWORKS["main"]), script.p2tr(key).address(NETWORKS["main"])):
        rows = bitcoin.address_rows(address)
        assert "".join(rows) == address
        # below "To": the address rows, "Fee" and the fee, each its own band of ink, all above the button bar
        bands = text_bands(review_image(address), 295, render.BUTTON_BAR[1])
        assert len(bands) == len(rows) + 2, (address, bands)
