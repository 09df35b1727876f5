"""Controls are found by what the screen shows: the suites pass on emulators that lay their screens out
differently (per seed), and no coordinate literal lives in the suites or the harness outside the device
profiles and the emulator."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

from hil.lab.nightly import UNUSED_PLUGINS

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


def layout(seed: int) -> dict:
    """Where the emulated unit with ``seed`` shows what the suites tap: PIN keys, launcher rows, the
    Developer Mode row and a permission prompt's buttons (display points)."""
    from hil.emulator.broker import ALWAYS, NEVER, NOT_NOW
    from hil.emulator.build import Build
    from hil.emulator.prime import Prime
    from hil.emulator.ui import LAUNCHER_ROW_HEIGHT

    prime = Prime(index=1, seed=seed, build=Build(flavour="development"), boot_seconds=0)
    with prime.lock:
        assert prime.login("123456")
        launcher = prime.ui.launcher
        rows = {app.name: (240, launcher.top + i * LAUNCHER_ROW_HEIGHT + LAUNCHER_ROW_HEIGHT // 2)
                for i, app in enumerate(launcher.apps())}
        modal = prime.ui.show_modal("Allow Access?", "Probe wants to access App-scoped seed", [ALWAYS, NOT_NOW, NEVER],
                                    lambda answer: None)
        buttons = {label: modal.button_box(i)[1] for i, label in enumerate(modal.buttons)}
    return {"pad": prime.ui.lock_screen.keys, "rows": rows, "buttons": buttons}


def test_every_seed_moves_what_the_suites_tap():
    """A point remembered from one layout misses on the others: each of the suites' three seeds puts the
    PIN keys, the launcher rows and the prompt's buttons somewhere else than seed 0 and than each other."""
    from hil.emulator.apps.settings import SettingsScreen
    from hil.emulator.prime import Prime

    seen = {seed: layout(seed) for seed in (0, 2, 3, 4)}
    for part in ("pad", "rows", "buttons"):
        assert len({tuple(sorted(s[part].items())) for s in seen.values()}) == 4, part
    classic, other = (SettingsScreen(Prime(seed=s, boot_seconds=0), None).row for s in (0, 2))
    assert classic != other  # the Developer Mode row


@pytest.mark.slow
@pytest.mark.parametrize("seed", [2, 3, 4])
def test_the_suites_pass_on_another_layout(seed):
    """The suite checks that tap what the screen shows, on three other layouts: the PIN pad (by taps and by
    the harness's own unlock, and after a prompt queued behind the lock screen), a launcher row, a permission
    prompt's button and the Developer Mode row."""
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *UNUSED_PLUGINS,
                        "--emulator-seed", str(seed),
                        "suites/test_smoke.py", "suites/security/test_lockdown.py",
                        "suites/security/test_trusted_display.py",
                        "-k", "unlock_with_the_pin or lock_screen or launcher_row or developer_mode_answer "
                              "or prompt_is_a_system_prompt"],
                       cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and re.search(r"\b6 passed", r.stdout), r.stdout[-3000:] + r.stderr[-2000:]


def test_kernel_deny_evidence_is_where_the_profile_says():
    from hil.profile import profile_named

    assert profile_named("prime-emulated").kernel_log == "debug-link"  # the emulator streams it with its logs
    assert profile_named("prime-rev-b").kernel_log == "uart"  # assumed until a unit shows otherwise
