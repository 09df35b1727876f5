"""`hil qr`, `hil nfc`, `hil touch`: stimuli from the command line."""

from __future__ import annotations

import base64
import binascii
import time
from pathlib import Path

import typer

from hil.stimuli.presenter import DEFAULT_FPS, UR_FRAGMENT_LEN, Presenter, ur_parts
from hil.stimuli.ur import BYTE_STRING_TYPES, byte_string_ur

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
         fps: float = typer.Option(DEFAULT_FPS, "--fps", help="frames per second of an animated QR"),
         fragment: int = typer.Option(UR_FRAGMENT_LEN, "--fragment", help="UR fragment size in bytes"),
         address: str = typer.Option("http://127.0.0.1:8090", "--address",
                                     help="where to serve: the station's qr_display")) -> None:
    """Serve the QR presenter (page at /, MJPEG at /stream.mjpg) until Ctrl-C."""
    frames = payloads(payload, ur, fragment)
    presenter = Presenter(frames, fps)
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
