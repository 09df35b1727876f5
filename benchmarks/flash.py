"""Flash throughput through the emulated SAM-BA monitor's pty against a raw pty copy of the same bytes.

    python benchmarks/flash.py [--mib 64] [--rounds 5]

Prints MB/s of the SAM-BA write and of its read-back verify, each against the raw pty copy (the goal
is a ratio of at least 0.9): the cost of the monitor protocol and the applet mailbox round trips on top
of what the pty itself can carry. Each round takes the raw copy, the write and the verify in turns, 16 MiB at a
time, so that a busy host slows all three alike (a whole 64 MiB image each, back to back, gave per-round ratios
from 0.4 to 1.5 on a loaded host; each segment ends the write's pipeline once, which a real flash does once in
all); the medians over the rounds are printed. tests/test_benchmark_flash.py runs it small in
CI's slow lane.
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

SEGMENT = 16 * 1024 * 1024  # bytes copied, written and verified in turn


class RawPty:
    """A pty written with pyserial, as the flasher writes the monitor's, a thread draining the other end into one
    buffer, as the emulated devices read (hil/emulator/pty.py)."""

    def __init__(self):
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)
        self.port = serial.Serial(os.ttyname(self.slave), timeout=10)
        self.buffer = bytearray(1 << 16)

    def copy(self, data: bytes) -> float:
        """Seconds to push ``data`` through, until the other end has all of it."""
        got = 0

        def drain():
            nonlocal got
            while got < len(data):
                select.select([self.master], [], [], 1)
                got += os.readv(self.master, [self.buffer])

        reader = threading.Thread(target=drain)
        start = time.perf_counter()
        reader.start()
        for pos in range(0, len(data), 65536):
            self.port.write(data[pos:pos + 65536])
        reader.join()
        return time.perf_counter() - start

    def close(self) -> None:
        self.port.close()
        os.close(self.master)
        os.close(self.slave)


def one_round(data: bytes) -> tuple[float, float, float]:
    """Seconds of the raw copy, the SAM-BA write and its read-back verify of ``data``, taken in turns a
    :data:`SEGMENT` at a time, so that a neighbour's burst of load slows all three alike."""
    applet = emulated.APPLET.read_bytes()
    raw_s = write_s = verify_s = 0.0
    with tempfile.TemporaryDirectory() as tmp:
        emmc = Emmc(Path(tmp) / "emmc.img", len(data) + 1024 * 1024)
        monitor = SambaMonitor(emmc, applet)
        path = monitor.start_pty()
        monitor.enter()
        raw = RawPty()
        try:
            with Samba.open(path, timeout=10) as samba:
                samba.connect()
                sd = samba.sdmmc(applet)
                for pos in range(0, len(data), SEGMENT):
                    segment = data[pos:pos + SEGMENT]
                    raw_s += raw.copy(segment)
                    start = time.perf_counter()
                    sd.write(pos, segment)
                    write_s += time.perf_counter() - start
                    start = time.perf_counter()
                    assert sd.verify(pos, segment).chunks_patched == 0
                    verify_s += time.perf_counter() - start
        finally:
            raw.close()
            monitor.stop()
            emmc.close()
    return raw_s, write_s, verify_s


def measure(mib: float, rounds: int = 1) -> dict[str, float]:
    """MB/s of a raw pty copy, the SAM-BA write and its read-back verify, and the ratios to raw: the
    median of ``rounds`` rounds, each ratio taken within its round."""
    data = os.urandom(int(mib * 1024 * 1024) // 512 * 512)
    mb = len(data) / 1e6
    results = []
    for _ in range(rounds):
        raw, write, verify = one_round(data)
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
