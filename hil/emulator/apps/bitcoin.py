"""Bitcoin Wallet (``gui-app-bitcoin``): signs a PSBT that arrives through the camera.

The camera routes UR ``psbt`` (and ``bytes`` holding a PSBT) here by the app's qrMatchRules. The app
shows what the transaction does in large text (amount, destination address, fee), waits for the
user, signs with the device seed (``GetSeed``, which the manifest grants), and shows the signed PSBT as
an animated UR QR that cycles at a fixed rate. Change is recognised by the derivation the PSBT gives
for an output, checked against the seed, so it is never shown as a destination.

Taps (panel pixels): review  Reject (120, 750)  Sign (360, 750);  signed / message  Done (240, 750).
"""

from __future__ import annotations

import io
import threading
import time
from typing import TYPE_CHECKING

import segno
from embit import bip32, bip39, script
from embit.networks import NETWORKS
from embit.psbt import PSBT
from PIL import Image

from hil.emulator import render
from hil.emulator.ui import Screen
from hil.stimuli.ur import UR, UREncoder, URError, byte_string_ur, ur_byte_string

if TYPE_CHECKING:
    from hil.emulator.keyos import App
    from hil.emulator.prime import Prime
    from hil.emulator.qrcam import Scan

# qrMatchRules of KeyOS apps/gui-app-bitcoin/manifest.toml (commit 344eae3), verbatim.
QR_MATCH_RULES_TOML = r'''
[[qrMatchRules]]
id = "psbt"
idLocalizations = { en = "PSBT" }
subRules = { ur = { UR = { ur_type = "psbt" } } }

[[qrMatchRules]]
id = "psbt-or-multisig-config"
idLocalizations = { en = "PSBT or Multisig Configuration" }
subRules = { bytes = { UR = { ur_type = "bytes" } } }

[[qrMatchRules]]
id = "multisig-config"
idLocalizations = { en = "Multisig Configuration" }
[qrMatchRules.subRules]
crypto-output = { UR = { ur_type = "crypto-output" } }
config-qr = { QR = { regex_pattern = "(?im)^\\s*policy\\s*:\\s*\\d+\\s+of\\s+\\d+\\s*(?:#.*)?$" } }
descriptor-qr = { QR = { regex_pattern = "sortedmulti\\s*\\(" } }
'''
APP_ID = bytes.fromhex("426974636f696e2057616c6c65740000")

REJECT_BOX = (10, 700, 240, 800)
SIGN_BOX = (240, 700, 470, 800)
DONE_BOX = (10, 700, 470, 800)
QR_BOX = (30, 130, 450, 550)
ADDRESS_ROW_CHARS, ADDRESS_ROW_STEP = 15, 48  # the review's address: characters per row, row pitch (px)
DISPLAY_FPS = 4.0  # parts per second of the signed-PSBT animation
DISPLAY_FRAGMENT_LEN = 100  # small parts: low-version QR codes that a camera reads off a phone-sized panel
NETWORK = NETWORKS["main"]


def btc(sats: int) -> str:
    return f"{sats // 100_000_000}.{sats % 100_000_000:08d} BTC"


def address_rows(address: str) -> list[str]:
    """The rows the review wraps an address into. KeyOS's BtcAddress widget wraps an address by a fixed
    number of items per row (apps/gui-app-bitcoin/ui/widgets/transaction-card.slint, ``items-per-row``);
    assumed: 15 characters a row at this font size (the widget's source, ui/ui/widgets/btc-address.slint,
    is not indexed)."""
    return [address[i:i + ADDRESS_ROW_CHARS] for i in range(0, len(address), ADDRESS_ROW_CHARS)]


