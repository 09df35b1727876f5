"""How the lab provisions its test units: the PIN, the BIP39 mnemonic and the settings every unit under test is
set up with.

The suites derive from them what a unit must show and serve (the unlock, the app seeds, a spend's addresses),
and every emulated unit carries them, so the defaults of the harness's options and the emulator's are one.
"""

TEST_PIN = "123456"
# The one Trezor's and KeepKey's device tests load (`setup_mnemonic_allallall`): a valid 12-word BIP39 seed.
TEST_MNEMONIC = " ".join(["all"] * 12)
# Settings' "show security words" is on: KeyOS defaults it off (``os/settings/src/sys/mod.rs`` @60ed4d2,
# ``LoadDefault for ShowSecurityWords`` -> false), and the lock screen shows no words without it, so the check that
# the words follow the PIN needs it. assumed: the lab turns it on by hand in Settings (the row's path is not in the
# indexed KeyOS source); a unit left at the default makes that check broken, never passed.
SHOW_SECURITY_WORDS = True
