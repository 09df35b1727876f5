"""`hil bridge`: the bench side of a labgrid lab (issue 8). For each Prime wired to this bench host it
serves the usb-debug link on a TCP port with the framing of KeyOS's simulator (u32 LE length + body,
one client at a time), relaying whole frames between the client and the unit's local transport (USB
in the lab, matched by USB port path so a re-enumerated unit keeps its endpoint; the emulator's TCP
endpoint on an emulated bench). labgrid publishes the port as a `PrimeDebugLink{host,port}` resource.
The station's camera stream (MJPEG over HTTP on the bench) is relayed the same way (`CameraRelay`),
published as labgrid's `HTTPVideoStream`.

labgrid enforces its lock only for what the exporter runs itself, so the bridge checks the lease: the
first frame a client sends is `HIL-LEASE <token>`, where the token is the labgrid reservation token the
harness got when it reserved the place (`LG_TOKEN`, as `labgrid-client reserve --shell` prints it). The
bridge asks the coordinator whether the station's place is acquired under that reservation and answers
`OK <station>` or `DENIED <reason>` (then closes). While a client is connected it re-checks every few
seconds and drops the client when the place is released or kicked. The token keeps off whoever does not
hold the lease (another worker, a developer's stray `hil device`); it is not a secret against an
attacker on the lab network, which must stay a trusted network.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import socket
import threading
import time
import urllib.request
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit
from pathlib import Path
from typing import Annotated, Optional

import typer

from hil.errors import InfrastructureError
from hil.link import protocol
from hil.link.tcp import TcpTransport
from hil.link.transport import LinkClosed, LinkTimeout, Transport

HELLO, OK, DENIED = b"HIL-LEASE ", b"OK ", b"DENIED "
TOKEN_ENV = "LG_TOKEN"
log = logging.getLogger("hil.bridge")


# ------------------------------------------------------------------------------ client side


class BridgeTransport(TcpTransport):
    """`bridge:HOST:PORT`: the TCP link of a bench's bridge, opened with this process's lease token."""

    def __init__(self, host: str, port: int, token: str | None, *, stall_timeout: float = 5.0):
        super().__init__(host, port, stall_timeout=stall_timeout)
        self.name = f"bridge:{host}:{port}"
        self.token = token

    def _open_link(self) -> None:
        if not self.token:
            raise LinkClosed(self.name, f"no lease token; set {TOKEN_ENV} to the labgrid reservation token of the "
                                        "station's place (`labgrid-client reserve --shell`, then acquire it)")
        super()._open_link()
        try:
            self._write(HELLO + self.token.encode(), self.connect_timeout)
            answer = self._read(self.connect_timeout)
        except LinkTimeout:
            self._close_link()
            raise LinkClosed(self.name, f"bridge did not answer the lease handshake within "
                                        f"{self.connect_timeout:g} s (bridge hung?)") from None
        except LinkClosed:
            self._close_link()
            raise
        if not answer.startswith(OK):
            self._close_link()
            reason = answer[len(DENIED):] if answer.startswith(DENIED) else answer[:80]
            raise LinkClosed(self.name, f"bridge refused the link: {reason.decode(errors='replace')}")


_lease = threading.local()


@contextlib.contextmanager
def lease_token(token: str):
    """Links opened by this thread present `token` instead of `LG_TOKEN`: the nightly flashes several places
    at once from one process, each under its own labgrid lease, and the environment is per process."""
    _lease.token = token
    try:
        yield
    finally:
        _lease.token = None


def transport(device: str, stall_timeout: float = 5.0) -> BridgeTransport:
    """The transport of a `bridge:HOST:PORT` device string; the token is this thread's `lease_token`, else
    `LG_TOKEN`."""
    from hil.link.resolve import DeviceNotFound

    host, _, port = device.partition(":")[2].rpartition(":")
    if not host or not port.isdigit():
        raise DeviceNotFound(f"{device}: expected bridge:HOST:PORT, e.g. bridge:10.0.0.11:7701")
    token = getattr(_lease, "token", None) or os.environ.get(TOKEN_ENV)
    return BridgeTransport(host, int(port), token, stall_timeout=stall_timeout)


# ------------------------------------------------------------------------------ bench side


def _recv_exact(sock: socket.socket, n: int) -> bytes | None:
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return bytes(buf)


def recv_frame(sock: socket.socket) -> bytes | None:
    """One frame body, or None when the peer closed; a bad length raises `ProtocolError`."""
    header = _recv_exact(sock, protocol.STREAM_HEADER.size)
    if header is None:
        return None
    body = _recv_exact(sock, protocol.stream_length(header))
    if body is None:
        raise protocol.ProtocolError("client closed the connection mid-frame")
    return body


class LeaseCheck:
    """Asks the labgrid coordinator whether a token holds a place; returns None or why not."""

    def __init__(self, address: str, timeout: float = 5.0) -> None:
        self.address, self.timeout = address, timeout
        self._lock = threading.Lock()  # one coordinator session per process at a time

    def __call__(self, place: str, token: str) -> str | None:
        from hil.farm.labgrid import Coordinator

        with self._lock:
            try:
                coord = Coordinator(self.address, self.timeout)
            except InfrastructureError as e:
                return f"cannot check the lease: {e}"
            try:
                coord.refresh()
                p = coord.places.get(place)
            except InfrastructureError as e:
                return f"cannot check the lease: {e}"
            finally:
                coord.close()
        if p is None:
            return f"no place {place} on labgrid coordinator {self.address} (run `hil lab sync`)"
        if not p.acquired:
            return f"place {place} is not acquired; reserve and acquire it first"
        if p.reservation != token:
            return f"place {place} is held by {p.acquired} under another lease token"
        return None


class StationBridge:
    """One station's debug link on one TCP port. One client at a time; another one is refused after
    `linger` seconds (the time a closing session takes to let go of the unit)."""

    linger = 2.0

    def __init__(self, station: str, open_device: Callable[[], Transport], check: Callable[[str, str], str | None],
                 host: str = "127.0.0.1", port: int = 0, recheck: float = 3.0, handshake_timeout: float = 5.0):
        self.station, self.open_device, self.check = station, open_device, check
        self.recheck, self.handshake_timeout = recheck, handshake_timeout
        self._server = socket.create_server((host, port))
        self._server.settimeout(0.5)
        self.host, self.port = self._server.getsockname()[:2]
        self._stop = threading.Event()
        self._busy = threading.Lock()
        self._threads: list[threading.Thread] = []

    def start(self) -> StationBridge:
        t = threading.Thread(target=self._accept, name=f"bridge-{self.station}", daemon=True)
        t.start()
        self._threads.append(t)
        return self

    def stop(self) -> None:
        self._stop.set()
        self._server.close()
        for t in self._threads:
            t.join(timeout=10)

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, peer = self._server.accept()
            except TimeoutError:
                continue
            except OSError:
                return  # closed by stop()
            if not self._busy.acquire(timeout=self.linger):  # the last client's session may still be closing
                self._refuse(conn, "busy: another client holds the link (one client at a time)")
                continue
            t = threading.Thread(target=self._serve, args=(conn, peer), daemon=True)
            t.start()
            self._threads = [x for x in self._threads if x.is_alive()] + [t]

    @staticmethod
    def _refuse(conn: socket.socket, reason: str) -> None:
        with contextlib.suppress(OSError):
            conn.sendall(protocol.stream_frame(DENIED + reason.encode()))
        conn.close()

    def _serve(self, conn: socket.socket, peer) -> None:
        try:
            conn.settimeout(self.handshake_timeout)
            try:
                hello = recv_frame(conn)
            except (OSError, protocol.ProtocolError):
                hello = None
            if hello is None or not hello.startswith(HELLO):
                return self._refuse(conn, "expected `HIL-LEASE <token>` first (the station's labgrid lease token)")
            token = hello[len(HELLO):].decode(errors="replace").strip()
            why = self.check(self.station, token)
            if why is not None:
                log.info("%s: refused %s: %s", self.station, peer, why)
                return self._refuse(conn, why)
            try:
                device = self.open_device().open()
            except InfrastructureError as e:
                return self._refuse(conn, f"station {self.station}: {e}")
            try:
                conn.sendall(protocol.stream_frame(OK + self.station.encode()))
                self._relay(conn, device, token)
            finally:
                device.close()
        finally:
            with contextlib.suppress(OSError):
                conn.close()
            self._busy.release()

    def _relay(self, conn: socket.socket, device: Transport, token: str) -> None:
        """Frames both ways until either side goes, the lease ends or the bridge stops."""
        done = threading.Event()
        conn.settimeout(None)

        def to_device() -> None:
            try:
                while not done.is_set():
                    body = recv_frame(conn)
                    if body is None:
                        break
                    device.write_frame(body, 5.0)
            except (OSError, protocol.ProtocolError, InfrastructureError) as e:
                log.info("%s: client side ended: %s", self.station, e)
            finally:
                done.set()

        def to_client() -> None:
            try:
                while not done.is_set():
                    try:
                        body = device.read_frame(0.5)
                    except LinkTimeout:
                        continue
                    conn.sendall(protocol.stream_frame(body))
            except (OSError, InfrastructureError) as e:
                log.warning("%s: device side ended: %s", self.station, e)
            finally:
                done.set()

        pumps = [threading.Thread(target=f, daemon=True) for f in (to_device, to_client)]
        for p in pumps:
            p.start()
        while not done.wait(self.recheck) and not self._stop.is_set():
            why = self.check(self.station, token)
            if why is not None:
                log.warning("%s: dropping the client: %s", self.station, why)
                break
        done.set()
        with contextlib.suppress(OSError):
            conn.shutdown(socket.SHUT_RDWR)
        for p in pumps:
            p.join(timeout=10)


class CameraRelay:
    """The station's camera, a bench-local MJPEG-over-HTTP stream (the emulator's, or a streamer such as
    ustreamer in front of a USB camera), relayed to lease holders only: `GET <path>?lease=TOKEN` answers
    the upstream's `<path>`; without the lease it is 403 with the reason. A stream being watched is cut
    when the lease ends (checked every `recheck` seconds)."""

    def __init__(self, station: str, upstream: str, check: Callable[[str, str], str | None],
                 host: str = "127.0.0.1", port: int = 0, recheck: float = 3.0):
        parts = urlsplit(upstream)
        self.station, self.path, self.check, self.recheck = station, parts.path or "/", check, recheck
        base = f"{parts.scheme}://{parts.netloc}"
        relay = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                req = urlsplit(self.path)
                token = parse_qs(req.query).get("lease", [""])[0]
                why = relay.check(relay.station, token) if token else \
                    "no lease token: add ?lease=<the place's labgrid reservation token>"
                if why is not None:
                    self.send_error(403, why)
                    return
                try:
                    upstream_resp = urllib.request.urlopen(base + req.path, timeout=5)
                except OSError as e:
                    self.send_error(502, f"camera of station {relay.station} unreachable: {e}")
                    return
                with upstream_resp:
                    self.send_response(200)
                    self.send_header("Content-Type", upstream_resp.headers.get("Content-Type", "application/octet-stream"))
                    self.end_headers()
                    next_check = time.monotonic() + relay.recheck
                    try:
                        while chunk := upstream_resp.read1(64 * 1024):
                            self.wfile.write(chunk)
                            if time.monotonic() > next_check:
                                if relay.check(relay.station, token) is not None:
                                    return  # the lease ended: the stream ends with it
                                next_check = time.monotonic() + relay.recheck
                    except OSError:
                        return  # the viewer (or the upstream) went away

            def log_message(self, fmt: str, *args) -> None:
                log.debug("%s camera: " + fmt, relay.station, *args)

        self._server = ThreadingHTTPServer((host, port), Handler)
        self._server.daemon_threads = True
        self.host, self.port = self._server.server_address[:2]
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.5},
                                        name=f"camera-{station}", daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}{self.path}"

    def start(self) -> CameraRelay:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)


def bridge(
    bench: Annotated[str, typer.Argument(help="this bench host's name in the lab file")],
    lab: Annotated[Optional[str], typer.Option("--lab", help="lab file (default: lab_config.yaml of the repo)")] = None,
    coordinator: Annotated[Optional[str], typer.Option(help="labgrid://HOST:PORT (default: the lab file's)")] = None,
    bind: Annotated[Optional[str], typer.Option(help="address to listen on (default: the bench's host)")] = None,
    exporter_config: Annotated[Optional[Path], typer.Option(
        "--exporter-config", help="write this bench's labgrid exporter YAML with the ports bound")] = None,
) -> None:
    """Serve the debug link of every Prime on this bench over TCP, to lease holders only."""
    from hil.farm.config import load_lab
    from hil.farm.labgrid import LabUrl, exporter_config as render
    from hil.errors import HilError

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    try:
        cfg = load_lab(lab)
        url = coordinator or cfg.coordinator
        if url is None:
            raise HilError(f"{cfg.source}: no `coordinator`; pass --coordinator labgrid://HOST:PORT")
        check = LeaseCheck(LabUrl.parse(url).address)
        names = [n for n, st in cfg.stations.items() if st.bench == bench]
        if bench not in cfg.benches or not names:
            raise HilError(f"{cfg.source}: no bench {bench!r} with stations (benches: {', '.join(cfg.benches)})")
        host = bind or cfg.benches[bench].host
        with contextlib.ExitStack() as stack:
            live = {}
            for name in names:
                port = cfg.stations[name].bridge_port or 0
                opener, serial, camera, samba = _device_opener(cfg, name, stack)
                b = StationBridge(name, opener, check, host, port).start()
                stack.callback(b.stop)
                live[name] = {"port": b.port, "serial": serial, "samba": samba}
                if camera is not None:  # on bridge_port + 1 by convention (hil lab exporter-config says so too)
                    c = CameraRelay(name, camera, check, host, port + 1 if port else 0).start()
                    stack.callback(c.stop)
                    live[name]["camera"] = c.url
                typer.echo(json.dumps({"station": name, "debug": f"bridge:{host}:{b.port}",
                                       **({"camera": c.url} if camera is not None else {})}), nl=True)
            if exporter_config is not None:
                tmp = exporter_config.with_suffix(".tmp")
                tmp.write_text(render(cfg, bench, live))
                tmp.replace(exporter_config)
            stopped = threading.Event()
            for sig in (signal.SIGINT, signal.SIGTERM):
                signal.signal(sig, lambda *_: stopped.set())
            stopped.wait()
    except HilError as e:
        typer.echo(f"bridge: {e}", err=True)
        raise typer.Exit(2) from None


def _device_opener(cfg, name: str, stack: contextlib.ExitStack
                   ) -> tuple[Callable[[], Transport], str | None, str | None, str | None]:
    """How the bridge reaches one unit: an emulated one's TCP endpoint (the emulator started here), or the
    unit on its USB port path through the profile's pyusb backend, found afresh for every client. Also
    its serial, its bench-local camera stream (http) and an emulated unit's SAM-BA pty (the exporter
    serves it through ser2net like a wired unit's CDC port), where known."""
    from hil.farm.station import Station
    from hil.link.resolve import transport_for

    st = cfg.stations[name]
    profile = cfg.profile(st.profile)
    if st.emulated is not None:
        from hil.emulator.launcher import EmulatorProcess

        e = st.emulated
        emu = stack.enter_context(EmulatorProcess(count=1, seed=e.seed, flavour=e.flavour, version=e.version,
                                                  pin=e.pin))
        local = Station.from_endpoints(name, profile, emu.devices[0])
    else:
        local = Station(name=name, profile=profile, debug=f"usb:{st.usb_port}", serial=st.serial,
                        usb_port=st.usb_port, camera=st.camera)
    camera = local.camera if local.camera and local.camera.startswith("http") else None
    samba = local.samba if st.emulated is not None else None
    return (lambda: transport_for(local.debug, profile, local)), local.serial, camera, samba


if __name__ == "__main__":  # `python -m hil.bridge BENCH`: what the bench's systemd unit runs
    typer.run(bridge)
