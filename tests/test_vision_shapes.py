"""Look-alike glyphs told apart by their shape on the display (hil.vision.shapes): the genuine address passes
on both themes, each look-alike impostor fails, and a glyph too blurred to measure is never decided."""

import dataclasses

import cv2
import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

from hil.vision import ocr, shapes, values
from tests.vision_helpers import FONT_BOLD

MONO = "/usr/share/fonts/truetype/dejavu/DejaVuSansMono.ttf"
ADDRESS = "bc1qcsh8a7f0mdsr47zy6pj04tv4mwdumlfaslcy8n"  # the p2wpkh address of key 4: a 1, two l, a 0, an m


def filmed(text: str, dark: bool, font: str = FONT_BOLD, blur: float = 1.0, above: str = "",
           above_font: str | None = None) -> list[ocr.Line]:
    """`text` drawn in rows of 15 as the review draws an address (under `above`, a larger line such as the
    amount, in `above_font` or the same font), blurred and noisy like a camera's view, then read (and its
    look-alikes told apart)."""
    rows = [(text[i:i + 15], 36, font) for i in range(0, len(text), 15)]
    rows = [(above, 40, above_font or font)] + rows if above else rows
    im = Image.new("L", (480, 60 * len(rows)), 15 if dark else 240)
    d = ImageDraw.Draw(im)
    for n, (row, size, face) in enumerate(rows):
        d.text((20, 30 + 60 * n), row, font=ImageFont.truetype(face, size), fill=235 if dark else 20, anchor="lm")
    g = cv2.GaussianBlur(np.asarray(im, np.float32), (0, 0), blur)
    g = np.clip(g + np.random.default_rng(len(text)).normal(0, 3, g.shape), 0, 255).astype(np.uint8)
    image = cv2.cvtColor(g, cv2.COLOR_GRAY2BGR)
    return ocr.told_apart([ocr.read_line(image, (0, 60 * n + 4, 480, 60 * n + 56)) for n in range(len(rows))])


def verdict(expected: str, lines: list[ocr.Line]) -> str:
    outcome = values.check(expected, lines, "address")
    return outcome.verdict if outcome else "not found"


def swap(text: str, old: str, new: str, after: int = 3) -> str:
    i = text.index(old, after)
    return text[:i] + new + text[i + len(old):]


@pytest.mark.parametrize("dark", [True, False], ids=["dark", "light"])
def test_the_genuine_address_passes_its_1_and_l_told_apart_by_shape(dark):
    lines = filmed(ADDRESS, dark)
    assert verdict(ADDRESS, lines) == "pass"
    told = "".join(s or "." for ln in lines for s in (ln.shapes or ("",) * len(ln.text.replace(" ", ""))))
    assert told[2] == "1" and {told[i] for i, c in enumerate(ADDRESS) if c == "l"} <= {"l", "."}


@pytest.mark.parametrize("dark", [True, False], ids=["dark", "light"])
@pytest.mark.parametrize("shown", [
    swap(ADDRESS, "1", "l", 0),  # the separator drawn as an l
    swap(ADDRESS, "l", "1"),
    swap(ADDRESS, "l", "i"),
    swap(ADDRESS, "0", "o"),
    swap(ADDRESS, "m", "rn"),
    swap(ADDRESS, "s", "x"),  # a plain one-character substitution
], ids=["1-for-l", "l-for-1", "l-for-i", "0-for-o", "rn-for-m", "s-for-x"])
def test_each_look_alike_impostor_fails(shown, dark):
    assert verdict(ADDRESS, filmed(shown, dark)) == "fail", shown


def test_another_font_never_passes_an_impostor():
    """DejaVu Sans Mono draws l with a serif and a tail: its shape proves less, never a false pass."""
    for shown in (swap(ADDRESS, "1", "l", 0), swap(ADDRESS, "l", "1"), swap(ADDRESS, "0", "o")):
        assert verdict(ADDRESS, filmed(shown, True, MONO)) != "pass", shown


