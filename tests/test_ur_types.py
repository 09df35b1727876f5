"""UR registry types: crypto-output against BCR-2020-010 test vector 4 (BlockchainCommons/Research
papers/bcr-2020-010-output-desc.md), and the byte-string types psbt/bytes."""

import cbor2
import pytest

from hil.stimuli.ur import URDecoder, UREncoder, URCorrupt, UR, byte_string_ur, ur_byte_string
from hil.stimuli.urtypes import crypto_output

BCR_2020_010_VECTOR_4 = (  # pkh([d34db33f/44'/0'/0']xpub6ERApfZwUNrhLCkDtcHTcxd75RbzS1ed54G1LkBUHQVHQKqhMkhgbmJbZRkrgZw4koxb5JaHWkY4ALHY2grBGRjaDMzQLcgJvLJuZZvRcEL/1/*)
    "d90193d9012fa403582102d2b36900396c9282fa14628566582f206a5dd0bcc8d5e892611806cafb0301f0045820637807030d55d01f"
    "9a0cb3a7839515d796bd07706386a6eddf06cc29a65a0e2906d90130a20186182cf500f500f5021ad34db33f07d90130a1018401f480f4"
)


def test_crypto_output_matches_bcr_2020_010_vector_4():
    ur = crypto_output(
        ["pkh"],
        key_data=bytes.fromhex("02d2b36900396c9282fa14628566582f206a5dd0bcc8d5e892611806cafb0301f0"),
        chain_code=bytes.fromhex("637807030d55d01f9a0cb3a7839515d796bd07706386a6eddf06cc29a65a0e29"),
        origin="44'/0'/0'", source_fingerprint=bytes.fromhex("d34db33f"), children="1/*")
    assert ur.type == "crypto-output"
    assert ur.cbor.hex() == BCR_2020_010_VECTOR_4


def test_crypto_output_nests_script_tags():
    ur = crypto_output(["sh", "wpkh"], b"\2" * 33, b"\0" * 32, "49h/0h/0h", b"\1\2\3\4")
    value = cbor2.loads(ur.cbor)
    assert (value.tag, value.value.tag, value.value.value.tag) == (400, 404, 303)
    with pytest.raises(ValueError, match="unknown script"):
        crypto_output(["p2xyz"], b"\2" * 33, b"\0" * 32, "0h", b"\0" * 4)


def test_psbt_round_trip_through_parts():
    psbt = b"psbt\xff" + bytes(range(256)) * 4
    ur = byte_string_ur("psbt", psbt)
    enc, dec = UREncoder(ur, 100), URDecoder()
    while not dec.is_complete():
        dec.receive_part(enc.next_part())
    assert dec.result.type == "psbt" and ur_byte_string(dec.result) == psbt


def test_byte_string_payload_must_be_a_byte_string():
    with pytest.raises(URCorrupt, match="expected a byte string"):
        ur_byte_string(UR("psbt", cbor2.dumps({"not": "bytes"})))
    with pytest.raises(URCorrupt, match="not valid CBOR"):
        ur_byte_string(UR("psbt", b"\x5f"))
    with pytest.raises(ValueError, match="not a byte-string type"):
        byte_string_ur("crypto-output", b"x")
