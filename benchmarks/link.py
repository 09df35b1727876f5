"""Screenshot round trip over the TCP debug link, against a raw socket copy of the same 1.5 MB.

    .venv/bin/python benchmarks/link.py [--rounds N]

Prints seconds per round trip and the ratio to the raw copy for: the transport alone (frame in),
the client (frame in + decode to an RGBA image), and the client against the emulated Prime (which
adds the device rendering and encoding its framebuffer).  Both peers run on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import socket
import threading
import time

from PIL import Image

from hil.link import protocol as p
from hil.link.client import PrimeClient
from hil.link.tcp import TcpTransport

SCREEN = p.stream_frame(p.response(p.Status.OK, p.encode_screenshot(Image.new("RGBA", (480, 800), (9, 99, 199, 255)),
                                                                    "BGRA")))


def serve(listener: socket.socket, reply: bytes, request_len: int) -> None:
    """Answer every request of ``request_len`` bytes with ``reply`` until the peer hangs up."""
    conn, _ = listener.accept()
    with conn:
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        while True:
            got = b""
            while len(got) < request_len:
                chunk = conn.recv(request_len - len(got))
                if not chunk:
                    return
                got += chunk
            conn.sendall(reply)


def server(reply: bytes, request_len: int) -> tuple[int, threading.Thread]:
    listener = socket.create_server(("127.0.0.1", 0))
    thread = threading.Thread(target=lambda: (serve(listener, reply, request_len), listener.close()), daemon=True)
    thread.start()
    return listener.getsockname()[1], thread


def timed(rounds: int, once) -> float:
    once()  # warm up
    t0 = time.perf_counter()
    for _ in range(rounds):
        once()
    return (time.perf_counter() - t0) / rounds


def raw_copy(rounds: int) -> float:
    port, thread = server(SCREEN, 1)
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    buf = bytearray(len(SCREEN))
    view = memoryview(buf)

    def once():
        sock.sendall(b"\x01")
        got = 0
        while got < len(buf):
            got += sock.recv_into(view[got:])

    try:
        return timed(rounds, once)
    finally:
        sock.close()
        thread.join(5)


def harness(rounds: int, endpoint: tuple[str, int] | None = None) -> tuple[float, float]:
    """(transport only, client with decode), per round trip."""
    thread = None
    if endpoint is None:
        port, thread = server(SCREEN, 5)  # a SCREENSHOT request is a 4-byte length + 1-byte body
        endpoint = ("127.0.0.1", port)
    with PrimeClient(TcpTransport(*endpoint), pixel_order="BGRA", home_button=(100, 910)) as prime:
        def frame_only():
            prime.transport.write_frame(p.request(p.Cmd.SCREENSHOT), 5.0)
            while p.decode_frame(frame := prime.transport.read_frame(5.0)).__class__ is p.Log:
                pass
            assert len(frame) == p.SCREENSHOT_BYTES + 2

        transport = timed(rounds, frame_only)
        client = timed(rounds, prime.screenshot)
    if thread is not None:
        thread.join(5)
    return transport, client


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30)
    rounds = parser.parse_args().rounds

    raw = raw_copy(rounds)
    transport, client = harness(rounds)

    from hil.emulator.build import Build
    from hil.emulator.launcher import start_device

    device = start_device(1, 0, Build(flavour="development"), boot_seconds=0)
    try:
        host, port = device.endpoints["debug"].removeprefix("tcp:").rsplit(":", 1)
        _, emulated = harness(rounds, (host, int(port)))
    finally:
        device.stop()

    print(f"screenshot round trip, {p.SCREENSHOT_BYTES:,} bytes over TCP loopback, {rounds} rounds")
    print(f"{'raw socket copy':34}{raw * 1000:8.2f} ms   1.00x")
    for name, t in (("harness transport (frame)", transport), ("harness client (frame + decode)", client),
                    ("client against the emulated Prime", emulated)):
        print(f"{name:34}{t * 1000:8.2f} ms {t / raw:6.2f}x")


if __name__ == "__main__":
    main()
