"""The pytest plugin, run through pytester: options, fixtures, markers, broken results, a lost device."""

import pytest

from hil.emulator.build import Build
from hil.emulator.launcher import start_device
from hil.link import protocol as p
from hil.link.protocol import Status

from fake_device import ScriptedDevice, frames, ok

ISOLATED = ("-p", "no:labgrid", "-p", "no:cacheprovider")  # other installed plugins keep global state


def run(pytester, *args):
    return pytester.runpytest(*ISOLATED, *args)


@pytest.fixture
def fake_device():
    made = []

    def make(handler):
        made.append(ScriptedDevice(handler))
        return made[-1]

    yield make
    for dev in made:
        dev.stop()


def test_markers_are_registered(pytester):
    result = run(pytester, "--markers")
    result.stdout.fnmatch_lines(["@pytest.mark.production_only:*", "@pytest.mark.development_only:*",
                                 "@pytest.mark.hardware_only:*"])


def test_options_appear_in_help(pytester):
    result = run(pytester, "--help")
    result.stdout.fnmatch_lines(["*--device=DEVICE*", "*--profile=PROFILE*", "*--pin=PIN*"])


def test_infrastructure_error_is_reported_broken(pytester):
    pytester.makepyfile("""
        from hil.errors import InfrastructureError

        def test_camera_gone():
            raise InfrastructureError("camera 0: no frame for 5 s")

        def test_device_wrong():
            assert 1 == 2
    """)
    result = pytester.inline_run(*ISOLATED)
    reports = {r.nodeid.split("::")[-1]: r for r in result.getreports("pytest_runtest_logreport") if r.when == "call"}
    assert reports["test_camera_gone"].failed and ("hil_outcome", "broken") in reports["test_camera_gone"].user_properties
    assert reports["test_device_wrong"].failed and ("hil_outcome", "broken") not in reports["test_device_wrong"].user_properties
    out = run(pytester)
    out.stdout.fnmatch_lines(["*hil: broken*", "BROKEN test_infrastructure_error_is_reported_broken.py::test_camera_gone"
                              " (call): *camera 0: no frame for 5 s", "1 broken"])
    out.assert_outcomes(failed=2)

def test_a_broken_tests_device_text_reaches_the_terminal_defused(pytester):
    """The broken list quotes the error's message, which carries what the device sent: its escape sequences
    must not retitle or clear the lab engineer's terminal."""
    pytester.makepyfile("""
        from hil.errors import InfrastructureError

        def test_probe_said():
            raise InfrastructureError("probe error: \\x1b]0;owned\\x07\\x1b[2Jdone")
    """)
    out = run(pytester)
    line = next(ln for ln in out.stdout.lines if ln.startswith("BROKEN "))
    assert "\x1b" not in line and "\x07" not in line and "]0;owned" in line and "done" in line, line


def test_hardware_only_decided_by_the_profile(pytester):
    pytester.makepyfile("""
        import pytest

        @pytest.mark.hardware_only
        def test_needs_hardware(station):
            assert station.profile.physical
    """)
    emulated = run(pytester, "--device", "tcp:127.0.0.1:9", "--profile", "prime-emulated", "-rs")
    emulated.assert_outcomes(skipped=1)
    emulated.stdout.fnmatch_lines(["*needs real hardware; profile prime-emulated is not physical*"])
    run(pytester, "--device", "tcp:127.0.0.1:9", "--profile", "prime-rev-b").assert_outcomes(passed=1)


def test_marker_misuse_is_a_usage_error(pytester):
    pytester.makepyfile("""
        import pytest

        @pytest.mark.production_only("v2")
        def test_x():
            pass
    """)
    result = run(pytester, "--device", "tcp:127.0.0.1:9")
    assert result.ret != 0
    result.stdout.fnmatch_lines(["*production_only takes no arguments*"])


def test_unusable_device_string_is_one_line(pytester):
    pytester.makepyfile("""
        def test_x(prime):
            pass
    """)
    result = run(pytester, "--device", "serial:P1-0042")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stdout.fnmatch_lines(["*hil: 'serial:P1-0042' is not a device: use emulator, tcp:HOST:PORT*"])


