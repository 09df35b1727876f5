"""The suites on 1, 2 and 4 emulated stations, with a device latency modelled on every debug-link answer
(the emulator's `delay` fault, standing in for USB round trips and a 500 MHz device).

Prints, per farm size: wall time, speedup over one station, and the harness's share of the wall time:
the part of the stations' time spent outside test bodies (pytest and xdist start-up, collection, leasing,
health checks, fixtures that unlock and prepare the device, reporting), i.e.
1 - sum(test call durations) / (stations x wall time); then CPU seconds per test of the harness (the pytest
process tree: controller and workers) and, apart, of the emulators; "stations per core" = a station's time
per test (stations x wall / tests) / harness CPU per test, how many stations one controller core can drive;
the same in steady state ("steady": the workers' CPU after their start-up, against the tests' own wall time),
which a long nightly approaches as start-up is shared by more tests;
and a breakdown of the stations' time (benchmarks/harness_timing.py, a pytest plugin loaded with -p).

CPU is split by process tree with getrusage(RUSAGE_CHILDREN): pytest and its workers are reaped when pytest
exits, the emulators only when their stations are stopped afterwards. The machine may be shared: the CPU
figures are this run's own, the wall times are not.

    .venv/bin/python benchmarks/farm.py [--latency-ms 20] [--sizes 1 2 4] [-k EXPR] [SUITES...]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import resource
import shutil
import socket
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from harness_timing import CATEGORIES, breakdown, cpu_seconds, read_records, run_pytest  # noqa: E402

from hil.emulator.launcher import control_endpoint  # noqa: E402
from hil.lab import nightly  # noqa: E402
from hil.lab.config import load_lab  # noqa: E402
from hil.lab.station import bring_up  # noqa: E402


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
            control(control_endpoint(st.debug), cmd="delay", seconds=latency_s)
        state = work / f"state-{size}"
        # the farm starts the longest tests first by the lab's last run (hil.lab.durations): each size
        # starts from the durations the run before it recorded, as a nightly starts from last night's
        state.mkdir()
        last_run = work / "durations.json"
        if last_run.exists():
            shutil.copy(last_run, state)
        lab = lab.model_copy(update={"state_dir": state})
        run_lab = nightly.write_run_lab(lab, stations, work / f"lab-{size}.yaml")
        results, timing = work / f"results-{size}", work / f"timing-{size}"
        timing.mkdir()
        cmd = [sys.executable, "-m", "pytest", *suites, "-n", str(size), "--lab", str(run_lab),
               "--alluredir", str(results), "-q", "-p", "no:cacheprovider", "-p", "harness_timing",
               *nightly.UNUSED_PLUGINS, *extra]
        # the bytecode cache of the lab's own state dir, as its nightly keeps it from one night to the next
        proc, t0, t_end, harness_cpu = run_pytest(cmd, ROOT, timing, nightly.suite_env(load_lab().state_dir))
        before_stop = cpu_seconds(resource.getrusage(resource.RUSAGE_CHILDREN))
        if (state / "durations.json").exists():
            shutil.copy(state / "durations.json", last_run)
    emulators_cpu = cpu_seconds(resource.getrusage(resource.RUSAGE_CHILDREN)) - before_stop
    lines = proc.stdout.strip().splitlines()
    last = lines[-1] if lines else f"pytest exited {proc.returncode}"
    bad = [line for line in lines if line.startswith(("FAILED ", "ERROR ", "BROKEN "))]  # which, not only how many
    return {"size": size, "wall": t_end - t0, "harness_cpu": harness_cpu, "emulators_cpu": emulators_cpu,
            "summary": "\n  ".join([last, *bad]), **breakdown(read_records(timing), t0, t_end)}


def print_breakdown(rows: list[dict], key: str) -> None:
    """The stations' time by category, in % of stations x wall, one row per ``key`` value."""
    print("\nstations' time (% of stations x wall; harness_timing.py says what each is)")
    print(f"{key:>8} " + " ".join(f"{c:>{max(8, len(c))}}" for c in CATEGORIES))
    for r in rows:
        whole = r["stations"] * r["wall"] or 1.0
        print(f"{r[key]:>8} " + " ".join(f"{r['seconds'][c] / whole:>{max(8, len(c))}.1%}" for c in CATEGORIES))


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
    print(f"{'stations':>8} {'wall s':>8} {'speedup':>8} {'ideal':>6} {'harness share':>14} {'tests':>6} "
          f"{'harness CPU s/test':>19} {'controller':>10} {'emulators CPU s/test':>21} {'stations/core':>14} "
          f"{'steady CPU s/test':>18} {'steady stations/core':>21}")
    for r in rows:
        tests = r["tests"] or 1
        share = 1 - r["seconds"]["test bodies"] / (r["size"] * r["wall"])
        per_test = r["harness_cpu"] / tests
        print(f"{r['size']:>8} {r['wall']:>8.1f} {base / r['wall']:>7.2f}x {r['size'] / rows[0]['size']:>5.0f}x "
              f"{share:>13.1%} {r['tests']:>6} {per_test:>19.2f} {r['controller_cpu'] / (r['harness_cpu'] or 1):>10.0%} "
              f"{r['emulators_cpu'] / tests:>21.2f} {r['size'] * r['wall'] / tests / (per_test or 1):>14.1f} "
              f"{r['steady_cpu'] / tests:>18.2f} {r['test_span'] / (r['steady_cpu'] or 1):>21.1f}")
    print_breakdown(rows, "size")
    print("\ndevice prep by fixture (set-up self-time, % of stations x wall; the largest)")
    for r in rows:
        whole = r["size"] * r["wall"] or 1.0
        top = sorted(r["fixtures"].items(), key=lambda kv: -kv[1])[:6]
        print(f"{r['size']:>8} " + ", ".join(f"{name} {took / whole:.1%} ({took:.1f} s)" for name, took in top))


if __name__ == "__main__":
    main()
