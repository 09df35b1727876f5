"""The emulated stylus robot: a GRBL 1.1 controller on a pty whose stylus lands on the emulated Prime.

It holds GRBL's rules that a harness can get wrong: the power-up alarm lock until ``$H`` (or ``$X``),
``error:9`` for G-code while locked, soft limits raising ``ALARM:2``, ``error:22`` for a G1 with no
feed rate, and status reports for ``?``. The stylus touches the glass below ``Z_SURFACE``; when it
lifts, the contact becomes one ``prime.swipe`` (equal ends = a tap, the dwell = how long it was held).
Motion time is virtual (distance / feed), so a test never waits for a simulated gantry.
"""

from __future__ import annotations

import math
import re
import weakref

from hil.emulator.pty import PtyDevice

BANNER = b"\r\nGrbl 1.1h ['$' for help]\r\n"
UNLOCK_MSG = b"[MSG:'$H'|'$X' to unlock]\r\n"
TRAVEL = (120.0, 160.0, 30.0)  # X, Y, Z travel in mm (Z runs 0 .. -30)
Z_SURFACE = -8.0  # the glass: the stylus touches at or below this Z
RAPID_MM_MIN = 6000.0
# The emulated bench: where the Prime sits under the gantry. Display pixel (0, 0) is at MOUNT_ORIGIN
# mm, one pixel is PIXEL_MM, and the phone is turned by MOUNT_ANGLE_DEG. Only the emulator knows this;
# the harness learns it by calibration, as in the lab.
MOUNT_ORIGIN = (30.0, 20.0)
PIXEL_MM = 0.1
MOUNT_ANGLE_DEG = 1.5
TOUCH_AREA = (480, 972)  # panel plus the virtual home-button strip below it (y 850..971)
_WORD = re.compile(r"([A-Z])([-+]?\d*\.?\d*)")


_RUNNING: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()  # prime -> its EmulatedRobot


def control(prime, request: dict) -> dict:
    """The control endpoint's ``robot`` request: ``homing_fault`` true|false (a limit switch that never triggers)."""
    robot = _RUNNING.get(prime)
    if robot is None:
        raise ValueError("this Prime has no robot running")
    if "homing_fault" in request:
        if not isinstance(request["homing_fault"], bool):
            raise ValueError("robot 'homing_fault' must be true or false")
        robot.homing_fault = request["homing_fault"]
    return {"homing_fault": robot.homing_fault, "state": robot.state, "homed": robot.homed}


def display_to_mm(x: float, y: float) -> tuple[float, float]:
    """Ground truth of the emulated bench (for calibration fixtures)."""
    a = math.radians(MOUNT_ANGLE_DEG)
    dx, dy = x * PIXEL_MM, y * PIXEL_MM
    return (MOUNT_ORIGIN[0] + dx * math.cos(a) - dy * math.sin(a),
            MOUNT_ORIGIN[1] + dx * math.sin(a) + dy * math.cos(a))


def jig_calibration() -> list[list[list[float]]]:
    """What a lab records for a bench after `hil touch calibrate`: three display corners and the robot
    millimetres where the stylus touched them. Announced with the endpoints (``robot_calibration``), so the
    harness calibrates an emulated station as a wired one, from the station, never from this module."""
    return [[[x, y], [round(v, 4) for v in display_to_mm(x, y)]] for x, y in ((0, 0), (479, 0), (0, 971))]


def mm_to_display(mx: float, my: float) -> tuple[float, float]:
    a = math.radians(MOUNT_ANGLE_DEG)
    dx, dy = mx - MOUNT_ORIGIN[0], my - MOUNT_ORIGIN[1]
    return ((dx * math.cos(a) + dy * math.sin(a)) / PIXEL_MM, (-dx * math.sin(a) + dy * math.cos(a)) / PIXEL_MM)


