"""The display API on screens drawn here and filmed through the emulator's optics (no emulator)."""

import cv2
import numpy as np
import pytest
from PIL import ImageDraw, ImageFilter

from hil.emulator.camera import Optics
from hil.errors import InfrastructureError
from hil.vision import evidence as ev
from hil.vision import display, values
from hil.vision.display import Display, DisplayTimeout, ScreenUnreadable, TextNotShown, Verdict
from hil.vision.match import TextKind
from tests.vision_helpers import FilmedScreen, _font, permission_prompt, pin_pad, send_screen

ADDR = "bc1qxy2kgdygjrsqtzq2n0yrf2493p83kkfjhx0wlh"


@pytest.mark.parametrize("optics", ["default", "hard"])
def test_permission_prompt(optics):
    cam = FilmedScreen(permission_prompt(), optics)
    d = Display(cam)
    texts = ("Allow Access?", "Bitcoin Wallet wants to access App-scoped seed", "Always Allow", "Not Now",
             "Never Allow")
    for text in texts:
        assert d.expect_text(text, timeout=2).verdict is Verdict.PASS
    first = d.reader.calls
    assert first <= 7  # each line recognised once, however many checks looked at it
    for text in texts:
        assert d.expect_text(text, timeout=2).verdict is Verdict.PASS
    assert d.reader.calls == first  # nothing changed: nothing read again
    assert cam.frames >= 10  # ... though each check looked at a fresh frame


@pytest.mark.parametrize("optics", ["default", "hard"])
def test_pin_pad_and_security_words(optics):
    d = Display(FilmedScreen(pin_pad(("riot", "cotton")), optics))
    assert d.verify_text("Enter PIN", region="title").verdict is Verdict.PASS
    assert d.verify_text("riot cotton", TextKind.WORDS).verdict is Verdict.PASS
    assert d.verify_text("cotton riot", TextKind.WORDS).verdict is Verdict.FAIL
    assert d.verify_text("riot cotter", TextKind.WORDS).verdict is Verdict.FAIL


def test_changed_glyph_is_read_again_not_served_from_cache():
    cam = FilmedScreen(pin_pad(("riot", "cotton")))
    d = Display(cam)
    assert d.verify_text("riot cotton", TextKind.WORDS).verdict is Verdict.PASS
    d.read()  # the whole panel, once
    before = d.reader.calls
    cam.show(pin_pad(("riot", "cotter")))
    v = d.verify_text("riot cotton", TextKind.WORDS)
    assert v.verdict is Verdict.FAIL and "riot cotter" in v.screen.text()
    assert d.reader.calls - before <= 2  # the words line was read again, the PIN pad was not


def test_fail_raises_assertion_with_what_is_shown():
    d = Display(FilmedScreen(permission_prompt()))
    with pytest.raises(TextNotShown, match="Allow Access") as e:
        d.expect_text("Deny", timeout=0)
    assert e.value.verification.verdict is Verdict.FAIL
    assert not isinstance(e.value, InfrastructureError)


def test_wrong_region_fails():
    d = Display(FilmedScreen(pin_pad()))
    assert d.verify_text("Enter PIN", region="title").verdict is Verdict.PASS
    assert d.verify_text("Enter PIN", region="body").verdict is Verdict.FAIL
    with pytest.raises(ValueError, match="known: title"):
        d.verify_text("Enter PIN", region="footer")


