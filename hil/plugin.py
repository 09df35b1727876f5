"""The pytest plugin: the device under test (``--device``), fixtures, flavour/hardware markers, and
"broken" results.

Fixtures stay thin: they call the plain functions of ``hil.link`` that also work outside pytest.
An :class:`~hil.errors.InfrastructureError` is the lab's fault, not the device's: its test stays
failed for pytest but is tagged ``("hil_outcome", "broken")`` and listed apart.  Once the link is lost
(or the device refused the PIN), every later test that needs the device is broken at once with that
reason, instead of waiting on a dead link; tests that need no device still run.

Adding a fixture: define it below with ``@pytest.fixture``, taking ``station`` (the resources of the
device under test) and/or ``prime`` (the connected client in its known state).
"""

from __future__ import annotations

import atexit
import gc
from dataclasses import dataclass, field

import pytest

from hil.emulator.build import DEFAULT_FLAVOUR
from hil.errors import ConfigError, InfrastructureError
from hil.lab.station import Station, device_station, robot_calibration
from hil.link.client import PrimeClient
from hil.link.resolve import open_client
from hil.link.state import HomeScreen, PinRejected, bring_home, detect_flavour, takes_input_while_locked
from hil.link.transport import LinkClosed
from hil.machine import scaled
from hil.provisioning import TEST_MNEMONIC, TEST_PIN
from hil.stimuli.touch import DebugTouch, RobotTouch, Touch
from hil.terminal import printable

pytest_plugins = ["hil.pytest_farm"]  # --lab: stations leased from a lab file (one per xdist worker)

MARKERS = {
    "production_only": "runs only against a production build (the flavour the station or --flavour declares)",
    "development_only": "runs only against a development build (the flavour the station or --flavour declares)",
    "hardware_only": "runs only on real hardware (the device profile's `physical`)",
}
BROKEN = ("hil_outcome", "broken")
DESK_PIN_GUARD = pytest.StashKey[object]()  # a desk run's one in-memory PIN guard

# The last thing a pytest process does before the interpreter's finalization (registered first, so run last):
# what is still alive then lives until the process is gone, and frozen, the finalization's garbage collections
# do not walk it (a worker's heap of OCR models, frames and test items: 0.7 s of CPU, 1.1 s of the run's end at
# load 40 -> 0.3 s).
atexit.register(gc.freeze)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("hil", "prime-hil: the device under test")
    group.addoption("--device", default=None,
                    help="emulator | tcp:HOST:PORT | usb:SERIAL | usb:BUS-PORT | /dev/ttyACMn "
                         "(default: start a fresh emulated Prime)")
    group.addoption("--profile", default=None,
                    help="device profile in device_profiles/ (default: the emulator's own, else prime-rev-b)")
    group.addoption("--pin", default=TEST_PIN, help="the PIN the units under test are provisioned with")
    group.addoption("--mnemonic", default=TEST_MNEMONIC, metavar="WORDS",
                    help="the BIP39 test mnemonic the units under test are provisioned with (the seed checks derive "
                         "from it what a unit must serve); default: 'all' twelve times, which emulated units carry")
    group.addoption("--flavour", choices=("development", "production"), default=None,
                    help="build flavour the unit runs, where the station does not declare it (a desk run); "
                         "without it the flavour is inferred from the device, and lockdown checks are unreliable")
    group.addoption("--emulator-flavour", choices=("development", "production"), default=DEFAULT_FLAVOUR,
                    help="build flavour of the emulated Prime started for --device=emulator")
    group.addoption("--emulator-defect", action="append", default=[], metavar="NAME",
                    help="a seeded defect the emulated build carries (repeatable; hil/emulator/defects.py)")
    group.addoption("--emulator-seed", type=int, default=0, metavar="N",
                    help="seed of the emulated Prime (its serial, secrets and screen layouts)")
    group.addoption("--emulator-apps", default=None, metavar="DIR",
                    help="built-in apps of the emulated Prime: a directory of <app>/manifest.json")
    group.addoption("--firmware", default=None, metavar="IMAGE",
                    help="boot.img or app.bin to flash when --device is a tty of the unit's SAM-BA ROM "
                         "(without it the unit boots what its eMMC holds)")
    group.addoption("--link-timeout", type=float, default=5.0,
                    help="seconds to wait for each device answer (on an idle host; scaled by how busy it is)")


