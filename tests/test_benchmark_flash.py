"""benchmarks/flash.py still runs (CI's slow lane keeps it from rotting): a small image through the
emulated SAM-BA monitor, write and verify throughput and CPU printed against a raw copy over the same pty."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_flash_benchmark_runs_and_reports_write_and_verify_against_raw():
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "flash.py"), "--mib", "1", "--rounds", "1"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = {line.split()[0] + " " + line.split()[1]: line for line in proc.stdout.splitlines() if line.strip()}
    for row in ("raw pty", "SAM-BA write", "SAM-BA verify"):
        assert "MB/s" in lines[row], proc.stdout
    for what in ("write", "verify"):
        assert "ratio to raw" in lines[f"SAM-BA {what}"] and f"CPU raw/{what}" in lines[f"SAM-BA {what}"]
    assert "load average" in lines["image 1"]
