"""`hil bridge`: the bench side of a labgrid lab (issue 8). Its clients are the drivers' own `bridge:` address
schemes (`hil.link.bridge`, `hil.stimuli.nfc_bridge`); this module imports the drivers, never the reverse.

For each Prime wired to this bench host it serves, each on its own TCP port and each to the station's
lease holder only:
- the usb-debug link, with the framing of KeyOS's simulator (u32 LE length + body, one client at a
  time), relaying whole frames between the client and the unit's local transport (USB in the lab,
  matched by USB port path so a re-enumerated unit keeps its endpoint; the emulator's TCP endpoint on
  an emulated bench); labgrid publishes it as `PrimeDebugLink{host,port}`;
- the camera, a bench-local MJPEG-over-HTTP stream relayed as labgrid's `HTTPVideoStream` (`CameraRelay`);
- the stylus robot and the power-button relay, serial instruments whose bytes are relayed unchanged
  (`SerialBridge`), published as `PrimeRobot` and `PrimeRelay`;
- the NFC reader: nfcpy runs on the bench next to the reader, and the harness calls it (poll and
  exchange APDUs, present a tag) over the link (`NfcService`), published as `PrimeNfc`.
The harness names each of them `bridge:HOST:PORT` in its station.

labgrid enforces its lock only for what the exporter runs itself, so each endpoint checks the lease: the
first frame a client sends is `HIL-LEASE <token>`, where the token is the labgrid reservation token the
harness got when it reserved the place (`LG_TOKEN`, as `labgrid-client reserve --shell` prints it). The
endpoint asks the coordinator whether the station's place is acquired under that reservation and answers
`OK <station>` or `DENIED <reason>` (then closes). While a client is connected it re-checks every few
seconds and drops the client when the place is released or kicked. The token keeps off whoever does not
hold the lease (another worker, a developer's stray `hil device`); it is not a secret against an
attacker on the lab network, which must stay a trusted network.
"""

from __future__ import annotations

import contextlib
import json
import logging
import signal
import socket
import threading
import time
import urllib.request
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Annotated, Any, Optional
from urllib.parse import parse_qs, urlsplit

import serial
import typer

from hil.emulator.launcher import EmulatorProcess
from hil.errors import HilError, InfrastructureError
from hil.lab.config import load_lab
from hil.lab.exporter import PORT_OFFSETS
from hil.lab.exporter import exporter_config as render
from hil.lab.labgrid import Coordinator, LabUrl
from hil.lab.station import Station, from_config
from hil.link import protocol
from hil.link.bridge import DENIED, HANDSHAKE_LIMIT, HELLO, OK, recv_frame
from hil.link.resolve import transport_for
from hil.link.transport import LinkTimeout, Transport
from hil.stimuli.nfc import NfcError, NfcReader
from hil.stimuli.relay import PowerButtonRelay
from hil.stimuli.robot import StylusRobot

log = logging.getLogger("hil.bridge")


