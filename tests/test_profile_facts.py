"""`hil profile facts` lists every device fact the harness assumes rather than takes from KeyOS source."""

from typer.testing import CliRunner

from hil.cli import app
from hil.link import facts
from hil.link.facts import assumed_facts


def test_assumed_notes_are_found_with_their_setting(tmp_path):
    profile = tmp_path / "p.yaml"
    profile.write_text("a: 1   # keyos.md §5.1\nb: 2   # assumed: nobody measured it\n")
    [fact] = assumed_facts(profile)
    assert (fact.line, fact.what, fact.why) == (2, "b: 2", "nobody measured it")


def test_hil_profile_facts_lists_the_lab_profiles_assumptions():
    result = CliRunner().invoke(app, ["profile", "facts", "prime-rev-b"])
    assert result.exit_code == 0, result.output
    assert "prime-rev-b.yaml" in result.output and "settle_s" in result.output and "kernel_log" in result.output
    samba = [line for line in result.output.splitlines() if line.startswith("hil/flash/samba.py:")]
    assert any("MAX_APPLET_BUFFER" in line for line in samba)  # the SAM-BA driver's facts too
    assert any("arrival order" in line for line in samba)  # what pipelining the page transfers rests on
    assert CliRunner().invoke(app, ["profile", "facts", "no-such-profile"]).exit_code == 2


def test_notes_in_the_harness_and_its_suites_are_listed_with_what_they_are_on(tmp_path, monkeypatch):
    """A UI label or a timing assumed in the harness's own code, or in a suite's docstring, is a device fact
    as much as a profile's; the emulator's own model is not one the harness relies on."""
    (tmp_path / "device_profiles").mkdir()
    (tmp_path / "device_profiles" / "p.yaml").write_text("a: 1   # keyos.md §5.1\n")
    (tmp_path / "hil" / "emulator").mkdir(parents=True)
    (tmp_path / "hil" / "pin.py").write_text('DELETE = "Delete"  # assumed: the key label is not in the\n'
                                             '# indexed source\nOTHER = 1\n')
    (tmp_path / "hil" / "emulator" / "model.py").write_text("X = 1  # assumed: the emulator's own\n")
    (tmp_path / "suites").mkdir()
    (tmp_path / "suites" / "test_s.py").write_text('def test_x():\n    """Checks it (assumed: KeyOS keeps\n'
                                                   '    the prompt up).\n    """\n')
    monkeypatch.setattr(facts, "ROOT", tmp_path)
    monkeypatch.setattr(facts, "PROFILES_DIR", tmp_path / "device_profiles")
    result = CliRunner().invoke(app, ["profile", "facts", "p"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert 'hil/pin.py:1: DELETE = "Delete"  assumed: the key label is not in the indexed source' in lines
    assert "suites/test_s.py:2: test_x  assumed: KeyOS keeps the prompt up)." in lines
    assert not any("emulator" in line for line in lines)


def test_only_a_profile_whose_link_answers_the_setting_lets_checks_read_developer_mode():
    """On hardware GET_DEVELOPER_MODE answers 1 whenever the link answers (os/usb-debug/src/dispatch.rs), so the
    checks and the commissioning step that read the toggle through it say why they cannot there."""
    from hil.profile import profile_named

    assert "dispatch.rs" in (profile_named("prime-rev-b").developer_mode_unreadable() or "")
    assert profile_named("prime-emulated").developer_mode_unreadable() is None
    assert profile_named("keyos-simulator").developer_mode_unreadable() is None
