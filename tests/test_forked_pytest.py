"""A forked suite run (`forked_pytest`) is the run a fresh ``python -m pytest`` process would be."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import forked_pytest
import pytest

pytestmark = pytest.mark.slow  # as the runs it serves (tests/test_seeded_defects.py)

SEEN = """
import json, os, sys

def test_seen():
    hil = sys.modules.get("hil")
    with open(os.environ["SEEN_FILE"], "w") as f:
        json.dump({"cwd": os.getcwd(), "path": sys.path, "env": dict(os.environ), "argv": sys.argv,
                   "pycache_prefix": sys.pycache_prefix, "dont_write_bytecode": sys.dont_write_bytecode,
                   "hil_loader": type(hil.__loader__).__name__ if hil else None,
                   "stdin": sys.stdin.isatty() if sys.stdin else None}, f)

def test_red():
    assert 1 + 1 == 3
"""


@pytest.fixture(scope="module", autouse=True)
def fork_server():
    yield
    forked_pytest.stop_server()


def test_a_forked_run_sees_what_a_fresh_process_sees(tmp_path):
    (tmp_path / "test_seen.py").write_text(SEEN)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")} | {"HIL_FORK_PROBE": "1"}
    args = ["-p", "no:cacheprovider", "-q", "test_seen.py"]
    seen = {}
    for how in ("fresh", "forked"):
        env["SEEN_FILE"] = str(tmp_path / f"{how}.json")
        if how == "fresh":
            proc = subprocess.run([sys.executable, "-m", "pytest", *args], cwd=tmp_path, env=env, capture_output=True,
                                  text=True, timeout=120)
            code, out = proc.returncode, proc.stdout + proc.stderr
        else:
            code, out = forked_pytest.run_pytest(args, tmp_path, env, timeout=120)
        assert code == 1 and "1 failed, 1 passed" in out and "assert (1 + 1) == 3" in out, out  # asserts rewritten
        seen[how] = json.loads((tmp_path / f"{how}.json").read_text())
        seen[how]["env"].pop("SEEN_FILE")
        seen[how]["env"] = {k: v for k, v in seen[how]["env"].items() if not k.startswith("PYTEST_")}
    assert seen["forked"]["hil_loader"] is not None  # the plugin (hil) was loaded, by the run itself
    assert seen["forked"] == seen["fresh"]


def test_a_run_past_its_timeout_is_killed(tmp_path):
    (tmp_path / "test_hang.py").write_text("import time\n\ndef test_hang():\n    time.sleep(600)\n")
    with pytest.raises(subprocess.TimeoutExpired):
        forked_pytest.run_pytest(["-p", "no:cacheprovider", "-q", "test_hang.py"], tmp_path, dict(os.environ), 5)
