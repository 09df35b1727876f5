"""A lab of 50 units on paper: the harness drives 50 stations whose device work is modelled latency, not CPU,
so what it prints is the lab host's own cost of a lab that size, measured on this machine.

One light asyncio process (``--serve``) plays 50 debug links on loopback TCP. Each speaks the real wire codec
(hil/link/protocol.py: the simulator's u32-length framing, GET_VERSION, KERNEL_CMD, LAUNCH_APP, GET_PROCESS_LIST,
a 480x800 SCREENSHOT; Err to the rest) and sleeps ``--latency-ms`` before every answer. The run goes through the
public entry points only: a lab yaml wiring 50 stations to those links, and
``python -m pytest benchmarks/lab50_suite.py --lab LAB -n 50`` with the harness's plugin (the farm: one worker
and lease per station, the health check, the device's session client, Allure results with a PNG screenshot per
test) and benchmarks/harness_timing.py loaded with -p for the breakdown.

Modelled: xdist start-up and collection of 50 workers, file leases and health checks on 50 stations, link
round trips, one screenshot decoded and encoded as evidence per test, Allure reporting. Not modelled: the
per-test device preparation of the real suites (the ``prime`` fixture's lock screen, PIN entry read by vision),
camera frames and OCR, NFC, flashing, and the nightly's history and sign-off after the run; farm.py measures
those on the emulator. Prints wall time, the pytest tree's CPU (the controller host's: controller and workers)
and the fake devices' CPU apart, lease wait per test, the stations' time by category, and how many stations
one controller core drives: over the whole run, in steady state (start-up apart), and on paper (the modelled
device time per test over the workers' CPU per test, which no load on this machine inflates). The machine may
be shared: CPU figures are this run's own, wall times are not.

    .venv/bin/python benchmarks/lab50.py [--stations 50] [--tests 200] [--answers 50] [--latency-ms 20]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from harness_timing import breakdown, cpu_seconds, read_records, run_pytest  # noqa: E402

from hil.lab import nightly  # noqa: E402
from hil.lab.config import load_lab  # noqa: E402
from hil.link import protocol  # noqa: E402
from hil.link.protocol import Cmd, LaunchStatus, Status  # noqa: E402

VERSION = b"0.0.0-lab50"
ANSWERS = {  # what an unlocked development unit at home answers
    Cmd.GET_VERSION: VERSION,
    Cmd.KERNEL_CMD: b"sim tasks: 12",
    Cmd.LAUNCH_APP: protocol.launch_reply(0, LaunchStatus.APP_ID_NOT_FOUND),
    Cmd.GET_PROCESS_LIST: b"R 1 0 kernel\nR 2 1 gui-server\n",
    Cmd.SCREENSHOT: bytes(range(256)) * (protocol.SCREENSHOT_BYTES // 256),
}


def reply(body: bytes) -> bytes:
    try:
        cmd, _ = protocol.parse_request(body)
    except protocol.ProtocolError:
        return protocol.response(Status.ERR)
    return protocol.response(Status.OK, ANSWERS[cmd]) if cmd in ANSWERS else protocol.response(Status.ERR)


async def serve_links(count: int, latency: float) -> None:
    async def link(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                header = await reader.readexactly(protocol.STREAM_HEADER.size)
                body = await reader.readexactly(protocol.stream_length(header))
                await asyncio.sleep(latency)
                writer.write(protocol.stream_frame(reply(body)))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, protocol.ProtocolError):
            pass
        finally:
            writer.close()

    servers = [await asyncio.start_server(link, "127.0.0.1", 0) for _ in range(count)]
    print(json.dumps([s.sockets[0].getsockname()[1] for s in servers]), flush=True)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()


def write_lab(ports: list[int], work: Path) -> Path:
    """The repository's lab file with its stations replaced by the fake links, its state and reports in ``work``."""
    lab = yaml.safe_load((ROOT / "lab_config.yaml").read_text())
    lab.update(name="lab50-simulation", state_dir=str(work / "state"), reports_dir=str(work / "reports"),
               profiles_dir=str(ROOT / "device_profiles"), suites=[str(ROOT / "benchmarks")],
               signoff_criteria=str(ROOT / lab["signoff_criteria"]),
               signing_key={**lab["signing_key"], "path": str(work / "signoff.pem")},
               samba_applet=None,
               stations={f"sim-{i + 1}": {"profile": "prime-emulated", "debug": f"tcp:127.0.0.1:{port}",
                                          "usb_port": f"sim-{i + 1}", "tags": ["flavour=development"]}
                         for i, port in enumerate(ports)})
    path = work / "lab50.yaml"
    path.write_text(yaml.safe_dump(lab, sort_keys=False))
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--stations", type=int, default=50)
    ap.add_argument("--tests", type=int, default=200, help="tests in the simulated suite (spread over the stations)")
    ap.add_argument("--answers", type=int, default=50, help="debug-link answers per test (its device work)")
    ap.add_argument("--latency-ms", type=float, default=20.0, help="modelled delay before every debug answer")
    ap.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)  # the fake links' own process
    args = ap.parse_args()
    if args.serve:
        asyncio.run(serve_links(args.stations, args.latency_ms / 1000))
        return
    with tempfile.TemporaryDirectory(prefix="hil-lab50-") as tmp:
        work = Path(tmp)
        links = subprocess.Popen([sys.executable, __file__, "--serve", "--stations", str(args.stations),
                                  "--latency-ms", str(args.latency_ms)], stdout=subprocess.PIPE, text=True)
        try:
            lab = write_lab(json.loads(links.stdout.readline()), work)
            timing = work / "timing"
            timing.mkdir()
            cmd = [sys.executable, "-m", "pytest", str(ROOT / "benchmarks" / "lab50_suite.py"), "-n", str(args.stations),
                   "--lab", str(lab), "--alluredir", str(work / "results"), "-q", "-p", "no:cacheprovider",
                   "-p", "harness_timing", *nightly.UNUSED_PLUGINS,
                   "--rootdir", str(ROOT)]
            proc, t0, t_end, harness_cpu = run_pytest(cmd, ROOT, timing, nightly.suite_env(load_lab().state_dir),
                                                      LAB50_TESTS=str(args.tests),
                                                      LAB50_ANSWERS=str(args.answers))
            before_stop = cpu_seconds(resource.getrusage(resource.RUSAGE_CHILDREN))
        finally:
            links.send_signal(signal.SIGTERM)
            links.wait(timeout=30)
        devices_cpu = cpu_seconds(resource.getrusage(resource.RUSAGE_CHILDREN)) - before_stop
        run = breakdown(read_records(timing), t0, t_end)
    last = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else f"pytest exited {proc.returncode}"
    if proc.returncode != 0:
        print(proc.stdout[-3000:], proc.stderr[-3000:], sep="\n")
    print_table(args, run, t_end - t0, harness_cpu, devices_cpu, last)