def pytest_configure(config: pytest.Config) -> None:
    for name, doc in MARKERS.items():
        config.addinivalue_line("markers", f"{name}: {doc}")
    config.pluginmanager.register(BrokenResults(), "hil-broken-results")
    from hil.report import plan

    plan.register(config)  # plan.json: the collected test ids, before anything runs


# ------------------------------------------------------------------------------------ fixtures


@dataclass
class DeviceUnderTest:
    """The session's one link to the device (KeyOS serves one debug client at a time).

    ``flavour`` is the build the unit is declared to run (tests are selected by it); ``observed`` the
    flavour its answers look like.  They differ only when the lockdown is broken (or the wrong build
    was flashed): `suites/security/test_lockdown.py` fails on that, no marker turns it into a skip."""

    station: Station
    client: PrimeClient
    flavour: str
    observed: str
    declared: bool = True
    home: HomeScreen = field(default_factory=HomeScreen)  # its display and processes after the last home press


@pytest.fixture(scope="session")
def station(request: pytest.FixtureRequest):
    """The resources of the device under test, by the keys of docs/architecture.md."""
    opt = request.config.getoption
    if opt("--lab"):  # the worker's leased station; the farm moves it elsewhere after a fault
        yield request.getfixturevalue("farm_station")
        return
    try:
        with device_station(opt("--device"), opt("--profile"), flavour=opt("--emulator-flavour"),
                            seed=opt("--emulator-seed"), defects=tuple(opt("--emulator-defect")),
                            apps=opt("--emulator-apps")) as st:
            if opt("--device") in (None, "emulator"):  # the plugin started it, so it knows which build it booted
                st = st.model_copy(update={"flavour": opt("--emulator-flavour")})
            yield _past_samba(st, request)
    except ConfigError as e:  # a --device or --profile that names nothing usable: say so once
        pytest.exit(f"hil: {e}", returncode=pytest.ExitCode.USAGE_ERROR)


@pytest.fixture(scope="session")
def device_under_test(station: Station, request: pytest.FixtureRequest):
    missing = station.profile.link_missing(declared_flavour(station, request.config.getoption("--flavour")))
    if missing:
        pytest.skip(f"{missing}; this check needs it")
    try:
        client = open_client(station.debug, station.profile, scaled(request.config.getoption("--link-timeout")),
                             station)
    except ConfigError as e:
        pytest.exit(f"hil: {e}", returncode=pytest.ExitCode.USAGE_ERROR)
    with client:
        observed = detect_flavour(client, station.profile)
        declared = declared_flavour(station, request.config.getoption("--flavour"))
        if declared is None:
            _warn(request.config, f"hil: WARNING: nothing declares the build flavour of {client.device} (give --flavour); "
                                  f"inferred {observed!r} from its answers, so lockdown checks are unreliable")
        yield DeviceUnderTest(station, client, declared or observed, observed, declared is not None)


@pytest.fixture(scope="session")
def unit_flavour(station: Station, request: pytest.FixtureRequest) -> str | None:
    """The flavour the station's unit is declared to run (`declared_flavour`), None where nothing declares it;
    for checks that need no debug link (camera, relay, robot), so that they run on a build without it too."""
    return declared_flavour(station, request.config.getoption("--flavour"))


def _past_samba(station: Station, request: pytest.FixtureRequest) -> Station:
    """A ``--device`` tty that is the unit's SAM-BA ROM: flash ``--firmware`` (or boot the eMMC) and
    take the KeyOS debug interface on the same USB port path (hil.lab.first_contact)."""
    from pathlib import Path

    from hil.link.resolve import SambaRom, transport_for

    if not (station.debug or "").startswith("/"):
        return station
    try:
        transport_for(station.debug, station.profile, station)
        return station
    except SambaRom as rom:
        from hil.lab.first_contact import take_over
        from hil.flash import emulated

        opt = request.config.getoption
        applet = Path(opt("--samba-applet", default=None) or emulated.APPLET).read_bytes()
        firmware = opt("--firmware")
        device = take_over(rom, station, applet, emulated.keyset(station.profile.firmware_keys),
                           firmware=Path(firmware) if firmware else None,
                           flavour=declared_flavour(station, opt("--flavour")))
        return station.model_copy(update={"debug": device})


