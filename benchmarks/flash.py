"""Flash throughput through the emulated SAM-BA monitor's pty against a raw pty copy of the same bytes.

    python benchmarks/flash.py [--mib 64] [--rounds 5]

Prints MB/s of the SAM-BA write and of its read-back verify, each against the raw pty copy (the goal
is a ratio of at least 0.9): the cost of the monitor protocol and the applet mailbox round trips on top
of what the pty itself can carry. Each round times the raw copy and the flash back to back, so that a
busy host slows both alike; the medians over the rounds are printed. tests/test_benchmark_flash.py
runs it small in CI's slow lane.
"""

from __future__ import annotations

import argparse
import os
import select
import statistics
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
    buffer = bytearray(1 << 16)  # read as the emulated devices read (hil/emulator/pty.py): into one buffer

    def drain():
        nonlocal got
        while got < len(data):
            select.select([master], [], [], 1)
            got += os.readv(master, [buffer])

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
        path = monitor.start_pty()
        monitor.enter()
        try:
            with Samba.open(path, timeout=10) as samba:
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


def measure(mib: float, rounds: int = 1) -> dict[str, float]:
    """MB/s of a raw pty copy, the SAM-BA write and its read-back verify, and the ratios to raw: the
    median of ``rounds`` rounds, each ratio taken within its round."""
    data = os.urandom(int(mib * 1024 * 1024))
    mb = len(data) / 1e6
    results = []
    for _ in range(rounds):
        raw = raw_copy(data)
        write, verify = samba_flash(data, verify=True)
        results.append({"raw": mb / raw, "write": mb / write, "verify": mb / verify,
                        "write_ratio": raw / write, "verify_ratio": raw / verify})
    return {key: statistics.median(r[key] for r in results) for key in results[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=float, default=64)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    r = measure(args.mib, args.rounds)
    print(f"image                 {args.mib:g} MiB, median of {args.rounds} round(s)")
    print(f"raw pty copy          {r['raw']:8.1f} MB/s")
    print(f"SAM-BA write          {r['write']:8.1f} MB/s  ratio to raw {r['write_ratio']:.2f} (goal >= 0.9)")
    print(f"SAM-BA verify         {r['verify']:8.1f} MB/s  ratio to raw {r['verify_ratio']:.2f} (goal >= 0.9)")


if __name__ == "__main__":
    main()
