"""`hil vision`: read a camera image or a screenshot the way the harness does."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from hil.terminal import printable

app = typer.Typer(no_args_is_help=True, add_completion=False, help=__doc__)


def _load(path: Path):
    import cv2

    image = cv2.imread(str(path), cv2.IMREAD_COLOR) if path.is_file() else None
    if image is None:
        typer.echo(f"error: {path}: not a readable image (PNG, JPEG, BMP…); check the path", err=True)
        raise typer.Exit(2)
    return image


@app.command()
def ocr(image: Path = typer.Argument(..., help="a camera frame, or a 480x800 screenshot"),
        as_json: bool = typer.Option(False, "--json", help="lines with boxes and confidences as JSON")) -> None:
    """Locate the panel (jig markers, else its outline), rectify it and read its text; where no panel is
    located, read the whole frame (JSON: "located": false, boxes in frame pixels)."""
    from hil.vision.display import read_frame, read_image
    from hil.vision.locate import ScreenNotFound, locate

    frame = _load(image)
    if frame.shape[:2] == (800, 480):
        screen = read_image(frame)
    else:
        try:
            loc = locate(frame)
            screen = read_image(loc.rectify(frame), location=loc, frame=frame)
        except ScreenNotFound as e:
            screen = read_frame(frame)
            if not screen.lines:
                typer.echo(f"error: {image}: {e}; and no text anywhere in the frame", err=True)
                raise typer.Exit(1) from None
    if as_json:
        typer.echo(json.dumps(screen.to_json(), indent=1))
    else:
        for ln in screen.lines:
            typer.echo(f"{ln.confidence:.2f}  {ln.box}  {printable(ln.text)}")


@app.command()
def qr(image: Path = typer.Argument(..., help="a camera frame or a screenshot")) -> None:
    """Decode the QR codes in an image; bootloader error screens are named."""
    from hil.vision import qr as qrmod
    from hil.vision.locate import ScreenNotFound, locate

    frame = _load(image)
    codes = qrmod.decode(frame)
    if not codes:
        try:
            codes = qrmod.decode(locate(frame).rectify(frame))
        except ScreenNotFound:
            pass
    if not codes:
        typer.echo(f"error: {image}: no QR code found", err=True)
        raise typer.Exit(1)
    for c in codes:
        kind = qrmod.classify_error(c.text)
        typer.echo(printable(c.text) + (f"  [bootloader error screen: {kind}]" if kind else ""))
