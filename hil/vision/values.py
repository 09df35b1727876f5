"""Checking a value of a known kind on the display: addresses, amounts, PINs, BIP39 words.

OCR confuses look-alike glyphs (1/l/I, 0/O, rn/m). For a value whose alphabet and checksum are known
the confusion is resolved by them, never by how close the reading looks to what was expected:

  * a character read as itself counts only with a reasonable confidence (`FLOOR`), and one that has
    look-alikes (`LOOKALIKES`: a display could show one of them in its place) only when the recogniser
    was sure of it (`RESOLVE_BELOW`); else the check is inconclusive;
  * a character read as a glyph that the value's alphabet does not have (a "1" after a bech32 "1",
    an "O" in base58, an "l" in a number) is what the display shows when the recogniser was sure of it
    (a display that shows "1" where the address has "l" fails); read unsure, it stands for its
    look-alikes in the alphabet, and the checksum (bech32/bech32m, base58check, the BIP39 word list)
    decides: no valid resolution is a FAIL, and one that gives the expected value is still INCONCLUSIVE,
    because the display may show the look-alike itself (an impostor is never passed on an unsure
    glyph). Glyphs that fonts draw the same (I/l/|: `SAME_GLYPH`) are resolved by the alphabet alone;
  * any other difference is a FAIL: the display showed something else.

A look-alike whose shape on the display proved which glyph it is (`hil.vision.shapes`: its height against
the line's x-height and ascender, a bare stroke or a flag, measured on the same line) counts as read surely;
where the recogniser was sure of another glyph, the two disagree and the character is unsure, unless the
value's alphabet has only one of the two at that place (a "1" read where bech32 data has an "l", the shape
a bare stroke): a display cannot show the other in a value of that kind, so the alphabet decides, and the
checksum then checks the whole. Where the shape does not tell, the rules above stand.

So an address, amount or word list shown with one character substituted, swapped, inserted or deleted,
or a look-alike put in, fails or is inconclusive, never passes; a correct display passes when every
character was read surely.
Bech32 is case-insensitive by its specification (BIP173): "BC1Q…" and "bc1q…" are the same address.
"""

from __future__ import annotations

import itertools
import re
import string
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from embit import base58, bech32
from embit.wordlists.bip39 import WORDLIST

FLOOR = 0.5  # a character read as expected but with less confidence than this proves nothing
RESOLVE_BELOW = 0.9  # an out-of-alphabet glyph read with this confidence or more is what the display shows

# glyphs OCR mistakes for one another (both ways), for resolving against an alphabet
LOOKALIKES: dict[str, str] = {
    "1": "lI|i", "l": "1I|i", "I": "1l|i", "|": "1lI", "i": "1lI", "!": "1l",
    "0": "oOQD", "o": "0O", "O": "0oQD", "Q": "0O", "D": "0O",
    "5": "sS", "s": "5", "S": "5", "2": "zZ", "z": "2", "Z": "2", "8": "B", "B": "8",
    "6": "bG", "b": "6", "G": "6", "9": "gq", "g": "9", "q": "9", "u": "v", "v": "u",
}
# glyphs that sans-serif fonts draw alike (capital i, small L, the bar): no camera tells them apart, so
# the alphabet alone resolves them, however sure the recogniser was, and no impostor is made of them
SAME_GLYPH: dict[str, str] = {"I": "l|", "l": "I|", "|": "Il"}
_WORDS = frozenset(WORDLIST)


@dataclass(frozen=True)
class Glyph:
    """One character as read, with the recogniser's confidence in it."""

    char: str
    conf: float
    shaped: bool = False  # told from its look-alikes by its shape on the display (`hil.vision.shapes`)
    shape: str = ""  # the look-alike its shape proved it is, where the recogniser was sure of `char` instead


@dataclass(frozen=True)
class Outcome:
    verdict: str  # "pass", "fail" or "inconclusive"
    reason: str
    lines: tuple[int, ...] = ()  # the lines the value was read from (for a pass)


