"""The security suites' display helpers fail closed: on scripted screens (no device, no OCR), an unreadable
display is broken (an InfrastructureError), a wrong one a failed assertion, and only the right one passes."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from hil.errors import InfrastructureError
from hil.vision.display import Screen
from hil.vision.ocr import Line

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "suites" / "security"))
from security_helpers import (PROMPT_BUTTONS, PROMPT_TITLE, REGIONS, PromptNotSeen,  # noqa: E402
                              ScreenReader, answer_prompt, assert_no_prompt, assert_no_prompt_for,
                              result_without_prompt)

PANEL = 229  # the grey of an empty panel


def screen_of(*texts: tuple[str, int]) -> Screen:
    """A screen read with ``texts`` as (text, top y) lines."""
    image = np.full((800, 480, 3), PANEL, np.uint8)
    lines = [Line(text, (60, y, 420, y + 24), 0.95) for text, y in texts]
    return Screen(image, lines, dict(REGIONS), {})


UNREADABLE = screen_of()
HOME = screen_of(("Bitcoin Wallet", 200), ("Settings", 300))
BODY = "Seed Probe wants to access App-scoped seed"
BUTTON_Y = dict(zip(PROMPT_BUTTONS, (710, 740, 770)))
PROMPT = screen_of((PROMPT_TITLE, 400), (BODY, 450), *BUTTON_Y.items())


class FakePrime:
    def __init__(self):
        self.taps: list[tuple[int, int]] = []
        self.on_tap = lambda: None  # what the device does when tapped

    def tap(self, x: int, y: int) -> None:
        self.taps.append((x, y))
        self.on_tap()


class ScriptedScreen(ScreenReader):
    """A ScreenReader whose reads are scripted: one screen per read, the last one repeating."""

    def __init__(self, *screens: Screen):
        self.prime = FakePrime()
        self._display = None
        self.script = list(screens)
        self.reads = 0

    def read(self, regions=None):
        self.reads += 1
        return self.script.pop(0) if len(self.script) > 1 else self.script[0]


class FakeRun:
    """A probe run whose step record arrives at the ``at``-th pump (never, if None), or once ``answer()`` is
    called (the broker resolving the parked step)."""

    def __init__(self, step: int, at: int | None, result: str = "AccessDenied"):
        self.records: dict[int, dict] = {}
        self.pumps, self._step, self._at, self._result = 0, step, at, result

    def answer(self) -> None:
        self._at = self.pumps + 1

    def pump(self, timeout: float) -> None:
        self.pumps += 1
        if self._at is not None and self.pumps >= self._at:
            self.records[self._step] = {"step": self._step, "result": self._result}


def broken(call, *args, **kwargs) -> InfrastructureError:
    """``call`` must raise an InfrastructureError (broken), not an AssertionError (failed)."""
    with pytest.raises(InfrastructureError) as info:
        call(*args, **kwargs)
    return info.value


# ------------------------------------------------------------------------------------ wait_for


def test_wait_for_returns_the_screen_once_the_text_is_read():
    shown = ScriptedScreen(UNREADABLE, HOME, PROMPT).wait_for(PROMPT_TITLE, timeout=3)
    assert shown is PROMPT


def test_wait_for_an_unreadable_screen_is_broken():
    assert "shows: ''" in str(broken(ScriptedScreen(UNREADABLE).wait_for, PROMPT_TITLE, timeout=0.3))


def test_wait_for_a_wrong_screen_is_broken_and_names_what_it_read():
    e = broken(ScriptedScreen(HOME).wait_for, PROMPT_TITLE, timeout=0.3)
    assert isinstance(e, PromptNotSeen) and "Bitcoin Wallet" in str(e)


# ------------------------------------------------------------------------------------ answer_prompt


def test_answer_prompt_taps_the_button_and_returns_the_record_the_broker_answers_with():
    screen, run = ScriptedScreen(HOME, PROMPT), FakeRun(0, at=None)
    screen.prime.on_tap = run.answer
    assert answer_prompt(screen, "Not Now", body=BODY, timeout=3, run=run, step=0)["result"] == "AccessDenied"
    assert screen.prime.taps == [(240, BUTTON_Y["Not Now"] + 12)]


def test_answer_prompt_waits_past_a_look_alike_for_the_prompt_with_its_body():
    look_alike = screen_of((PROMPT_TITLE, 400), ("Seed Probe wants to access Haptics and LED", 450), *BUTTON_Y.items())
    screen, run = ScriptedScreen(look_alike, look_alike, PROMPT), FakeRun(0, at=None)
    screen.prime.on_tap = run.answer
    answer_prompt(screen, "Not Now", body=BODY, timeout=3, run=run, step=0)
    assert screen.reads >= 3 and len(screen.prime.taps) == 1


def test_answer_prompt_on_an_unreadable_screen_is_broken():
    screen = ScriptedScreen(UNREADABLE)
    broken(answer_prompt, screen, "Not Now", timeout=0.3, run=FakeRun(0, at=None), step=0)
    assert screen.prime.taps == []


@pytest.mark.parametrize("wrong, why", [
    (screen_of((PROMPT_TITLE, 400), (BODY, 450), ("Always Allow", 710)), "button"),
    (screen_of((PROMPT_TITLE, 400), ("Spoof wants your master seed", 450), *BUTTON_Y.items()), "body other"),
])
def test_answer_prompt_fails_on_a_wrong_prompt_and_taps_nothing(wrong, why):
    screen = ScriptedScreen(wrong)
    with pytest.raises(AssertionError, match=why):
        answer_prompt(screen, "Always Allow", body=BODY, timeout=0.5, run=FakeRun(0, at=None), step=0)
    assert screen.prime.taps == []


def test_answer_prompt_fails_when_the_step_is_answered_without_a_prompt():
    with pytest.raises(AssertionError, match="without a prompt"):
        answer_prompt(ScriptedScreen(HOME), "Not Now", timeout=3, run=FakeRun(0, at=2), step=0)


def test_answer_prompt_fails_when_the_prompt_leaves_but_the_step_stays_parked():
    """What was answered was not the broker's prompt: a look-alike the app took down when tapped."""
    with pytest.raises(AssertionError, match="not the broker's prompt"):
        answer_prompt(ScriptedScreen(PROMPT, HOME), "Not Now", timeout=0.5, run=FakeRun(0, at=None), step=0)


