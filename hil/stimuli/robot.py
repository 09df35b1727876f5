"""A stylus robot on a GRBL 1.1 controller, driven over serial (pyserial), that touches the Prime.

Production builds refuse debug-link input while locked, so a stylus is the only way to type a PIN
there. GRBL answers each line with ``ok`` or ``error:N`` and reports trouble as ``ALARM:N``; every
one of these becomes an :class:`~hil.errors.InfrastructureError` naming the code, because a robot
that did not move means the test never happened (broken), not that the device failed.
Display pixels are mapped to machine millimetres by an affine :class:`Calibration` fitted once per
station from reference points.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import serial

from hil.errors import ConfigError, InfrastructureError
from hil.stimuli.serial_instrument import SerialInstrument

# GRBL 1.1 error and alarm codes (grbl/doc/csv/error_codes_en_US.csv, alarm_codes_en_US.csv).
GRBL_ERRORS = {
    1: "Expected command letter", 2: "Bad number format", 3: "Invalid statement", 4: "Negative value",
    5: "Homing cycle is not enabled via settings", 8: "Not idle", 9: "G-code locked out during alarm or jog state",
    10: "Soft limits cannot be enabled without homing", 11: "Line overflow", 15: "Jog target exceeds machine travel",
    20: "Unsupported or invalid g-code command", 22: "Feed rate has not yet been set", 24: "Axis command conflict",
    26: "No axis words", 33: "Invalid target",
}
GRBL_ALARMS = {
    1: "Hard limit triggered", 2: "Soft limit: motion target exceeds machine travel", 3: "Reset while in motion",
    4: "Probe fail", 5: "Probe fail", 6: "Homing fail: reset during active homing cycle",
    7: "Homing fail: safety door was opened during homing", 8: "Homing fail: pull-off failed to clear the limit switch",
    9: "Homing fail: could not find the limit switch within the search distance",
}
_STATUS = re.compile(r"<(?P<state>[A-Za-z]+)(?::\d)?\|(?:MPos|WPos):(?P<x>-?[\d.]+),(?P<y>-?[\d.]+),(?P<z>-?[\d.]+)")


class RobotError(InfrastructureError):
    """The stylus robot did not do what it was told (no answer, error:N, ALARM:N)."""


@dataclass(frozen=True)
class RobotStatus:
    state: str  # Idle, Run, Hold, Jog, Alarm, Door, Check, Home, Sleep
    x: float
    y: float
    z: float


def parse_status(line: str) -> RobotStatus:
    """Parse a GRBL ``<State|MPos:x,y,z|...>`` report; anything else is garbage from the robot."""
    m = _STATUS.match(line)
    if not m:
        raise RobotError(f"robot sent an unreadable status report {line[:80]!r}")
    return RobotStatus(m["state"], float(m["x"]), float(m["y"]), float(m["z"]))


class Calibration:
    """Affine map from display pixels (x, y) to robot millimetres (X, Y), fitted by least squares."""

    MAX_RESIDUAL_MM = 0.5

    def __init__(self, matrix: np.ndarray):
        self.matrix = np.asarray(matrix, dtype=float).reshape(2, 3)

    @classmethod
    def fit(cls, points: list[tuple[tuple[float, float], tuple[float, float]]]) -> "Calibration":
        """``points``: ((display_x, display_y), (robot_x_mm, robot_y_mm)) pairs, at least 3, not collinear."""
        if len(points) < 3:
            raise ConfigError(f"robot calibration needs at least 3 reference points, got {len(points)}")
        src = np.array([[px, py, 1.0] for (px, py), _ in points])
        dst = np.array([mm for _, mm in points], dtype=float)
        if np.linalg.matrix_rank(src) < 3:
            raise ConfigError("robot calibration points are collinear; touch three corners of the display")
        sol, *_ = np.linalg.lstsq(src, dst, rcond=None)
        cal = cls(sol.T)
        worst = max(float(np.hypot(*(np.array(cal.to_mm(px, py)) - mm))) for (px, py), mm in points)
        if worst > cls.MAX_RESIDUAL_MM:
            raise ConfigError(f"robot calibration points disagree by {worst:.2f} mm (> {cls.MAX_RESIDUAL_MM} mm); "
                              "re-measure the reference points")
        return cal

    def to_mm(self, x: float, y: float) -> tuple[float, float]:
        mx, my = self.matrix @ np.array([x, y, 1.0])
        return round(float(mx), 3), round(float(my), 3)

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"affine": self.matrix.tolist()}, indent=2))
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path) -> "Calibration":
        try:
            m = np.array(json.loads(Path(path).read_text())["affine"], dtype=float)
            if m.shape != (2, 3) or not np.all(np.isfinite(m)):
                raise ValueError(f"shape {m.shape}")
        except FileNotFoundError:
            raise ConfigError(f"no robot calibration at {path}; run the calibration for this station") from None
        except (ValueError, KeyError, TypeError) as e:
            raise ConfigError(f"robot calibration {path} is malformed ({e}); re-run the calibration") from None
        return cls(m)


CALIBRATION_DIR = Path("~/.local/share/prime-hil/robot").expanduser()


def calibration_path(station: str, root: Path = CALIBRATION_DIR) -> Path:
    """Where a station's robot calibration lives: one JSON file per station."""
    if not station or "/" in station or station.startswith("."):
        raise ConfigError(f"station name {station!r} cannot name a calibration file; use the name from lab_config.yaml")
    return Path(root) / f"{station}.robot.json"