class EmulatedRobot(PtyDevice):
    name = "robot"

    def __init__(self, homing_fault: bool = False):
        super().__init__()
        self.prime = None
        self.homing_fault = homing_fault  # a limit switch that never triggers: $H ends in ALARM:9
        self._line = b""
        self.state = "Alarm"
        self.homed = False
        self.pos = [7.3, 11.9, -2.2]  # wherever the gantry stopped at power-off
        self.feed: float | None = None
        self._contact: dict | None = None

    def start(self, prime) -> tuple[str, str]:
        self.prime = prime
        _RUNNING[prime] = self
        path = self.start_pty()
        self.write(BANNER + UNLOCK_MSG)
        return "robot", path

    # --------------------------------------------------------------- wire

    def on_bytes(self, data: bytes) -> None:
        for b in data:
            if b == 0x3F:  # '?' is a real-time command: answered at once, never part of a line
                x, y, z = self.pos
                self.write(f"<{self.state}|MPos:{x:.3f},{y:.3f},{z:.3f}|FS:0,0>\r\n".encode())
            elif b == 0x18:  # Ctrl-X soft reset
                self._line = b""
                self._contact = None
                if self.state == "Alarm" or not self.homed:
                    self.state, self.homed = "Alarm", False
                    self.write(BANNER + UNLOCK_MSG)
                else:
                    self.write(BANNER)
            elif b in (0x0A, 0x0D):
                if self._line.strip():
                    self.write(self._execute(self._line.decode("ascii", "replace").strip().upper()))
                self._line = b""
            elif len(self._line) < 256:
                self._line += bytes([b])
            else:
                self._line = b""
                self.write(b"error:11\r\n")  # line overflow

    def _execute(self, line: str) -> bytes:
        if line.startswith("$"):
            return self._system(line)
        if self.state == "Alarm":
            return b"error:9\r\n"
        words = _WORD.findall(line.replace(" ", ""))
        if "".join(w + v for w, v in words) != line.replace(" ", ""):
            return b"error:1\r\n"
        try:
            vals = [(w, float(v)) for w, v in words]
        except ValueError:
            return b"error:2\r\n"
        gcodes = [v for w, v in vals if w == "G"]
        args = {w: v for w, v in vals if w != "G"}
        for g in gcodes:
            if g not in (0, 1, 4, 21, 90):
                return b"error:20\r\n"
        if "F" in args:
            self.feed = args["F"]
        if 4 in gcodes:
            if "P" not in args:
                return b"error:28\r\n"
            self._elapse(args["P"] * 1000)
            return b"ok\r\n"
        if not any(a in args for a in "XYZ"):
            return b"ok\r\n"
        if 1 in gcodes and not self.feed:
            return b"error:22\r\n"
        target = [args.get(a, p) for a, p in zip("XYZ", self.pos)]
        if not (0 <= target[0] <= TRAVEL[0] and 0 <= target[1] <= TRAVEL[1] and -TRAVEL[2] <= target[2] <= 0):
            self.state, self.homed, self._contact = "Alarm", False, None
            return b"ALARM:2\r\n[MSG:Reset to continue]\r\n"
        self._move(target, RAPID_MM_MIN if 0 in gcodes else self.feed)
        return b"ok\r\n"

    def _system(self, line: str) -> bytes:
        if line == "$H":
            if self.homing_fault:
                self.state, self.homed = "Alarm", False
                return b"ALARM:9\r\n[MSG:Reset to continue]\r\n"
            self.pos, self.state, self.homed = [0.0, 0.0, 0.0], "Idle", True
            return b"ok\r\n"
        if line == "$X":
            self.state = "Idle"
            return b"[MSG:Caution: Unlocked]\r\nok\r\n"
        if line in ("$", "$$", "$#", "$G", "$I"):
            return b"ok\r\n"
        return b"error:3\r\n"

    # --------------------------------------------------------------- stylus on glass

    def _elapse(self, ms: float) -> None:
        if self._contact:
            self._contact["ms"] += ms

    def _move(self, target: list[float], feed: float) -> None:
        dist = math.dist(self.pos, target)
        z0, z1 = self.pos[2], target[2]
        was_down, down = z0 <= Z_SURFACE, z1 <= Z_SURFACE
        if was_down and down:
            self._elapse(dist / feed * 60000.0)
        self.pos = [round(v, 3) for v in target]
        point = mm_to_display(self.pos[0], self.pos[1])
        if down and not was_down:
            # only the stretch below the glass counts as contact
            self._contact = {"start": point, "ms": (Z_SURFACE - z1) / feed * 60000.0}
        elif down and self._contact:
            self._contact["end"] = point
        elif was_down and not down and self._contact:
            self._elapse((Z_SURFACE - z0) / feed * 60000.0)
            self._release()

    def _release(self) -> None:
        c, self._contact = self._contact, None
        (sx, sy), (ex, ey) = c["start"], c.get("end", c["start"])
        pts = [round(v) for v in (sx, sy, ex, ey)]
        if not all(0 <= pts[i] < TOUCH_AREA[i % 2] for i in range(4)):
            return  # the stylus came down on the bezel: the touch panel saw nothing
        steps = 0 if pts[:2] == pts[2:] else 10
        with self.prime.lock:
            self.prime.swipe(*pts, max(1, round(c["ms"])), steps)