NO_BARE_L = "bc1qcvfdspz7jeg6hn4jaaafr30zrge4zflhpqps7a"  # its only l is joined to an f: no bare l on show


def test_a_1_read_surely_elsewhere_tells_the_separator_from_an_l():
    """Nothing shows this font's l, and the separator's 1 is read unsure: a 1 with its flag read surely in the
    amount above shows what this font's 1 is, and the separator drawn as it, its own flag going down to the left,
    is no l. An l shown there still fails, in this font and in one whose l has a flag of its own (DejaVu Sans
    Mono)."""
    assert verdict(NO_BARE_L, filmed(NO_BARE_L, False)) == "inconclusive"
    lines = filmed(NO_BARE_L, False, above="1.82757946 BTC")
    assert verdict(NO_BARE_L, lines) == "pass"
    assert lines[1].shapes[2] == "1" and len(shapes.font([(ln.read, ln.ink) for ln in lines]).ones) == 1
    impostor = swap(NO_BARE_L, "1", "l", 0)
    assert verdict(NO_BARE_L, filmed(impostor, False, above="1.82757946 BTC")) == "fail"
    assert verdict(NO_BARE_L, filmed(impostor, True, MONO, above="1.82757946 BTC")) != "pass"


@pytest.mark.parametrize("dark", [True, False], ids=["dark", "light"])
def test_one_l_misread_surely_as_a_1_decides_nothing(monkeypatch, dark):
    """The amount shows an l drawn with a flag (DejaVu Sans Mono), and the recogniser is sure it is a 1; the
    separator shown as the same l is read unsure. That one 1 decides no glyph whose own flag does not go down
    (an l's serif does not): the impostor never passes."""
    real = ocr._rec

    def misread(gray):
        text, conf, chars, xs = real(gray)
        if text[1:2] == ".":  # the amount: its first glyph read surely as a 1
            return "1" + text[1:], conf, (0.99,) + chars[1:], xs
        if text.startswith("bc"):  # the address's first row: the separator read unsure
            return text, conf, chars[:2] + (0.6,) + chars[3:], xs
        return text, conf, chars, xs
    monkeypatch.setattr(ocr, "_rec", misread)
    lines = filmed(swap(NO_BARE_L, "1", "l", 0), dark, MONO, blur=0.9, above="l.82757946 BTC")
    assert lines[0].read.startswith("1.") and lines[1].read.startswith("bcl")
    assert verdict(NO_BARE_L, lines) != "pass"


@pytest.mark.parametrize("dark", [True, False], ids=["dark", "light"])
@pytest.mark.parametrize("above, above_font", [("1.82757946 BTC", MONO), ("1.82757946 BTC", FONT_BOLD),
                                               ("Send to wallet", FONT_BOLD)],
                         ids=["mono-amount", "sans-amount", "sans-title-with-a-bare-l"])
def test_a_monospaced_address_is_not_decided_by_another_lines_font(above, above_font, dark):
    """A screen may mix fonts: the address in a monospaced one (KeyOS ships one), a title or amount in another.
    Neither a 1 read surely elsewhere nor a bare-stroke l in a title makes a separator shown as an I or an l
    pass; a serifed I is drawn much as a 1 with a foot, so only a glyph with a 1's own flag is taken for one."""
    for shown in (swap(NO_BARE_L, "1", "I", 0), swap(NO_BARE_L, "1", "l", 0)):
        assert verdict(NO_BARE_L, filmed(shown, dark, MONO, above=above, above_font=above_font)) != "pass", shown


def test_each_character_centre_falls_on_its_glyph():
    """The recogniser's columns (`ocr.REC_STRIDE` input pixels each) put each character on its own glyph."""
    text, font = "bc1qz0o9dl7k2", ImageFont.truetype(FONT_BOLD, 36)
    im = Image.new("L", (480, 60), 240)
    ImageDraw.Draw(im).text((20, 30), text, font=font, fill=20, anchor="lm")
    read, _, _, xs = ocr.recognise_chars(cv2.cvtColor(np.asarray(im), cv2.COLOR_GRAY2BGR))
    assert read == text and len(xs) == len(text)
    for i, x in enumerate(xs):  # the glyph's advance: from the end of the text before it to the end of its own
        assert font.getlength(text[:i]) + 20 <= x <= font.getlength(text[:i + 1]) + 20, (text[i], x)


