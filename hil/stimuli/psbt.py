"""PSBTs for the Prime's Bitcoin app, built with embit for the unit's test seed, and the check that a
PSBT came back validly signed.

A lab unit carries a known test mnemonic (the harness's --mnemonic; emulated units carry its default, see
`hil.emulator.prime`). The spend is a native-segwit (BIP84) account paying one outside address
and returning change to the account, the shape a wallet coordinator sends for signing.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from embit import bip32, bip39, script
from embit.ec import Signature
from embit.networks import NETWORKS
from embit.psbt import PSBT, DerivationPath
from embit.transaction import Transaction, TransactionInput, TransactionOutput

from hil.errors import HilError


class SignatureError(HilError):
    """A PSBT that should carry valid signatures does not: the device did wrong (a failed check)."""


@dataclass(frozen=True)
class Spend:
    psbt: PSBT
    amount: int  # satoshis to the destination
    destination: str
    fee: int

    def serialize(self) -> bytes:
        return self.psbt.serialize()


def account(mnemonic: str, network: str = "main") -> tuple[bip32.HDKey, str]:
    """The BIP84 account key for `mnemonic` and its derivation path."""
    root = bip32.HDKey.from_seed(bip39.mnemonic_to_seed(mnemonic), version=NETWORKS[network]["xprv"])
    path = f"m/84h/{0 if network == 'main' else 1}h/0h"
    return root.derive(path), path


def build_spend(mnemonic: str, amount: int, fee: int = 1_410, destination: str | None = None,
                network: str = "main", change: int = 25_000, inputs: int = 1) -> Spend:
    """A PSBT spending `inputs` coins of the account (receive addresses 0/0, 0/1, …): `amount` to
    `destination` (default: a fixed outside address), `change` back to change address 1/0, `fee` to miners."""
    if amount <= 0 or fee < 0 or change <= 0 or inputs < 1:
        raise ValueError("amount, change and inputs must be positive and fee not negative")
    net = NETWORKS[network]
    root = bip32.HDKey.from_seed(bip39.mnemonic_to_seed(mnemonic), version=net["xprv"])
    fingerprint = root.child(0).fingerprint
    _, path = account(mnemonic, network)
    change_key = root.derive(f"{path}/1/0")
    if destination is None:
        outside = bip32.HDKey.from_seed(hashlib.sha256(b"prime-hil outside wallet").digest(), version=net["xprv"])
        destination = script.p2wpkh(outside.derive("m/84h/0h/0h/0/0").key).address(net)
    total, coins = amount + change + fee, []
    for n in range(inputs):
        key = root.derive(f"{path}/0/{n}")
        value = total // inputs + (total % inputs if n == 0 else 0)
        funding = Transaction(vin=[TransactionInput(hashlib.sha256(f"{mnemonic}/{n}".encode()).digest(), 0)],
                              vout=[TransactionOutput(value, script.p2wpkh(key.key))])
        coins.append((funding, key, f"{path}/0/{n}"))
    tx = Transaction(vin=[TransactionInput(funding.txid(), 0) for funding, _, _ in coins],
                     vout=[TransactionOutput(amount, script.address_to_scriptpubkey(destination)),
                           TransactionOutput(change, script.p2wpkh(change_key.key))])
    psbt = PSBT(tx)
    for inp, (funding, key, key_path) in zip(psbt.inputs, coins):
        inp.witness_utxo = funding.vout[0]
        inp.non_witness_utxo = funding
        inp.bip32_derivations[key.key.get_public_key()] = DerivationPath(fingerprint, bip32.parse_path(key_path))
    psbt.outputs[1].bip32_derivations[change_key.key.get_public_key()] = DerivationPath(
        fingerprint, bip32.parse_path(f"{path}/1/0"))
    return Spend(psbt, amount, destination, fee)


def verify_signed(signed: bytes, unsigned: PSBT) -> int:
    """Check that `signed` is `unsigned` with a valid signature by the expected key on every input;
    returns the number of signatures checked, raises `SignatureError` otherwise."""
    try:
        psbt = PSBT.parse(signed)
    except Exception as e:  # embit raises several types on garbage
        raise SignatureError(f"the signed PSBT does not parse ({e})") from None
    if psbt.tx.txid() != unsigned.tx.txid():
        raise SignatureError("the signed PSBT spends a different transaction than the one sent for signing")
    checked = 0
    for i, (inp, orig) in enumerate(zip(psbt.inputs, unsigned.inputs)):
        for pub in orig.bip32_derivations:
            sig = inp.partial_sigs.get(pub)
            if sig is None:
                raise SignatureError(f"input {i} has no signature by {pub.sec().hex()}")
            if sig[-1] != 1:
                raise SignatureError(f"input {i} is signed with sighash {sig[-1]:#x}, not SIGHASH_ALL")
            digest = psbt.tx.sighash_segwit(i, script.p2pkh(pub), orig.witness_utxo.value)
            if not pub.verify(Signature.parse(sig[:-1]), digest):
                raise SignatureError(f"input {i}: the signature by {pub.sec().hex()} does not verify")
            checked += 1
    if not checked:
        raise SignatureError("the PSBT names no key of ours, so nothing was checked")
    return checked
