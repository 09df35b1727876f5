"""BC-UR codec against the published Blockchain Commons vectors (tests/fixtures/bc_ur_vectors.json names
its source), plus the bad input a camera can deliver."""

import json
import random
from pathlib import Path

import cbor2
import pytest

from hil.errors import InfrastructureError
from hil.stimuli.ur import (
    UR, FountainDecoder, FountainEncoder, NotUR, Part, RandomSampler, URCorrupt, URDecoder, UREncoder, URError,
    Xoshiro256,
    bytewords_decode, bytewords_encode, choose_degree, choose_fragments, crc32, nominal_fragment_length, shuffled,
)

V = json.loads((Path(__file__).parent / "fixtures" / "bc_ur_vectors.json").read_text())


def message(n: int) -> bytes:
    return Xoshiro256("Wolf").next_data(n)


def message_ur(n: int) -> UR:
    return UR("bytes", cbor2.dumps(message(n)))


def test_crc32():
    for text, expected in V["crc32"].items():
        assert crc32(text.encode()).to_bytes(4, "big").hex() == expected


@pytest.mark.parametrize("case", ["bytewords_1", "bytewords_2"])
def test_bytewords_vectors(case):
    v = V[case]
    data = bytes(v["input"])
    for style in ("standard", "minimal") + (("uri",) if "uri" in v else ()):
        assert bytewords_encode(data, style) == v[style]
        assert bytewords_decode(v[style], style) == data
        assert bytewords_decode(v[style].upper(), style) == data


@pytest.mark.parametrize("style", ["standard", "uri", "minimal"])
def test_bytewords_bad_checksum(style):
    with pytest.raises(URCorrupt, match="checksum mismatch"):
        bytewords_decode(V["bytewords_1"]["bad_checksum"][style], style)


@pytest.mark.parametrize("text, match", [("wolf", "too short"), ("", "too short"), ("able acid xxxx", "not a byteword")])
def test_bytewords_too_short_or_unknown(text, match):
    with pytest.raises(URError, match=match):
        bytewords_decode(text, "standard")


def test_xoshiro_vectors():
    rng = Xoshiro256("Wolf")
    assert [rng.next() % 100 for _ in range(100)] == V["rng_1_mod100"]
    rng = Xoshiro256(crc32(b"Wolf").to_bytes(4, "big"))
    assert [rng.next() % 100 for _ in range(100)] == V["rng_2_crc_seed_mod100"]
    rng = Xoshiro256("Wolf")
    assert [rng.next_int(1, 10) for _ in range(100)] == V["rng_3_next_int_1_10"]


def test_sampler_shuffle_degree_vectors():
    sampler, rng = RandomSampler([1, 2, 4, 8]), Xoshiro256("Wolf")
    assert [sampler.next(rng) for _ in range(500)] == V["random_sampler_1_2_4_8"]
    rng = Xoshiro256("Wolf")
    assert [shuffled(list(range(1, 11)), rng) for _ in range(10)] == V["shuffle_1_to_10"]
    assert [choose_degree(11, Xoshiro256(f"Wolf-{n}")) for n in range(1, 201)] == V["choose_degree_1024_seqlen11_Wolf-n"]


def test_fragmenting_vectors():
    for length, lo, hi, expected in V["find_fragment_length"]:
        assert nominal_fragment_length(length, lo, hi) == expected
    enc = FountainEncoder(message(1024), 100)
    assert [f.hex() for f in enc.fragments] == V["partition_1024_10_100"]
    checksum = crc32(message(1024))
    got = [sorted(choose_fragments(n, 11, checksum)) for n in range(1, 31)]
    assert got == V["choose_fragments_1024_seq1_30"]


def test_fountain_encoder_vectors():
    enc = FountainEncoder(message(256), 30)
    parts = [enc.next_part() for _ in range(20)]
    assert {p.checksum for p in parts} == {V["fountain_encoder_256_30_checksum"]}
    assert [p.cbor().hex() for p in parts] == V["fountain_encoder_256_30_cbor"]
    assert Part.from_cbor(parts[12].cbor()) == parts[12]
    enc = FountainEncoder(message(256), 30)
    count = 0
    while not enc.is_complete():
        enc.next_part()
        count += 1
    assert count == enc.seq_len == 9


def test_ur_string_vectors():
    assert UREncoder.encode(message_ur(50)) == V["single_part_ur_50"]
    assert URDecoder.decode(V["single_part_ur_50"]) == message_ur(50)
    enc = UREncoder(message_ur(256), 30)
    assert [enc.next_part() for _ in range(20)] == V["ur_encoder_256_30"]


def test_fountain_decoder_large_message_from_seq_100():
    """The reference round trip: 32767 bytes, fragments of at most 1000, starting at part 101 (all mixed)."""
    msg = message(32767)
    enc, dec = FountainEncoder(msg, 1000, first_seq_num=100), FountainDecoder()
    for _ in range(500):
        dec.receive(enc.next_part())
        if dec.is_complete():
            break
    assert dec.result == msg


