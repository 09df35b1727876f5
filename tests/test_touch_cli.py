"""`hil touch`: calibrate, then tap and power through the emulated robot and relay ptys."""

from typer.testing import CliRunner

from hil.emulator import robot as emu_robot
from hil.emulator.relay import EmulatedRelay
from hil.emulator.robot import EmulatedRobot
from hil.stimuli.cli import touch_app
from tests.test_touch import FakePrime


def test_calibrate_tap_and_power_via_robot(tmp_path):
    prime, robot, relay = FakePrime(), EmulatedRobot(), EmulatedRelay()
    robot_path, relay_path = robot.start(prime)[1], relay.start(prime)[1]
    points = [f"--point={x},{y}={mx:.3f},{my:.3f}"
              for x, y in [(0, 0), (479, 0), (0, 971)] for mx, my in [emu_robot.display_to_mm(x, y)]]
    runner = CliRunner()
    try:
        r = runner.invoke(touch_app, ["calibrate", *points, "--station", "bench1", "--calibration-dir", str(tmp_path)])
        assert r.exit_code == 0, r.output
        wiring = ["--via", "robot", "--robot", robot_path, "--relay", relay_path, "--station", "bench1",
                  "--calibration-dir", str(tmp_path),
                  "--profile", "prime-emulated"]
        r = runner.invoke(touch_app, ["tap", "240", "400", *wiring])
        assert r.exit_code == 0, r.output
        r = runner.invoke(touch_app, ["power", *wiring])
        assert r.exit_code == 0, r.output
    finally:
        robot.stop()
        relay.stop()
    assert prime.events[0][1:5] == (240, 400, 240, 400) and prime.events[1] == ("power", False)


def test_bad_point_and_missing_wiring_are_clear_errors(tmp_path):
    runner = CliRunner()
    r = runner.invoke(touch_app, ["calibrate", "--point", "1,2", "--station", "c", "--calibration-dir", str(tmp_path)])
    assert r.exit_code != 0 and "PX,PY=MX,MY" in r.output
    r = runner.invoke(touch_app, ["tap", "1", "2", "--via", "robot", "--profile", "prime-emulated"])
    assert r.exit_code != 0 and "--robot PORT and --station NAME" in r.output
    assert list(tmp_path.iterdir()) == []


def test_power_via_debug_link_locks_a_development_unit():
    from hil.emulator.build import Build
    from hil.emulator.launcher import start_device
    from hil.provisioning import TEST_PIN

    unit = start_device(1, 0, Build(flavour="development"), boot_seconds=0)
    try:
        with unit.prime.lock:
            unit.prime.power_on()
            assert unit.prime.login(TEST_PIN)
        r = CliRunner().invoke(touch_app, ["power", "--via", "debug", "--device", unit.endpoints["debug"],
                                           "--profile", "prime-emulated"])
        assert r.exit_code == 0, r.output
        assert unit.prime.is_locked() and not unit.prime.screen_on
    finally:
        unit.stop()
