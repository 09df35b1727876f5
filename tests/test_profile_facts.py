"""`hil profile facts` lists every device fact the harness assumes rather than takes from KeyOS source."""

from typer.testing import CliRunner

from hil.cli import app
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
    samba = [line for line in result.output.splitlines() if line.startswith("samba.py:")]
    assert any("MAX_APPLET_BUFFER" in line for line in samba)  # the SAM-BA driver's facts too
    assert any("arrival order" in line for line in samba)  # what pipelining the page transfers rests on
    assert CliRunner().invoke(app, ["profile", "facts", "no-such-profile"]).exit_code == 2