class StylusRobot(SerialInstrument):
    """GRBL-driven stylus: homes on open, then taps, presses and swipes in display coordinates."""

    what, error, baudrate, read_timeout = "stylus robot", RobotError, 115200, 0.2

    def __init__(self, port: serial.SerialBase, calibration: Calibration, *, z_up: float = 0.0,
                 z_down: float = -9.0, feed: float = 3000.0, timeout: float = 10.0):
        self.port = port
        self.calibration = calibration
        self.z_up, self.z_down, self.feed, self.timeout = z_up, z_down, feed, timeout

    def bring_up(self) -> None:
        """Clear any alarm and home, so that machine coordinates mean what the calibration says."""
        self.reset()
        self.home()

    # --------------------------------------------------------------- wire

    def _readline(self, deadline: float, what: str) -> str:
        buf = b""
        while time.monotonic() < deadline:
            try:
                chunk = self.port.readline()
            except (serial.SerialException, OSError) as e:
                raise RobotError(f"stylus robot lost while waiting for {what}: {e}") from None
            buf += chunk
            if buf.endswith(b"\n"):
                return buf.decode("ascii", "replace").strip()
        raise RobotError(f"stylus robot did not answer {what} within {self.timeout:.0f} s")

    def _write(self, data: bytes) -> None:
        try:
            self.port.write(data)
        except (serial.SerialException, OSError) as e:
            raise RobotError(f"stylus robot lost while sending {data!r}: {e}") from None

    def send(self, line: str) -> None:
        """Send one line and wait for ``ok``; ``error:N`` and ``ALARM:N`` raise with GRBL's meaning."""
        self._write(line.encode("ascii") + b"\n")
        deadline = time.monotonic() + self.timeout
        while True:
            reply = self._readline(deadline, repr(line))
            if reply == "ok":
                return
            if reply.startswith("error:"):
                code = _code(reply)
                raise RobotError(f"robot rejected {line!r}: error:{code} ({GRBL_ERRORS.get(code, 'unknown error')})")
            if reply.startswith("ALARM:"):
                code = _code(reply)
                raise RobotError(f"robot alarm during {line!r}: ALARM:{code} ({GRBL_ALARMS.get(code, 'unknown alarm')});"
                                 " check the stylus path and limit switches, then reset the controller")
            # '[MSG:...]', banners and blank lines are informational; keep reading.

    def status(self) -> RobotStatus:
        self._write(b"?")
        deadline = time.monotonic() + self.timeout
        while True:
            reply = self._readline(deadline, "a status query")
            if reply.startswith("<"):
                return parse_status(reply)
            if reply.startswith("ALARM:"):
                code = _code(reply)
                raise RobotError(f"robot alarm: ALARM:{code} ({GRBL_ALARMS.get(code, 'unknown alarm')})")

    def wait_idle(self) -> RobotStatus:
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            st = self.status()
            if st.state == "Idle":
                return st
            if st.state == "Alarm":
                raise RobotError("robot is in alarm state; it needs a reset and homing ($H)")
            time.sleep(0.05)  # GRBL reports its state only when asked ('?'), so rest is polled
        raise RobotError(f"robot did not come to rest within {self.timeout:.0f} s")

    # --------------------------------------------------------------- motion

    def reset(self) -> None:
        """Soft reset (Ctrl-X) and wait for GRBL's banner: proof that a GRBL controller is there."""
        self.port.reset_input_buffer()
        self._write(b"\x18")
        deadline = time.monotonic() + self.timeout
        while not self._readline(deadline, "the reset banner").startswith("Grbl "):
            pass

    def home(self) -> None:
        """``$H``: the only way out of GRBL's power-up alarm lock with known positions."""
        self.send("$H")
        self.wait_idle()

    def _at(self, x: float, y: float) -> str:
        mx, my = self.calibration.to_mm(x, y)
        return f"X{mx:.3f} Y{my:.3f}"

    def press(self, x: float, y: float, hold_ms: int = 50) -> None:
        """Stylus down at a display point, dwell, and up: a tap (50 ms) or a long press."""
        for line in (f"G0 Z{self.z_up:.3f}", f"G0 {self._at(x, y)}", f"G1 Z{self.z_down:.3f} F{self.feed:.0f}",
                     f"G4 P{hold_ms / 1000:.3f}", f"G0 Z{self.z_up:.3f}"):
            self.send(line)
        self.wait_idle()

    def swipe(self, sx: float, sy: float, ex: float, ey: float, duration_ms: int = 300) -> None:
        mx0, my0 = self.calibration.to_mm(sx, sy)
        mx1, my1 = self.calibration.to_mm(ex, ey)
        dist = max(float(np.hypot(mx1 - mx0, my1 - my0)), 0.001)
        feed = max(1.0, dist / (max(duration_ms, 1) / 60000.0))  # mm/min so the drag takes duration_ms
        for line in (f"G0 Z{self.z_up:.3f}", f"G0 {self._at(sx, sy)}", f"G1 Z{self.z_down:.3f} F{self.feed:.0f}",
                     f"G1 {self._at(ex, ey)} F{feed:.0f}", f"G0 Z{self.z_up:.3f}"):
            self.send(line)
        self.wait_idle()


def _code(reply: str) -> int:
    try:
        return int(reply.split(":", 1)[1])
    except ValueError:
        raise RobotError(f"robot sent a malformed reply {reply[:40]!r}") from None