class LeasedEndpoint:
    """One endpoint of one station on one TCP port: the client shows the station's lease first, one client
    at a time (another is refused after `linger` seconds, the time a closing session takes to let go of
    the unit), and the client is cut off when the lease ends. A subclass opens the station's resource
    and runs a client's session on it."""

    linger = 2.0
    what = "endpoint"

    def __init__(self, station: str, check: Callable[[str, str], str | None], host: str = "127.0.0.1",
                 port: int = 0, recheck: float = 3.0, handshake_timeout: float = 5.0):
        self.station, self.check = station, check
        self.recheck, self.handshake_timeout = recheck, handshake_timeout
        self._server = socket.create_server((host, port))
        self._server.settimeout(0.5)
        self.host, self.port = self._server.getsockname()[:2]
        self._stop = threading.Event()
        self._busy = threading.Lock()
        self._threads: list[threading.Thread] = []

    @property
    def device(self) -> str:
        return f"bridge:{self.host}:{self.port}"

    def open(self) -> Any:
        raise NotImplementedError

    def close(self, resource: Any) -> None:
        resource.close()

    def session(self, conn: socket.socket, resource: Any) -> None:
        """Serve the client until it leaves or `conn` is shut down (the lease ended)."""
        raise NotImplementedError

    def start(self):
        t = threading.Thread(target=self._accept, name=f"bridge-{self.what}-{self.station}", daemon=True)
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
                self._refuse(conn, f"busy: another client holds the {self.what} (one client at a time)")
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
            try:
                hello = recv_frame(conn, HANDSHAKE_LIMIT, time.monotonic() + self.handshake_timeout)
            except (OSError, protocol.ProtocolError):
                hello = None
            if hello is None or not hello.startswith(HELLO):
                return self._refuse(conn, "expected `HIL-LEASE <token>` first (the station's labgrid lease token)")
            token = hello[len(HELLO):].decode(errors="replace").strip()
            why = self.check(self.station, token)
            if why is not None:
                log.info("%s %s: refused %s: %s", self.station, self.what, peer, why)
                return self._refuse(conn, why)
            try:
                resource = self.open()
            except (InfrastructureError, OSError, serial.SerialException) as e:
                return self._refuse(conn, f"station {self.station}: {self.what}: {e}")
            try:
                conn.settimeout(None)
                conn.sendall(protocol.stream_frame(OK + self.station.encode()))
                self._watched(conn, resource, token)
            finally:
                self.close(resource)
        except OSError as e:
            log.info("%s %s: client %s gone: %s", self.station, self.what, peer, e)
        finally:
            with contextlib.suppress(OSError):
                conn.close()
            self._busy.release()

    def _watched(self, conn: socket.socket, resource: Any, token: str) -> None:
        """The session, while a watcher re-checks the lease and shuts the connection down when it ends."""
        done = threading.Event()

        def watch() -> None:
            while not done.wait(self.recheck):
                why = "the bridge is stopping" if self._stop.is_set() else self.check(self.station, token)
                if why is not None:
                    log.warning("%s %s: dropping the client: %s", self.station, self.what, why)
                    with contextlib.suppress(OSError):
                        conn.shutdown(socket.SHUT_RDWR)
                    return

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        try:
            self.session(conn, resource)
        finally:
            done.set()
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
            watcher.join(timeout=10)


def _pump(name: str, read: Callable[[], bytes | None], write: Callable[[bytes], None], done: threading.Event,
          quiet: tuple[type[BaseException], ...]) -> None:
    """Copy what `read` returns to `write` until `read` says the end (None), either fails, or `done`."""
    try:
        while not done.is_set():
            data = read()
            if data is None:
                break
            if data:
                write(data)
    except quiet as e:
        log.info("%s ended: %s", name, e)
    finally:
        done.set()


class StationBridge(LeasedEndpoint):
    """The debug link: whole frames both ways between the client and the unit's local transport."""

    what = "link"

    def __init__(self, station: str, open_device: Callable[[], Transport], check: Callable[[str, str], str | None],
                 host: str = "127.0.0.1", port: int = 0, **kw: Any):
        super().__init__(station, check, host, port, **kw)
        self.open_device = open_device

    def open(self) -> Transport:
        return self.open_device().open()

    def session(self, conn: socket.socket, device: Transport) -> None:
        done = threading.Event()
        errors = (OSError, protocol.ProtocolError, InfrastructureError)

        def from_device() -> bytes:
            try:
                return protocol.stream_frame(device.read_frame(0.5))
            except LinkTimeout:
                return b""

        to_device = threading.Thread(target=_pump, daemon=True, args=(
            f"{self.station} client side", lambda: recv_frame(conn), lambda b: device.write_frame(b, 5.0), done, errors))
        to_device.start()
        _pump(f"{self.station} device side", from_device, conn.sendall, done, errors)
        with contextlib.suppress(OSError):
            conn.shutdown(socket.SHUT_RDWR)
        to_device.join(timeout=10)