def test_a_code_row_whose_unsure_end_glyph_its_shape_decides_is_read_once(monkeypatch):
    """The second look at a line with an unsure glyph at its end (`ocr.recognise_chars`) is skipped for a code
    row whose shape decides that glyph (an l as a bare stroke), and kept for words (it may find a space)."""
    real, calls = ocr._rec, []

    def unsure_second_glyph(gray):
        text, conf, chars, xs = real(gray)
        calls.append(text)
        return text, conf, chars[:1] + (0.6,) + chars[2:], xs
    monkeypatch.setattr(ocr, "_rec", unsure_second_glyph)
    for text, looks in (("blw9zh7qz3yq8xa", 1), ("Allow Access", 2)):
        calls.clear()
        im = Image.new("L", (480, 60), 240)
        ImageDraw.Draw(im).text((20, 30), text, font=ImageFont.truetype(FONT_BOLD, 36), fill=20, anchor="lm")
        line = ocr.read_line(cv2.cvtColor(np.asarray(im), cv2.COLOR_GRAY2BGR), (0, 2, 480, 58))
        assert line.text.replace(" ", "") == text.replace(" ", "") and len(calls) == looks, (text, calls)


def test_the_evidence_keeps_the_raw_reading_and_the_decided_text():
    line = ocr.Line("bclq", (0, 0, 10, 10), 0.6)
    told = dataclasses.replace(line, text="bc1q", raw=line.read)
    assert told.to_json()["read"] == "bclq" and told.to_json()["text"] == "bc1q" and "read" not in line.to_json()
    assert ocr.told_apart([told])[0].read == "bclq"  # telling apart again starts from the recogniser's reading


def test_a_stroke_that_blur_joined_to_the_next_glyph_is_measured_up_to_its_stem():
    """An l joined to the t after it (blur over the t's crossbar) is one blob: the stroke opening it is measured
    as a bare stroke, so no 1; a 1 there keeps its flag on its free left side, and stays undecided."""
    font = ImageFont.truetype(FONT_BOLD, 36)
    for text, told in (("svdltzye74c", "l"), ("svd1tzye74c", None)):
        im = Image.new("L", (480, 60), 240)
        d = ImageDraw.Draw(im)
        d.text((20, 30), text, font=font, fill=20, anchor="lm")
        x0, x1 = (20 + font.getlength(text[:i]) + font.getlength(text[i]) / 2 for i in (3, 4))
        y = 30 + font.getbbox("x", anchor="lm")[1] + 2
        d.rectangle((x0, y, x1, y + 3), fill=20)  # the join, at the crossbar's height
        image = cv2.cvtColor(cv2.GaussianBlur(np.asarray(im), (0, 0), 1.0), cv2.COLOR_GRAY2BGR)
        line = ocr.read_line(image, (0, 2, 480, 58))
        assert line.text == text and line.ink.glyphs[4] is None  # the t shares the blob: not measured
        decided = shapes.decide(line.ink, 3, text[3])
        assert (decided and decided[0]) == told, (text, decided)


def test_a_glyph_too_blurred_to_measure_stays_unsure():
    lines = filmed(ADDRESS, True, blur=3.5)
    assert verdict(ADDRESS, lines) != "pass"
    ink = lines[0].ink
    if ink is not None and ink.glyphs[2] is not None:  # the separator, if still a glyph of its own
        assert shapes.decide(ink, 2, "1") is None