def test_lost_device_breaks_every_later_device_test(pytester, fake_device):
    """The device answers the flavour probe, then goes away: the test that lost it and every later test
    that needs it are broken with the reason; a test without the device still runs."""
    def handler(body):
        if body[0] == p.Cmd.KERNEL_CMD:
            return ok(b"R 1 0 kernel")
        return None  # hang up

    dev = fake_device(handler)
    pytester.makepyfile("""
        def test_one(device_under_test):
            device_under_test.client.version()

        def test_two(device_under_test):
            device_under_test.client.version()

        def test_three():
            pass
    """)
    result = run(pytester, "--device", f"tcp:127.0.0.1:{dev.port}", "--profile", "prime-rev-b")
    result.assert_outcomes(failed=1, errors=1, passed=1)
    result.stdout.fnmatch_lines(["BROKEN *test_one (call)*device closed the connection*",
                                 "BROKEN *test_two (setup): *DeviceLost: hil: not run, the device was lost earlier in this "
                                 "session: *test_one (call): tcp:127.0.0.1:*, GET_VERSION: device closed the connection*",
                                 "2 broken"])
    result.stdout.no_fnmatch_line("*Interrupted*")


def test_link_dropped_mid_run_on_an_emulator(pytester):
    """A control fault drops the emulator's link in the middle of a single-device run: every planned
    device test after it is broken (none missing), and the session ends normally."""
    device = start_device(1, 0, Build(flavour="development"), boot_seconds=0)
    try:
        pytester.makepyfile(f"""
            import json, socket

            def test_before(device_under_test):
                assert device_under_test.client.version() == "1.0.0"

            def test_drop(device_under_test):
                host, port = "{device.endpoints['control']}".removeprefix("tcp:").rsplit(":", 1)
                with socket.create_connection((host, int(port)), timeout=30) as s:
                    s.sendall(json.dumps({{"cmd": "drop"}}).encode() + b"\\n")
                    assert json.loads(s.makefile().readline())["ok"]
                device_under_test.client.version()

            def test_after_1(prime):
                pass

            def test_after_2(device_under_test):
                pass

            def test_no_device():
                pass
        """)
        result = run(pytester, "--device", device.endpoints["debug"], "--profile", "prime-emulated",
                     "--flavour", "development", "-p", "no:randomly")
    finally:
        device.stop()
    result.assert_outcomes(passed=2, failed=1, errors=2)
    result.stdout.fnmatch_lines(["BROKEN *test_drop (call)*",
                                 "BROKEN *test_after_1 (setup): *DeviceLost: hil: not run, the device was lost earlier*test_drop*",
                                 "BROKEN *test_after_2 (setup): *DeviceLost: hil: not run, the device was lost earlier*test_drop*",
                                 "3 broken"])
    assert result.ret == pytest.ExitCode.TESTS_FAILED


def test_undeclared_flavour_is_inferred_with_a_warning(pytester, fake_device):
    """Nothing declares the flavour (a desk run without --flavour): a device that refuses KERNEL_CMD is taken
    for a production build, and the run says once that lockdown checks are then unreliable."""
    dev = fake_device(lambda body: frames(p.response(Status.ERR)) if body[0] == p.Cmd.KERNEL_CMD else ok(b"1.0.0"))
    pytester.makepyfile("""
        import pytest

        @pytest.mark.production_only
        def test_prod(device_under_test):
            assert device_under_test.flavour == "production"

        @pytest.mark.development_only
        def test_dev():
            pass
    """)
    result = run(pytester, "--device", f"tcp:127.0.0.1:{dev.port}", "--profile", "prime-rev-b", "-rs")
    result.assert_outcomes(passed=1, skipped=1)
    result.stdout.fnmatch_lines([f"*needs a development build; tcp:127.0.0.1:{dev.port} runs a production build*"])
    assert result.stdout.str().count("lockdown checks are unreliable") == 1


