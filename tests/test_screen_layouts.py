"""Controls are found by what the screen shows: the suites pass on emulators that lay their screens out
differently (per seed), and no coordinate literal lives in the suites or the harness outside the device
profiles and the emulator."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# a tap at a literal point, or a name (not a *_SIZE: sizes are physical facts) bound to a literal point
COORDINATE = re.compile(r"(?:tap|press|swipe|long_press)\(\s*\d+\s*,\s*\d+"
                        r"|^\s*(?!\w*SIZE\b)\w+\s*=\s*\(\s*\d{2,3}\s*,\s*\d{2,3}\s*\)\s*(?:#|$)")


def test_no_coordinate_literal_in_suites_or_harness():
    found = []
    for path in [*ROOT.glob("suites/**/*.py"), *ROOT.glob("hil/**/*.py")]:
        if "emulator" in path.relative_to(ROOT).parts:
            continue
        for n, text in enumerate(path.read_text().splitlines(), 1):
            if COORDINATE.search(text):
                found.append(f"{path.relative_to(ROOT)}:{n}: {text.strip()}")
    assert not found, "screen coordinates outside device_profiles/ and the emulator:\n" + "\n".join(found)


def test_the_pattern_catches_what_it_is_for():
    assert COORDINATE.search("DEVELOPER_MODE_TOGGLE = (240, 150)  # the row")
    assert COORDINATE.search("    prime.tap(240, 400)")
    assert not COORDINATE.search("prime.tap(*prime.home_button)")
    assert not COORDINATE.search("DISPLAY_SIZE = (480, 800)")


def test_the_pin_pad_and_settings_move_with_the_seed():
    from hil.emulator.apps.lockscreen import pad_layout

    layouts = {tuple(sorted(pad_layout(seed).items())) for seed in (1, 2, 3, 4)}
    assert len(layouts) == 4


@pytest.mark.slow
@pytest.mark.parametrize("seed", [2, 3, 4])
def test_the_suites_pass_on_another_layout(seed):
    """PIN entry by taps, the harness's own unlock, the lock screen read, Developer Mode by its label."""
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--emulator-seed", str(seed),
                        "suites/test_smoke.py", "suites/security/test_lockdown.py",
                        "-k", "unlock_with_the_pin or lock_screen or developer_mode_answer"],
                       cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and re.search(r"\b3 passed", r.stdout), r.stdout[-3000:] + r.stderr[-2000:]


def test_kernel_deny_evidence_is_where_the_profile_says():
    from hil.profile import profile_named

    assert profile_named("prime-emulated").kernel_log == "debug-link"  # the emulator streams it with its logs
    assert profile_named("prime-rev-b").kernel_log == "uart"  # assumed until a unit shows otherwise
