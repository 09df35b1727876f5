"""Flash throughput through the emulated SAM-BA monitor's pty against a raw pty copy of the same bytes.

    python benchmarks/flash.py [--mib 64]

Prints MB/s for both and their ratio (SAM-BA / raw): the cost of the monitor protocol, the applet
mailbox round trips and the read-back verify, on top of what the pty itself can carry.
"""

from __future__ import annotations

import argparse
import os
import select
import sys
import tempfile
import threading
import time
import tty
from pathlib import Path

import serial

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hil.emulator.emmc import Emmc  # noqa: E402
from hil.emulator.samba import SambaMonitor  # noqa: E402
from hil.flash import emulated  # noqa: E402
from hil.flash.samba import Samba  # noqa: E402


def raw_copy(data: bytes) -> float:
    """Seconds to push ``data`` through a pty with pyserial, a thread draining the other end."""
    master, slave = os.openpty()
    tty.setraw(slave)
    port = serial.Serial(os.ttyname(slave), timeout=10)
    got = 0

    def drain():
        nonlocal got
        while got < len(data):
            select.select([master], [], [], 1)
            got += len(os.read(master, 1 << 20))

    reader = threading.Thread(target=drain)
    start = time.perf_counter()
    reader.start()
    for pos in range(0, len(data), 65536):
        port.write(data[pos:pos + 65536])
    reader.join()
    elapsed = time.perf_counter() - start
    port.close()
    os.close(master)
    os.close(slave)
    return elapsed


def samba_flash(data: bytes, verify: bool) -> tuple[float, float]:
    """Seconds to write, then to read back and compare, ``data`` through the SAM-BA monitor."""
    applet = emulated.APPLET.read_bytes()
    with tempfile.TemporaryDirectory() as tmp:
        emmc = Emmc(Path(tmp) / "emmc.img", len(data) + 1024 * 1024)
        monitor = SambaMonitor(emmc, applet)
        monitor.start()
        monitor.enter()
        try:
            with Samba.open(monitor.path, timeout=10) as samba:
                samba.connect()
                sd = samba.sdmmc(applet)
                start = time.perf_counter()
                sd.write(0, data)
                written = time.perf_counter() - start
                checked = 0.0
                if verify:
                    start = time.perf_counter()
                    stats = sd.verify(0, data)
                    checked = time.perf_counter() - start
                    assert stats.chunks_patched == 0
        finally:
            monitor.stop()
            emmc.close()
    return written, checked


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=64)
    args = parser.parse_args()
    data = os.urandom(args.mib * 1024 * 1024)
    mb = len(data) / 1e6
    raw = raw_copy(data)
    write, verify = samba_flash(data, verify=True)
    print(f"image                 {args.mib} MiB")
    print(f"raw pty copy          {mb / raw:8.1f} MB/s  ({raw:.2f} s)")
    print(f"SAM-BA write          {mb / write:8.1f} MB/s  ({write:.2f} s)")
    print(f"SAM-BA read-back      {mb / verify:8.1f} MB/s  ({verify:.2f} s)")
    print(f"ratio write/raw       {raw / write:8.2f}")
    print(f"ratio flash+verify/raw {raw / (write + verify):7.2f}")


if __name__ == "__main__":
    main()