@pytest.mark.parametrize("after", [PROMPT, UNREADABLE])
def test_answer_prompt_is_broken_when_the_tap_is_not_seen_to_reach_the_prompt(after):
    screen = ScriptedScreen(PROMPT, after)
    e = broken(answer_prompt, screen, "Not Now", timeout=0.5, run=FakeRun(0, at=None), step=0)
    assert "did not reach" in str(e) and len(screen.prime.taps) == 1


# ------------------------------------------------------------------------------------ result_without_prompt


def test_result_without_prompt_returns_the_record_of_a_step_no_prompt_came_for():
    assert result_without_prompt(ScriptedScreen(HOME), FakeRun(1, at=3), 1, timeout=3)["result"] == "AccessDenied"


def test_result_without_prompt_on_an_unreadable_screen_is_broken():
    screen = ScriptedScreen(UNREADABLE)
    assert "nothing read" in str(broken(result_without_prompt, screen, FakeRun(1, at=3), 1, timeout=3))
    assert screen.reads == 1  # the first blank read decides, not the record that arrives later


def test_result_without_prompt_fails_when_a_prompt_is_shown():
    with pytest.raises(AssertionError, match="prompt is on screen while step 1"):
        result_without_prompt(ScriptedScreen(HOME, PROMPT), FakeRun(1, at=5), 1, timeout=3)


def test_result_without_prompt_without_an_answer_is_broken():
    broken(result_without_prompt, ScriptedScreen(HOME), FakeRun(1, at=None), 1, timeout=0.3)


# ------------------------------------------------------------------------------------ assert_no_prompt


def test_assert_no_prompt_passes_on_a_screen_read_without_one():
    assert_no_prompt(ScriptedScreen(HOME))


@pytest.mark.parametrize("blank", [UNREADABLE, screen_of(("  ", 300))])
def test_assert_no_prompt_on_an_unreadable_screen_is_broken(blank):
    broken(assert_no_prompt, ScriptedScreen(blank))


@pytest.mark.parametrize("shown", [PROMPT, screen_of((PROMPT_TITLE, 400), ("Enter PIN", 50))])
def test_assert_no_prompt_fails_on_a_prompt_title(shown):
    with pytest.raises(AssertionError, match="prompt is on screen"):
        assert_no_prompt(ScriptedScreen(shown))


def test_assert_no_prompt_for_watches_past_a_display_waking_up():
    screen = ScriptedScreen(UNREADABLE, HOME)
    assert_no_prompt_for(screen, 0.3)
    assert screen.reads >= 3


def test_assert_no_prompt_for_fails_on_a_prompt_that_shows_late():
    with pytest.raises(AssertionError, match="prompt is on screen"):
        assert_no_prompt_for(ScriptedScreen(HOME, HOME, HOME, PROMPT), 5)


def test_assert_no_prompt_for_is_broken_by_a_blank_read_once_watching():
    broken(assert_no_prompt_for, ScriptedScreen(HOME, HOME, UNREADABLE, HOME), 5)


def test_assert_no_prompt_for_is_broken_when_the_display_never_shows_anything():
    broken(assert_no_prompt_for, ScriptedScreen(UNREADABLE), 1, wake_timeout=0.3)


@pytest.mark.parametrize("kernel_log", ["debug-link", "uart"])
def test_a_check_without_the_kernels_deny_lines_says_so_in_its_reports(pytester, kernel_log):
    """Where a profile's kernel lines go to the serial console, the checks that would read them rely on the
    AccessDenied results alone: Allure and junit say so, and pytest warns of nothing."""
    security = Path(__file__).resolve().parents[1] / "suites" / "security"
    pytester.makeconftest(f"""
import importlib.util, sys, types
import pytest
sys.path.insert(0, {str(security)!r})
spec = importlib.util.spec_from_file_location("security_conftest", {str(security / "conftest.py")!r})
module = importlib.util.module_from_spec(spec); spec.loader.exec_module(module)
deny_lines = module.deny_lines

@pytest.fixture
def station():
    return types.SimpleNamespace(profile=types.SimpleNamespace(name="bench-7", kernel_log={kernel_log!r}))
""")
    pytester.makepyfile("def test_check(deny_lines):\n    assert deny_lines is " + str(kernel_log == "debug-link"))
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--junitxml=junit.xml", "--alluredir=allure",
                                "-W", "error::pytest.PytestWarning")
    result.assert_outcomes(passed=1)
    junit = (pytester.path / "junit.xml").read_text()
    attachments = [p.read_text() for p in (pytester.path / "allure").glob("*-attachment.txt")]
    if kernel_log == "debug-link":
        assert "relies_on" not in junit and attachments == []
    else:
        assert 'name="relies_on"' in junit and "bench-7" in junit
        assert len(attachments) == 1 and "AccessDenied results only" in attachments[0]
