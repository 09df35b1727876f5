"""`hil device` against an emulated Prime (started in this process for speed)."""

import pytest
from PIL import Image
from typer.testing import CliRunner

from hil.emulator.build import Build
from hil.emulator.launcher import start_device
from hil.link.cli import app, printable
from hil.link.resolve import profile_named

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


def test_unlock_by_taps_then_launch(emulated):
    locked = hil_device(emulated, "launch", "0x426974636f696e2057616c6c65740000")
    assert locked.exit_code == 1 and "LAUNCH_APP: device answered Locked" in locked.output
    pad = profile_named("prime-emulated").touch.pin_pad
    for key in [*(pad.keys[d] for d in "123456"), pad.enter]:
        assert hil_device(emulated, "tap", str(key[0]), str(key[1])).exit_code == 0
    launched = hil_device(emulated, "launch", "0x426974636f696e2057616c6c65740000")
    assert launched.exit_code == 0 and launched.output.startswith(("LAUNCHED pid=", "ALREADY_RUNNING pid="))
    missing = hil_device(emulated, "launch", "0x" + "ee" * 16)
    assert missing.exit_code == 1 and missing.output.strip() == "APP_ID_NOT_FOUND pid=0"
    bad = hil_device(emulated, "launch", "bitcoin")
    assert bad.exit_code == 2 and "not hex" in bad.output
    assert "gui-app-bitcoin" in hil_device(emulated, "ps").output
    assert hil_device(emulated, "type", "abc").exit_code == 0
    assert hil_device(emulated, "power").exit_code == 0


def test_unreachable_device_is_one_line(tmp_path):
    result = runner.invoke(app, ["ps", "--device", str(tmp_path / "ttyACM9")])
    assert result.exit_code == 1
    assert result.output.strip().count("\n") == 0 and "ttyACM9: no such device" in result.output


def test_device_text_cannot_drive_the_terminal():
    assert printable("INFO: ok\x1b[2J\x07 done\tx") == "INFO: ok\ufffd[2J\ufffd done\tx"
