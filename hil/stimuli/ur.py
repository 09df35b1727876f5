"""BC-UR, the animated-QR format of the Prime's Bitcoin app: bytewords, CRC32, Xoshiro256**, the
Luby-transform fountain code and `ur:type[/seq-len]/body` part strings (Blockchain Commons
BCR-2020-005 and -012).

Written here because no maintained Python package exists; it follows the reference C++ library
(BlockchainCommons/bc-ur) bit for bit and is pinned to its published test vectors (tests/test_ur.py).
Pure, so the emulated Prime imports it too. Every string handed to the decoder is untrusted (it came
through a camera): bad parts raise a `URError` with one clear line, and no input makes it loop or
allocate without bound.  Which one says whose fault it is: text that is not a UR at all (`NotUR`) may
be any code the camera caught, so the run is broken; a UR whose checksum or structure is wrong
(`URCorrupt`) is what the device emitted, since QR error correction all but rules out a misread that
still decodes, so it is a device failure.
"""

from __future__ import annotations

import hashlib
import math
import re
import zlib
from dataclasses import dataclass

import cbor2

from hil.errors import InfrastructureError

MAX_MESSAGE_LEN = 1 << 20
"""Largest message the decoder accepts (1 MiB, far above any QR transfer); bounds memory on garbage."""
MAX_SEQ_LEN = 4096
"""Most fragments a message may have: mixing costs O(seq_len²) per part, so garbage cannot stall a scan."""


class URError(Exception):
    """Anything this decoder refuses: the one name a caller (the emulated Prime) catches."""


class NotUR(URError, InfrastructureError):
    """The text is not a UR (no ``ur:``): not what a UR scan looks for, so the run is broken."""


class URCorrupt(URError, AssertionError):
    """A UR with a bad checksum, broken structure, or parts of another message: device output, a failure."""


# --- CRC32 and bytewords (BCR-2020-012) -------------------------------------------------------------

def crc32(data: bytes) -> int:
    """The CRC-32 (ISO-HDLC, as zlib) that BC-UR uses for bytewords and fountain checksums."""
    return zlib.crc32(data) & 0xFFFFFFFF


_WORDS = (
    "ableacidalsoapexaquaarchatomauntawayaxisbackbaldbarnbeltbetabiasbluebodybragbrewbulbbuzzcalm"
    "cashcatschefcityclawcodecolacookcostcruxcurlcuspcyandarkdatadaysdelidicedietdoordowndrawdrop"
    "drumdulldutyeacheasyechoedgeepicevenexamexiteyesfactfairfernfigsfilmfishfizzflapflewfluxfoxy"
    "freefrogfuelfundgalagamegeargemsgiftgirlglowgoodgraygrimgurugushgyrohalfhanghardhawkheathelp"
    "highhillholyhopehornhutsicedideaidleinchinkyintoirisironitemjadejazzjoinjoltjowljudojugsjump"
    "junkjurykeepkenokeptkeyskickkilnkingkitekiwiknoblamblavalazyleaflegsliarlimplionlistlogoloud"
    "loveluaulucklungmainmanymathmazememomenumeowmildmintmissmonknailnavyneednewsnextnoonnotenumb"
    "obeyoboeomitonyxopenovalowlspaidpartpeckplaypluspoempoolposepuffpumapurrquadquizraceramprealredo"
    "richroadrockroofrubyruinrunsrustsafesagascarsetssilkskewslotsoapsolosongstubsurfswantacotask"
    "taxitenttiedtimetinytoiltombtoystriptunatwinuglyundouniturgeuservastveryvetovialvibeviewvisa"
    "voidvowswallwandwarmwaspwavewaxywebswhatwhenwhizwolfworkyankyawnyellyogayurtzapszerozestzinc"
    "zonezoom"
)
WORDS = tuple(_WORDS[i:i + 4] for i in range(0, 1024, 4))
_WORD_INDEX = {w: i for i, w in enumerate(WORDS)}
_MINIMAL_INDEX = {w[0] + w[3]: i for i, w in enumerate(WORDS)}
_SEPARATORS = {"standard": " ", "uri": "-"}
STYLES = ("standard", "uri", "minimal")


