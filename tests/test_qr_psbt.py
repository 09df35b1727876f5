"""PSBTs built for a test seed: what the Bitcoin app must show, and the signature check."""

import pytest
from embit import bip32, bip39
from embit.psbt import PSBT

from hil.stimuli.psbt import SignatureError, build_spend, verify_signed

MNEMONIC = bip39.mnemonic_from_bytes(bytes(range(16)))


def sign(raw: bytes, mnemonic: str = MNEMONIC) -> bytes:
    psbt = PSBT.parse(raw)
    psbt.sign_with(bip32.HDKey.from_seed(bip39.mnemonic_to_seed(mnemonic)))
    return psbt.serialize()


def test_spend_amounts_and_fee():
    spend = build_spend(MNEMONIC, 120_000, fee=1_410, inputs=3)
    psbt = PSBT.parse(spend.serialize())
    inputs = sum(i.witness_utxo.value for i in psbt.inputs)
    outputs = sum(o.value for o in psbt.tx.vout)
    assert inputs - outputs == spend.fee == 1_410
    assert psbt.tx.vout[0].value == spend.amount == 120_000
    assert spend.destination.startswith("bc1q") and len(psbt.inputs) == 3


def test_valid_signatures_verify():
    spend = build_spend(MNEMONIC, 50_000, inputs=2)
    assert verify_signed(sign(spend.serialize()), spend.psbt) == 2


def test_unsigned_wrong_key_and_altered_tx_are_refused():
    spend = build_spend(MNEMONIC, 50_000)
    with pytest.raises(SignatureError, match="no signature"):
        verify_signed(spend.serialize(), spend.psbt)
    other = bip39.mnemonic_from_bytes(bytes(16))
    with pytest.raises(SignatureError, match="no signature"):
        verify_signed(sign(spend.serialize(), other), spend.psbt)
    forged = PSBT.parse(sign(spend.serialize()))
    pub = next(iter(forged.inputs[0].partial_sigs))
    sig = bytearray(forged.inputs[0].partial_sigs[pub])
    sig[10] ^= 1
    forged.inputs[0].partial_sigs[pub] = bytes(sig)
    with pytest.raises(SignatureError):
        verify_signed(forged.serialize(), spend.psbt)
    with pytest.raises(SignatureError, match="different transaction"):
        verify_signed(sign(build_spend(MNEMONIC, 60_000).serialize()), spend.psbt)
    with pytest.raises(SignatureError, match="does not parse"):
        verify_signed(b"psbt\xff garbage", spend.psbt)
