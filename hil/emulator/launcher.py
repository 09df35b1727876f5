"""Starting emulated Primes: in this process (``run``) or as a child process (``EmulatorProcess``).

Each device gets its peripherals from ``PERIPHERALS``, an explicit list: a peripheral is a class
whose instances have ``start(prime, **opts) -> (key, endpoint)`` and ``stop()``.  To add one,
append its class here.  The endpoints of a device are printed as one JSON object per line with the
station keys of docs/architecture.md (``serial``, ``debug``, ``usb_port``, ``control``, ``profile``…).
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from typing import IO

from hil.emulator.build import DEFAULT_FLAVOUR, Build
from hil.emulator.camera import CameraPeripheral
from hil.emulator.control import ControlServer
from hil.emulator.nfc import EmulatedNfc
from hil.emulator.prime import Prime
from hil.emulator.qrcam import QRCameraPeripheral
from hil.emulator.relay import CD_PADS_CHANNEL, EmulatedRelay
from hil.emulator.robot import EmulatedRobot, jig_calibration
from hil.emulator.samba import SambaPort
from hil.emulator.tcp import DebugServer
from hil.emulator.usb_host import UsbPort
from hil.errors import InfrastructureError
from hil.flash.manifest import load_dir
from hil.machine import scaled
from hil.provisioning import TEST_PIN

PROFILE = "prime-emulated"
PERIPHERALS: list[type] = [DebugServer, ControlServer, CameraPeripheral, QRCameraPeripheral, SambaPort,
                           EmulatedNfc, EmulatedRobot, EmulatedRelay]


@dataclass
class Device:
    prime: Prime
    endpoints: dict[str, str]
    running: list = field(default_factory=list)  # started peripherals, stopped in reverse order

    def stop(self) -> None:
        for peripheral in reversed(self.running):
            peripheral.stop()
        self.running.clear()


def start_device(index: int, seed: int, build: Build, pin: str = TEST_PIN, **prime_opts) -> Device:
    """One Prime with all its peripherals (``prime_opts`` go to ``Prime``, e.g. ``boot_seconds``)."""
    prime = Prime(index=index, seed=seed, build=build, pin=pin, **prime_opts)
    device = Device(prime, {"serial": prime.serial, "profile": PROFILE})
    try:
        for cls in PERIPHERALS:
            peripheral = cls()
            key, endpoint = peripheral.start(prime)
            device.running.append(peripheral)
            device.endpoints[key] = endpoint
        port = UsbPort(prime, device.endpoints)  # the unit on its own USB port: re-enumerates as its mode changes
        device.running.append(port)
        device.endpoints["usb_port"] = port.path
        device.endpoints["robot_calibration"] = jig_calibration()  # the bench's, as a lab file records it
        device.endpoints["cd_relay"] = CD_PADS_CHANNEL  # the jig's relay board: channel 2 across the CD pads
    except BaseException:
        device.stop()
        raise
    return device


def run(count: int = 1, seed: int = 0, flavour: str = DEFAULT_FLAVOUR, version: str = "1.0.0",
        pin: str = TEST_PIN, out: IO[str] = sys.stdout, stop: threading.Event | None = None,
        defects: tuple[str, ...] = (), apps: str | None = None) -> None:
    """Serve ``count`` devices until ``stop`` is set (or SIGINT/SIGTERM in the main thread)."""
    stop = stop or threading.Event()
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
    build = Build(version=version, flavour=flavour, defects=tuple(defects))
    devices: list[Device] = []
    try:
        for index in range(1, count + 1):
            devices.append(start_device(index, seed, build, pin, apps_dir=apps))
            out.write(json.dumps(devices[-1].endpoints) + "\n")
        out.flush()
        while not stop.wait(0.2):
            pass
    finally:
        for device in devices:
            device.stop()


class EmulatorDied(InfrastructureError):
    """The emulator process exited (the message carries its stderr tail)."""


class EmulatorTimeout(InfrastructureError):
    """The emulator process did not report its endpoints in time."""


_CONTROLS: dict[str, str] = {}  # debug endpoint -> control endpoint, of the emulators this process runs


def control_endpoint(debug: str) -> str:
    """The control endpoint (faults, power) of the emulated Prime this process started with debug link
    ``debug``. Tests and benchmarks drive it; a harness station has no such endpoint, so it is asked for here."""
    try:
        return _CONTROLS[debug]
    except KeyError:
        raise LookupError(f"{debug}: no emulator started by this process has that debug link") from None


class EmulatorProcess:
    """``python -m hil.emulator`` as a context manager; ``devices`` holds one endpoint dict per device."""

    def __init__(self, count: int = 1, seed: int = 0, flavour: str = DEFAULT_FLAVOUR, version: str = "1.0.0",
                 pin: str | None = None, timeout: float = 30.0, defects: tuple[str, ...] = (),
                 apps: str | None = None):
        self.args = ["--count", str(count), "--seed", str(seed), "--flavour", flavour, "--version", version]
        self.args += [arg for d in defects for arg in ("--defect", d)] + (["--apps", str(apps)] if apps else [])
        self.apps = apps
        if pin is not None:
            self.args += ["--pin", pin]
        self.count = count
        self.timeout = timeout
        self.devices: list[dict[str, str]] = []
        self._proc: subprocess.Popen | None = None
        self._stderr: IO[bytes] | None = None

    def __enter__(self) -> EmulatorProcess:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self) -> list[dict[str, str]]:
        if self.apps:  # a bad apps directory is the caller's mistake (ManifestError), not a dead emulator
            load_dir(self.apps)
        self._stderr = tempfile.TemporaryFile()
        self._proc = subprocess.Popen([sys.executable, "-m", "hil.emulator", *self.args], stdout=subprocess.PIPE,
                                      stderr=self._stderr, stdin=subprocess.DEVNULL, env=os.environ.copy())
        lines: queue.Queue[bytes] = queue.Queue()
        threading.Thread(target=lambda: [lines.put(line) for line in self._proc.stdout] + [lines.put(b"")],
                         daemon=True).start()
        limit = scaled(self.timeout)  # idle-machine seconds: an emulator's start-up is CPU work (imports, keys)
        deadline = time.monotonic() + limit
        try:
            while len(self.devices) < self.count:
                try:
                    line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
                except queue.Empty:
                    raise EmulatorTimeout(f"emulator (pid {self._proc.pid}) reported {len(self.devices)} of "
                                          f"{self.count} devices within {limit:.0f} s") from None
                if not line:
                    self._proc.wait(timeout=5)
                    raise EmulatorDied(f"emulator exited with code {self._proc.returncode} before reporting its "
                                       f"endpoints: {self.stderr_tail()}")
                self.devices.append(self._parse(line))
                if "control" in self.devices[-1]:
                    _CONTROLS[self.devices[-1]["debug"]] = self.devices[-1]["control"]
        except BaseException:
            self.stop()
            raise
        return self.devices

    @staticmethod
    def _parse(line: bytes) -> dict[str, str]:
        try:
            device = json.loads(line)
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise EmulatorDied(f"emulator printed {line[:200]!r} instead of a JSON endpoint line") from None
        if not isinstance(device, dict) or not {"serial", "debug"} <= device.keys():
            raise EmulatorDied(f"emulator endpoint line lacks 'serial' or 'debug': {line[:200]!r}")
        return device

    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def stderr_tail(self, limit: int = 2000) -> str:
        if self._stderr is None:
            return ""
        self._stderr.seek(0, os.SEEK_END)
        self._stderr.seek(max(0, self._stderr.tell() - limit))
        return self._stderr.read().decode("utf-8", "replace").strip() or "(no stderr)"

    def stop(self, grace: float = 5.0) -> None:
        """SIGTERM, then SIGKILL after ``grace`` seconds."""
        if self._proc is None:
            return
        for device in self.devices:
            _CONTROLS.pop(device["debug"], None)
        if self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(timeout=grace)
        self._proc.stdout.close()
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None
