"""`hil qr`, `hil nfc`, `hil touch`: stimuli from the command line."""

from __future__ import annotations

import base64
import binascii
import time
from pathlib import Path

import typer

from hil.stimuli.presenter import DEFAULT_FPS, UR_FRAGMENT_LEN, Presenter, ur_parts
from hil.stimuli.ur import BYTE_STRING_TYPES, byte_string_ur
from hil.terminal import printable

qr_app = typer.Typer(no_args_is_help=True, help="QR codes for the Prime's camera (segno, BC-UR animated QR).")
nfc_app = typer.Typer(no_args_is_help=True, help="NFC: tags presented to the Prime, FIDO over ISO-DEP.")
touch_app = typer.Typer(no_args_is_help=True, help="Touch and buttons: debug link, stylus robot, relay.")

PAYLOAD_HELP = "text to encode, or a file (binary, base64 PSBT, or UR part strings one per line)"
UR_HELP = f"wrap the payload's bytes as this UR type ({', '.join(BYTE_STRING_TYPES)}) and animate it"


def payloads(payload: str, ur_type: str | None, fragment: int) -> list[str | bytes]:
    """What the frames carry: UR parts for --ur, the lines of a file of UR parts, or the payload itself."""
    path = Path(payload)
    data: str | bytes = path.read_bytes() if path.is_file() else payload
    if ur_type is not None:
        if ur_type not in BYTE_STRING_TYPES:
            raise typer.BadParameter(f"--ur {ur_type!r}: use one of {', '.join(BYTE_STRING_TYPES)}")
        return ur_parts(byte_string_ur(ur_type, _binary(data)), fragment)
    if isinstance(data, bytes):
        try:
            text = data.decode("ascii").strip()
        except UnicodeDecodeError:
            return [data]
        lines = text.split()
        if lines and all(line.lower().startswith("ur:") for line in lines):
            return lines
        data = text
    return [data]


def _binary(data: str | bytes) -> bytes:
    """File bytes as they are, or a base64 PSBT ("cHNidP…") decoded, which is how wallets export them."""
    raw = data.encode() if isinstance(data, str) else data
    if raw.strip().startswith(b"cHNidP"):
        try:
            return base64.b64decode(raw.strip(), validate=True)
        except binascii.Error as e:
            raise typer.BadParameter(f"base64 PSBT does not decode ({e})") from None
    return raw


@qr_app.command("show")
def show(payload: str = typer.Argument(..., help=PAYLOAD_HELP),
         ur: str | None = typer.Option(None, "--ur", help=UR_HELP),
         fps: float = typer.Option(DEFAULT_FPS, "--fps", help="frames per second of an animated QR (at most 15)"),
         fragment: int = typer.Option(UR_FRAGMENT_LEN, "--fragment", help="UR fragment size in bytes"),
         address: str = typer.Option("http://127.0.0.1:8090", "--address",
                                     help="where to serve: the station's qr_display")) -> None:
    """Serve the QR presenter (page at /, MJPEG at /stream.mjpg) until Ctrl-C."""
    frames = payloads(payload, ur, fragment)
    try:
        presenter = Presenter(frames, fps)
    except ValueError as e:
        raise typer.BadParameter(str(e), param_hint="--fps") from None
    url = presenter.start(address)
    typer.echo(f"{len(frames)} frame(s) at {presenter.fps:g} fps: open {url}/ on the monitor facing the "
               f"Prime's camera (stream: {url}/stream.mjpg); Ctrl-C to stop")
    try:
        while True:
            time.sleep(1)
    except KeyboardInterrupt:
        pass
    finally:
        presenter.stop()


@qr_app.command("encode")
def encode(payload: str = typer.Argument(..., help=PAYLOAD_HELP),
           out: Path = typer.Option(..., "-o", "--out", help="directory for frame-NNNN.png and parts.txt"),
           ur: str | None = typer.Option(None, "--ur", help=UR_HELP),
           fragment: int = typer.Option(UR_FRAGMENT_LEN, "--fragment", help="UR fragment size in bytes"),
           size: int = typer.Option(480, "--size", help="frame size in pixels")) -> None:
    """Write the frames as PNG files and the UR part strings, one per line, to parts.txt."""
    from hil.stimuli import qr

    frames = payloads(payload, ur, fragment)
    images = [qr.render(f, size) for f in frames]  # render all first: nothing half-written on error
    out.mkdir(parents=True, exist_ok=True)
    for i, image in enumerate(images, 1):
        image.save(out / f"frame-{i:04d}.png")
    parts = [f for f in frames if isinstance(f, str) and f.lower().startswith("ur:")]
    if parts:
        (out / "parts.txt").write_text("\n".join(parts) + "\n")
    typer.echo(f"wrote {len(images)} frame(s){' and parts.txt' if parts else ''} to {out}")


