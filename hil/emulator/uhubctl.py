"""A stand-in for `uhubctl` (https://github.com/mvp/uhubctl) that switches an emulated Prime's power.

The harness power-cycles a hung unit by running ``uhubctl -l HUB -p PORT -a cycle -d SECONDS``; on an
emulated bench this program answers to the same arguments, where HUB is the emulator's control
endpoint (``HOST:PORT``) and the port switches that emulator's power (``power_cut`` / ``power_on``).
Put it on PATH as ``uhubctl`` (``python -m hil.emulator.uhubctl``).
"""

from __future__ import annotations

import argparse
import json
import socket
import sys
import time


def control(hub: str, cmd: str) -> None:
    host, port = hub.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=5) as s:
        s.sendall((json.dumps({"cmd": cmd}) + "\n").encode())
        reply = json.loads(s.makefile().readline())
    if not reply.get("ok"):
        raise OSError(reply.get("error", "refused"))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="uhubctl", description=__doc__.splitlines()[0])
    ap.add_argument("-l", "--location", required=True)
    ap.add_argument("-p", "--ports", required=True)
    ap.add_argument("-a", "--action", choices=("off", "on", "cycle", "0", "1", "2"), required=True)
    ap.add_argument("-d", "--delay", type=float, default=2.0)
    args = ap.parse_args(argv)
    action = {"0": "off", "1": "on", "2": "cycle"}.get(args.action, args.action)
    try:
        if action in ("off", "cycle"):
            control(args.location, "power_cut")
            print(f"Current status for hub {args.location}\n  Port {args.ports}: 0000 off")
        if action == "cycle":
            time.sleep(args.delay)
        if action in ("on", "cycle"):
            control(args.location, "power_on")
            print(f"Current status for hub {args.location}\n  Port {args.ports}: 0503 power enable connect")
    except (OSError, ValueError) as e:
        print(f"No compatible devices detected at location {args.location}: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