def declared_flavour(station: Station, option: str | None) -> str | None:
    """The flavour the unit is meant to run, never read from the behaviour under test: the station's
    (an emulated build, a lab entry's ``flavour=`` tag, a labgrid place's tag), else ``--flavour``.
    Both given and different is a usage error."""
    tagged = {t.split("=", 1)[1] for t in station.tags if t.startswith("flavour=")}
    known = {f for f in (station.flavour, *tagged) if f}
    if option and known and known != {option}:
        pytest.exit(f"hil: --flavour {option} but station {station.name} declares {', '.join(sorted(known))}",
                    returncode=pytest.ExitCode.USAGE_ERROR)
    if len(known) > 1:
        pytest.exit(f"hil: station {station.name} declares two flavours ({', '.join(sorted(known))}); fix its entry",
                    returncode=pytest.ExitCode.USAGE_ERROR)
    return next(iter(known), option)


def _warn(config: pytest.Config, line: str) -> None:
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(line, yellow=True)


@pytest.fixture
def prime(device_under_test: DeviceUnderTest, pin: str, request: pytest.FixtureRequest) -> PrimeClient:
    """The connected device, unlocked with the test PIN on the home screen: typed over the debug link
    where the build takes input while locked, else by the station's stylus robot; without a robot a
    locked production unit stays as it is."""
    dut = device_under_test
    robot = request.getfixturevalue("robot_touch") if touch_backend(dut.station, dut.flavour, True) == "robot" else None
    guard, quarantine = request.getfixturevalue("pin_guard")

    def guarded(touch: Touch | None) -> None:  # the PIN goes only onto a verified PIN screen, once
        from hil.lab.pin_guard import unlock_safely

        touch = touch or DebugTouch(dut.client, dut.station.profile.touch.home_button.centre)
        unlock_safely(dut.client, pin, touch, request.getfixturevalue("look"), guard, quarantine)

    request.node.stash[UNLOCKED] = bring_home(dut.client, dut.station.profile, dut.flavour, guarded, touch=robot,
                                              home=dut.home)
    return dut.client


UNLOCKED = pytest.StashKey[bool]()  # on the test: whether `prime` left the unit unlocked (asked once per test)


class DisplayNotVisible(InfrastructureError):
    """Nothing can show the harness what the display shows now."""


@pytest.fixture
def look(device_under_test: DeviceUnderTest, request: pytest.FixtureRequest):
    """``look()``: the display now, a rectified 480x800 BGR image to find controls in by what they show
    (`hil.vision.pin_screen`, `hil.vision.controls`): the debug link's screenshot where the build serves
    it even while locked, else the station's camera."""
    dut = device_under_test
    if "SCREENSHOT" not in dut.station.profile.flavours[dut.flavour].need_unlocked:  # type: ignore[index]
        from hil.lab.pin_guard import screenshot_bgr

        return lambda: screenshot_bgr(dut.client)
    if dut.station.camera is None:
        def blind():
            raise DisplayNotVisible(f"{dut.client.device} runs a {dut.flavour} build, which hides the screen while "
                                    f"locked, and station {dut.station.name} has no camera; wire one")
        return blind
    display = request.getfixturevalue("display")
    return lambda: display.rectified()[0]


@pytest.fixture
def pin_guard(station: Station, request: pytest.FixtureRequest):
    """The station's PIN state (`hil.lab.pin_guard`) and the quarantine a rejection goes to: on a lab run
    both live in the lab's state dir, shared by every worker; on labgrid, on the place (its coordinator,
    shared by every host), which blocking quarantines; on a desk run, in memory."""
    from hil.lab.pin_guard import PinGuard, PlacePinGuard
    from hil.lab.farm import FileStations
    from hil.lab.places import PlaceLeases
    from hil.pytest_farm import FARM

    farm = request.config.stash.get(FARM, None)
    local = getattr(farm, "leases", None)
    if isinstance(local, FileStations):
        return PinGuard(station.name, local.lab.state_dir), local.quarantine
    if isinstance(local, PlaceLeases) and farm.lease is not None:
        return PlacePinGuard(farm.lease.coord, farm.lease.place), None
    return request.config.stash.setdefault(DESK_PIN_GUARD, PinGuard(station.name)), None


@pytest.fixture
def unlocked_prime(prime: PrimeClient, device_under_test: DeviceUnderTest, request: pytest.FixtureRequest) -> PrimeClient:
    """``prime``, unlocked; skipped where the build refuses debug input while locked and the station
    has no stylus robot to type the PIN."""
    if not request.node.stash[UNLOCKED]:
        pytest.skip(f"{prime.device} runs a {device_under_test.flavour} build, which refuses debug-link "
                    f"input while locked, and station {device_under_test.station.name} has no stylus robot")
    return prime