# ---------------------------------------------------------------- hil nfc, hil touch: errors as one line

def _one_line_errors(command):
    """A lab fault or a bad argument is one clear line on stderr and exit status 1, not a traceback."""
    import functools

    from hil.errors import HilError

    @functools.wraps(command)
    def run(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except HilError as e:
            typer.echo(f"error: {e}", err=True)
            raise typer.Exit(1) from None

    return run



READER_HELP = "the station's NFC reader as an nfcpy path: usb:04e6:5591 (a PN533 reader) in the lab, udp:127.0.0.1:PORT for the emulator"


@nfc_app.command("tag")
@_one_line_errors
def nfc_tag(reader: str = typer.Option(..., "--reader", help=READER_HELP),
            text: str | None = typer.Option(None, "--text", help="a Text record (en)"),
            uri: str | None = typer.Option(None, "--uri", help="a URI record"),
            raw: list[str] = typer.Option([], "--raw", help="a raw record TYPE=HEXPAYLOAD, e.g. urn:nfc:ext:example.com:t=0102"),
            timeout: float = typer.Option(20.0, "--timeout", help="seconds to wait for the Prime to read the tag")) -> None:
    """Present an NDEF tag (Type 4) to the Prime's reader until it has read it."""
    from hil.stimuli.nfc import ndef_message, reader as nfc_reader

    records = []
    for item in raw:
        rtype, sep, payload = item.rpartition("=")
        try:
            records.append((rtype, bytes.fromhex(payload)))
        except ValueError:
            sep = ""
        if not sep:
            raise typer.BadParameter(f"--raw {item!r}: write TYPE=HEXPAYLOAD")
    result = nfc_reader(reader).present_tag(ndef_message(text, uri, records), timeout)
    typer.echo(f"tag read by the Prime ({len(result.apdus)} APDUs); the tag now holds {len(result.message)} bytes:")
    for record in result.records:
        typer.echo(printable(f"  {record}"))


@nfc_app.command("fido-info")
@_one_line_errors
def nfc_fido_info(reader: str = typer.Option(..., "--reader", help=READER_HELP),
                  timeout: float = typer.Option(10.0, "--timeout", help="seconds to wait for the Prime's card")) -> None:
    """CTAP2 authenticatorGetInfo over NFC (ISO-DEP, FIDO AID)."""
    from fido2.ctap2 import Ctap2

    from hil.stimuli.ctap_nfc import CtapNfcDevice
    from hil.stimuli.nfc import reader as nfc_reader

    with CtapNfcDevice(nfc_reader(reader).connect(timeout)) as dev:
        info = Ctap2(dev).info
    typer.echo(printable(f"versions: {', '.join(info.versions)}\naaguid: {info.aaguid}\noptions: {info.options}\n"
                         f"transports: {', '.join(info.transports)}"))


# ---------------------------------------------------------------- hil touch

def _calibration_file(calibration: Path | None, station: str | None, cal_dir: Path | None) -> Path | None:
    from hil.stimuli.robot import CALIBRATION_DIR, calibration_path

    if calibration is not None or station is None:
        return calibration
    return calibration_path(station, cal_dir or CALIBRATION_DIR)


def _touch(via: str, device: str | None, robot: str | None, relay: str | None, calibration: Path | None,
           profile_name: str):
    """A Touch backend from what is wired; the caller closes what it returns second."""
    from hil.link.resolve import open_client
    from hil.profile import profile_named
    from hil.stimuli import touch

    profile = profile_named(profile_name)
    home = profile.touch.home_button.centre
    if via == "debug":
        if not device:
            raise typer.BadParameter("--via debug needs --device (e.g. tcp:127.0.0.1:7664 or usb:SERIAL)")
        client = open_client(device, profile).open()
        return touch.DebugTouch(client, home), [client]
    if via == "robot":
        from hil.stimuli.relay import PowerButtonRelay
        from hil.stimuli.robot import Calibration, StylusRobot

        if not robot or not calibration:
            raise typer.BadParameter("--via robot needs --robot PORT and --station NAME or --calibration FILE "
                                     "(see `hil touch calibrate`)")
        stylus = StylusRobot.open(robot, Calibration.load(calibration))
        button = PowerButtonRelay.open(relay) if relay else None
        return touch.RobotTouch(stylus, button, home), [p for p in (stylus, button) if p]
    raise typer.BadParameter(f"--via {via!r}: use robot or debug")


VIA = typer.Option("debug", "--via", help="robot (stylus + relay) or debug (usb-debug link)")
DEVICE = typer.Option(None, "--device", help="usb-debug link for --via debug")
ROBOT = typer.Option(None, "--robot", help="GRBL stylus robot serial port for --via robot")
RELAY = typer.Option(None, "--relay", help="power-button relay board serial port")
CAL = typer.Option(None, "--calibration", help="robot calibration JSON (default: the --station's stored one)")
STATION = typer.Option(None, "--station", help="station name: picks its stored robot calibration")
CAL_DIR = typer.Option(None, "--calibration-dir", help="where stored calibrations live (default ~/.local/share/prime-hil/robot)")
PROFILE = typer.Option("prime-rev-b", "--profile", help="device profile (home button)")


@touch_app.command("tap")
@_one_line_errors
def touch_tap(x: int, y: int, via: str = VIA, device: str | None = DEVICE, robot: str | None = ROBOT,
              relay: str | None = RELAY, calibration: Path | None = CAL, station: str | None = STATION,
              cal_dir: Path | None = CAL_DIR, profile: str = PROFILE,
              hold_ms: int = typer.Option(50, "--hold-ms", help="how long to press (a long press from 1000)")) -> None:
    """Tap (or long-press) the display at X Y (pixels from the top-left of the 480x800 panel)."""
    backend, opened = _touch(via, device, robot, relay, _calibration_file(calibration, station, cal_dir), profile)
    try:
        backend.long_press(x, y, hold_ms)
    finally:
        for thing in opened:
            thing.close()
    typer.echo(f"pressed ({x}, {y}) for {hold_ms} ms via {via}")


@touch_app.command("power")
@_one_line_errors
def touch_power(long: bool = typer.Option(False, "--long", help="hold 3 s (control center) instead of 200 ms"),
                via: str = VIA, device: str | None = DEVICE, robot: str | None = ROBOT, relay: str | None = RELAY,
                calibration: Path | None = CAL, station: str | None = STATION, cal_dir: Path | None = CAL_DIR,
                profile: str = PROFILE) -> None:
    """Press the power button (short: lock + screen off; long: control center)."""
    backend, opened = _touch(via, device, robot, relay, _calibration_file(calibration, station, cal_dir), profile)
    try:
        backend.power(long)
    finally:
        for thing in opened:
            thing.close()
    typer.echo(f"{'long' if long else 'short'} power press via {via}")


@touch_app.command("calibrate")
@_one_line_errors
def touch_calibrate(point: list[str] = typer.Option(..., "--point", help="PX,PY=MX,MY: a display pixel and the robot "
                                                    "millimetres where the stylus touched it; at least 3"),
                    station: str = typer.Option(..., "--station", help="the station (name in lab_config.yaml)"),
                    cal_dir: Path | None = CAL_DIR) -> None:
    """Fit and store a station's display-to-robot calibration from reference points."""
    from hil.stimuli.robot import Calibration

    pairs = []
    for p in point:
        try:
            px, mm = p.split("=")
            pairs.append((tuple(float(v) for v in px.split(",")), tuple(float(v) for v in mm.split(","))))
            if len(pairs[-1][0]) != 2 or len(pairs[-1][1]) != 2:
                raise ValueError
        except ValueError:
            raise typer.BadParameter(f"--point {p!r}: write PX,PY=MX,MY, e.g. 0,0=30.0,20.0") from None
    out = _calibration_file(None, station, cal_dir)
    Calibration.fit(pairs).save(out)
    typer.echo(f"calibration for {station} written to {out}")
