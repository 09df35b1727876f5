"""Domain-aware checks: look-alikes resolved by alphabet and checksum, never by similarity, and every
impostor of an address fails (hil.vision.values)."""

import pytest

from hil.vision import values
from hil.vision.ocr import Line
from hil.vision.values import Glyph, check_amount, check_code, check_words, impostors

BECH32 = "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4"  # BIP173's example
TAPROOT = "bc1p5d7rjq7g6rdk2yhzks9smlaqtedr4dekq08ge8ztwac72sfr9rusxg3297"  # bech32m, BIP86's first
BASE58 = "1BvBMSEYstWetqTFn5Au4m4GFg7xJaNVN2"


def read(text: str, conf: float = 0.99, weak: dict[int, float] | None = None) -> list[list[Glyph]]:
    """A display showing `text` in rows of 14, read with `conf` (position -> confidence in `weak`)."""
    g = [Glyph(c, (weak or {}).get(i, conf)) for i, c in enumerate(text)]
    return [g[i:i + 14] for i in range(0, len(g), 14)]


@pytest.mark.parametrize("address", [BECH32, TAPROOT, BASE58])
def test_an_address_read_exactly_passes(address):
    assert check_code(address, [[Glyph(c, 0.99) for c in "To"]] + read(address)).verdict == "pass"


def test_an_unsure_look_alike_outside_the_alphabet_is_inconclusive_and_a_sure_one_fails():
    i = BECH32.index("0")
    shown = BECH32[:i] + "O" + BECH32[i + 1:]  # "O" is no bech32 character
    # only the expected address fits, yet the display may show the "O" itself: never a pass
    assert check_code(BECH32, read(shown, weak={i: 0.6})).verdict == "inconclusive"
    assert check_code(BECH32, read(shown)).verdict == "fail"  # read sure: the display shows an "O"
    j = BASE58.index("1")
    shown = BASE58[:j] + "l" + BASE58[j + 1:]  # "l" is no base58 character: only "1" fits
    assert check_code(BASE58, read(shown, weak={j: 0.4})).verdict == "inconclusive"
    k = BECH32.index("w")
    shown = BECH32[:i] + "O" + BECH32[i + 1:k] + "x" + BECH32[k + 1:]
    assert check_code(BECH32, read(shown, weak={i: 0.6})).verdict == "fail"  # no resolution is valid


def test_a_character_with_look_alikes_counts_only_when_read_surely():
    i, k = BECH32.index("0"), BECH32.index("w")  # "0" has look-alikes (o, O); "w" has none
    assert check_code(BECH32, read(BECH32, weak={i: 0.8})).verdict == "inconclusive"
    assert check_code(BECH32, read(BECH32, weak={k: 0.8})).verdict == "pass"


@pytest.mark.parametrize("address", [BECH32, TAPROOT, BASE58])
def test_a_look_alike_impostor_read_unsure_either_way_never_passes(address):
    """The display shows a look-alike in place of a character; OCR reads the look-alike unsure, or the
    expected character unsure: neither is a pass."""
    code = values.code_of(address)
    for imp in impostors(address):
        if len(imp) != len(address):
            continue
        diff = [i for i, (a, b) in enumerate(zip(imp, address)) if a != b]
        if len(diff) != 1 or address[diff[0]] not in values.LOOKALIKES.get(imp[diff[0]], ""):
            continue
        i = diff[0]
        for glyphs in (read(imp, weak={i: 0.6}), read(address, weak={i: 0.6})):
            assert check_code(address, glyphs).verdict != "pass", (imp, code.name)


def test_an_in_alphabet_misreading_is_never_forgiven():
    i = BECH32.index("5")
    shown = BECH32[:i] + "s" + BECH32[i + 1:]  # "s" is a bech32 character: a different address, not a confusion
    assert check_code(BECH32, read(shown, weak={i: 0.3})).verdict == "fail"