def draw_review(canvas: render.Canvas, review: dict) -> None:
    """The transaction review: amount, destination, fee (`review` as `BitcoinScreen._review` makes it)."""
    canvas.title("Sign Transaction")
    r = review
    canvas.left(30, 150, "Amount", size=30)
    canvas.left(30, 200, btc(r["amount"]), size=40, bold=True)
    canvas.left(30, 270, "To" if r["outputs"] == 1 else f"To (1 of {r['outputs']})", size=30)
    rows = address_rows(r["to"])
    for i, row in enumerate(rows):
        canvas.left(30, 320 + ADDRESS_ROW_STEP * i, row, size=36, bold=True)
    # the card is a vertical layout (apps/gui-app-bitcoin/ui/widgets/transaction-card.slint): the fee
    # section follows the address however many rows it wraps to (a taproot address takes five)
    fee_y = 320 + ADDRESS_ROW_STEP * (len(rows) - 1) + 84
    canvas.left(30, fee_y, "Fee", size=30)
    canvas.left(30, fee_y + 50, btc(r["fee"]), size=40, bold=True)
    canvas.button(REJECT_BOX, "Reject", size=34)
    canvas.button(SIGN_BOX, "Sign", size=34, filled=True)


def _inside(box, x: int, y: int) -> bool:
    x0, y0, x1, y1 = box
    return x0 <= x < x1 and y0 <= y < y1


