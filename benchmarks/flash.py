"""Flash throughput through the emulated SAM-BA monitor's pty against a raw copy of the same bytes over that pty.

    python benchmarks/flash.py [--mib 64] [--rounds 5]

Prints MB/s of the SAM-BA write and of its read-back verify, each against the raw copy (the goal is a ratio of
at least 0.9): the cost of the monitor protocol and the applet mailbox round trips on top of what the pty itself
can carry. The emulated unit runs in a process of its own, as a real one is a machine of its own (in one
interpreter the host and the device took turns at the GIL). The raw copy goes to the same unit over the same
pty, written by the same call the flasher writes with (``Samba.send``), and read by the unit the way it reads an
``S`` payload, straight into memory; its last byte is answered with one byte, as a chunk's write with its status.

Each round takes the raw copy, the write and the verify in turns, 16 MiB at a time, so that a busy host slows
all three alike (each segment ends the write's pipeline once, which a real flash does once in all); the
medians over the rounds are printed, with the CPU time (host and unit) that each took against the raw copy's.
tests/test_benchmark_flash.py runs it small in CI's slow lane.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hil.emulator.emmc import Emmc  # noqa: E402
from hil.emulator.samba import SambaMonitor  # noqa: E402
from hil.flash import emulated  # noqa: E402
from hil.flash.samba import Samba  # noqa: E402
from hil.machine import scaled  # noqa: E402

SEGMENT = 16 * 1024 * 1024  # bytes copied, written and verified in turn
SINK_WINDOW = 64 * 1024  # the raw copy is read into memory of a chunk's size, as an S payload is
ACK = b"\x06"


class BenchUnit(SambaMonitor):
    """The emulated monitor, which between flashes can sink a raw copy: ``n`` bytes read off the pty as an
    ``S`` payload is, then :data:`ACK` sent back."""

    def __init__(self, emmc: Emmc, applet: bytes):
        super().__init__(emmc, applet)
        self.sinking = 0
        self._window = memoryview(bytearray(SINK_WINDOW))

    def payload_target(self) -> memoryview | None:
        return self._window[:min(self.sinking, SINK_WINDOW)] if self.sinking else super().payload_target()

    def on_payload(self, n: int) -> None:
        if not self.sinking:
            return super().on_payload(n)
        self.sinking -= n
        if not self.sinking:
            self.write(ACK)


def unit(conn, emmc_path: str, size: int) -> None:
    """The emulated unit's process: answers ``("sink", n)`` and ``("cpu",)`` with its CPU seconds so far."""
    emmc = Emmc(Path(emmc_path), size)
    device = BenchUnit(emmc, emulated.APPLET.read_bytes())
    conn.send(device.start_pty())
    device.enter()
    while (msg := conn.recv()) is not None:
        if msg[0] == "sink":
            device.sinking = msg[1]
        conn.send(time.process_time())
    device.stop()
    emmc.close()


class Unit:
    """The parent's end of the unit's process."""

    def __init__(self, emmc_path: Path, size: int):
        self.conn, child = multiprocessing.Pipe()
        self.proc = multiprocessing.get_context("spawn").Process(target=unit, args=(child, str(emmc_path), size))
        self.proc.start()
        child.close()  # the unit's end lives in its process only: its death is then an EOF here
        self.path = self._answer()

    def ask(self, *msg) -> float:
        self.conn.send(msg)
        return self._answer()

    def _answer(self):
        if not self.conn.poll(scaled(60.0)):
            raise SystemExit(f"the emulated unit's process did not answer within {scaled(60.0):.0f} s (exit code {self.proc.exitcode})")
        try:
            return self.conn.recv()
        except EOFError:
            raise SystemExit(f"the emulated unit's process ended (exit code {self.proc.exitcode})") from None

    def stop(self) -> None:
        self.conn.send(None)
        self.proc.join(10)
        if self.proc.is_alive():
            self.proc.kill()


class Timed:
    """Wall and CPU seconds (the host's and the unit's) of the phases run under it, summed."""

    def __init__(self, unit: Unit):
        self.unit, self.wall, self.cpu = unit, 0.0, 0.0

    def __call__(self, phase) -> None:
        unit0 = self.unit.ask("cpu")
        cpu0, start = time.process_time(), time.perf_counter()
        phase()
        self.wall += time.perf_counter() - start
        self.cpu += time.process_time() - cpu0 + self.unit.ask("cpu") - unit0


def one_round(data: bytes) -> dict[str, Timed]:
    """Wall and CPU seconds of the raw copy, the SAM-BA write and its read-back verify of ``data``, taken in
    turns a :data:`SEGMENT` at a time, so that a neighbour's burst of load slows all three alike."""
    applet = emulated.APPLET.read_bytes()
    with tempfile.TemporaryDirectory() as tmp:
        device = Unit(Path(tmp) / "emmc.img", len(data) + 1024 * 1024)
        timed = {phase: Timed(device) for phase in ("raw", "write", "verify")}
        try:
            with Samba.open(device.path, timeout=10) as samba:
                samba.connect()
                sd = samba.sdmmc(applet)
                for pos in range(0, len(data), SEGMENT):
                    segment = data[pos:pos + SEGMENT]

                    def raw():
                        samba.send(segment)
                        assert samba._read(1, 10, "the raw copy's end") == ACK

                    def verify():
                        assert sd.verify(pos, segment).chunks_patched == 0

                    device.ask("sink", len(segment))
                    timed["raw"](raw)
                    timed["write"](lambda: sd.write(pos, segment))
                    timed["verify"](verify)
        finally:
            device.stop()
    return timed


def measure(mib: float, rounds: int = 1) -> dict[str, float]:
    """MB/s of the raw copy, the SAM-BA write and its read-back verify, the ratios to raw of their wall times
    and of their CPU times: the median of ``rounds`` rounds, each ratio taken within its round."""
    data = os.urandom(int(mib * 1024 * 1024) // 512 * 512)
    mb = len(data) / 1e6
    results = []
    for _ in range(rounds):
        t = one_round(data)
        results.append({"raw": mb / t["raw"].wall, "write": mb / t["write"].wall, "verify": mb / t["verify"].wall,
                        "write_ratio": t["raw"].wall / t["write"].wall,
                        "verify_ratio": t["raw"].wall / t["verify"].wall,
                        "write_cpu": t["raw"].cpu / t["write"].cpu, "verify_cpu": t["raw"].cpu / t["verify"].cpu})
    return {key: statistics.median(r[key] for r in results) for key in results[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=float, default=64)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    r = measure(args.mib, args.rounds)
    print(f"image                 {args.mib:g} MiB, median of {args.rounds} round(s), "
          f"load average {os.getloadavg()[0]:.1f}")
    print(f"raw pty copy          {r['raw']:8.1f} MB/s")
    for what in ("write", "verify"):
        print(f"SAM-BA {what:<14} {r[what]:8.1f} MB/s  ratio to raw {r[what + '_ratio']:.2f} (goal >= 0.9), "
              f"CPU raw/{what} {r[what + '_cpu']:.2f}")


if __name__ == "__main__":
    main()