def test_low_confidence_on_a_matching_character_is_inconclusive():
    assert check_code(BECH32, read(BECH32, weak={10: 0.2})).verdict == "inconclusive"


@pytest.mark.parametrize("address", [BECH32, BASE58])
def test_impostors_fail_never_pass_nor_inconclusive(address):
    """A sample of the adversarial set (the benchmark runs all of it): each one FAILED."""
    sample = impostors(address)[::7]
    assert len(sample) > 100
    verdicts = {v: check_code(address, read(v)).verdict for v in sample}
    assert {v for v, verdict in verdicts.items() if verdict != "fail"} == set()


def test_impostors_cover_the_look_alikes():
    imp = set(impostors(BECH32))
    assert BECH32.replace("0", "o", 1) in imp and BECH32.replace("l", "1", 1) not in imp  # no "l" in it
    assert BECH32.upper() not in imp  # bech32 is case-insensitive: the same address
    assert "1BvBMSEYstWetqTFn5Au4rn4GFg7xJaNVN2" in set(impostors(BASE58))  # m -> rn


def test_amounts_by_digits_and_unit():
    def row(text, weak=None):
        return [[Glyph(c, (weak or {}).get(i, 0.99)) for i, c in enumerate(text)]]
    assert check_amount("0.01250000 BTC", row("0.0125 0000 BTC")).verdict == "pass"
    assert check_amount("1,000,000 sats", row("1 000 000 sats")).verdict == "pass"
    assert check_amount("0.5 BTC", row("10.5 BTC")).verdict == "fail"
    assert check_amount("0.5 BTC", row("0.55 BTC")).verdict == "fail"
    assert check_amount("0.5 BTC", row("0.5 sats")) is None  # another unit: not this amount at all
    assert check_amount("0.5 BTC", row("O.5 BTC", {0: 0.5})).verdict == "inconclusive"  # it may show an O
    assert check_amount("0.5 BTC", row("0.5 BTC", {0: 0.8})).verdict == "inconclusive"  # 0 unsure: O? o?
    assert check_amount("0.5 BTC", row("O.5 BTC")).verdict == "fail"  # sure of the "O": it is shown
    with pytest.raises(ValueError, match="not an amount"):
        values.parse_amount("five BTC")


def test_bip39_words_use_the_word_list():
    def row(text, weak=None):
        return [[Glyph(c, (weak or {}).get(i, 0.99)) for i, c in enumerate(text)]]
    assert check_words("abandon ability", row("abandon abi1ity", {11: 0.5})).verdict == "inconclusive"
    assert check_words("abandon ability", row("abandon abiIity")).verdict == "pass"  # I and l: one stroke
    assert check_words("abandon ability", row("abandon abi1ity")).verdict == "fail"
    assert check_words("abandon ability", row("abandon able")).verdict == "fail"
    assert check_words("not bip words", row("not bip words")) is None  # no list: matched exactly elsewhere


def test_pin_and_hex_use_their_alphabets():
    assert check_code("123456", read("l23456", weak={0: 0.5})).verdict == "inconclusive"
    assert check_code("123456", read("123457")).verdict == "fail"
    assert check_code("deadbeef00", read("deadbeef00")).verdict == "pass"
    assert check_code("deadbeef00", read("deadbeefO0", weak={8: 0.4})).verdict == "inconclusive"
    assert check_code("deadbeef00", read("deadbeefg0")).verdict == "fail"


def test_check_reads_ocr_lines_with_their_character_confidences():
    rows = [BECH32[i:i + 14] for i in range(0, len(BECH32), 14)]
    lines = [Line(t, (0, 40 * i, 480, 40 * i + 30), 0.95, tuple([0.99] * len(t))) for i, t in enumerate(rows)]
    assert values.check(BECH32, lines, "address").verdict == "pass"


