"""The switchable USB hub port a Prime hangs off: power-cycling a hung unit with `uhubctl`.

A station's ``hub_port`` is ``HUB:PORT`` as uhubctl names them (``-l 1-2 -p 3``: ``"1-2:3"``). The
farm cycles it as the recovery step before quarantining a unit that stopped answering
(hil.pytest_farm). uhubctl must be on PATH; an emulated bench puts hil.emulator.uhubctl there.
"""

from __future__ import annotations

import shutil
import subprocess

from hil.errors import ConfigError, InfrastructureError

OFF_SECONDS = 2.0  # long enough for the Prime's rails to drop


class PowerCycleFailed(InfrastructureError):
    """uhubctl could not switch the port."""


class HubPort:
    def __init__(self, spec: str) -> None:
        hub, sep, port = spec.rpartition(":")
        if not sep or not hub or not port.isdigit():
            raise ConfigError(f"hub_port {spec!r} is not HUB:PORT as uhubctl names them (e.g. 1-2:3)")
        self.hub, self.port = hub, port

    def cycle(self, off_seconds: float = OFF_SECONDS, timeout: float = 30.0) -> None:
        exe = shutil.which("uhubctl")
        if exe is None:
            raise PowerCycleFailed("uhubctl is not on PATH; install it (apt install uhubctl) to power-cycle hub ports")
        try:
            r = subprocess.run([exe, "-l", self.hub, "-p", self.port, "-a", "cycle", "-d", f"{off_seconds:g}"],
                               capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise PowerCycleFailed(f"uhubctl did not finish cycling {self.hub} port {self.port} in {timeout:g} s") from None
        if r.returncode != 0:
            said = (r.stderr or r.stdout).strip().splitlines()
            raise PowerCycleFailed(f"uhubctl could not cycle {self.hub} port {self.port}: {said[-1] if said else r.returncode}")
