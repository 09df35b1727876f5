"""Quarantine persists with its reason, and `hil farm status|quarantine|readmit` drive it."""

from pathlib import Path

import pytest
from typer.testing import CliRunner

from hil.errors import ConfigError
from hil.lab.cli import app
from hil.lab.quarantine import Quarantine

ROOT = Path(__file__).resolve().parents[1]


def test_add_remove_persist(tmp_path):
    q = Quarantine(tmp_path)
    q.add("emu-2", "camera dark", by="gw1")
    assert Quarantine(tmp_path).get("emu-2").reason == "camera dark"
    assert q.remove("emu-2").by == "gw1"
    assert Quarantine(tmp_path).entries() == {}


def test_corrupt_file_is_a_clear_error(tmp_path):
    (tmp_path / "quarantine.json").write_text("{not json")
    with pytest.raises(ConfigError, match="corrupt quarantine list .* fix or delete it"):
        Quarantine(tmp_path).entries()


@pytest.fixture
def lab(tmp_path):
    text = (ROOT / "lab_config.yaml").read_text().replace("state_dir: .hil", f"state_dir: {tmp_path / 'state'}")
    text = text.replace("profiles_dir: device_profiles", f"profiles_dir: {ROOT / 'device_profiles'}")
    text = text.replace("signoff_criteria: ", f"signoff_criteria: {ROOT}/")
    p = tmp_path / "lab.yaml"
    p.write_text(text)
    return p


def test_cli_quarantine_status_readmit(lab):
    runner = CliRunner(env={"COLUMNS": "200"})
    run = runner.invoke
    r = run(app, ["quarantine", "emu-3", "--reason", "NFC reader unplugged", "--lab", str(lab)])
    assert r.exit_code == 0, r.output
    r = run(app, ["status", "--lab", str(lab)])
    assert "quarantined: NFC reader unplugged" in r.output and "emu-1" in r.output
    r = run(app, ["readmit", "emu-3", "--lab", str(lab)])
    assert "readmitted (was: NFC reader unplugged)" in r.output
    assert "quarantined" not in run(app, ["status", "--lab", str(lab)]).output


def test_cli_unknown_station(lab):
    r = CliRunner().invoke(app, ["quarantine", "emu-9", "--reason", "x", "--lab", str(lab)])
    assert r.exit_code == 2 and "no station 'emu-9'" in r.output