@pytest.mark.parametrize("glared, verdict", [("title", "pass"), ("body", "inconclusive")])
def test_only_glare_near_the_value_makes_it_inconclusive(glared, verdict):
    import numpy as np

    from hil.vision.display import REGIONS, Screen, judge
    from hil.vision.match import TextKind

    rows = [BECH32[i:i + 14] for i in range(0, len(BECH32), 14)]
    lines = [Line(t, (10, 300 + 40 * i, 470, 330 + 40 * i), 0.99) for i, t in enumerate(rows)]
    glare = {name: 0.5 if name == glared else 0.0 for name in REGIONS}
    screen = Screen(np.zeros((800, 480, 3), np.uint8), lines, REGIONS, glare)
    assert judge(screen, BECH32, TextKind.ADDRESS, None, 0.85).verdict.value == verdict


def test_glyphs_fonts_draw_alike_are_resolved_by_the_alphabet_alone():
    i = TAPROOT.index("l")
    capital_i = TAPROOT[:i] + "I" + TAPROOT[i + 1:]  # I and l: one stroke in a sans font
    one = TAPROOT[:i] + "1" + TAPROOT[i + 1:]  # 1 is a distinct glyph
    assert check_code(TAPROOT, read(capital_i)).verdict == "pass"
    assert check_code(TAPROOT, read(capital_i, weak={i: 0.7})).verdict == "inconclusive"  # unsure: maybe an i
    assert check_code(TAPROOT, read(one)).verdict == "fail"
    assert capital_i not in set(impostors(TAPROOT)) and one in set(impostors(TAPROOT))


def test_a_failed_address_is_reported_by_its_own_characters_not_a_run_of_the_screen_around_it():
    i = TAPROOT.index("l")
    shown = TAPROOT[:i] + "1" + TAPROOT[i + 1:]
    screen = [[Glyph(c, 0.99) for c in t] for t in ("Sign Transaction", "Amount", "4.52270985 BTC", "To")]
    for rows in (read(shown), [[Glyph(c, 0.99) for c in shown[k:k + 15]] for k in range(0, len(shown), 15)]):
        o = check_code(TAPROOT, screen + rows + [[Glyph(c, 0.99) for c in t] for t in ("Fee", "0.00048076 BTC")])
        assert o.verdict == "fail" and f"the display shows a different bech32: '1' at {i + 1} for 'l'" == o.reason



def test_a_recogniser_and_shape_disagreement_is_decided_by_the_alphabet_where_only_one_can_be_there():
    """The recogniser sure of a "1" where bech32 data (which has no 1) has an "l", and the glyph measured a bare
    stroke: only the l can be there, the checksum agrees, so the address passes. Where the shape agrees with
    the recogniser, or the alphabet has both glyphs, the disagreement stands (never a pass on it)."""
    address = "bc1qcsh8a7f0mdsr47zy6pj04tv4mwdumlfaslcy8n"
    i = address.index("l")
    shown_as_1 = address[:i] + "1" + address[i + 1:]

    def line(text: str, shape: str) -> list[list[Glyph]]:
        shapes = tuple(shape if k == i else "" for k in range(len(text)))
        return [values.glyphs(text, 0.99, (0.99,) * len(text), shapes)]

    assert check_code(address, line(shown_as_1, "l")).verdict == "pass"
    assert check_code(address, line(shown_as_1, "")).verdict == "fail"  # no shape: a sure 1 is shown
    assert check_code(address, line(shown_as_1, "1")).verdict == "fail"
    j = address.index("0")
    shown_o = address[:j] + "o" + address[j + 1:]  # the recogniser sure of an o, the shape a zero
    assert check_code(address, [values.glyphs(shown_o, 0.99, (0.99,) * len(shown_o),
                                              tuple("0" if k == j else "" for k in range(len(shown_o))))]
                      ).verdict == "pass"
    # the recogniser sure of the expected l, the shape a 1 (not in the alphabet): no pass on the recogniser's word
    assert check_code(address, line(address, "1")).verdict == "inconclusive"
