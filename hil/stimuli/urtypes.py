"""`crypto-output` (BCR-2020-010): an output descriptor as tagged CBOR, what a wallet shows the Prime's
Bitcoin app to register an account. The byte-string types (`psbt`, `bytes`) live in `ur.py`, which the
emulator shares."""

from __future__ import annotations

import cbor2

from hil.stimuli.ur import UR

SCRIPT_TAGS = {"sh": 400, "wsh": 401, "pk": 402, "pkh": 403, "wpkh": 404, "tr": 409}
HDKEY, KEYPATH = 303, 304


def keypath(path: str, source_fingerprint: bytes | None = None) -> cbor2.CBORTag:
    """`crypto-keypath` for a path like "84h/0h/0h" or "0/*" (`h` or `'` marks hardened, `*` any index)."""
    components: list = []
    for step in filter(None, path.removeprefix("m").split("/")):
        hardened = step[-1] in "h'"
        index = step.rstrip("h'")
        components += [[] if index == "*" else int(index), hardened]
    body: dict = {1: components}
    if source_fingerprint is not None:
        body[2] = int.from_bytes(source_fingerprint, "big")
    return cbor2.CBORTag(KEYPATH, body)


def crypto_output(scripts: list[str], key_data: bytes, chain_code: bytes, origin: str,
                  source_fingerprint: bytes, children: str = "") -> UR:
    """`ur:crypto-output` for e.g. `wpkh([fp/84h/0h/0h]xpub/0/*)`: scripts ["wpkh"], or ["sh", "wpkh"]."""
    unknown = [s for s in scripts if s not in SCRIPT_TAGS]
    if unknown or not scripts:
        raise ValueError(f"unknown script expression {unknown or scripts}; use {', '.join(SCRIPT_TAGS)}")
    hdkey: dict = {3: key_data, 4: chain_code, 6: keypath(origin, source_fingerprint)}
    if children:
        hdkey[7] = keypath(children)
    value = cbor2.CBORTag(HDKEY, hdkey)
    for script in reversed(scripts):
        value = cbor2.CBORTag(SCRIPT_TAGS[script], value)
    return UR("crypto-output", cbor2.dumps(value))