@dataclass(frozen=True)
class Code:
    """A string value with a per-position alphabet and a validity check (the checksum)."""

    name: str
    fold: bool  # compare case-insensitively (bech32, and hex of one case)
    alphabets: tuple[str, ...]  # per position
    valid: object  # str -> bool

    def norm(self, c: str) -> str:
        return c.lower() if self.fold else c

    def same(self, a: str, b: str) -> bool:
        return (a.lower() == b.lower()) if self.fold else a == b


def _bech32_valid(s: str) -> bool:
    return bech32.bech32_decode(s)[0] is not None


def _base58_valid(s: str) -> bool:
    try:
        base58.decode_check(s)
        return True
    except Exception:  # embit raises plain ValueError/Exception on a bad checksum
        return False


def code_of(expected: str) -> Code | None:
    """The kind of an expected address-like value, or None when it is none that is known."""
    e = expected
    if _bech32_valid(e):
        sep = e.lower().rfind("1")
        hrp = string.ascii_lowercase + string.digits
        return Code("bech32m" if bech32.bech32_decode(e)[2] == bech32.Encoding.BECH32M else "bech32", True,
                    tuple([hrp] * sep + ["1"] + [bech32.CHARSET] * (len(e) - sep - 1)), _bech32_valid)
    if len(e) >= 25 and all(c in base58.B58_DIGITS for c in e) and _base58_valid(e):
        return Code("base58check", False, (base58.B58_DIGITS,) * len(e), _base58_valid)
    if re.fullmatch(r"(0x)?[0-9a-f]+|(0x)?[0-9A-F]+", e):
        digits = "0123456789abcdef" if e[2:].lower() == e[2:] else "0123456789ABCDEF"
        head = ("0", "x") if e.startswith("0x") else ()
        return Code("hex", False, head + (digits,) * (len(e) - len(head)), lambda s: True)
    if re.fullmatch(r"[0-9]{4,}", e):
        return Code("pin", False, (string.digits,) * len(e), lambda s: True)
    return None


def glyphs(text: str, conf: float, chars: tuple[float, ...] = (), shapes: tuple[str, ...] = (),
           read: str = "") -> list[Glyph]:
    """A line's characters with their confidences (the line's where the recogniser gave none). A character
    whose shape proved which look-alike it is (`shapes`, per non-space character: `hil.vision.shapes`) is
    that one, surely (see `_shaped`). `read`: the recogniser's own reading where `text` shows glyphs told by
    their shape instead (`hil.vision.ocr.as_told`); a glyph it read surely as another stays a disagreement."""
    if len(read) == len(text) and read != text:
        text, shapes = _as_read(text, shapes, read)
    if len(chars) == len(text):
        out = [Glyph(c, k) for c, k in zip(text, chars)]
    elif len(chars) == len(text.replace(" ", "")):
        it = iter(chars)
        out = [Glyph(c, 1.0 if c == " " else next(it)) for c in text]
    else:
        out = [Glyph(c, conf) for c in text]
    if len(shapes) == len(text.replace(" ", "")):
        it = iter(shapes)
        out = [g if g.char == " " or not (s := next(it)) else _shaped(g, s) for g in out]
    return out


def _as_read(text: str, shapes: tuple[str, ...], read: str) -> tuple[str, tuple[str, ...]]:
    """The recogniser's reading, with the glyph its shape proved (the text's) where the two differ beyond
    glyphs drawn alike (`SAME_GLYPH`)."""
    told = iter(shapes if len(shapes) == len(text.replace(" ", "")) else ("",) * len(text))
    chars, out = [], []
    for r, t in zip(read, text):
        differ = r != t and r not in SAME_GLYPH.get(t, "")
        chars.append(r if differ else t)
        if t != " ":
            s = next(told)
            out.append(t if differ else s)
    return "".join(chars), tuple(out)


