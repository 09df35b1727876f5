"""The plugin's production lane: which backend presses for a test (from the station's resources and the
profile's flavour rules), the station's robot calibration, and a locked production Prime unlocked by the
stylus robot end to end (pytester sessions against an emulated Prime in its own process)."""

import pytest
from pydantic import ValidationError

from hil.emulator.launcher import EmulatorProcess
from hil.emulator.robot import display_to_mm, jig_calibration
from hil.lab.config import RobotCalibration, StationConfig
from hil.lab.station import Station, from_config, to_config
from hil.profile import profile_named
from hil.machine import scaled
from hil.plugin import robot_calibration, touch_backend
from hil.stimuli.robot import Calibration, calibration_path

ISOLATED = ("-p", "no:labgrid", "-p", "no:cacheprovider")
PROFILE = profile_named("prime-emulated")


def station(robot: str | None = None, **more) -> Station:
    return Station(name="bench-1", profile=PROFILE, debug="tcp:127.0.0.1:1", robot=robot, **more)


@pytest.mark.parametrize("flavour, robot, locked, expected", [
    ("development", None, True, "debug"),           # takes debug input while locked
    ("development", "/dev/ttyUSB0", True, "debug"),  # a robot is not needed there
    ("production", "/dev/ttyUSB0", True, "robot"),   # refuses debug input while locked
    ("production", "/dev/ttyUSB0", False, "robot"),  # the test may lock it; the robot still presses then
    ("production", None, False, "debug"),           # unlocked, nothing better wired
    ("production", None, True, None),               # nothing can press: the fixture skips
])
def test_touch_backend_from_resources_and_flavour_rules(flavour, robot, locked, expected):
    assert touch_backend(station(robot), flavour, locked) == expected


def test_touch_backend_follows_the_profile_not_the_flavour_name():
    lenient = PROFILE.flavours["production"].model_copy(update={"need_unlocked": ()})
    profile = PROFILE.model_copy(update={"flavours": {**PROFILE.flavours, "production": lenient}})
    assert touch_backend(Station(name="b", profile=profile), "production", locked=True) == "debug"


def test_robot_calibration_from_the_station_points():
    points = [((0, 0), (30.0, 20.0)), ((479, 0), (77.9, 20.0)), ((0, 971), (30.0, 117.1))]
    cal = robot_calibration(station("/dev/ttyUSB0", robot_calibration=RobotCalibration(points=points)))
    assert cal.to_mm(240, 485) == pytest.approx((30.0 + 47.9 * 240 / 479, 20.0 + 97.1 * 485 / 971), abs=1e-3)


def test_robot_calibration_falls_back_to_the_stored_file(tmp_path, monkeypatch):
    monkeypatch.setattr("hil.stimuli.robot.CALIBRATION_DIR", tmp_path)
    Calibration.fit([((0, 0), (1.0, 2.0)), ((100, 0), (11.0, 2.0)), ((0, 100), (1.0, 12.0))]).save(
        calibration_path("bench-1", tmp_path))
    assert robot_calibration(station("/dev/ttyUSB0")).to_mm(50, 50) == (6.0, 7.0)
    with pytest.raises(Exception, match="no robot calibration"):
        robot_calibration(Station(name="bench-2", profile=PROFILE, robot="/dev/ttyUSB1"))


def test_emulated_bench_announces_its_jig_and_the_station_keeps_it():
    """The harness calibrates an emulated station from its endpoints, as a wired one from its lab entry."""
    endpoints = {"debug": "tcp:127.0.0.1:1", "usb_port": "emu-1", "robot": "/dev/pts/9",
                 "robot_calibration": jig_calibration()}
    st = Station.from_endpoints("emu-1", PROFILE, endpoints)
    assert robot_calibration(st).to_mm(400, 710) == pytest.approx(display_to_mm(400, 710), abs=0.01)
    cfg = to_config(st)  # the nightly hands live stations to its workers as a wired lab file
    assert from_config("emu-1", cfg, PROFILE).robot_calibration == st.robot_calibration


def test_the_nightly_hands_the_declared_flavour_to_its_workers():
    """A worker's station (a wired entry the nightly wrote) still declares the build flavour, as a tag."""
    from hil.plugin import declared_flavour

    st = Station.from_endpoints("emu-1", PROFILE, {"debug": "tcp:127.0.0.1:1", "usb_port": "emu-1"},
                                flavour="production")
    worker = from_config("emu-1", to_config(st), PROFILE)
    assert worker.flavour is None and declared_flavour(worker, None) == "production"