def print_table(args: argparse.Namespace, run: dict, wall: float, harness_cpu: float, devices_cpu: float,
                summary: str) -> None:
    tests = run["tests"] or 1
    modelled = args.answers * args.latency_ms / 1000
    secs = run["seconds"]
    print(f"{args.stations} simulated stations, {run['tests']} tests ({summary}); each test {args.answers} answers "
          f"x {args.latency_ms:.0f} ms = {modelled:.1f} s of modelled device time")
    rows = [
        ("wall time", f"{wall:.1f} s"),
        ("ideal wall (device time only)", f"{modelled * tests / args.stations:.1f} s"),
        ("controller host CPU (pytest tree)", f"{harness_cpu:.1f} s = {harness_cpu / tests:.3f} s per test"),
        ("  of which the controller process", f"{run['controller_cpu']:.1f} s"),
        ("  of which the workers", f"{run['workers_cpu']:.1f} s"),
        ("  of which after the sessions ended", f"{harness_cpu - run['controller_cpu'] - run['workers_cpu']:.1f} s"),
        ("fake devices' CPU (apart)", f"{devices_cpu:.1f} s"),
        ("lease wait per test", f"{secs['leasing'] / tests * 1000:.1f} ms"),
        ("health check per test", f"{secs['health check'] / tests * 1000:.1f} ms"),
        ("workers' start-up CPU per station", f"{(run['workers_cpu'] - run['steady_cpu']) / (run['stations'] or 1):.2f} s"),
        ("workers' CPU per test after start-up", f"{run['steady_cpu'] / tests:.3f} s"),
        ("stations per controller core:", ""),
        ("  whole run (stations x wall / CPU)", f"{args.stations * wall / (harness_cpu or 1):.1f}"),
        ("  steady (test wall / CPU per test)", f"{run['test_span'] / (run['steady_cpu'] or 1):.1f}"),
        ("  on paper (device time / CPU per test)", f"{modelled * tests / (run['steady_cpu'] or 1):.1f}"),
    ]
    for name, value in rows:
        print(f"  {name:<42} {value}")
    whole = run["stations"] * wall or 1.0
    print("  stations' time: " + ", ".join(f"{c} {s / whole:.1%}" for c, s in secs.items()))


if __name__ == "__main__":
    main()
