"""lab_config.yaml and device profiles: the shipped files load, and every mistake names file, line, field."""

from pathlib import Path

import pytest

from hil.errors import ConfigError
from hil.lab.config import load_lab
from hil.profile import load_profile

ROOT = Path(__file__).resolve().parents[1]


def test_default_lab_is_four_emulated_stations():
    lab = load_lab()
    assert list(lab.stations) == ["emu-1", "emu-2", "emu-3", "emu-4"]
    assert all(s.emulated is not None and s.profile == "prime-emulated" for s in lab.stations.values())
    assert lab.state_dir == ROOT / ".hil" and lab.signing_key.generate


def test_example_lab_is_wired_and_valid():
    lab = load_lab(ROOT / "lab_config.example.yaml")
    a = lab.stations["prime-a"]
    assert (a.usb_port, a.samba, a.camera_calibration.corners[0]) == ("1-2.3", a.samba, (212.0, 88.0))
    assert not lab.signing_key.generate


def test_profiles_carry_device_facts():
    emu = load_profile("prime-emulated", ROOT / "device_profiles")
    assert emu.usb.keyos == "1307:0165" and emu.touch.home_button.centre == (100, 910)
    assert emu.allows("development", "KERNEL_CMD") and not emu.allows("production", "KERNEL_CMD")
    assert "SCREENSHOT" in emu.flavours["production"].need_unlocked


def _lab(tmp_path, body: str) -> Path:
    (tmp_path / "device_profiles").mkdir(exist_ok=True)
    for f in (ROOT / "device_profiles").glob("*.yaml"):
        (tmp_path / "device_profiles" / f.name).write_text(f.read_text())
    p = tmp_path / "lab.yaml"
    p.write_text("signing_key: {path: k.pem}\nstations:\n" + body + f"signoff_criteria: {ROOT / 'signoff_criteria.yaml'}\n")
    return p


def test_typo_names_file_line_and_field(tmp_path):
    p = _lab(tmp_path, "  a: {profile: prime-emulated, emulated: {seed: 1}}\n  b:\n    profile: prime-emulated\n"
                       "    emulated: {seed: 2, flavor: production}\n")
    with pytest.raises(ConfigError) as e:
        load_lab(p)
    assert f"{p}:6: stations.b.emulated.flavor: unknown field (typo?)" in str(e.value)


def test_wrong_value_and_missing_wiring(tmp_path):
    p = _lab(tmp_path, "  a:\n    profile: prime-emulated\n    usb_port: '1-2'\n")
    with pytest.raises(ConfigError, match=r"lab.yaml:4: stations.a: Value error, a wired station needs at least `debug`"):
        load_lab(p)
    p = _lab(tmp_path, "  a: {profile: prime-emulated, emulated: {seed: x}}\n")
    with pytest.raises(ConfigError, match=r"lab.yaml:3: stations.a.emulated.seed: Input should be a valid integer"):
        load_lab(p)


def test_unknown_profile_lists_known(tmp_path):
    p = _lab(tmp_path, "  a: {profile: prime-rev-z, emulated: {seed: 1}}\n")
    with pytest.raises(ConfigError, match="no device profile 'prime-rev-z'.*known: .*prime-emulated, prime-rev-b"):
        load_lab(p)


def test_broken_yaml_names_line(tmp_path):
    p = _lab(tmp_path, "  a: {profile: [\n")
    with pytest.raises(ConfigError, match=r"lab.yaml:\d+: not valid YAML"):
        load_lab(p)


def test_profile_with_unknown_debug_command(tmp_path):
    prof = tmp_path / "device_profiles"
    prof.mkdir()
    (prof / "bad.yaml").write_text("screenshot_byte_order: BGRA\nflavours:\n  production:\n"
                                   "    allowed: [SCREENSHOT, SCREENSHOOT]\n")
    with pytest.raises(ConfigError, match=r"bad.yaml:4: flavours.production.allowed: .*unknown usb-debug command\(s\) SCREENSHOOT"):
        load_profile("bad", prof)