def _shaped(g: Glyph, shape: str) -> Glyph:
    """A glyph whose shape decided it: that glyph, surely, unless the recogniser was sure of another one;
    then the two disagree and neither is sure (never a pass on either's word)."""
    if shape == g.char or g.conf < RESOLVE_BELOW:
        return Glyph(shape, 1.0, True)
    return Glyph(g.char, min(g.conf, FLOOR / 2), shape=shape)


def sure_enough(expected: str, conf: float) -> bool:
    """Whether a character read as `expected` with `conf` proves it is shown: one with look-alikes (which a
    display could show in its place, and OCR then reads as it) needs `RESOLVE_BELOW`, any other `FLOOR`."""
    return conf >= (RESOLVE_BELOW if expected in LOOKALIKES or expected.upper() in LOOKALIKES else FLOOR)


def _compare(code: Code, expected: str, run: list[Glyph]) -> Outcome:
    """One candidate run of glyphs against the expected value (same length)."""
    options, weak, shown, unsure = [], [], [], []
    run = [_by_alphabet(code, g, alphabet) for g, alphabet in zip(run, code.alphabets)]
    for i, (g, want, alphabet) in enumerate(zip(run, expected, code.alphabets)):
        c = code.norm(g.char)
        if c == code.norm(want):
            options.append([c])
            if not sure_enough(want, g.conf):
                weak.append(i)
            continue
        if c not in alphabet:
            same = sorted({code.norm(a) for a in SAME_GLYPH.get(g.char, "")} & set(alphabet))
            alike = sorted({code.norm(a) for a in LOOKALIKES.get(g.char, "")} & set(alphabet))
            if same:
                options.append(same)
                if g.conf < RESOLVE_BELOW:  # an I read unsure may be an i: no pass on it
                    weak.append(i)
                continue
            if alike and g.conf < RESOLVE_BELOW:
                options.append(alike)
                unsure.append(f"{g.char!r} at {i + 1}")
                continue
        shown.append(f"{g.char!r} at {i + 1} for {want!r}")
    if shown:
        return Outcome("fail", f"the display shows a different {code.name}: " + ", ".join(shown[:4]))
    valid = [s for s in itertools.islice(map("".join, itertools.product(*options)), 4096) if code.valid(s)]
    if len(valid) != 1 or not code.same(valid[0], expected):
        if not valid:
            return Outcome("fail", f"no resolution of the look-alikes read gives a valid {code.name}")
        return Outcome("inconclusive", f"{len(valid)} valid {code.name} values fit the look-alikes read")
    if unsure:
        return Outcome("inconclusive", f"only the expected {code.name} fits its alphabet and checksum, but "
                                       f"{', '.join(unsure[:4])} read unsure as a look-alike the display may show")
    if weak:
        return Outcome("inconclusive", f"characters {', '.join(str(i + 1) for i in weak)} read with low confidence")
    resolved = sum(len(o) > 1 or o[0] != code.norm(g.char) for o, g in zip(options, run))
    shaped = sum(g.shaped for g in run)
    return Outcome("pass", f"{code.name} read exactly" + (f" ({resolved} glyph(s) drawn alike resolved by its "
                                                          "alphabet)" if resolved else "")
                   + (f" ({shaped} look-alike(s) told apart by their shape)" if shaped else ""))


def _by_alphabet(code: Code, g: Glyph, alphabet: str) -> Glyph:
    """A glyph the recogniser and its shape disagree on, decided by the alphabet where only the shape's glyph
    can be in a value of this kind at this place (see the module's docstring); else as it is."""
    if g.shape and code.norm(g.char) not in alphabet and code.norm(g.shape) in alphabet:
        return Glyph(g.shape, 1.0, True)
    return g


@dataclass(frozen=True)
class Token:
    glyphs: tuple[Glyph, ...]
    line: int

    @property
    def text(self) -> str:
        return "".join(g.char for g in self.glyphs)