def test_shapes_rule_out_by_level_and_stroke():
    """The measures themselves, on one clean line: o is x-height, 0 is not; l is a bare stroke, 1 is not."""
    line = filmed("bc1qz0o9dl7k2", True, blur=0.8)[0]
    ink, text = line.ink, line.text.replace(" ", "")
    assert ink is not None and text == "bc1qz0o9dl7k2"
    zero, oh, ell, one = text.index("0"), text.index("o"), text.index("l"), text.index("1")
    assert shapes.ruled_out(ink, zero, "o") and shapes.ruled_out(ink, oh, "0")
    assert shapes.ruled_out(ink, ell, "1") and not shapes.ruled_out(ink, one, "1")
    assert shapes.decide(ink, zero, "0") is None  # 0 or O: no width tells them apart in every font


def test_a_9_is_told_from_g_and_q_by_the_baseline():
    """A 9 sits on the baseline at the digits' height; a g and a q descend (and stay undecided between them)."""
    line = filmed("4.5227g985q7", False)[0]
    ink, text = line.ink, line.text.replace(" ", "")
    assert ink is not None and text == "4.5227g985q7"
    nine, gee, queue = text.index("9"), text.index("g"), text.index("q")
    assert shapes.decide(ink, nine, "9")[0] == "9" and shapes.decide(ink, nine, "g")[0] == "9"
    assert shapes.ruled_out(ink, gee, "9") and shapes.ruled_out(ink, queue, "9")
    assert shapes.decide(ink, gee, "g") is None and shapes.decide(ink, queue, "9") is None
    amount = "4.52270985 BTC"
    assert values.check(amount, filmed(amount, False), "amount").verdict == "pass"
    assert values.check(amount, filmed("4.52270g85 BTC", False), "amount").verdict != "pass"


def test_the_text_shows_what_the_shapes_told():
    """A glyph reads as the look-alike its shape proved: read unsure, or read surely in a word with a digit (a short
    row "l2" read surely as "12"); a sure reading in a word of letters stands (the recogniser knows the word); a
    capital I among lowercase letters and digits is written l."""
    assert ocr.as_told("pz7v9170", (0.99,) * 5 + (0.5,) + (0.99,) * 2, ("",) * 5 + ("l", "", "")) == "pz7v9l70"
    assert ocr.as_told("pz7v9170", (0.99,) * 8, ("",) * 5 + ("l", "", "")) == "pz7v9l70"
    assert ocr.as_told("Bitcoin 12", (0.99,) * 9, ("",) * 5 + ("l", "", "l", "")) == "Bitcoin l2"
    assert ocr.as_told("Iw9zh7 AIIow 12 System Information walIet", (), ()) == \
        "lw9zh7 AIIow 12 System Information wallet"


def test_a_sure_reading_the_shape_contradicts_stays_unsure_in_a_value_check():
    """The text shows the shape's glyph, but a value check takes the recogniser's sure reading that the shape
    contradicts as unsure (the two disagree: neither passes nor fails it alone): an amount's 1 measured
    as a bare stroke is inconclusive; an unsure 1 so measured is an l, shown, and the amount fails."""
    def line(chars):
        read = "1.5 BTC"
        return ocr.Line(ocr.as_told(read, chars, ("l",) + ("",) * 5), (0, 0, 10, 10), 0.9, chars,
                        ("l",) + ("",) * 5, raw=read)
    assert line((0.99,) * 6).text == "l.5 BTC"
    assert values.check("1.5 BTC", [line((0.99,) * 6)], "amount").verdict == "inconclusive"
    assert values.check("1.5 BTC", [line((0.6,) + (0.99,) * 5)], "amount").verdict == "fail"


def test_text_the_display_dims_is_found():
    """A screen behind a prompt's dark overlay: its text is dim, and is read as well as the prompt's."""
    im = Image.new("L", (480, 300), 12)
    d = ImageDraw.Draw(im)
    d.text((240, 60), "Settings", font=ImageFont.truetype(FONT_BOLD, 32), fill=34, anchor="mm")
    d.text((240, 200), "Allow Access?", font=ImageFont.truetype(FONT_BOLD, 36), fill=235, anchor="mm")
    g = cv2.GaussianBlur(np.asarray(im, np.float32), (0, 0), 1.2)
    g = np.clip(g + np.random.default_rng(3).normal(0, 2, g.shape), 0, 255).astype(np.uint8)
    image = cv2.cvtColor(g, cv2.COLOR_GRAY2BGR)
    texts = [ocr.read_line(image, box).text for box in ocr.detect(image)]
    assert texts == ["Settings", "Allow Access?"]


