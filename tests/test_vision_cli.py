"""`hil vision ocr` and `hil vision qr` on files."""

import json

import cv2
from typer.testing import CliRunner

from hil.vision.cli import app
from tests.vision_helpers import FilmedScreen, permission_prompt

runner = CliRunner()


def test_ocr_camera_image_json(tmp_path):
    path = tmp_path / "frame.jpg"
    cv2.imwrite(str(path), FilmedScreen(permission_prompt(), "hard").grab())
    result = runner.invoke(app, ["ocr", str(path), "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    texts = [ln["text"].replace(" ", "") for ln in out["lines"]]
    assert "AllowAccess?" in texts and "NeverAllow" in texts
    line = out["lines"][texts.index("AllowAccess?")]
    assert 380 < (line["box"][1] + line["box"][3]) / 2 < 440  # display coordinates, not camera pixels
    assert line["confidence"] > 0.85 and out["located_by"] == "aruco"


def test_ocr_screenshot_directly(tmp_path):
    path = tmp_path / "shot.png"
    permission_prompt().save(path)
    result = runner.invoke(app, ["ocr", str(path)])
    assert result.exit_code == 0 and "Allow Access?" in result.output


def test_ocr_covered_and_unreadable(tmp_path):
    cam = FilmedScreen(permission_prompt())
    cam.fault = "covered"
    cv2.imwrite(str(tmp_path / "dark.jpg"), cam.grab())
    result = runner.invoke(app, ["ocr", str(tmp_path / "dark.jpg")])
    assert result.exit_code == 1 and "no panel" in result.output
    (tmp_path / "junk.png").write_bytes(b"\x89PNG garbage")
    result = runner.invoke(app, ["ocr", str(tmp_path / "junk.png")])
    assert result.exit_code == 2 and "not a readable image" in result.output


def test_qr_names_bootloader_error_screens(release_1_0_0):
    result = runner.invoke(app, ["qr", str(release_1_0_0 / "blassets" / "rec_error_qr.png")])
    assert result.exit_code == 0
    assert result.output.strip() == "https://foundation.xyz/rec-error  [bootloader error screen: rec-error]"


def test_qr_nothing_found(tmp_path):
    path = tmp_path / "shot.png"
    permission_prompt().save(path)
    result = runner.invoke(app, ["qr", str(path)])
    assert result.exit_code == 1 and "no QR code" in result.output
