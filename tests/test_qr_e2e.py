"""End to end, through the harness's own interfaces only, against an emulated Prime in its own process:
the harness builds a PSBT for the unit's test seed and shows it as an animated UR on the QR presenter
(the station's `qr_display`); the Prime's camera scans it and the Bitcoin app shows amount, address and
fee; the test reads them with the station camera + OCR, confirms by touch (debug link), reads the signed
PSBT back off the display as an animated UR through the camera, and verifies the signature with embit.
"""

from hil.lab.station import device_station
from hil.link.resolve import open_client
from hil.machine import scaled
from hil.provisioning import TEST_MNEMONIC, TEST_PIN
from hil.stimuli.presenter import Presenter, ur_parts
from hil.stimuli.psbt import build_spend, verify_signed
from hil.stimuli.ur import byte_string_ur, ur_byte_string
from hil.stimuli.touch import DebugTouch
from hil.vision import qr as vision_qr
from hil.vision.camera import Camera
from hil.vision.display import Display
from hil.vision.match import TextKind
from hil.vision.pin_screen import wait_pin_screen

SEED = 11
PIN = TEST_PIN
SIGN = (360, 750)  # the Bitcoin app's Sign button (hil/emulator/apps/bitcoin.py)


def btc(sats: int) -> str:
    return f"{sats // 100_000_000}.{sats % 100_000_000:08d} BTC"


def test_sign_psbt_through_both_cameras():
    with device_station("emulator", flavour="development", seed=SEED) as station:
        spend = build_spend(TEST_MNEMONIC, 1_234_567, fee=2_345)  # the lab's test mnemonic, on every emulated unit
        presenter = Presenter()
        presenter.start(station.qr_display)  # the monitor facing the Prime's camera
        with presenter, open_client(station.debug, station.profile) as prime, Camera(station.camera) as camera:
            display = Display(camera)
            # swiped up from the hint, the keys where the camera sees them
            pad = wait_pin_screen(lambda: display.rectified()[0], DebugTouch(prime, prime.home_button))
            for digit in PIN:
                prime.tap(*pad.keys[digit])
            prime.tap(*pad.enter)
            display.expect_text("Apps", region="title", timeout=scaled(10))

            presenter.show(ur_parts(byte_string_ur("psbt", spend.serialize()), 100), fps=8)
            display.expect_text("Sign Transaction", region="title", timeout=scaled(30))
            display.expect_text(btc(spend.amount), TextKind.AMOUNT, region="body")
            display.expect_text(spend.destination, TextKind.ADDRESS, region="body")
            display.expect_text(btc(spend.fee), TextKind.AMOUNT, region="body")
            presenter.show([])

            prime.tap(*SIGN)
            display.expect_text("Signed Transaction", region="title", timeout=scaled(10))
            signed = vision_qr.collect_ur(lambda: display.rectified()[0], timeout=scaled(60))
        assert signed.type == "psbt"
        assert verify_signed(ur_byte_string(signed), spend.psbt) == 1