def _specks() -> np.ndarray:
    """Ink only in single pixels (noise on a dark frame): every component is under the least glyph area."""
    g = np.full((30, 120), 20, np.uint8)
    g[::2, ::2] = 230
    return g


def _one_row() -> np.ndarray:
    """A one-pixel-high strip with ink on it: glyphs of no height."""
    g = np.full((1, 120), 20, np.uint8)
    for x in range(5, 120, 15):
        g[0, x:x + 6] = 230
    return g


@pytest.mark.parametrize("gray", [_specks(), _one_row()], ids=["specks-only", "one-row"])
def test_ink_that_is_no_text_is_measured_as_nothing(gray):
    """A device frame is untrusted input: ink with no glyph in it gives no measure, never an exception."""
    text = "xl1oq0z9"
    xs = tuple(7.0 + 15 * i for i in range(len(text)))
    assert shapes.measure(gray, text, (0.99,) * len(text), xs) is None


def test_any_ink_is_measured_or_refused_without_an_exception():
    """Random line crops (noise, bars, specks) and readings of look-alikes: `measure`, `decide` and `font`
    return, whatever the pixels."""
    rng = np.random.default_rng(16)
    for n in range(300):
        h, w = int(rng.integers(1, 40)), int(rng.integers(1, 200))
        if n % 3 == 0:
            g = rng.integers(0, 256, (h, w)).astype(np.uint8)
        else:
            g = np.full((h, w), 20, np.uint8)
            for _ in range(int(rng.integers(0, 30))):
                y, x = int(rng.integers(0, h)), int(rng.integers(0, w))
                g[y:y + int(rng.integers(1, 30)), x:x + int(rng.integers(1, 8))] = 230
        text = "".join(rng.choice(list("1lI|i0oOQD9gqaxz.")) for _ in range(int(rng.integers(1, 12))))
        xs = tuple(sorted(float(x) for x in rng.uniform(-5, w + 5, len(text))))
        ink = shapes.measure(g, text, tuple(float(k) for k in rng.uniform(0.9, 1.0, len(text))), xs)
        if ink is not None:
            font = shapes.font([(text, ink)], True)
            for i, c in enumerate(text):
                shapes.decide(ink, i, c, font)


def short_line(text: str, dark: bool, below: int, blur: float = 1.2) -> ocr.Line:
    """`text` drawn on its own short line, read from a box whose bottom is `below` pixels under the baseline
    (a tight box cuts a descender off)."""
    im = Image.new("L", (480, 80), 15 if dark else 240)
    ImageDraw.Draw(im).text((20, 40), text, font=ImageFont.truetype(FONT_BOLD, 36), fill=235 if dark else 20,
                            anchor="ls")  # the baseline at row 40
    g = cv2.GaussianBlur(np.asarray(im, np.float32), (0, 0), blur)
    g = np.clip(g + np.random.default_rng(len(text)).normal(0, 3, g.shape), 0, 255).astype(np.uint8)
    return ocr.told_apart([ocr.read_line(cv2.cvtColor(g, cv2.COLOR_GRAY2BGR), (10, 10, 200, 40 + below))])[0]


@pytest.mark.parametrize("dark", [True, False], ids=["dark", "light"])
@pytest.mark.parametrize("text", ["eg", "rg", "sg", "gn"])
def test_a_g_whose_descender_is_not_seen_is_never_decided_a_9(text, dark):
    """A short line gives its baseline one sure glyph, and a box cut just under it hides the g's descender: the g
    does not then sit on the baseline as a 9 does (nothing below it is seen), and is never taken for one."""
    line = short_line(text, dark, below=2)
    i = text.index("g")
    decided = line.ink and shapes.decide(line.ink, i, line.ink.chars[i])
    assert not decided or decided[0] != "9", (line.read, decided)
    assert "9" not in line.text