def test_a_calibration_needs_three_points():
    with pytest.raises(ValidationError, match="at least 3"):
        StationConfig(profile="prime-rev-b", debug="tcp:h:1", usb_port="1-1",
                      robot_calibration={"points": [[[0, 0], [1, 2]], [[1, 0], [2, 2]]]})


# ------------------------------------------------------------------------------ end to end (pytester)

SESSION = """
    from hil.link.state import is_locked
    from hil.stimuli.touch import DebugTouch, RobotTouch

    def test_prime_is_unlocked(prime, device_under_test):
        assert device_under_test.flavour == "{flavour}"
        assert is_locked(prime) is False
        assert prime.screenshot().size == (480, 800)  # production answers Locked to this while locked

    def test_touch_backend(touch, prime):
        assert type(touch) is {backend}
        touch.power()  # the relay (production) or POWER_BTN (development): a short press locks
        assert is_locked(prime) is True

    def test_prime_unlocks_again(unlocked_prime):
        assert is_locked(unlocked_prime) is False
"""


def run(pytester, *args):
    return pytester.runpytest_subprocess(*ISOLATED, "-rs", *args, timeout=scaled(180))


def test_production_unit_unlocked_by_the_robot(pytester):
    pytester.makepyfile(SESSION.format(flavour="production", backend="RobotTouch"))
    result = run(pytester, "--device=emulator", "--emulator-flavour=production")
    result.assert_outcomes(passed=3)


@pytest.mark.slow
def test_development_unit_uses_the_debug_link(pytester):
    pytester.makepyfile(SESSION.format(flavour="development", backend="DebugTouch"))
    run(pytester, "--device=emulator").assert_outcomes(passed=3)


def test_without_a_robot_a_locked_production_unit_skips_with_a_reason(pytester):
    pytester.makepyfile("""
        def test_needs_touch(touch):
            pass

        def test_needs_unlocked(unlocked_prime):
            pass
    """)
    with EmulatorProcess(count=1, seed=7, flavour="production") as emu:  # reached by its debug link only
        result = run(pytester, f"--device={emu.devices[0]['debug']}", "--profile=prime-emulated")
    result.assert_outcomes(skipped=2)
    result.stdout.fnmatch_lines(["*is locked and runs a production build*has no stylus robot*",
                                 "*refuses debug-link input while locked, and station tcp:*has no stylus robot*"])


def test_a_pin_the_robot_types_wrong_is_broken_and_not_typed_again(pytester):
    pytester.makepyfile("""
        def test_first(prime):
            pass

        def test_second(prime):
            pass
    """)
    result = run(pytester, "--device=emulator", "--emulator-flavour=production", "--pin=000000")
    result.assert_outcomes(errors=2)  # one attempt; the next test is broken without a second PIN typed
    result.stdout.fnmatch_lines(["*rejected the test PIN (one attempt used: 10 remaining before, 9 remaining after*",
                                 "BROKEN *test_second (setup): *not run, the device was lost earlier in this session: "
                                 "*test_first (setup): *rejected the test PIN*", "*2 broken*"])


def test_a_test_that_asks_for_the_unit_several_ways_reads_its_lock_state_once(pytester):
    """`prime`, `unlocked_prime` and `touch` in one test: the state `prime` brought the unit to is asked once
    (one LAUNCH_APP probe on a unit already unlocked), not again by each fixture built on it."""
    pytester.makeconftest("""
        import pytest
        from hil.link.client import PrimeClient

        PROBES = []
        _launch = PrimeClient.launch_app

        def counted(self, app_id):
            PROBES.append(app_id)
            return _launch(self, app_id)

        PrimeClient.launch_app = counted

        @pytest.fixture
        def probes():
            PROBES.clear()  # counted from the test's first fixture that touches the unit
            return PROBES
    """)
    pytester.makepyfile("""
        def test_unlocks_the_fresh_unit(prime):
            pass

        def test_all_three(probes, prime, unlocked_prime, touch):
            assert len(probes) == 1 and unlocked_prime is prime and touch is not None
    """)
    run(pytester, "--device=emulator").assert_outcomes(passed=2)