class SerialBridge(LeasedEndpoint):
    """A serial instrument of the station (stylus robot, power-button relay): bytes both ways, unchanged,
    between the client and the bench's serial port (a tty, or an emulated unit's pty)."""

    def __init__(self, station: str, what: str, url: str, baudrate: int, check: Callable[[str, str], str | None],
                 host: str = "127.0.0.1", port: int = 0, **kw: Any):
        super().__init__(station, check, host, port, **kw)
        self.what, self.url, self.baudrate = what, url, baudrate

    def open(self) -> serial.SerialBase:
        return serial.serial_for_url(self.url, baudrate=self.baudrate, timeout=0.1)

    def session(self, conn: socket.socket, port: serial.SerialBase) -> None:
        done = threading.Event()
        errors = (OSError, serial.SerialException)
        to_port = threading.Thread(target=_pump, daemon=True, args=(
            f"{self.station} {self.what} client side", lambda: conn.recv(4096) or None, port.write, done, errors))
        to_port.start()
        _pump(f"{self.station} {self.what} side", lambda: port.read(port.in_waiting or 1), conn.sendall, done, errors)
        with contextlib.suppress(OSError):
            conn.shutdown(socket.SHUT_RDWR)
        to_port.join(timeout=10)


class NfcService(LeasedEndpoint):
    """The station's NFC reader: nfcpy runs here, next to the reader (a USB reader, or nfcpy's udp driver
    to an emulated unit), and the client's `RemoteNfcReader` calls it. A session holds at most one
    activated card, closed when the client leaves."""

    what = "NFC reader"

    def __init__(self, station: str, path: str, check: Callable[[str, str], str | None],
                 host: str = "127.0.0.1", port: int = 0, **kw: Any):
        super().__init__(station, check, host, port, **kw)
        self.path = path

    def open(self):

        return NfcReader(self.path)

    def close(self, reader) -> None:
        pass  # NfcReader opens its frontend per operation

    def session(self, conn: socket.socket, reader) -> None:
        try:
            while (body := recv_frame(conn, 1 << 16)) is not None:
                try:
                    reply = {"ok": self._do(reader, json.loads(body))}
                except NfcError as e:
                    kind = type(e).__name__
                    reply = {"error": kind if kind in ("NfcFieldLost", "NoCardFound") else "NfcError", "message": str(e)}
                except (ValueError, KeyError, TypeError, AttributeError) as e:
                    reply = {"error": "NfcError", "message": f"bad request to the bench's NFC service: {e}"}
                conn.sendall(protocol.stream_frame(json.dumps(reply).encode()))
        except protocol.ProtocolError as e:
            log.info("%s NFC: client sent garbage: %s", self.station, e)
        finally:
            self._drop_card()

    _card = None  # the card activated in the current session (one client at a time)

    def _drop_card(self) -> None:
        card, self._card = self._card, None
        if card is not None:
            card.close()

    def _do(self, reader, req: dict) -> dict:
        op = req["op"]
        if op == "connect":
            self._drop_card()
            self._card = reader.connect(float(req["timeout"]))
            return {"identifier": self._card.identifier.hex()}
        if op == "apdu":
            if self._card is None:
                raise NfcError("no card is activated; connect first")
            data, sw = self._card.apdu(bytes.fromhex(req["command"]), req["timeout"])
            return {"data": data.hex(), "sw": sw}
        if op == "present_tag":
            r = reader.present_tag(bytes.fromhex(req["message"]), float(req["timeout"]),
                                   bytes.fromhex(req["uid"]) if req["uid"] else None)
            return {"read": r.read, "message": r.message.hex(), "apdus": r.apdus}
        raise ValueError(f"unknown operation {op!r}")


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


