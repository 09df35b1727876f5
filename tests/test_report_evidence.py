"""What a check read off the display is attached to its Allure result as named steps: the camera frame
with the panel outlined (or the screenshot), the rectified view with OCR boxes, the OCR lines."""

import json
import subprocess
import sys

import cv2
import numpy as np

from hil.vision.display import Screen
from hil.vision.locate import Location
from hil.vision.ocr import Line
from hil.vision.readings import Readings, outlined

REGIONS = {"all": (0, 0, 480, 800)}
CORNERS = [[100, 50], [580, 60], [570, 860], [90, 850]]


def _screen(text, frame=True):
    image = np.full((800, 480, 3), 40, np.uint8)
    cam = np.zeros((900, 700, 3), np.uint8) if frame else None
    loc = Location.from_corners(CORNERS, "calibration") if frame else None
    return Screen(image, [Line(text, (10, 40, 200, 70), 0.93)], REGIONS, {}, cam, loc)


def test_readings_keep_each_distinct_screen_with_its_evidence():
    r = Readings(keep=3)
    for text in ("Allow Access?", "Allow Access?", "Allow Access?", "Home\x1b[2J"):
        r.add(_screen(text))
    steps = r.steps()
    assert [t for t, _ in steps] == ["display reading 1: Allow Access?", "display reading 4: Home [2J"]
    names = [i.name for i in steps[0][1]]
    assert names == ["camera frame, panel outlined", "rectified view with OCR boxes", "OCR lines with confidences"]
    assert json.loads(steps[0][1][2].data)["lines"] == [{"text": "Allow Access?", "box": [10, 40, 200, 70],
                                                        "confidence": 0.93}]
    shot = Readings()
    shot.add(_screen("Settings", frame=False))
    assert [i.name for i in shot.steps()[0][1]][0] == "screenshot"


def test_outline_marks_the_located_panel():
    img = outlined(np.zeros((900, 700, 3), np.uint8), np.float32(CORNERS))
    assert img[50, 100].any() and not img[450, 340].any()  # on the outline, inside the panel


READER_TEST = '''
import numpy as np, pytest
from hil.vision.display import Screen
from hil.vision.ocr import Line
from hil.vision.readings import Readings

class Reader:
    def __init__(self):
        self.readings = Readings()

@pytest.fixture
def screen():
    return Reader()
'''


def run_reader_test(tmp_path, tests: str) -> subprocess.CompletedProcess:
    """pytest with Allure results on ``tests``, which use a `screen` fixture holding `Readings`."""
    (tmp_path / "test_r.py").write_text(READER_TEST + tests)
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--rootdir", str(tmp_path),
                           "--alluredir", str(tmp_path / "out"), str(tmp_path / "test_r.py")],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)


def test_plugin_attaches_a_readers_readings_as_steps(tmp_path):
    r = run_reader_test(tmp_path, f'''
def test_sees(screen):
    screen.readings.add(Screen(np.zeros((800, 480, 3), np.uint8), [Line("Not Now", (1, 2, 30, 40), 0.5)],
                               {REGIONS!r}, {{}}))
    assert False, "the check failed: its evidence is still attached"
''')
    assert r.returncode == 1, r.stdout + r.stderr
    (result,) = [json.loads(p.read_text()) for p in (tmp_path / "out").glob("*-result.json")]
    (step,) = result["steps"]
    assert step["name"] == "display reading 1: Not Now"
    assert [a["name"] for a in step["attachments"]] == ["screenshot", "rectified view with OCR boxes",
                                                       "OCR lines with confidences"]
    assert all((tmp_path / "out" / a["source"]).is_file() for a in step["attachments"])


def test_evidence_images_are_encoded_off_the_tests_thread_and_all_written_by_the_sessions_end(tmp_path):
    """Each image's place in the result is taken while the test is current; its encoding runs on another
    thread (counted, not timed) and every file is on disk when pytest has finished."""
    (tmp_path / "conftest.py").write_text('''
import threading
import cv2
import pytest

ON_TEST_THREAD = []
_imencode = cv2.imencode

def counted(*args, **kwargs):
    ON_TEST_THREAD.append(threading.current_thread() is threading.main_thread())
    return _imencode(*args, **kwargs)

cv2.imencode = counted

@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session):
    (session.config.rootpath / "encoded.txt").write_text(" ".join(map(str, ON_TEST_THREAD)))
''')
    r = run_reader_test(tmp_path, f'''
@pytest.mark.parametrize("i", range(3))
def test_sees(screen, i):
    image = np.full((800, 480, 3), 60 * i, np.uint8)
    screen.readings.add(Screen(image, [Line(f"screen {{i}}", (1, 2, 30, 40), 0.5)], {REGIONS!r}, {{}}))
''')
    assert r.returncode == 0, r.stdout + r.stderr
    assert (tmp_path / "encoded.txt").read_text().split() == ["False"] * 6  # screenshot + rectified, 3 tests
    results = [json.loads(p.read_text()) for p in (tmp_path / "out").glob("*-result.json")]
    images = [a for res in results for step in res["steps"] for a in step["attachments"] if a["type"] == "image/png"]
    assert len(images) == 6
    for a in images:
        shown = cv2.imdecode(np.frombuffer((tmp_path / "out" / a["source"]).read_bytes(), np.uint8), cv2.IMREAD_COLOR)
        assert shown.shape == (800, 480, 3)


def test_probe_runs_are_steps_with_report_and_log_excerpt():
    from hil.probe import Probe, ProbeRun
    from hil.report.steps import steps_of

    probe = Probe(None, b"", None)
    run = ProbeRun(None, "0xabc", 42, [{"op": "send"}], steps=1, ended=True, records={0: {"step": 0, "ok": False}},
                   lines=["[!] Denying message send from 42", "\x1b[31mred"])
    probe.runs.append(run)
    (title, items), = steps_of(probe)
    assert title == "probe 0xabc (PID 42): 1/1 steps, ended"
    assert json.loads(items[0].data)["records"] == {"0": {"step": 0, "ok": False}}
    assert items[1].name == "device log excerpt (last 2 of 2 lines)"
    assert items[1].data.decode() == "[!] Denying message send from 42\n?[31mred"  # no terminal escapes
    assert steps_of(object()) == []