def bytewords_encode(data: bytes, style: str = "minimal") -> str:
    """`data` plus its big-endian CRC32 as bytewords: "standard" (spaces), "uri" (dashes) or
    "minimal" (first and last letter of each word, no separator: what UR bodies use)."""
    full = data + crc32(data).to_bytes(4, "big")
    if style == "minimal":
        return "".join(WORDS[b][0] + WORDS[b][3] for b in full)
    if style not in _SEPARATORS:
        raise ValueError(f"unknown bytewords style {style!r}; use one of {', '.join(STYLES)}")
    return _SEPARATORS[style].join(WORDS[b] for b in full)


def bytewords_decode(text: str, style: str = "minimal") -> bytes:
    """The bytes that `text` encodes, after checking its CRC32 (case-insensitive)."""
    text = text.lower()
    if style == "minimal":
        if len(text) % 2:
            raise URCorrupt(f"bytewords {_clip(text)!r} has an odd length; minimal bytewords are letter pairs")
        tokens, table = [text[i:i + 2] for i in range(0, len(text), 2)], _MINIMAL_INDEX
    elif style in _SEPARATORS:
        tokens, table = [t for t in text.split(_SEPARATORS[style]) if t], _WORD_INDEX
    else:
        raise ValueError(f"unknown bytewords style {style!r}; use one of {', '.join(STYLES)}")
    try:
        raw = bytes(table[t] for t in tokens)
    except KeyError as e:
        raise URCorrupt(f"{e.args[0]!r} is not a byteword (in {_clip(text)!r})") from None
    if len(raw) < 5:
        raise URCorrupt(f"bytewords {_clip(text)!r} is too short: it needs at least one byte and a 4-byte CRC32")
    body, check = raw[:-4], raw[-4:]
    if crc32(body).to_bytes(4, "big") != check:
        raise URCorrupt(f"bytewords checksum mismatch in {_clip(text)!r}: the text was misread or altered")
    return body


def _clip(s: str, n: int = 40) -> str:
    return s if len(s) <= n else s[:n] + "…"


# --- Xoshiro256** and the sampling built on it ---------------------------------------------------

_M64 = (1 << 64) - 1


def _rotl(x: int, k: int) -> int:
    return ((x << k) | (x >> (64 - k))) & _M64


class Xoshiro256:
    """xoshiro256** seeded, as BC-UR does, from the SHA-256 of a byte string (state = 4 big-endian u64)."""

    def __init__(self, seed: bytes | str):
        digest = hashlib.sha256(seed.encode() if isinstance(seed, str) else seed).digest()
        self.s = [int.from_bytes(digest[i:i + 8], "big") for i in range(0, 32, 8)]

    def next(self) -> int:
        s = self.s
        result = (_rotl((s[1] * 5) & _M64, 7) * 9) & _M64
        t = (s[1] << 17) & _M64
        s[2] ^= s[0]
        s[3] ^= s[1]
        s[1] ^= s[2]
        s[0] ^= s[3]
        s[2] ^= t
        s[3] = _rotl(s[3], 45)
        return result

    def next_double(self) -> float:
        return float(self.next()) / 18446744073709551616.0

    def next_int(self, low: int, high: int) -> int:
        return int(self.next_double() * (high - low + 1)) + low

    def next_data(self, count: int) -> bytes:
        return bytes(self.next_int(0, 255) for _ in range(count))


class RandomSampler:
    """Walker–Vose alias sampler over weighted indexes, built exactly as bc-ur's `RandomSampler`
    (reversed index order, naive left-to-right sums) so that degrees match other implementations."""

    def __init__(self, weights: list[float]):
        n = len(weights)
        total = 0.0
        for w in weights:
            total += w
        p = [w * n / total for w in weights]
        small = [i for i in reversed(range(n)) if p[i] < 1]
        large = [i for i in reversed(range(n)) if p[i] >= 1]
        self.probs, self.aliases = [0.0] * n, [0] * n
        while small and large:
            a, g = small.pop(), large.pop()
            self.probs[a], self.aliases[a] = p[a], g
            p[g] += p[a] - 1
            (small if p[g] < 1 else large).append(g)
        for i in large + small:
            self.probs[i] = 1.0

    def next(self, rng: Xoshiro256) -> int:
        r1, r2 = rng.next_double(), rng.next_double()
        i = int(len(self.probs) * r1)
        return i if r2 < self.probs[i] else self.aliases[i]


def shuffled(items: list, rng: Xoshiro256) -> list:
    remaining, out = list(items), []
    while remaining:
        out.append(remaining.pop(rng.next_int(0, len(remaining) - 1)))
    return out