def touch_backend(station: Station, flavour: str, locked: bool) -> str | None:
    """Which backend presses for a test: ``"debug"`` where the build takes debug input while locked,
    ``"robot"`` where it does not and the station has one (the test may lock the unit; the robot
    still works then), ``"debug"`` on an unlocked unit without a robot, None where nothing can."""
    if takes_input_while_locked(station.profile, flavour):
        return "debug"
    if station.robot is not None:
        return "robot"
    return None if locked else "debug"


@pytest.fixture
def touch(prime: PrimeClient, device_under_test: DeviceUnderTest, request: pytest.FixtureRequest) -> Touch:
    """The station's touchscreen and power button (`hil.stimuli.touch.Touch`), pressed by whatever
    the station and the build allow (`touch_backend`); skipped where nothing can."""
    dut = device_under_test
    backend = touch_backend(dut.station, dut.flavour, not request.node.stash[UNLOCKED])
    if backend is None:
        pytest.skip(f"{prime.device} is locked and runs a {dut.flavour} build, which refuses debug-link input "
                    f"while locked; station {dut.station.name} has no stylus robot")
    if backend == "robot":
        return request.getfixturevalue("robot_touch")
    return DebugTouch(prime, dut.station.profile.touch.home_button.centre)


@pytest.fixture(scope="session")
def station_robot(station: Station):
    """The stylus robot on the station's display, opened (reset and homed) once per session."""
    if station.robot is None:
        pytest.skip(f"station {station.name} has no stylus robot")
    from hil.stimuli.robot import StylusRobot

    try:
        calibration = robot_calibration(station)
    except ConfigError as e:  # a robot nobody calibrated cannot be trusted to hit a key
        pytest.exit(f"hil: {e}", returncode=pytest.ExitCode.USAGE_ERROR)
    with StylusRobot.open(station.robot, calibration) as robot:
        yield robot


@pytest.fixture(scope="session")
def station_relay(station: Station):
    """The relay across the station's power button, opened once per session."""
    if station.relay is None:
        pytest.skip(f"station {station.name} has no power-button relay")
    from hil.stimuli.relay import PowerButtonRelay

    with PowerButtonRelay.open(station.relay) as relay:
        yield relay


@pytest.fixture(scope="session")
def robot_touch(station: Station, station_robot, request: pytest.FixtureRequest) -> RobotTouch:
    """Robot and relay as one `Touch`; without a relay its power presses are broken, its taps still work."""
    relay = request.getfixturevalue("station_relay") if station.relay is not None else None
    return RobotTouch(station_robot, relay, station.profile.touch.home_button.centre)


@pytest.fixture
def pin(request: pytest.FixtureRequest) -> str:
    """The PIN the units under test are provisioned with (--pin)."""
    return request.config.getoption("--pin")


@pytest.fixture(scope="session")
def seed_entropy(request: pytest.FixtureRequest) -> bytes:
    """The BIP39 entropy of the mnemonic the units under test are provisioned with (--mnemonic)."""
    from embit import bip39

    words = request.config.getoption("--mnemonic")
    try:
        entropy = bip39.mnemonic_to_bytes(words)
    except ValueError as e:
        pytest.exit(f"hil: --mnemonic is not a BIP39 mnemonic ({e}); give the words the units were provisioned with",
                    returncode=pytest.ExitCode.USAGE_ERROR)
    if len(entropy) not in (16, 32):
        pytest.exit(f"hil: --mnemonic has {len(words.split())} words; KeyOS seeds have 12 or 24",
                    returncode=pytest.ExitCode.USAGE_ERROR)
    return entropy


@pytest.fixture(scope="session")
def station_camera(station: Station):
    """The camera watching the station's display, opened once per session; skipped where none is wired."""
    if station.camera is None:
        pytest.skip(f"station {station.name} has no camera watching its display")
    with station.open_camera() as camera:
        yield camera


