"""The emulator's control endpoint: faults and power on demand, for the harness's own tests.

JSON lines over TCP: one request object per line, one reply per line, ``{"ok": true, ...}`` or
``{"ok": false, "error": "..."}``.  Requests (``cmd``):

=================  ==========================================================================
``status``         serial, powered, booting, screen_on, locked, wiped, attempts_remaining,
                   developer_mode, frame_counter, flavour, version
``drop``           the debug link goes away now (the host sees the device disconnect)
``delay``          ``seconds``: wait this long before every debug response (0 clears)
``garbage``        ``hex`` (default ``ffffffff``): raw bytes before the next debug response
``truncate``       the next debug response stops halfway and the link closes
``stall``          the next debug response stops halfway and the device goes silent
``late``           the next debug response is held back and sent first to the next client, as KeyOS's
                   simulator keeps an unread answer (``os/usb-debug/src/sim.rs``); status ``held_replies``
``twice``          the next debug response is sent two times
``clear``          no more faults
``power_cut``      power lost: links dropped, nothing answers until ``power_on``
``power_on``       power back: boots to the lock screen
``reboot``         links dropped, boots again
``onboarding``     the unit forgets its PIN and boots into onboarding, as a new unit does
``provision``      ``pin``: onboarding done with this PIN; boots to the lock screen
``developer_mode`` ``on``: the Settings toggle (production drops the debug interface when off)
``camera``         the lab camera: ``fault`` covered|glare|null, ``optics`` preset or fields (camera.py)
``nfc``            ``field_loss`` true|false: card sessions drop mid-exchange (nfc.py)
``robot``          ``homing_fault`` true|false: ``$H`` ends in ALARM:9 (robot.py)
``flash``          eMMC faults: ``fault`` power_cut + ``after_bytes`` | bad_writes + ``count`` | cable_pull;
                   replies with the boot ``mode`` and its ``reason`` (samba.py)
=================  ==========================================================================

The harness never uses this; only tests of the harness do.
"""

from __future__ import annotations

import json
import socketserver
import threading
from typing import TYPE_CHECKING

from hil.emulator import camera, nfc, robot, samba
from hil.emulator.prime import LinkFaults

if TYPE_CHECKING:
    from hil.emulator.prime import Prime

MAX_LINE = 64 * 1024


def status(prime: Prime) -> dict:
    return {"serial": prime.serial, "powered": prime.powered, "booting": prime.booting,
            "screen_on": prime.screen_on, "locked": prime.is_locked(), "wiped": prime.se.wiped,
            "attempts_remaining": prime.se.attempts_remaining, "developer_mode": prime.developer_mode,
            "frame_counter": prime.frame_counter, "flavour": prime.build.flavour, "version": prime.build.version,
            "held_replies": len(prime.faults.held), "onboarding": prime.onboarding}


def apply(prime: Prime, request: dict) -> dict:
    """Carry out one control request; raises ValueError with the reason for a bad one."""
    cmd = request.get("cmd")
    faults = prime.faults
    with prime.lock:
        if cmd == "status":
            return status(prime)
        if cmd == "drop":
            prime.drop_links()
        elif cmd == "delay":
            seconds = request.get("seconds")
            if not isinstance(seconds, (int, float)) or not 0 <= seconds <= 600:
                raise ValueError("delay needs 'seconds' between 0 and 600")
            faults.delay_s = float(seconds)
        elif cmd == "garbage":
            try:
                faults.garbage = bytes.fromhex(request.get("hex", "ffffffff"))
            except (ValueError, TypeError):
                raise ValueError("garbage 'hex' must be hex digits") from None
        elif cmd == "truncate":
            faults.truncate = True
        elif cmd == "stall":
            faults.stall = True
        elif cmd == "late":
            faults.late = True
        elif cmd == "twice":
            faults.twice = True
        elif cmd == "clear":
            prime.faults = LinkFaults()
        elif cmd == "power_cut":
            prime.power_cut()
        elif cmd == "power_on":
            prime.power_on()
        elif cmd == "onboarding":
            prime.se.forget_pin()
            prime.reboot()
        elif cmd == "provision":
            prime.se.set_seed_and_pin(str(request.get("pin", "")))
            prime.reboot()
        elif cmd == "reboot":
            prime.reboot()
        elif cmd == "camera":
            return camera.control(prime, request)
        elif cmd == "nfc":
            return nfc.control(prime, request)
        elif cmd == "robot":
            return robot.control(prime, request)
        elif cmd == "flash":
            return samba.control(prime, request)
        elif cmd == "developer_mode":
            if not isinstance(request.get("on"), bool):
                raise ValueError("developer_mode needs 'on': true or false")
            prime.set_developer_mode(request["on"])
        else:
            raise ValueError(f"unknown control command {cmd!r}")
        return {}


class _Handler(socketserver.StreamRequestHandler):
    def handle(self) -> None:
        prime = self.server.prime
        while line := self.rfile.readline(MAX_LINE):
            try:
                request = json.loads(line)
                if not isinstance(request, dict):
                    raise ValueError("a control request is a JSON object")
                reply = {"ok": True, **apply(prime, request)}
            except ValueError as e:  # includes JSONDecodeError
                reply = {"ok": False, "error": str(e)}
            self.wfile.write(json.dumps(reply).encode() + b"\n")


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


class ControlServer:
    """The ``control`` endpoint of one Prime: ``tcp:127.0.0.1:PORT``."""

    key = "control"

    def __init__(self):
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def start(self, prime: Prime, host: str = "127.0.0.1", port: int = 0) -> tuple[str, str]:
        self._server = _Server((host, port), _Handler)
        self._server.prime = prime
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.1},
                                        name=f"control-{prime.serial}", daemon=True)
        self._thread.start()
        bound_host, bound_port = self._server.server_address[:2]
        return self.key, f"tcp:{bound_host}:{bound_port}"

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