class LeaseCheck:
    """Asks the labgrid coordinator whether a token holds a place; returns None or why not."""

    def __init__(self, address: str, timeout: float = 5.0) -> None:
        self.address, self.timeout = address, timeout
        self._lock = threading.Lock()  # one coordinator session per process at a time

    def __call__(self, place: str, token: str) -> str | None:
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


# ------------------------------------------------------------------------------ `hil bridge BENCH`


def bridge(
    bench: Annotated[str, typer.Argument(help="this bench host's name in the lab file")],
    lab: Annotated[Optional[str], typer.Option("--lab", help="lab file (default: lab_config.yaml of the repo)")] = None,
    coordinator: Annotated[Optional[str], typer.Option(help="labgrid://HOST:PORT (default: the lab file's)")] = None,
    bind: Annotated[Optional[str], typer.Option(help="address to listen on (default: the bench's host)")] = None,
    exporter_config: Annotated[Optional[Path], typer.Option(
        "--exporter-config", help="write this bench's labgrid exporter YAML with the ports bound")] = None,
) -> None:
    """Serve the debug link, camera, NFC reader, robot and relay of every Prime on this bench, to lease
    holders only."""
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
                live[name] = serve_station(stack, cfg, name, check, host)
                typer.echo(json.dumps({"station": name, **live[name]}), nl=True)
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


def serve_station(stack: contextlib.ExitStack, cfg, name: str, check: Callable[[str, str], str | None],
                  host: str) -> dict[str, Any]:
    """Start every endpoint of one station (stopped by `stack`); returns what the exporter publishes:
    the endpoints' ports (`port` is the debug link's), the camera relay's URL, the unit's serial, an
    emulated unit's SAM-BA pty and the robot's calibration points."""
    local, opener = _local_station(cfg, name, stack)
    base = cfg.stations[name].bridge_port

    def at(kind: str) -> int:
        return base + PORT_OFFSETS[kind] if base else 0

    def started(endpoint):
        stack.callback(endpoint.stop)
        return endpoint.start()

    live: dict[str, Any] = {"port": started(StationBridge(name, opener, check, host, at("debug"))).port,
                            "serial": local.serial}
    if local.camera and local.camera.startswith("http"):
        live["camera"] = started(CameraRelay(name, local.camera, check, host, at("camera"))).url
    if local.nfc:
        live["nfc"] = started(NfcService(name, local.nfc, check, host, at("nfc"))).port
    if local.robot:
        live["robot"] = started(SerialBridge(name, "robot", local.robot, StylusRobot.baudrate, check, host,
                                             at("robot"))).port
    if local.relay:
        live["relay"] = started(SerialBridge(name, "relay", local.relay, PowerButtonRelay.baudrate, check, host,
                                             at("relay"))).port
    if local.robot_calibration is not None:
        live["robot_calibration"] = local.robot_calibration.points
    if local.cd_relay is not None:
        live["cd_relay"] = local.cd_relay  # a channel of the relay board served above
    if cfg.stations[name].emulated is not None:
        live["samba"] = local.samba  # the exporter serves it through ser2net like a wired unit's CDC port
    return live


def _local_station(cfg, name: str, stack: contextlib.ExitStack):
    """The station as this bench sees it, and how the bridge reaches its unit: an emulated one's TCP
    endpoint (the emulator started here), or the unit on its USB port path through the profile's pyusb
    backend, found afresh for every client."""
    st = cfg.stations[name]
    profile = cfg.profile(st.profile)
    if st.emulated is not None:
        e = st.emulated
        emu = stack.enter_context(EmulatorProcess(count=1, seed=e.seed, flavour=e.flavour, version=e.version,
                                                  pin=e.pin))
        local = Station.from_endpoints(name, profile, emu.devices[0])
    else:
        local = from_config(name, st.model_copy(update={"debug": f"usb:{st.usb_port}"}), profile)
    return local, lambda: transport_for(local.debug, profile, local)


if __name__ == "__main__":  # `python -m hil.lab.bridge BENCH`: what the bench's systemd unit runs
    typer.run(bridge)
