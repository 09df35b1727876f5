"""The simulated suite that benchmarks/lab50.py runs on its fake stations (not collected by `make test`: its
name does not match test_*.py; lab50.py passes it to pytest by path).

Each test is one test's worth of device work as the lab sees it: ``LAB50_ANSWERS`` debug-link answers from the
leased station (the fake device sleeps before each), the last a screenshot kept as PNG evidence in Allure.
"""

from __future__ import annotations

import io
import os

import allure
import pytest

TESTS = int(os.environ.get("LAB50_TESTS", "200"))
ANSWERS = int(os.environ.get("LAB50_ANSWERS", "50"))


@pytest.mark.parametrize("n", range(TESTS))
def test_device_work(device_under_test, n: int) -> None:
    client = device_under_test.client
    for _ in range(ANSWERS - 1):
        assert client.version()
    png = io.BytesIO()
    client.screenshot().save(png, "PNG")
    allure.attach(png.getvalue(), "screen", allure.attachment_type.PNG)
