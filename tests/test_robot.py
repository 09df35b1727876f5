"""The GRBL stylus robot client against the emulated robot pty, and the display→mm calibration."""

import os
import threading
import tty

import pytest
import serial

from hil.emulator import robot as emu_robot
from hil.errors import ConfigError, InfrastructureError
from hil.stimuli.robot import Calibration, RobotError, StylusRobot, calibration_path, parse_status


class FakePrime:
    """Just the touch surface the robot acts on."""

    def __init__(self):
        self.lock = threading.RLock()
        self.swipes = []

    def swipe(self, sx, sy, ex, ey, duration_ms, steps):
        self.swipes.append((sx, sy, ex, ey, duration_ms, steps))


def bench_calibration() -> Calibration:
    """Calibrate as an operator would: jog the stylus onto three display corners and note the mm."""
    refs = [(0, 0), (479, 0), (0, 971), (479, 971)]
    return Calibration.fit([(p, emu_robot.display_to_mm(*p)) for p in refs])


@pytest.fixture
def bench():
    prime = FakePrime()
    robot = emu_robot.EmulatedRobot()
    _, path = robot.start(prime)
    yield prime, robot, path
    robot.stop()


def test_calibration_maps_display_to_machine_mm():
    cal = bench_calibration()
    for p in [(240, 400), (13, 777), (100, 930)]:
        got, want = cal.to_mm(*p), emu_robot.display_to_mm(*p)
        assert abs(got[0] - want[0]) < 0.01 and abs(got[1] - want[1]) < 0.01


@pytest.mark.parametrize("points, why", [
    ([((0, 0), (1, 1)), ((10, 0), (2, 1))], "at least 3"),
    ([((0, 0), (1, 1)), ((10, 10), (2, 2)), ((20, 20), (3, 3))], "collinear"),
    ([((0, 0), (0, 0)), ((100, 0), (10, 0)), ((0, 100), (0, 10)), ((100, 100), (30, 30))], "disagree"),
])
def test_bad_calibration_points_are_refused(points, why):
    with pytest.raises(ConfigError, match=why):
        Calibration.fit(points)


def test_calibration_is_stored_per_station(tmp_path):
    cal = bench_calibration()
    path = calibration_path("bench1-slot2", tmp_path)
    cal.save(path)
    assert Calibration.load(path).to_mm(50, 60) == cal.to_mm(50, 60)
    path.write_text('{"affine": [[1, 2]]}')
    with pytest.raises(ConfigError, match="malformed"):
        Calibration.load(path)
    with pytest.raises(ConfigError, match="run the calibration"):
        Calibration.load(tmp_path / "nope.robot.json")


def test_tap_long_press_and_swipe_land_on_the_display(bench):
    prime, _, path = bench
    with StylusRobot.open(path, bench_calibration()) as robot:
        robot.press(100, 200)
        robot.press(240, 400, hold_ms=1500)
        robot.swipe(100, 930, 100, 500, duration_ms=300)
        robot.press(100, 900)  # the virtual home button below the panel
    tap, long_press, swipe, home = prime.swipes
    assert tap[:4] == (100, 200, 100, 200) and tap[5] == 0 and 50 <= tap[4] < 200
    assert long_press[:4] == (240, 400, 240, 400) and 1500 <= long_press[4] < 1600
    assert swipe[:4] == (100, 930, 100, 500) and swipe[5] > 0 and 300 <= swipe[4] < 400
    assert home[:4] == (100, 900, 100, 900)


def test_robot_that_cannot_home_is_broken(bench):
    _, robot, path = bench
    robot.homing_fault = True
    with pytest.raises(RobotError, match=r"ALARM:9 \(Homing fail") as e:
        StylusRobot.open(path, bench_calibration())
    assert isinstance(e.value, InfrastructureError)


def test_gcode_before_homing_is_locked_out(bench):
    prime, _, path = bench
    port = serial.serial_for_url(path, timeout=0.2)
    try:
        with pytest.raises(RobotError, match=r"error:9 \(G-code locked out"):
            StylusRobot(port, bench_calibration()).press(10, 10)
    finally:
        port.close()
    assert prime.swipes == []


def test_soft_limit_alarm_is_reported_and_nothing_is_touched(bench):
    prime, _, path = bench
    with StylusRobot.open(path, bench_calibration()) as robot:
        with pytest.raises(RobotError, match=r"ALARM:2 \(Soft limit"):
            robot.press(3000, 100)
        with pytest.raises(RobotError, match="error:9"):  # locked until reset and re-homed
            robot.press(10, 10)
    assert prime.swipes == []


def test_silent_robot_times_out_instead_of_hanging():
    master, slave = os.openpty()
    tty.setraw(slave)
    port = serial.serial_for_url(os.ttyname(slave), timeout=0.1)
    try:
        robot = StylusRobot(port, bench_calibration(), timeout=0.5)
        with pytest.raises(RobotError, match="did not answer"):
            robot.reset()
    finally:
        port.close()
        os.close(master)
        os.close(slave)


@pytest.mark.parametrize("line", ["", "<Idle|MPos:1,2>", "ok", "<Idle|MPos:a,b,c|FS:0,0>"])
def test_garbage_status_is_rejected(line):
    with pytest.raises(RobotError, match="unreadable status"):
        parse_status(line)


def test_status_report_parses():
    st = parse_status("<Hold:0|MPos:1.500,-2.000,0.000|FS:0,0>")
    assert (st.state, st.x, st.y, st.z) == ("Hold", 1.5, -2.0, 0.0)