@pytest.mark.parametrize("optics", ["default", "hard"])
def test_a_region_that_reads_no_text_fails_only_when_it_is_blank(optics):
    """No text read is a reading of the region only where it shows no ink: "Enter PIN" out of focus (a smudge over
    the title, blurred past the recogniser) is unreadable, never "the title shows nothing"; the same screen with
    its title blank fails."""
    smudged, blank = pin_pad().convert("RGB"), pin_pad().convert("RGB")
    smudged.paste(smudged.crop((0, 0, 480, 98)).filter(ImageFilter.GaussianBlur(8)), (0, 0))
    ImageDraw.Draw(blank).rectangle((0, 0, 480, 98), fill=(245, 245, 240))
    v = Display(FilmedScreen(smudged, optics)).verify_text("Enter PIN", region="title")
    assert v.verdict is Verdict.INCONCLUSIVE and "ink" in v.reason and not v.screen.lines_in("title")
    with pytest.raises(ScreenUnreadable):
        Display(FilmedScreen(smudged, optics)).expect_text("Enter PIN", region="title", timeout=0)
    v = Display(FilmedScreen(blank, optics)).verify_text("Enter PIN", region="title")
    assert v.verdict is Verdict.FAIL and v.reason == "the title is blank"


@pytest.mark.parametrize("expected, kind", [(ADDR, TextKind.ADDRESS), ("0.01250000 BTC", TextKind.AMOUNT)])
def test_a_value_read_inconclusive_is_read_no_further(monkeypatch, expected, kind):
    """Lines below an address or amount read up to look-alikes cannot make it pass: they are not recognised."""
    im = send_screen(address=ADDR)
    ImageDraw.Draw(im).text((240, 600), "Reject", font=_font(30), fill="black", anchor="mm")
    real = values.check

    def unsure(expected, lines, kind):  # the value read, but a look-alike in it unsure
        o = real(expected, lines, kind)
        return values.Outcome("inconclusive", "a look-alike read unsure") if o and o.verdict == "pass" else o

    monkeypatch.setattr(values, "check", unsure)
    v = Display(FilmedScreen(im)).verify_text(expected, kind)
    assert v.verdict is Verdict.INCONCLUSIVE and v.reason == "a look-alike read unsure"
    assert "Reject" not in v.screen.text()
    assert "Reject" in Display(FilmedScreen(im)).read().text()  # it is there to read


@pytest.mark.parametrize("fault, reason", [("covered", "covered"), ("glare", "glare")])
def test_covered_or_blinded_is_inconclusive_never_a_pass(fault, reason):
    cam = FilmedScreen(permission_prompt())
    d = Display(cam)
    assert d.verify_text("Allow Access?").verdict is Verdict.PASS
    cam.fault = fault
    v = d.verify_text("Allow Access?")
    assert v.verdict is Verdict.INCONCLUSIVE and reason in v.reason
    with pytest.raises(ScreenUnreadable) as e:
        d.expect_text("Allow Access?", timeout=0.3)
    assert isinstance(e.value, InfrastructureError)
    cam.fault = None
    assert d.verify_text("Allow Access?").verdict is Verdict.PASS


def test_amount_and_address_through_the_camera():
    d = Display(FilmedScreen(send_screen()))
    assert d.verify_text(ADDR, TextKind.ADDRESS).verdict is Verdict.PASS
    assert d.verify_text("0.01250000 BTC", TextKind.AMOUNT).verdict is Verdict.PASS
    assert d.verify_text(ADDR[:-1] + "x", TextKind.ADDRESS).verdict is Verdict.FAIL
    assert d.verify_text("0.0125000 BTC", TextKind.AMOUNT).verdict is Verdict.FAIL


def test_glare_makes_strict_kinds_inconclusive_while_prose_still_reads():
    """A reflection over the address: the title reads, but no amount in that region is trusted."""
    cam = FilmedScreen(send_screen(), Optics(glare=(0.5, 0.52, 0.07, 400.0)))
    d = Display(cam)
    assert d.verify_text("Send", region="title").verdict is Verdict.PASS
    v = d.verify_text("0.01250000 BTC", TextKind.AMOUNT, region="body")
    assert v.verdict is Verdict.INCONCLUSIVE and "glare" in v.reason


