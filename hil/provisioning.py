"""How the lab provisions its test units: the PIN and the BIP39 mnemonic every unit under test is set up with.

The suites derive from them what a unit must show and serve (the unlock, the app seeds, a spend's addresses),
and every emulated unit carries them, so the defaults of the harness's options and the emulator's are one.
"""

TEST_PIN = "123456"
# The one Trezor's and KeepKey's device tests load (`setup_mnemonic_allallall`): a valid 12-word BIP39 seed.
TEST_MNEMONIC = " ".join(["all"] * 12)
