"""The `display` fixture of the pytest plugin, against an emulated Prime started as a process (so its
`hil emulator start` endpoints include the camera), with Allure evidence."""

import json


def test_display_fixture_verifies_and_attaches_evidence(pytester, tmp_path):
    pytester.makepyfile(test_screen="""
        import pytest
        from hil.vision.display import ScreenUnreadable

        def test_lock_screen(display):
            display.expect_text("Swipe up to unlock", timeout=15)

        def test_absent_text_fails(display):
            display.expect_text("Bitcoin Wallet", region="title", timeout=0)
    """)
    results = tmp_path / "allure"
    run = pytester.runpytest_subprocess("--emulator-flavour", "production", "--alluredir", str(results), "-p",
                                        "no:cacheprovider")
    run.assert_outcomes(passed=1, failed=1)
    run.stdout.no_fnmatch_line("*BROKEN*")  # a clear wrong screen is a failure of the device, not broken
    by_name = {}
    for f in results.glob("*-result.json"):
        r = json.loads(f.read_text())
        by_name[r["name"]] = r
    attached = {a["type"] for a in by_name["test_lock_screen"]["attachments"]}
    assert {"image/png", "application/json", "text/plain"} <= attached
    assert attached & {"image/jpg", "image/jpeg"}  # the raw camera frame
    assert by_name["test_absent_text_fails"]["status"] == "failed"