def _tokens(lines: list[list[Glyph]]) -> list[Token]:
    """Whitespace-separated tokens in reading order, each with its line."""
    out = []
    for n, line in enumerate(lines):
        tok: list[Glyph] = []
        for g in line + [Glyph(" ", 1.0)]:
            if g.char.isspace():
                if tok:
                    out.append(Token(tuple(tok), n))
                tok = []
            else:
                tok.append(g)
    return out


def _value_like(code: Code, t: Token) -> bool:
    """Could this token be part of a value of `code` (its alphabet, and one case where case folds)?"""
    s = t.text
    return all(code.norm(c) in code.alphabets[-1] for c in s) and (not code.fold or s in (s.lower(), s.upper()))


def _continues(code: Code, tokens: list[Token], s: int, t: int) -> bool:
    """Whether the value in tokens[s:t] goes on past either end. A wrapped value fills every row but its
    last, so a row of value characters after a full row (or on the same line) continues it."""
    first, last = tokens[s].line, tokens[t - 1].line
    width = {n: sum(len(k.glyphs) for k in tokens[s:t] if k.line == n) for n in (first, last)}
    row = max(width.values())
    if t < len(tokens) and _value_like(code, tokens[t]):
        if tokens[t].line == last or width[last] >= row:
            return True
    if s > 0 and _value_like(code, tokens[s - 1]):
        before = sum(len(k.glyphs) for k in tokens[:s] if k.line == tokens[s - 1].line)
        if tokens[s - 1].line == first or before >= row:
            return True
    return False


def _runs(code: Code, lines: list[list[Glyph]], lo: int, hi: int):
    """(glyphs, continues, line indexes) of runs of consecutive tokens (across lines) whose length is in [lo, hi]."""
    tokens = _tokens(lines)
    for s in range(len(tokens)):
        run: list[Glyph] = []
        for t in range(s, len(tokens)):
            run = run + list(tokens[t].glyphs)
            if len(run) > hi:
                break
            if len(run) >= lo:
                yield run, _continues(code, tokens, s, t + 1), tuple(sorted({k.line for k in tokens[s:t + 1]}))


def check(expected: str, lines, kind: str) -> Outcome | None:
    """The check for a value of `kind` ("address", "amount", "words") over OCR lines (`hil.vision.ocr.Line`);
    None when there is no domain check for it or nothing like it was read."""
    read = [glyphs(ln.text, ln.confidence, ln.chars, ln.shapes, ln.read) for ln in lines]
    if kind == "address":
        return check_code(expected, read)
    if kind == "amount":
        return check_amount(expected, read)
    if kind == "words":
        return check_words(expected, read)
    return None


def check_code(expected: str, lines: list[list[Glyph]]) -> Outcome | None:
    """An address, hash or PIN on the display; None when `expected` is of no known kind (the caller
    matches it exactly) or nothing like it was read."""
    e = re.sub(r"\s", "", expected)
    code = code_of(e)
    if code is None:
        return None
    same_length, other_length = [], []
    for run, continues, where in _runs(code, lines, len(e) - 4, len(e) + 4):
        if len(run) == len(e):
            o = _compare(code, e, run)
            if o.verdict == "pass" and not continues:
                return Outcome(o.verdict, o.reason, where)
            differences = sum(code.norm(g.char) != code.norm(w) for g, w in zip(run, e))
            same_length.append((differences, o if o.verdict != "pass" else
                                Outcome("fail", f"the display shows the {code.name} with more characters around it")))
        elif _of_kind(code, "".join(g.char for g in run)):
            other_length.append(Outcome("fail", f"the display shows a {len(run)}-character value starting "
                                                f"{''.join(g.char for g in run[:6])!r} where a {len(e)}-character "
                                                f"{code.name} was expected"))
    # what the value's own characters say (the run closest to them: not a title run into it) comes first
    same_length.sort(key=lambda d_o: d_o[0])
    ranked = [o for v in ("inconclusive", "fail") for _, o in same_length if o.verdict == v] + other_length
    return ranked[0] if ranked else None


