"""`hil nfc tag` and `hil nfc fido-info` against the emulated NFC controller over nfcpy udp."""

from typer.testing import CliRunner

from hil.emulator.nfc import EmulatedNfc
from hil.stimuli.cli import nfc_app
from tests.test_nfc import FakePrime


def test_tag_and_fido_info():
    prime, dev = FakePrime(), EmulatedNfc()
    path = dev.start(prime)[1]
    runner = CliRunner()
    try:
        r = runner.invoke(nfc_app, ["fido-info", "--reader", path])
        assert r.exit_code == 0, r.output
        assert "versions: U2F_V2, FIDO_2_0" in r.output and "nfc" in r.output
        r = runner.invoke(nfc_app, ["tag", "--reader", path, "--text", "hi", "--uri", "https://x.example/",
                                    "--raw", "urn:nfc:ext:example.com:t=0102", "--timeout", "10"])
        assert r.exit_code == 0, r.output
        assert "tag read by the Prime" in r.output and "https://x.example/" in r.output
    finally:
        dev.stop()


def test_bad_raw_record_is_refused():
    r = CliRunner().invoke(nfc_app, ["tag", "--reader", "udp:127.0.0.1:9", "--raw", "nohex"])
    assert r.exit_code != 0 and "TYPE=HEXPAYLOAD" in r.output


def test_lab_faults_are_one_line_errors():
    from hil.emulator.nfc import free_udp_port

    runner = CliRunner()
    r = runner.invoke(nfc_app, ["tag", "--reader", "udp:127.0.0.1:9"])
    assert r.exit_code == 1 and "error: an NDEF tag needs at least one record" in r.output
    r = runner.invoke(nfc_app, ["fido-info", "--reader", f"udp:127.0.0.1:{free_udp_port()}", "--timeout", "1"])
    assert r.exit_code == 1 and "error: no ISO-DEP card answered" in r.output
