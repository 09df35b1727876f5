"""The emulated Prime shows KeyOS's dark or light system theme, chosen by seed; QR codes stay dark on
light in both."""

import numpy as np
import pytest
from PIL import Image

from hil.emulator import render
from hil.emulator.build import Build
from hil.emulator.prime import Prime


def lock_screen(seed: int) -> np.ndarray:
    prime = Prime(index=1, seed=seed, build=Build(flavour="development"), boot_seconds=0)
    with prime.lock:
        return np.asarray(prime.framebuffer().convert("RGB")).astype(int)


def test_seeds_choose_the_theme_and_text_keeps_its_contrast():
    dark, light = lock_screen(1), lock_screen(2)
    assert render.theme_for(1) == "dark" and render.theme_for(2) == "light"
    assert np.median(dark) < 60 < 200 < np.median(light)  # mostly dark, mostly light
    for shot in (dark, light):
        assert shot.max() - shot.min() > 200  # ink against paper, in either theme


def test_the_themes_are_keyos_colours(release_1_0_0):
    """Paper and ink of each theme are the colours of KeyOS's own splash of that theme."""
    for name, (paper, ink) in render.THEMES.items():
        splash = np.asarray(Image.open(release_1_0_0 / "blassets" / f"{name}.png").convert("RGB")).astype(int)
        text = splash[370:410, 100:380].reshape(-1, 3)  # the PASSPORT lettering
        assert np.abs(splash[700:760, 10:60].reshape(-1, 3).mean(axis=0) - paper).max() < 40
        extreme = text[np.argmax(np.abs(text - paper).sum(axis=1))]
        assert np.abs(extreme - ink).max() < 12


@pytest.mark.parametrize("theme", sorted(render.THEMES))
def test_a_pasted_qr_code_is_kept_as_it_is(theme):
    canvas = render.Canvas(render.blank())
    qr = Image.new("RGBA", (100, 100), (255, 255, 255, 255))
    qr.paste((0, 0, 0, 255), (10, 10, 40, 40))
    canvas.paste(qr, (190, 200))
    out = np.asarray(canvas.themed(theme))
    assert tuple(out[215, 215, :3]) == (0, 0, 0) and tuple(out[290, 280, :3]) == (255, 255, 255)
    assert tuple(out[5, 5, :3]) != tuple(np.asarray(canvas.image)[5, 5, :3])  # the rest is themed