def _of_kind(code: Code, text: str) -> bool:
    """Whether `text` could be a value of `code`'s kind: its characters, in one case where the case folds
    (so a title such as "Sign Transaction" or an amount "0.5 BTC" run into an address is not one)."""
    chars = set().union(*map(set, code.alphabets))
    return all(code.norm(c) in chars for c in text) and (not code.fold or text in (text.lower(), text.upper()))


_NUMBER = re.compile(r"(?<![\d.,])(\d[\d, ]*(?:\.[\d ]*\d)?)")


def parse_amount(text: str) -> tuple[str, str]:
    """(digits, unit) of "0.01250000 BTC" or "1,000,000 sats", grouping removed (the decimals are kept
    as written: a display that drops a digit is wrong); ValueError if it is no amount."""
    m = re.fullmatch(r"\s*(\d[\d, ]*(?:\.[\d ]*\d)?)\s*([^\d\s.,][^\s]*)?\s*", text)
    if m is None:
        raise ValueError(f"{text!r} is not an amount (digits, optional grouping and decimals, then a unit)")
    try:
        Decimal(digits := re.sub(r"[ ,]", "", m.group(1)))
    except InvalidOperation:
        raise ValueError(f"{text!r} is not an amount") from None
    return digits, m.group(2) or ""


def check_amount(expected: str, lines: list[list[Glyph]]) -> Outcome | None:
    """An amount: the same digits (grouping aside) in the same unit. A digit's look-alike (O for 0, l for 1)
    between digits read unsure stands for the digit, and an amount that then matches is inconclusive (the
    display may show the look-alike); read surely, it is what the display shows."""
    value, unit = parse_amount(expected)
    found, with_unit = [], []
    for n, line in enumerate(lines):
        text, weak = "", []
        for i, g in enumerate(line):
            c = g.char
            near_digit = any(0 <= j < len(line) and line[j].char in "0123456789.," for j in (i - 1, i + 1))
            if not c.isdigit() and near_digit and g.conf < RESOLVE_BELOW:
                c = next((a for a in LOOKALIKES.get(c, "") if a.isdigit()), c)
            if c.isdigit() and (c != g.char or not sure_enough(c, g.conf)):  # an unsure digit or look-alike
                weak.append(i)
            text += c
        if unit and re.search(rf"(?<![A-Za-z]){re.escape(unit)}(?![A-Za-z])", text):
            with_unit.append(text)
        for m in _NUMBER.finditer(text):
            rest = text[m.end():].lstrip()
            if unit and not rest.startswith(unit):
                continue
            if unit and rest[len(unit):len(unit) + 1].isalnum():
                continue
            shown = re.sub(r"[ ,]", "", m.group(1))
            weak_here = [i for i in weak if m.start() <= i < m.end()]
            found.append((shown, weak_here, m.group(1), n))
    for shown, weak_here, raw, n in found:
        if shown == value:
            if weak_here:
                return Outcome("inconclusive", f"the amount's digits {raw!r} read unsure (a look-alike may be shown)")
            return Outcome("pass", f"{raw.strip()} {unit} read exactly".strip(), (n,))
    if found:
        return Outcome("fail", "the display shows " + ", ".join(f"{f[2].strip()} {unit}".strip() for f in found))
    if with_unit:
        return Outcome("fail", f"no amount in {unit} reads as one: the display shows " + " | ".join(with_unit))
    return None


