"""`hil device` against an emulated Prime (started in this process for speed)."""

import pytest
from PIL import Image
from typer.testing import CliRunner

from hil.emulator.build import Build
from hil.emulator.launcher import start_device
from hil.link.cli import app, printable
from hil.profile import profile_named

runner = CliRunner()


@pytest.fixture(scope="module")
def emulated():
    device = start_device(1, 0, Build(flavour="development"), boot_seconds=0)
    yield device.endpoints["debug"]
    device.stop()


def hil_device(emulated, *args):
    return runner.invoke(app, [*args, "--device", emulated, "--profile", "prime-emulated"])


def test_info(emulated):
    result = hil_device(emulated, "info")
    assert result.exit_code == 0, result.output
    assert "version:        1.0.0" in result.output
    assert "flavour:        development" in result.output
    assert "locked:         true" in result.output


def test_screenshot_writes_a_png(emulated, tmp_path):
    out = tmp_path / "screen.png"
    result = hil_device(emulated, "screenshot", "-o", str(out))
    assert result.exit_code == 0, result.output
    with Image.open(out) as img:
        assert img.format == "PNG" and img.size == (480, 800)


def test_unlock_on_the_keys_the_screen_shows_then_launch(emulated):
    locked = hil_device(emulated, "launch", "0x426974636f696e2057616c6c65740000")
    assert locked.exit_code == 1 and "LAUNCH_APP: device answered Locked" in locked.output
    unlocked = hil_device(emulated, "unlock", "--pin", "123456")
    assert unlocked.exit_code == 0 and unlocked.output.strip().endswith("unlocked"), unlocked.output
    launched = hil_device(emulated, "launch", "0x426974636f696e2057616c6c65740000")
    assert launched.exit_code == 0 and launched.output.startswith(("LAUNCHED pid=", "ALREADY_RUNNING pid="))
    missing = hil_device(emulated, "launch", "0x" + "ee" * 16)
    assert missing.exit_code == 1 and missing.output.strip() == "APP_ID_NOT_FOUND pid=0"
    bad = hil_device(emulated, "launch", "bitcoin")
    assert bad.exit_code == 2 and "not hex" in bad.output
    assert "gui-app-bitcoin" in hil_device(emulated, "ps").output
    home = profile_named("prime-emulated").touch.home_button.centre
    assert hil_device(emulated, "tap", str(home[0]), str(home[1])).exit_code == 0
    assert hil_device(emulated, "type", "abc").exit_code == 0
    assert hil_device(emulated, "power").exit_code == 0


def test_unreachable_device_is_one_line(tmp_path):
    result = runner.invoke(app, ["ps", "--device", str(tmp_path / "ttyACM9")])
    assert result.exit_code == 1
    assert result.output.strip().count("\n") == 0 and "ttyACM9: no such device" in result.output


def test_device_text_cannot_drive_the_terminal():
    assert printable("INFO: ok\x1b[2J\x07 done\tx") == "INFO: ok\ufffd[2J\ufffd done\tx"


def test_a_started_emulator_answers_once_booted():
    """`--device emulator` powers one on here: info waits out its boot instead of answering "booting"."""
    result = runner.invoke(app, ["info", "--device", "emulator"])
    assert result.exit_code == 0, result.output
    assert "locked:         true" in result.output and "flavour:        development" in result.output


@pytest.fixture
def fresh():
    """Devices of their own: unlocking changes what the module's shared device shows."""
    made = []

    def make(flavour: str) -> str:
        made.append(start_device(2, 0, Build(flavour=flavour), boot_seconds=0))
        return made[-1].endpoints["debug"]

    yield make
    for device in made:
        device.stop()


def test_unlock_types_the_pin_on_the_lock_screen(fresh):
    debug = fresh("development")
    assert hil_device(debug, "unlock", "--pin", "123456").output.strip() == f"tcp:{debug[4:]}: unlocked"
    assert "locked:         false" in hil_device(debug, "info").output
    assert hil_device(debug, "unlock").output.strip().endswith(": already unlocked")


def test_unlock_with_a_wrong_pin_is_one_line_and_one_attempt(fresh):
    debug = fresh("development")
    result = hil_device(debug, "unlock", "--pin", "999999")
    assert result.exit_code == 1 and result.output.count("\n") == 1
    assert "rejected the test PIN (one attempt used: 10 remaining before, 9 remaining after)" in result.output


def test_unlock_of_a_locked_production_build_says_how(fresh):
    result = hil_device(fresh("production"), "unlock")
    assert result.exit_code == 1
    assert "runs a production build, which refuses debug-link input while locked; type the PIN on its screen" \
        in result.output


def test_one_default_flavour_for_emulators():
    from hil.emulator.cli import start
    from hil.emulator.launcher import EmulatorProcess
    from hil.lab.station import device_station

    import inspect

    assert inspect.signature(start).parameters["flavour"].default.default == "development"  # hil emulator start
    assert EmulatorProcess().args[EmulatorProcess().args.index("--flavour") + 1] == "development"
    assert inspect.signature(device_station).parameters["flavour"].default == "development"  # --device emulator


def test_top_level_help_is_for_users():
    from hil.cli import app as hil

    result = runner.invoke(hil, ["--help"])
    assert result.exit_code == 0 and "drive Passport Primes" in result.output
    assert "heavy imports" not in result.output