def test_wait_stable_and_wait_for_change():
    cam = FilmedScreen(pin_pad())
    d = Display(cam)
    assert d.wait_stable(timeout=2).shape == (800, 480, 3)
    with pytest.raises(DisplayTimeout):
        d.wait_for_change(timeout=0.3)
    before = d.rectified()[0]
    cam.show(pin_pad(("riot", "cotton")))
    after = d.wait_for_change(timeout=2, since=before)
    assert np.abs(after[110:170].astype(int) - before[110:170].astype(int)).max() > 100


def test_evidence_items_and_attach(monkeypatch):
    cam = FilmedScreen(permission_prompt())
    d = Display(cam)
    d.verify_text("Allow Access?")
    items = d.evidence()
    kinds = {i.mimetype for i in items}
    assert kinds == {"text/plain", "image/jpeg", "image/png", "application/json"}
    frame = next(i for i in items if i.mimetype == "image/jpeg")
    assert cv2.imdecode(np.frombuffer(frame.data, np.uint8), cv2.IMREAD_COLOR).shape == (1280, 960, 3)
    assert b"Allow Access?" in next(i for i in items if i.mimetype == "application/json").data
    import allure
    attached = []

    class Reporter:  # allure-pytest's: images take their place in the result now, their files follow
        def _attach(self, uuid, name, attachment_type):
            attached.append(name)
            return f"{uuid}-attachment"

    monkeypatch.setattr(ev, "_reporter", Reporter)
    monkeypatch.setattr(allure, "attach", lambda body, name, attachment_type: attached.append(name))
    ev.attach(items)
    assert attached == [i.name for i in items] and ev.flush() == []


@pytest.mark.parametrize("observed, verdict", [
    (["to bc1qxy2kgdygjr", "sqtzq2n0yrf249", "3p83kkfjhx0wlh"], Verdict.PASS),
    (["to bclqxy2kgdygjr", "sqtzq2n0yrf249", "3p83kkfjhx0wlh"], Verdict.FAIL),  # an "l" read sure is shown
    (["to BC1QXY2KGDYGJR", "SQTZQ2N0YRF249", "3P83KKFJHX0WLH"], Verdict.PASS),  # bech32 has no case (BIP173)
    (["to bc1qxy2kgdygjr", "sqtzq2n0yrf249", "3p83kkfjhx0wlm"], Verdict.FAIL),  # another address
])
def test_address_confusions_are_decided_by_the_alphabet(observed, verdict):
    from hil.vision.display import REGIONS, Screen, judge
    from hil.vision.ocr import Line

    lines = [Line(t, (10, 200 + 40 * i, 470, 230 + 40 * i), 0.99) for i, t in enumerate(observed)]
    screen = Screen(np.zeros((800, 480, 3), np.uint8), lines, REGIONS, {"body": 0.0})
    assert judge(screen, ADDR, TextKind.ADDRESS, "body", 0.85).verdict is verdict