def test_decoder_survives_loss_shuffle_and_duplicates():
    ur = message_ur(1500)
    enc = UREncoder(ur, 120)
    stream = [enc.next_part() for _ in range(6 * enc.fountain.seq_len)]
    rnd = random.Random(7)
    received = [p for p in stream if rnd.random() > 0.4]
    received += received[:10]  # repeats, as a looping display produces
    rnd.shuffle(received)
    dec = URDecoder()
    for p in received:
        dec.receive_part(p.upper())  # QR alphanumeric mode carries upper case
        if dec.is_complete():
            break
    assert dec.result == ur
    assert dec.progress == 1.0


def test_decoder_single_part_and_progress():
    dec = URDecoder()
    assert dec.progress == 0.0
    dec.receive_part(V["single_part_ur_50"])
    assert dec.result == message_ur(50)
    enc, dec = UREncoder(message_ur(256), 30), URDecoder()
    dec.receive_part(enc.next_part())
    assert 0 < dec.progress < 1 and not dec.is_complete()


# --- bad input: a clear URError, never a hang; NotUR is broken, URCorrupt a device failure ---

def test_not_a_ur_is_broken_but_a_corrupt_ur_is_a_device_failure():
    assert issubclass(NotUR, URError) and issubclass(NotUR, InfrastructureError)
    assert issubclass(URCorrupt, URError) and issubclass(URCorrupt, AssertionError)
    assert not issubclass(URCorrupt, InfrastructureError) and not issubclass(URError, InfrastructureError)


@pytest.mark.parametrize("text, error, match", [
    ("bitcoin:bc1qxyz", NotUR, "not a UR"),
    ("ur:bytes", URCorrupt, "no body"),
    ("ur:by_tes/aeadaolazmjendeoti", URCorrupt, "UR type"),
    ("ur:bytes/1-9/x/y", URCorrupt, "path components"),
    ("ur:bytes/one-9/lpadascf", URCorrupt, "sequence component"),
    ("ur:bytes/1-9/zzzz", URCorrupt, "not a byteword"),
    ("ur:bytes/1-9/aeadaolazmjendeoti", URCorrupt, "not a \\[seqNum"),
])
def test_undecodable_parts(text, error, match):
    with pytest.raises(error, match=match):
        URDecoder().receive_part(text)


def test_part_of_another_message_is_refused():
    a, b = UREncoder(message_ur(256), 30), UREncoder(UR("bytes", cbor2.dumps(b"other" * 60)), 30)
    dec = URDecoder()
    dec.receive_part(a.next_part())
    with pytest.raises(URCorrupt, match="another message"):
        dec.receive_part(b.next_part())


def test_part_of_another_type_is_refused():
    dec = URDecoder()
    dec.receive_part(UREncoder(message_ur(256), 30).next_part())
    with pytest.raises(URError, match="mixed into a scan"):
        dec.receive_part(UREncoder(UR("psbt", message_ur(256).cbor), 30).next_part())


def test_sequence_label_must_match_the_part():
    part = UREncoder(message_ur(256), 30).next_part()
    with pytest.raises(URError, match="labelled 2-9"):
        URDecoder().receive_part(part.replace("/1-9/", "/2-9/"))


def test_message_crc_mismatch():
    enc = FountainEncoder(message(256), 30)
    parts = [enc.next_part() for _ in range(enc.seq_len)]
    bad = Part(1, 9, 256, parts[0].checksum, bytes([parts[0].data[0] ^ 1]) + parts[0].data[1:])
    strings = [f"ur:bytes/{p.seq_num}-9/{bytewords_encode(p.cbor())}" for p in [bad] + parts[1:]]
    dec = URDecoder()
    for s in strings[:-1]:
        dec.receive_part(s)
    with pytest.raises(URCorrupt, match="message checksum mismatch"):
        dec.receive_part(strings[-1])


@pytest.mark.parametrize("fields, match", [
    ((1, 2**31, 2**31, 0, b"\0" * 10), "inconsistent"),  # would make the decoder allocate 2^31 indexes
    ((1, 10000, 10000, 0, b"\0"), "inconsistent"),  # consistent, but 10000 one-byte fragments
    ((0, 1, 10, 0, b"\0" * 10), "inconsistent"),
    ((1, 1, 10, 0, b""), "inconsistent"),
    ((1, 3, 10, 0, b"\0" * 10), "inconsistent"),
])
def test_hostile_headers_are_refused_fast(fields, match):
    text = f"ur:bytes/{fields[0]}-{fields[1]}/{bytewords_encode(cbor2.dumps(list(fields)))}"
    with pytest.raises(URError, match=match):
        URDecoder().receive_part(text)


def test_random_garbage_only_raises_urerror():
    rnd = random.Random(3)
    good = UREncoder(message_ur(256), 30).next_part()
    for _ in range(300):
        s = list(good)
        for _ in range(rnd.randint(1, 5)):
            s[rnd.randrange(len(s))] = rnd.choice("abcdefghijklmnopqrstuvwxyz0123456789-/:")
        try:
            URDecoder().receive_part("".join(s))
        except URError:
            pass