def test_declared_flavour_decides_and_disagreement_shows(pytester, fake_device):
    """--flavour production on a unit that answers KERNEL_CMD (a broken lockdown): production checks run
    (and fail on the device), none is skipped as "development"; observed and declared are both kept."""
    dev = fake_device(lambda body: ok(b"R 1 0 kernel") if body[0] == p.Cmd.KERNEL_CMD else ok(b"1.0.0"))
    pytester.makepyfile("""
        import pytest

        @pytest.mark.production_only
        def test_prod(device_under_test):
            assert (device_under_test.flavour, device_under_test.observed) == ("production", "development")
            assert device_under_test.declared

        @pytest.mark.development_only
        def test_dev():
            pass
    """)
    # prime-emulated: its production build keeps the debug link (rev B's has none)
    result = run(pytester, "--device", f"tcp:127.0.0.1:{dev.port}", "--profile", "prime-emulated", "--flavour", "production")
    result.assert_outcomes(passed=1, skipped=1)
    assert "lockdown checks are unreliable" not in result.stdout.str()


def test_checks_that_need_the_link_skip_on_a_build_without_it(pytester):
    """Rev B production builds have no usb-debug: link checks skip with that reason, the others run."""
    pytester.makepyfile("""
        def test_needs_link(device_under_test):
            raise AssertionError("must not run")

        def test_needs_no_link():
            pass
    """)
    result = run(pytester, "--device", "tcp:127.0.0.1:9", "--profile", "prime-rev-b", "--flavour", "production", "-rs")
    result.assert_outcomes(passed=1, skipped=1)
    result.stdout.fnmatch_lines(["*a production build has no debug link*"])


def test_emulator_flavour_is_declared(pytester):
    """The plugin started the emulated Prime, so the flavour it booted is declared, not inferred."""
    pytester.makepyfile("""
        def test_declared(device_under_test):
            dut = device_under_test
            assert dut.declared and dut.station.flavour == dut.flavour == dut.observed == "production"
    """)
    result = run(pytester, "--emulator-flavour", "production")
    result.assert_outcomes(passed=1)


def test_default_device_is_a_fresh_emulator(pytester):
    """No --device: an emulated Prime is started; `prime` is unlocked on the home screen."""
    pytester.makepyfile("""
        from hil.link.state import is_locked

        def test_station(station):
            assert station.serial == "EMU-0001" and station.profile.name == "prime-emulated"
            assert station.debug.startswith("tcp:127.0.0.1:")

        def test_prime_is_unlocked(prime):
            assert is_locked(prime) is False
            assert prime.version() == "1.0.0"

        def test_again_after_locking(prime):
            prime.press_power()
            assert is_locked(prime) is True

        def test_known_state_restored(prime):
            assert is_locked(prime) is False
    """)
    run(pytester, "-p", "no:randomly").assert_outcomes(passed=4)


def test_a_pytest_process_leaves_what_is_alive_at_its_exit_to_the_os(pytester):
    """At a process's exit the interpreter's last garbage collections do not walk the heap the run built (a cycle
    alive at exit is not collected: its __del__ never runs), which a worker's exit waited on."""
    pytester.makeconftest("""
        import os

        class Cycle:
            def __del__(self, write=os.write):  # sys.stdout is gone by then
                write(1, b"collected at exit\\n")

        KEPT = Cycle()
        KEPT.me = KEPT
    """)
    pytester.makepyfile("def test_nothing():\n    pass\n")
    result = pytester.runpytest_subprocess(*ISOLATED, "-s")
    result.assert_outcomes(passed=1)
    assert "collected at exit" not in result.stdout.str()


def test_the_plugin_loads_without_numpy():
    """Every pytest process loads the plugin, the xdist controller too, which reads no screen and drives no robot:
    numpy stays out of its start-up (imported where a robot presses or a screen is read)."""
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", "import sys, hil.plugin; print('numpy' in sys.modules)"],
                         capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