@pytest.mark.parametrize("observed, verdict", [
    (["Never Allow", "Not Now", "Always Allo v"], Verdict.INCONCLUSIVE),  # a stylus over the "w", read sure
    (["Never Allow", "Not Now", "Alway Allow"], Verdict.INCONCLUSIVE),
    (["Never Allow", "Not Now"], Verdict.FAIL),  # the button is not there
    (["Never Allow", "Not Now", "Always Ask"], Verdict.FAIL),  # another button
])
def test_prose_read_a_character_off_is_inconclusive_not_failed(observed, verdict):
    """A genuine prompt with one glyph garbled was not read, so it is no evidence the device showed other text."""
    from hil.vision.display import REGIONS, Screen, judge
    from hil.vision.ocr import Line

    lines = [Line(t, (10, 560 + 70 * i, 470, 600 + 70 * i), 0.999) for i, t in enumerate(observed)]
    screen = Screen(np.zeros((800, 480, 3), np.uint8), lines, REGIONS, {"buttons": 0.0})
    v = judge(screen, "Always Allow", TextKind.PROSE, None, 0.85)
    assert v.verdict is verdict, v.reason
    assert judge(screen, "Deny", TextKind.PROSE, None, 0.85).verdict is Verdict.FAIL  # too short to be near


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(8))
def test_sweep_random_optics_never_a_wrong_verdict(seed):
    """Across random camera mounts and optics: the shown text is never FAIL, other text is never PASS."""
    import random

    rng = random.Random(seed)
    optics = Optics(scale=rng.uniform(0.72, 1.05), warp=rng.uniform(0, 0.08), rotation=rng.uniform(-6, 6),
                    blur=rng.uniform(0.5, 2.0), noise=rng.uniform(2, 12), gain=rng.uniform(0.6, 1.0),
                    glare=(rng.random(), rng.random(), rng.uniform(0.05, 0.15), rng.uniform(20, 120)),
                    moire=rng.choice([0.0, 0.05]), jpeg=rng.randrange(55, 95))
    d = Display(FilmedScreen(send_screen(), optics, seed))
    for text, kind in (("Send", TextKind.PROSE), ("0.01250000 BTC", TextKind.AMOUNT), (ADDR, TextKind.ADDRESS)):
        assert d.verify_text(text, kind).verdict is not Verdict.FAIL
    for text, kind in (("Receive", TextKind.PROSE), ("0.01250001 BTC", TextKind.AMOUNT),
                       (ADDR.replace("x", "z"), TextKind.ADDRESS)):
        assert d.verify_text(text, kind).verdict is not Verdict.PASS


class Frames:
    """A camera giving these frames in turn, then the last one again."""

    def __init__(self, *frames):
        self.frames = list(frames)

    def grab(self, timeout: float = 5.0) -> np.ndarray:
        return self.frames.pop(0) if len(self.frames) > 1 else self.frames[0]


def test_a_fail_is_read_again_on_a_fresh_frame_and_a_pass_there_is_inconclusive(monkeypatch):
    """A FAIL on a panel that did not move is read again from scratch on the fresh frame the confirmation took.
    A fresh frame that fails too leaves the FAIL; one that passes makes the frames disagree: INCONCLUSIVE, never
    a PASS, since the first frame may have shown the wrong words. The same frame is never read twice."""
    cam = FilmedScreen(pin_pad(("riot", "cotter")))
    wrong, wrong_again = cam.grab(), cam.grab()
    cam.show(pin_pad(("riot", "cotton")))
    right = cam.grab()
    v = Display(Frames(wrong, wrong_again, right)).verify_text("riot cotton", TextKind.WORDS)
    assert v.verdict is Verdict.FAIL  # the confirming frame failed too: it stands
    v = Display(Frames(wrong, right)).verify_text("riot cotton", TextKind.WORDS)
    assert v.verdict is Verdict.INCONCLUSIVE and "two frames disagree" in v.reason
    reads = []
    real = display.read_image
    monkeypatch.setattr(display, "read_image", lambda *a, **k: reads.append(1) or real(*a, **k))
    v = Display(Frames(wrong)).verify_text("riot cotton", TextKind.WORDS)
    assert v.verdict is Verdict.FAIL and len(reads) == 1  # one frame: one reading


def test_waiting_reads_a_fail_again_from_scratch_only_at_the_end(monkeypatch):
    """`expect_text` polls with what the reader cached; only its last reading, at the timeout, reads a FAIL again
    from scratch: waiting for a screen costs no whole reading per frame."""
    d = Display(FilmedScreen(pin_pad(("riot", "cotter"))))
    scratch = []
    real = display.read_image
    monkeypatch.setattr(display, "read_image", lambda image, regions, reader=None, *a, **k: (
        scratch.append(reader is not d.reader) or real(image, regions, reader, *a, **k)))
    with pytest.raises(TextNotShown):
        d.expect_text("riot cotton", TextKind.WORDS, timeout=0.5)
    assert len(scratch) >= 2 and sum(scratch) == 1 and scratch[-1]