@pytest.fixture
def display(station_camera, station: Station):
    """The display as the camera sees it (`hil.vision.display.Display`); the evidence of every
    verification (frames, rectified view with OCR boxes, text) is attached to the Allure result."""
    return station.display(station_camera)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item: pytest.Item):
    """Attach the display's evidence while the test is still the current Allure result; with no Allure
    results being written (no ``--alluredir``) nothing is encoded."""
    yield
    if item.config.pluginmanager.get_plugin("allure_listener") is None:
        return
    display = getattr(item, "funcargs", {}).get("display")
    if display is not None:
        from hil.vision.evidence import attach

        attach(display.evidence())
    from hil.report.steps import steps_of  # what the screen reader and the probe saw, as named steps
    from hil.vision.evidence import attach_steps

    attach_steps([step for value in getattr(item, "funcargs", {}).values() for step in steps_of(value)])


def pytest_sessionfinish(session: pytest.Session) -> None:
    """The evidence images encoded in the background (`hil.vision.evidence`) are all written before the run ends."""
    from hil.vision.evidence import flush

    for failure in flush():
        _warn(session.config, f"hil: WARNING: an evidence image was not written: {failure}")


@pytest.fixture(autouse=True)
def _hil_markers(request: pytest.FixtureRequest) -> None:
    """Skip by marker; the device is only contacted when a test carries one."""
    marks = {m.name: m for m in request.node.iter_markers() if m.name in MARKERS}
    for m in marks.values():
        if m.args or m.kwargs:
            raise pytest.UsageError(f"{request.node.nodeid}: @{m.name} takes no arguments")
    if "production_only" in marks and "development_only" in marks:
        raise pytest.UsageError(f"{request.node.nodeid}: production_only and development_only exclude each other")
    if request.node.get_closest_marker("destructive") is not None:  # suites/conftest.py's marker
        profile = request.getfixturevalue("station").profile
        if not profile.allows_wipe:
            pytest.skip(f"erases the unit; profile {profile.name} does not allow wiping (allows_wipe)")
    if "hardware_only" in marks:
        profile = request.getfixturevalue("station").profile
        if not profile.physical:
            pytest.skip(f"needs real hardware; profile {profile.name} is not physical")
    for name, wanted in (("production_only", "production"), ("development_only", "development")):
        if name in marks:
            dut: DeviceUnderTest = request.getfixturevalue("device_under_test")
            if dut.flavour != wanted:
                pytest.skip(f"needs a {wanted} build; {dut.client.device} runs a {dut.flavour} build")


# ------------------------------------------------------------------------------------ broken results


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    outcome = yield
    report = outcome.get_result()
    if call.excinfo is None or not call.excinfo.errisinstance(InfrastructureError):
        return
    report.user_properties.append(BROKEN)
    # with the session's device lost, PIN refused or not set up, every later test would only repeat it
    farm = item.config.getoption("--lab")  # the farm re-runs elsewhere and quarantines instead
    if _uses_device(item) and not farm and item.session.stash.get(LOST, None) is None \
            and (report.when == "setup" or call.excinfo.errisinstance((LinkClosed, PinRejected))):
        item.session.stash[LOST] = f"{item.nodeid} ({report.when}): {call.excinfo.value}"


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """After the device was lost, a test that needs it is broken before any fixture touches the dead link."""
    if item.config.getoption("--lab") or not _uses_device(item):
        return
    lost = item.session.stash.get(LOST, None)
    if lost is not None:
        raise DeviceLost(f"hil: not run, the device was lost earlier in this session: {lost}")


def _uses_device(item: pytest.Item) -> bool:
    return "device_under_test" in getattr(item, "fixturenames", ())


class DeviceLost(InfrastructureError):
    """A test that was planned but not run because the session's device is gone (a broken result)."""


LOST = pytest.StashKey[str]()  # on the session: the first test that lost the device, and why


class BrokenResults:
    """Collects the broken reports where the terminal is (also those coming back from xdist
    workers) and lists them after the run."""

    def __init__(self):
        self.reports: list[pytest.TestReport] = []

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.failed and BROKEN in report.user_properties:
            self.reports.append(report)

    def pytest_terminal_summary(self, terminalreporter) -> None:
        if not self.reports:
            return
        terminalreporter.section("hil: broken (infrastructure, no verdict on the device)", sep="-", yellow=True)
        for report in self.reports:
            crash = getattr(report.longrepr, "reprcrash", None)
            message = crash.message if crash else str(report.longrepr)
            first = message.splitlines()[0] if message else ""
            terminalreporter.line(f"BROKEN {report.nodeid} ({report.when}): {printable(first)}")  # device text in it
        terminalreporter.line(f"{len(self.reports)} broken")
