"""``python -m pytest ARGS`` runs as fresh processes forked from a server that imported the libraries once.

A suite run's interpreter spends ~1.7 s of CPU importing numpy, OpenCV, RapidOCR, pydantic, ... before it
collects a test; `tests/test_seeded_defects.py` makes some 120 such runs. Here each run is still its own process
with its own pytest session (and its own emulator, which the run starts), forked from a server (one per process
that uses this module) holding those libraries. Only libraries: the harness and the pytest plugins (hil, xdist,
pytest_timeout, allure_pytest, the entry points pytest rewrites the asserts of) are imported by each run itself.
This module imports nothing of the harness: the server imports it to find `_run`.
"""

from __future__ import annotations

import atexit
import json
import multiprocessing
import multiprocessing.forkserver
import os
import subprocess
import sys
import tempfile
from pathlib import Path

PRELOAD = ["pytest", "numpy", "cv2", "rapidocr.main", "onnxruntime", "omegaconf", "shapely", "pyclipper", "PIL.Image",
           "pydantic", "cryptography.x509", "coincurve", "embit", "cbor2", "yaml", "nfc", "ndef", "segno", "zxingcpp",
           "requests", "serial", "usb1", "usb.core", "allure_commons", "execnet"]
_FORKS = multiprocessing.get_context("forkserver")
_FORKS.set_forkserver_preload(PRELOAD)
_PATHS: dict[tuple, list[str]] = {}


def fresh_path(cwd: Path, env: dict[str, str]) -> list[str]:
    """``sys.path`` of ``python -m ...`` started in ``cwd`` with ``env`` (the server has its parent's)."""
    key = (str(cwd), tuple(sorted(env.items())))
    if key not in _PATHS:
        out = subprocess.check_output([sys.executable, "-c", "import json, sys; print(json.dumps(sys.path[1:]))"],
                                      env=env, cwd=cwd, text=True)
        _PATHS[key] = [str(cwd), *json.loads(out)]
    return _PATHS[key]


def _run(args: list[str], cwd: str, env: dict[str, str], path: list[str], out: str) -> None:
    """The forked process: as ``python -m pytest ARGS`` started in ``cwd`` with ``env``, its stdout and stderr
    to file ``out``, its exit code pytest's."""
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    os.chdir(cwd)
    os.environ.clear()
    os.environ.update(env)
    sys.path[:] = path
    sys.pycache_prefix = env.get("PYTHONPYCACHEPREFIX")  # what a fresh interpreter reads from env
    sys.dont_write_bytecode = bool(env.get("PYTHONDONTWRITEBYTECODE"))
    import pytest

    sys.argv = [os.path.join(os.path.dirname(pytest.__file__), "__main__.py"), *args]  # as ``-m pytest`` sets it
    try:
        code = int(pytest.main(args))
    finally:
        atexit._run_exitfuncs()  # multiprocessing leaves a forked process by os._exit, which skips them
        sys.stdout.flush()
        sys.stderr.flush()
    sys.exit(code)


def run_pytest(args: list[str], cwd: Path, env: dict[str, str], timeout: float) -> tuple[int, str]:
    """One run; returns (exit code, stdout and stderr). Past ``timeout`` seconds the run is killed and
    `subprocess.TimeoutExpired` raised, as `subprocess.run` does."""
    with tempfile.NamedTemporaryFile("r", suffix=".log") as out:
        proc = _FORKS.Process(target=_run, args=(args, str(cwd), env, fresh_path(cwd, env), out.name))
        proc.start()
        proc.join(timeout)
        if proc.exitcode is None:
            proc.kill()
            proc.join()
            raise subprocess.TimeoutExpired(["pytest", *args], timeout, out.read())
        return proc.exitcode, out.read()


def stop_server() -> None:
    """End the server and reap it, so that the runs' CPU is counted among the caller's children (`time make
    test`), as that of runs started with subprocess is."""
    multiprocessing.forkserver._forkserver._stop()  # the stdlib's own way to end it (there is no public one)