def choose_degree(seq_len: int, rng: Xoshiro256) -> int:
    """How many fragments a mixed part combines: weight 1/d for degree d (the ideal soliton shape)."""
    return RandomSampler([1.0 / d for d in range(1, seq_len + 1)]).next(rng) + 1


def choose_fragments(seq_num: int, seq_len: int, checksum: int) -> frozenset[int]:
    """The fragment indexes XOR-ed into part `seq_num`: the first `seq_len` parts carry one fragment
    each, later ones a pseudo-random mix seeded by the part number and the message checksum."""
    if seq_num <= seq_len:
        return frozenset((seq_num - 1,))
    rng = Xoshiro256(seq_num.to_bytes(4, "big") + checksum.to_bytes(4, "big"))
    degree = choose_degree(seq_len, rng)
    return frozenset(shuffled(list(range(seq_len)), rng)[:degree])


# --- the fountain code ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Part:
    """One fountain-coded part: CBOR `[seqNum, seqLen, messageLen, checksum, data]`."""

    seq_num: int
    seq_len: int
    message_len: int
    checksum: int
    data: bytes

    def cbor(self) -> bytes:
        return cbor2.dumps([self.seq_num, self.seq_len, self.message_len, self.checksum, self.data])

    @classmethod
    def from_cbor(cls, raw: bytes) -> Part:
        try:
            items = cbor2.loads(raw)
        except Exception as e:  # cbor2 raises several types on garbage; all mean "not a part"
            raise URCorrupt(f"UR part body is not valid CBOR ({e})") from None
        if (not isinstance(items, list) or len(items) != 5
                or not all(type(v) is int and v >= 0 for v in items[:4]) or not isinstance(items[4], bytes)):
            raise URCorrupt("UR part body is not a [seqNum, seqLen, messageLen, checksum, data] array")
        part = cls(*items)
        part._check()
        return part

    def _check(self) -> None:
        frag = len(self.data)
        if not (1 <= self.seq_num < 1 << 32 and self.checksum < 1 << 32 and frag
                and 0 < self.message_len <= MAX_MESSAGE_LEN and self.seq_len <= MAX_SEQ_LEN
                and self.seq_len == -(-self.message_len // frag)):
            raise URCorrupt(f"UR part header is inconsistent (seqNum {self.seq_num}, seqLen {self.seq_len}, "
                          f"messageLen {self.message_len}, fragment {frag} bytes)")


def nominal_fragment_length(message_len: int, min_fragment_len: int, max_fragment_len: int) -> int:
    """The fragment size the encoder uses: the fewest fragments that are each at most `max_fragment_len`."""
    if not 0 < min_fragment_len <= max_fragment_len:
        raise ValueError(f"fragment lengths must satisfy 0 < min ({min_fragment_len}) <= max ({max_fragment_len})")
    fragment_len = message_len
    for count in range(1, message_len // min_fragment_len + 1):
        fragment_len = math.ceil(message_len / count)
        if fragment_len <= max_fragment_len:
            break
    return fragment_len


def _xor(a: bytes, b: bytes) -> bytes:
    return (int.from_bytes(a, "big") ^ int.from_bytes(b, "big")).to_bytes(len(a), "big")


class FountainEncoder:
    """Splits a message into equal fragments and emits an endless stream of parts: first each
    fragment alone, then random XOR mixes, so a receiver can start anywhere and miss frames."""

    def __init__(self, message: bytes, max_fragment_len: int, first_seq_num: int = 0, min_fragment_len: int = 10):
        if not message:
            raise ValueError("cannot fountain-encode an empty message")
        self.message_len = len(message)
        self.checksum = crc32(message)
        self.fragment_len = nominal_fragment_length(len(message), min_fragment_len, max_fragment_len)
        padded = message.ljust(-(-len(message) // self.fragment_len) * self.fragment_len, b"\0")
        self.fragments = [padded[i:i + self.fragment_len] for i in range(0, len(padded), self.fragment_len)]
        self.seq_num = first_seq_num

    @property
    def seq_len(self) -> int:
        return len(self.fragments)

    def is_complete(self) -> bool:
        """True once every fragment has been emitted at least once on its own."""
        return self.seq_num >= self.seq_len

    def next_part(self) -> Part:
        self.seq_num = (self.seq_num + 1) & 0xFFFFFFFF
        data = bytes(self.fragment_len)
        for i in choose_fragments(self.seq_num, self.seq_len, self.checksum):
            data = _xor(data, self.fragments[i])
        return Part(self.seq_num, self.seq_len, self.message_len, self.checksum, data)


class FountainDecoder:
    """Rebuilds the message from parts in any order, with losses and duplicates, by peeling: a part
    that mixes a set of fragments is reduced by every known part whose set is a strict subset."""

    def __init__(self):
        self._header: tuple[int, int, int, int] | None = None  # seq_len, message_len, checksum, fragment_len
        self._simple: dict[int, bytes] = {}
        self._mixed: dict[frozenset[int], bytes] = {}
        self.result: bytes | None = None
        self.parts_received = 0

    def is_complete(self) -> bool:
        return self.result is not None

    @property
    def progress(self) -> float:
        """Fraction of fragments recovered so far (1.0 when complete)."""
        return 1.0 if self.result is not None else len(self._simple) / self._header[0] if self._header else 0.0

    def receive(self, part: Part) -> None:
        """Take one part; raises `URCorrupt` if it belongs to another message or the result fails its CRC."""
        if self.result is not None:
            return
        part._check()
        header = (part.seq_len, part.message_len, part.checksum, len(part.data))
        if self._header is None:
            self._header = header
        elif header != self._header:
            raise URCorrupt(f"UR part {part.seq_num} belongs to another message (seqLen/messageLen/checksum/"
                          f"fragment {header} where this scan has {self._header}); restart the scan")
        self.parts_received += 1
        queue = [(choose_fragments(part.seq_num, part.seq_len, part.checksum), part.data)]
        while queue and self.result is None:
            indexes, data = queue.pop(0)
            if len(indexes) == 1:
                self._add_simple(next(iter(indexes)), data, queue)
            else:
                self._add_mixed(indexes, data, queue)

    def _add_simple(self, index: int, data: bytes, queue: list) -> None:
        if index in self._simple:
            return
        self._simple[index] = data
        seq_len, message_len, checksum, _ = self._header
        if len(self._simple) == seq_len:
            message = b"".join(self._simple[i] for i in range(seq_len))[:message_len]
            if crc32(message) != checksum:
                raise URCorrupt(f"UR message checksum mismatch (expected {checksum:08x}, got {crc32(message):08x}):"
                              " the parts were corrupted")
            self.result = message
        else:
            self._reduce_mixed_by(frozenset((index,)), data, queue)

    def _add_mixed(self, indexes: frozenset[int], data: bytes, queue: list) -> None:
        if indexes in self._mixed:
            return
        for i, d in self._simple.items():
            indexes, data = self._reduce(indexes, data, frozenset((i,)), d)
        for ix, d in self._mixed.items():
            indexes, data = self._reduce(indexes, data, ix, d)
        if len(indexes) == 1:
            queue.append((indexes, data))
        else:
            self._reduce_mixed_by(indexes, data, queue)
            self._mixed[indexes] = data

    def _reduce_mixed_by(self, indexes: frozenset[int], data: bytes, queue: list) -> None:
        kept: dict[frozenset[int], bytes] = {}
        for ix, d in self._mixed.items():
            ix, d = self._reduce(ix, d, indexes, data)
            if len(ix) == 1:
                queue.append((ix, d))
            else:
                kept[ix] = d
        self._mixed = kept

    @staticmethod
    def _reduce(a_ix: frozenset[int], a: bytes, b_ix: frozenset[int], b: bytes) -> tuple[frozenset[int], bytes]:
        if b_ix < a_ix:
            return a_ix - b_ix, _xor(a, b)
        return a_ix, a


# --- UR strings ----------------------------------------------------------------------------------

_TYPE = re.compile(r"[a-z0-9-]+\Z")
_SEQ = re.compile(r"([0-9]{1,10})-([0-9]{1,10})\Z")


@dataclass(frozen=True)
class UR:
    """A typed CBOR payload, e.g. `UR("psbt", cbor2.dumps(psbt_bytes))`."""

    type: str
    cbor: bytes

    def __post_init__(self):
        if not _TYPE.match(self.type):
            raise ValueError(f"UR type {self.type!r} must be lowercase letters, digits and '-'")


class UREncoder:
    """The part strings of one UR: a single `ur:type/body` when it fits one fragment, else
    `ur:type/seq-len/body` parts forever (cycle them on an animated QR)."""

    def __init__(self, ur: UR, max_fragment_len: int, first_seq_num: int = 0, min_fragment_len: int = 10):
        self.ur = ur
        self.fountain = FountainEncoder(ur.cbor, max_fragment_len, first_seq_num, min_fragment_len)

    @staticmethod
    def encode(ur: UR) -> str:
        """The single-part string of `ur`."""
        return f"ur:{ur.type}/{bytewords_encode(ur.cbor)}"

    def is_single_part(self) -> bool:
        return self.fountain.seq_len == 1

    def next_part(self) -> str:
        part = self.fountain.next_part()
        if self.is_single_part():
            return self.encode(self.ur)
        return f"ur:{self.ur.type}/{part.seq_num}-{part.seq_len}/{bytewords_encode(part.cbor())}"


class URDecoder:
    """Collects part strings (any order, duplicates, losses) until `result` holds the UR."""

    def __init__(self):
        self.type: str | None = None
        self.fountain = FountainDecoder()
        self.result: UR | None = None

    @staticmethod
    def decode(text: str) -> UR:
        """A single-part UR string."""
        ur_type, components = _parse(text)
        if len(components) != 1:
            raise URCorrupt(f"{_clip(text)!r} is one part of a multi-part UR; collect all parts with URDecoder")
        return UR(ur_type, bytewords_decode(components[0]))

    def is_complete(self) -> bool:
        return self.result is not None

    @property
    def progress(self) -> float:
        return 1.0 if self.result is not None else self.fountain.progress

    def receive_part(self, text: str) -> None:
        """Take one scanned string; raises `URError` for anything that is not a part of this UR."""
        if self.result is not None:
            return
        ur_type, components = _parse(text)
        if self.type is not None and ur_type != self.type:
            raise URCorrupt(f"UR part of type {ur_type!r} mixed into a scan of {self.type!r}; restart the scan")
        if len(components) == 1:
            if self.fountain.parts_received:
                raise URCorrupt(f"a single-part UR arrived in the middle of a multi-part {ur_type!r} scan")
            self.type, self.result = ur_type, UR(ur_type, bytewords_decode(components[0]))
            return
        if len(components) != 2:
            raise URCorrupt(f"UR {_clip(text)!r} has {len(components)} path components; expected type/seq/body")
        seq = _SEQ.match(components[0])
        if not seq:
            raise URCorrupt(f"UR sequence component {components[0]!r} is not 'N-M'")
        part = Part.from_cbor(bytewords_decode(components[1]))
        if (part.seq_num, part.seq_len) != (int(seq[1]), int(seq[2])):
            raise URCorrupt(f"UR part labelled {components[0]} carries part {part.seq_num}-{part.seq_len}")
        self.type = ur_type
        self.fountain.receive(part)
        if self.fountain.result is not None:
            self.result = UR(ur_type, self.fountain.result)


def _parse(text: str) -> tuple[str, list[str]]:
    lowered = text.strip().lower()
    if not lowered.startswith("ur:"):
        raise NotUR(f"{_clip(text)!r} is not a UR (it does not start with 'ur:')")
    components = [c for c in lowered[3:].split("/") if c]
    if len(components) < 2:
        raise URCorrupt(f"UR {_clip(text)!r} has no body; expected ur:type/body or ur:type/seq/body")
    if not _TYPE.match(components[0]):
        raise URCorrupt(f"UR type {components[0]!r} must be lowercase letters, digits and '-'")
    return components[0], components[1:]


# --- registry types whose CBOR is a plain byte string (BCR-2020-006) ------------------------------

BYTE_STRING_TYPES = ("psbt", "bytes", "crypto-psbt")
"""`psbt` is the current PSBT type; `crypto-psbt` (tag 310) is its UR 1.0 name that older wallets send."""


def byte_string_ur(ur_type: str, data: bytes) -> UR:
    """`UR("psbt", …)` or `UR("bytes", …)`: the payload as a CBOR byte string."""
    if ur_type not in BYTE_STRING_TYPES:
        raise ValueError(f"UR type {ur_type!r} is not a byte-string type ({', '.join(BYTE_STRING_TYPES)})")
    return UR(ur_type, cbor2.dumps(bytes(data)))


def ur_byte_string(ur: UR) -> bytes:
    """The payload of a byte-string UR; `URCorrupt` if its CBOR is anything else."""
    try:
        value = cbor2.loads(ur.cbor)
    except Exception as e:  # cbor2 raises several types on garbage
        raise URCorrupt(f"ur:{ur.type} payload is not valid CBOR ({e})") from None
    if not isinstance(value, bytes):
        raise URCorrupt(f"ur:{ur.type} payload is a CBOR {type(value).__name__}, expected a byte string")
    return value
