"""The suites on 1, 2 and 4 emulated stations, with a device latency modelled on every debug-link answer
(the emulator's `delay` fault, standing in for USB round trips and a 500 MHz device).

Prints, per farm size: wall time, speedup over one station, and the harness's share of the wall time:
the part of the stations' time spent outside test bodies (pytest and xdist start-up, collection, leasing,
health checks, fixtures that unlock and prepare the device, reporting), i.e.
1 - sum(test call durations) / (stations x wall time).

    .venv/bin/python benchmarks/farm.py [--latency-ms 20] [--sizes 1 2 4] [-k EXPR] [SUITES...]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hil.lab import nightly  # noqa: E402
from hil.lab.config import load_lab  # noqa: E402
from hil.lab.station import bring_up  # noqa: E402
from hil.report.allure import read_results  # noqa: E402


def control(endpoint: str, **cmd) -> dict:
    """The emulator's control endpoint (a benchmark may use it; the harness never does)."""
    host, port = endpoint.split(":")[1:]
    with socket.create_connection((host, int(port)), timeout=5) as s:
        s.sendall((json.dumps(cmd) + "\n").encode())
        reply = json.loads(s.makefile().readline())
    if not reply.get("ok"):
        raise RuntimeError(f"control {cmd}: {reply}")
    return reply


def run_farm(size: int, latency_s: float, suites: list[str], extra: list[str], work: Path) -> dict:
    lab = load_lab()
    names = list(lab.stations)[:size]
    with contextlib.ExitStack() as stack:
        stations = {n: stack.enter_context(bring_up(lab, n)) for n in names}
        for st in stations.values():
            control(st.control, cmd="delay", seconds=latency_s)
        state = work / f"state-{size}"
        lab = lab.model_copy(update={"state_dir": state})
        run_lab = nightly.write_run_lab(lab, stations, work / f"lab-{size}.yaml")
        results = work / f"results-{size}"
        cmd = [sys.executable, "-m", "pytest", *suites, "-n", str(size), "--lab", str(run_lab),
               "--alluredir", str(results), "-q", "-p", "no:cacheprovider", *extra]
        start = time.monotonic()
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
        wall = time.monotonic() - start
    res = read_results(results)
    busy = sum(max(0, r.stop - r.start) for r in res.records) / 1000
    last = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else f"pytest exited {proc.returncode}"
    return {"size": size, "wall": wall, "busy": busy, "tests": len(res.records), "summary": last}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("suites", nargs="*", default=[str(ROOT / "suites")])
    ap.add_argument("--latency-ms", type=float, default=20.0, help="modelled delay before every debug answer")
    ap.add_argument("--sizes", type=int, nargs="+", default=[1, 2, 4])
    ap.add_argument("-k", default=None, help="pytest -k expression to run a subset")
    args = ap.parse_args()
    extra = ["-k", args.k] if args.k else []
    rows = []
    with tempfile.TemporaryDirectory(prefix="hil-bench-") as tmp:
        for size in args.sizes:
            row = run_farm(size, args.latency_ms / 1000, args.suites, extra, Path(tmp))
            rows.append(row)
            print(f"{size} station(s): {row['wall']:6.1f} s wall, {row['tests']} results ({row['summary']})", flush=True)
    base = rows[0]["wall"]
    print(f"\nlatency {args.latency_ms:.0f} ms per debug answer")
    print(f"{'stations':>8} {'wall s':>8} {'speedup':>8} {'ideal':>6} {'harness share':>14}")
    for r in rows:
        share = 1 - r["busy"] / (r["size"] * r["wall"])
        print(f"{r['size']:>8} {r['wall']:>8.1f} {base / r['wall']:>7.2f}x {r['size'] / rows[0]['size']:>5.0f}x "
              f"{share:>13.0%}")


if __name__ == "__main__":
    main()