class BitcoinScreen(Screen):
    title = "Bitcoin Wallet"

    def __init__(self, prime: Prime, app: App):
        self.prime = prime
        self.state = "idle"  # idle | review | signed | message
        self.message = ""
        self.psbt: PSBT | None = None
        self.review: dict = {}
        self.encoder: UREncoder | None = None
        self.part = ""
        self._qr: tuple[str, Image.Image] | None = None
        self._animation: threading.Thread | None = None

    # ------------------------------------------------------------ input from the camera
    def receive_scan(self, rule_id: str, scan: Scan) -> None:
        if scan.ur_type in ("psbt", "bytes"):
            try:
                data = ur_byte_string(UR(scan.ur_type, scan.data))
            except URError as e:
                return self._show_message("Invalid QR Code", str(e))
            if data.startswith(b"psbt\xff"):
                return self._review(data)
        self._show_message("Multisig Configuration", "Multisig import is not available in this emulated app.")

    def _root(self) -> bip32.HDKey:
        return bip32.HDKey.from_seed(bip39.mnemonic_to_seed(self.prime.se.mnemonic()))

    def _review(self, raw: bytes) -> None:
        try:
            psbt = PSBT.parse(raw)
        except Exception as e:  # embit raises several types on malformed PSBTs
            return self._show_message("Invalid PSBT", f"The PSBT could not be read ({e.__class__.__name__}).")
        fingerprint = self._root().child(0).fingerprint
        values = []
        for inp in psbt.inputs:
            utxo = inp.witness_utxo or (inp.non_witness_utxo.vout[inp.vout] if inp.non_witness_utxo else None)
            if utxo is None:
                return self._show_message("Invalid PSBT", "An input does not say how much it spends.")
            values.append(utxo.value)
        if not any(d.fingerprint == fingerprint for inp in psbt.inputs for d in inp.bip32_derivations.values()):
            return self._show_message("Wrong Wallet", "This transaction does not spend from this wallet.")
        root, sends, change = self._root(), [], 0
        for out, vout in zip(psbt.outputs, psbt.tx.vout):
            if self._is_change(root, fingerprint, out, vout):
                change += vout.value
            else:
                sends.append(vout)
        outputs = sum(v.value for v in psbt.tx.vout)
        if not sends or outputs > sum(values):
            return self._show_message("Invalid PSBT", "The transaction sends nothing or more than it spends.")
        self.psbt = psbt
        self.review = {"amount": sum(v.value for v in sends), "fee": sum(values) - outputs,
                       "to": sends[0].script_pubkey.address(NETWORK), "outputs": len(sends)}
        self.state = "review"
        self.prime.log(f"INFO:bitcoin: reviewing a PSBT: {len(sends)} output(s), fee {self.review['fee']} sat")

    @staticmethod
    def _is_change(root: bip32.HDKey, fingerprint: bytes, out, vout) -> bool:
        for pub, der in out.bip32_derivations.items():
            if der.fingerprint == fingerprint and root.derive(der.derivation).key.get_public_key() == pub:
                return vout.script_pubkey == script.p2wpkh(pub)
        return False

    # ------------------------------------------------------------ touch
    def tap(self, x: int, y: int) -> None:
        if self.state == "review":
            if _inside(SIGN_BOX, x, y):
                self._sign()
            elif _inside(REJECT_BOX, x, y):
                self.prime.log("INFO:bitcoin: transaction rejected by the user")
                self._reset()
        elif self.state in ("signed", "message") and _inside(DONE_BOX, x, y):
            self._reset()

    def _sign(self) -> None:
        signed = self.psbt.sign_with(self._root())
        if not signed:
            return self._show_message("Not Signed", "No input of this transaction belongs to this wallet.")
        self.prime.log(f"INFO:bitcoin: signed {signed} input(s)")
        self.encoder = UREncoder(byte_string_ur("psbt", self.psbt.serialize()), DISPLAY_FRAGMENT_LEN)
        self.part = self.encoder.next_part()
        self.state = "signed"
        self._animation = threading.Thread(target=self._animate, name="emu-bitcoin-qr", daemon=True)
        self._animation.start()

    def _animate(self) -> None:
        """Advance the animated QR while it is on screen; ends when the app leaves that state or stops."""
        encoder = self.encoder
        while True:
            time.sleep(1 / DISPLAY_FPS)
            with self.prime.lock:
                if (self.encoder is not encoder or not self.prime.powered
                        or self not in self.prime.app_screens.values()):
                    return
                self.part = encoder.next_part()
                self.prime.invalidate()

    def _show_message(self, title: str, text: str) -> None:
        self.state, self.message = "message", f"{title}\n{text}"
        self.prime.log(f"WARN:bitcoin: {title}: {text}")

    def _reset(self) -> None:
        self.state, self.psbt, self.review, self.encoder, self.part = "idle", None, {}, None, ""

    # ------------------------------------------------------------ drawing
    def draw(self, canvas: render.Canvas) -> None:
        getattr(self, f"_draw_{self.state}")(canvas)

    def _draw_idle(self, canvas: render.Canvas) -> None:
        canvas.title(self.title)
        canvas.wrapped((20, 250, render.WIDTH - 20, 450), "Scan a PSBT QR code to sign a transaction.", size=32)

    def _draw_review(self, canvas: render.Canvas) -> None:
        draw_review(canvas, self.review)

    def _draw_signed(self, canvas: render.Canvas) -> None:
        canvas.title("Signed Transaction")
        if self._qr is None or self._qr[0] != self.part:
            x0, y0, x1, y1 = QR_BOX
            qr = segno.make(self.part.upper(), error="m", micro=False)
            scale = (x1 - x0) // qr.symbol_size(border=4)[0]
            buf = io.BytesIO()
            qr.save(buf, kind="png", scale=scale, border=4)
            image = Image.open(buf).convert("RGBA")
            self._qr = (self.part, image)
        image = self._qr[1]
        x0, y0, x1, y1 = QR_BOX
        canvas.paste(image, (x0 + (x1 - x0 - image.width) // 2, y0 + (y1 - y0 - image.height) // 2))
        canvas.text((0, 580, render.WIDTH, 640), "Scan with your wallet", size=30)
        canvas.button(DONE_BOX, "Done", size=34, filled=True)

    def _draw_message(self, canvas: render.Canvas) -> None:
        title, _, text = self.message.partition("\n")
        canvas.title(title)
        canvas.wrapped((20, 200, render.WIDTH - 20, 600), text, size=30)
        canvas.button(DONE_BOX, "Done", size=34, filled=True)