def check_words(expected: str, lines: list[list[Glyph]]) -> Outcome | None:
    """Words in order (security words, a seed's words). Where every expected word is a BIP39 word the
    list is the checksum: a word read with an unsure look-alike resolves only to a listed word, and is then
    inconclusive (the display may show the look-alike)."""
    want = re.findall(r"[a-z]+", expected.lower())
    if not want or not all(w in _WORDS for w in want):
        return None
    seen: list[tuple[str, list[Glyph], int]] = []
    for n, line in enumerate(lines):
        for m in re.finditer(r"[A-Za-z0-9|!]+", "".join(g.char for g in line)):
            gl = line[m.start():m.end()]
            if any(c.isalpha() for c in m.group()):
                seen.append((m.group(), gl, n))

    def drawn_as(g: Glyph) -> set[str]:  # what a glyph read surely is: itself, or one drawn the same
        return {g.char.lower(), *(a.lower() for a in SAME_GLYPH.get(g.char, "") if a.isalpha())}

    def word(gl: list[Glyph]) -> tuple[set[str], bool]:
        opts = [sorted(drawn_as(g) | ({a.lower() for a in LOOKALIKES.get(g.char, "") if a.isalpha()}
                                      if g.conf < RESOLVE_BELOW else set())) for g in gl]
        words = {"".join(p) for p in itertools.islice(itertools.product(*opts), 256)} & _WORDS
        return words, any(not sure_enough(g.char, g.conf) for g in gl)

    def read_as(gl: list[Glyph], w: str) -> bool:
        return len(gl) == len(w) and all(c in drawn_as(g) for g, c in zip(gl, w))

    best = None
    for s in range(len(seen) - len(want) + 1):
        window = [word(gl) for _, gl, _ in seen[s:s + len(want)]]
        if all(w in ws for w, (ws, _) in zip(want, window)):
            if any(weak for _, weak in window):
                return Outcome("inconclusive", "the words were read with low confidence")
            if all(read_as(gl, w) for w, (_, gl, _) in zip(want, seen[s:s + len(want)])):
                return Outcome("pass", "the words read exactly, each a BIP39 word",
                               tuple(sorted({n for _, _, n in seen[s:s + len(want)]})))
            if all(len(ws) == 1 for ws, _ in window):
                return Outcome("inconclusive", "a word read with an unsure look-alike fits only the expected "
                                               "BIP39 word, but the display may show the look-alike")
            return Outcome("inconclusive", "a word read with look-alikes fits several BIP39 words")
        hits = sum(w in ws for w, (ws, _) in zip(want, window))
        if best is None or hits > best[0]:
            best = (hits, " ".join(t for t, _, _ in seen[s:s + len(want)]))
    if best is not None and best[0] > 0:
        return Outcome("fail", f"the display shows {best[1]!r}")
    return None


def impostors(expected: str) -> list[str]:
    """The adversarial set a check of `expected` (an address of a known kind) must FAIL: every
    one-character substitution (from the kind's alphabet and the look-alikes), adjacent swap, insertion
    and deletion, and the look-alike substitutions 1/l, 0/o/O, rn/m. Variants that are the same value
    (a case change of bech32) or the same glyphs (`SAME_GLYPH`) are left out."""
    code = code_of(expected)
    if code is None:
        raise ValueError(f"{expected!r} is not an address of a known kind (bech32, base58check, hex, PIN)")
    e = expected
    out: set[str] = set()
    for i, c in enumerate(e):
        for a in (set(code.alphabets[i]) | set(LOOKALIKES.get(c, ""))) - set(SAME_GLYPH.get(c, "")):
            out.add(e[:i] + a + e[i + 1:])
        out.add(e[:i] + e[i + 1:])
        if i + 1 < len(e):
            out.add(e[:i] + e[i + 1] + e[i] + e[i + 2:])
    for i in range(len(e) + 1):
        for a in set(code.alphabets[min(i, len(e) - 1)]):
            out.add(e[:i] + a + e[i:])
    for old, new in (("1", "l"), ("l", "1"), ("0", "o"), ("0", "O"), ("o", "0"), ("O", "0"), ("m", "rn"), ("rn", "m")):
        for m in re.finditer(re.escape(old), e):
            out.add(e[:m.start()] + new + e[m.end():])
    return sorted(v for v in out if code.same(v, e) is False)
