"""No seed at risk: the PIN is typed only on a PIN screen found by what it shows, one rejected PIN blocks
every later entry on that unit (across workers, through the station state file) and quarantines it."""

import json
import socket
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from hil.emulator.apps.lockscreen import failed_attempts_warning
from hil.emulator.build import Build
from hil.emulator.launcher import EmulatorProcess
from hil.emulator.prime import Prime
from hil.lab.pin_guard import PinGuard
from hil.report.allure import read_results
from hil.vision import ocr
from hil.vision.pin_screen import NotAPinScreen, find_pin_screen, read_pin_screen

ROOT = Path(__file__).resolve().parents[1]


def bgr(image: Image.Image):
    return np.ascontiguousarray(np.asarray(image.convert("RGB"))[:, :, ::-1])


def line(text: str, x: int, y: int) -> ocr.Line:
    return ocr.Line(text, (x - 10, y - 10, x + 10, y + 10), 1.0)


def test_the_emulated_lock_screen_is_read_by_keyos_strings_with_its_attempts():
    prime = Prime(index=1, seed=1, build=Build(flavour="development"), boot_seconds=0)
    prime.swipe(240, 760, 240, 460)  # up from the swipe hint: the PIN pad
    pad = read_pin_screen(bgr(prime.framebuffer()))
    assert pad.failed == 0 and pad.remaining == 10 and set(pad.keys) == set("0123456789") and pad.delete
    for key in "000000":
        prime.touch(*pad.keys[key])
    prime.touch(*pad.enter)
    after = read_pin_screen(bgr(prime.framebuffer()))
    assert after.remaining == 9 == prime.se.attempts_remaining


@pytest.mark.parametrize("remaining", [9, 7, 6, 1])
def test_failed_attempts_are_parsed_from_every_keyos_warning(remaining):
    lines = [line("Enter PIN", 240, 40), *(line(t, 240, 130 + 20 * i)
                                          for i, t in enumerate(failed_attempts_warning(remaining).split("\n")) if t)]
    lines += [line(d, 80 + 160 * (i % 3), 400 + 100 * (i // 3)) for i, d in enumerate("1234567890")]
    lines.append(line("Unlock", 400, 710))
    assert find_pin_screen(lines, np.full((800, 480, 3), 255, np.uint8)).remaining == remaining


def test_a_look_alike_without_every_key_is_not_typed_on():
    im = Image.new("RGB", (480, 800), "white")
    ImageDraw.Draw(im).text((200, 40), "Enter PIN", fill="black")
    with pytest.raises(NotAPinScreen, match="Enter PIN|PIN key"):
        read_pin_screen(bgr(im))


def test_a_block_is_shared_through_the_state_file_and_cleared_by_readmission(tmp_path):
    a, b = PinGuard("emu-1", tmp_path), PinGuard("emu-1", tmp_path)
    a.block("first")
    b.block("second")
    assert b.blocked() == "first" and PinGuard("emu-2", tmp_path).blocked() is None
    (tmp_path / "leases" / "emu-1.pin.json").write_text("{not json")
    assert "unreadable" in a.blocked()  # a corrupt record still blocks
    a.clear()
    assert b.blocked() is None


def control(endpoint: str, **cmd) -> dict:
    host, port = endpoint.split(":")[1:]
    with socket.create_connection((host, int(port)), timeout=5) as s:
        s.sendall((json.dumps(cmd) + "\n").encode())
        return json.loads(s.makefile().readline())


def test_a_farm_run_with_the_wrong_pin_spends_one_attempt_per_unit_and_ends_broken(pytester):
    with EmulatorProcess(count=2, flavour="development") as emu:
        stations = "".join(f"  u{i}: {{profile: prime-emulated, debug: '{d['debug']}', usb_port: {d['usb_port']}}}\n"
                           for i, d in enumerate(emu.devices, 1))
        (pytester.path / "lab.yaml").write_text(
            f"name: pin-lab\nstate_dir: {pytester.path / 'state'}\nprofiles_dir: {ROOT / 'device_profiles'}\n"
            f"signoff_criteria: {ROOT / 'signoff_criteria.emulated.yaml'}\n"
            f"signing_key: {{path: {pytester.path / 'key.pem'}, generate: true}}\nstations:\n{stations}")
        pytester.makepyfile(test_s="""
            import pytest
            @pytest.mark.parametrize("i", range(4))
            def test_home(prime, i):
                assert prime.version()
        """)
        r = pytester.runpytest_subprocess("-p", "hil.pytest_farm", "--lab", str(pytester.path / "lab.yaml"),
                                          "--pin", "999999", "--alluredir", str(pytester.path / "out"),
                                          "-p", "no:cacheprovider")
        attempts = [control(d["control"], cmd="status")["attempts_remaining"] for d in emu.devices]
    assert attempts == [9, 9]  # exactly one attempt spent per unit, never more
    res = read_results(pytester.path / "out")
    final = [x for x in res.records if x.labels.get("retried") != "true"]
    assert final and {x.status for x in final} == {"broken"}, [(x.name, x.status) for x in final]
    assert "passed" not in r.stdout.str().split("\n")[-1]
    quarantined = json.loads((pytester.path / "state" / "quarantine.json").read_text())
    assert set(quarantined) == {"u1", "u2"}
    assert all("rejected the test PIN" in q["reason"] and "10 remaining before, 9 remaining after" in q["reason"]
               for q in quarantined.values())
    for name in ("u1", "u2"):
        assert "rejected" in PinGuard(name, pytester.path / "state").blocked()


def test_a_destructive_test_runs_only_where_the_profile_allows_wiping(pytester):
    pytester.makeconftest("""
        import pytest
        from hil.lab.station import Station
        from hil.profile import profile_named

        @pytest.fixture(scope="session")
        def station(request):
            return Station(name=request.config.getoption("--profile"), profile=profile_named(request.config.getoption("--profile")))
    """)
    pytester.makepyfile("""
        import pytest
        @pytest.mark.destructive
        def test_wipe(station):
            pass
    """)
    args = ("-p", "no:cacheprovider", "-o", "markers=destructive: wipes")
    pytester.runpytest_subprocess(*args, "--profile", "prime-rev-b", "-rs").stdout.fnmatch_lines(
        ["*profile prime-rev-b does not allow wiping*"])
    pytester.runpytest_subprocess(*args, "--profile", "prime-emulated").assert_outcomes(passed=1)
