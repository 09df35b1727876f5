"""The rules by which text read off the display counts as the text expected. Stated once, here.
(An address, amount or words of a known kind are checked by `hil.vision.values` instead.)

Every kind:
  * Unicode NFKC; the ellipsis "…" equals "..."; typographic quotes and dashes equal ASCII ones;
  * line breaks are spaces (the display wraps text; OCR returns one line per row).

Per kind (`TextKind`):
  PROSE     titles, prompts, button labels. Case-insensitive; whitespace ignored entirely (OCR drops
            and inserts spaces); the OCR confusions 1/l/I/| and 0/O/o forgiven.
  ADDRESS   addresses, fingerprints, hashes. Case-sensitive (base58); whitespace ignored (the display
            groups and wraps them); no confusion forgiven; the match must not be part of a longer run
            of letters or digits.
  AMOUNT    amounts and fees. Case-sensitive; whitespace ignored; no confusion forgiven; the match
            must not continue a number ("0.5 BTC" never matches "10.5 BTC" or "0.55 BTC").
  WORDS     seed and security words. Case-insensitive; compared word by word (letters only, so list
            numbering "1." is not a word); no confusion forgiven; the words must appear in order,
            consecutively, as whole words.
  EXACT     anything else that must match character for character: case-sensitive, whitespace runs
            equal one space.

Prose found only `near` (a character or so off, in a longer text) was not read clearly: a stylus over a
glyph or a reflection garbles one glyph and the recogniser is then sure of the wrong one. That reading is
evidence of neither the expected text nor another one.
"""

from __future__ import annotations

import enum
import re
import unicodedata
from dataclasses import dataclass


class TextKind(enum.Enum):
    PROSE = "prose"
    ADDRESS = "address"
    AMOUNT = "amount"
    WORDS = "words"
    EXACT = "exact"

    @property
    def strict(self) -> bool:
        """Kinds where a hidden neighbouring character could change the meaning (a digit under glare)."""
        return self in (TextKind.ADDRESS, TextKind.AMOUNT, TextKind.WORDS)


_PUNCT = str.maketrans({"…": "...", "‘": "'", "’": "'", "“": '"', "”": '"',
                        "–": "-", "—": "-", "−": "-"})
_CONFUSIONS = str.maketrans({"1": "l", "I": "l", "|": "l", "0": "o", "O": "o"})


def canonical(text: str) -> str:
    """The rules common to every kind."""
    return re.sub(r"\s+", " ", unicodedata.normalize("NFKC", text).translate(_PUNCT)).strip()


@dataclass(frozen=True)
class Match:
    """Where the expected text was found: indexes of the observed lines it spans."""

    lines: tuple[int, ...]


def find(expected: str, observed: list[str], kind: TextKind) -> Match | None:
    """Find `expected` in the observed lines (reading order) under the rules of `kind`."""
    if kind is TextKind.WORDS:
        return _find_words(expected, observed)
    key = _key(canonical(expected), kind)
    if not key:
        raise ValueError("expected text is empty")
    pieces = [_key(canonical(t), kind) if kind is TextKind.PROSE else canonical(t) for t in observed]
    sep = "" if kind is TextKind.PROSE else " "
    joined, starts = "", []
    for p in pieces:
        starts.append(len(joined))
        joined += p + sep
    if kind is TextKind.ADDRESS:
        pattern = rf"(?<![0-9A-Za-z]){_spaced(key)}(?![0-9A-Za-z])"
    elif kind is TextKind.AMOUNT:
        pattern = rf"(?<![0-9.,]){_spaced(key)}(?![0-9]|[.,][0-9])"
    else:
        pattern = re.escape(key)
    m = re.search(pattern, joined)
    if m is None:
        return None
    return Match(tuple(i for i, s in enumerate(starts)
                       if s < m.end() and s + len(pieces[i]) > m.start()))


NEAR_EVERY = 8  # prose found with up to one edit per this many characters is `near` (none under 8)


@dataclass(frozen=True)
class Near:
    """Where prose was found only approximately: the text read there and how many edits it is off."""

    text: str
    edits: int


def near(expected: str, observed: list[str]) -> Near | None:
    """The prose `expected` found in the observed lines (joined, under the PROSE rules) with at least one
    and at most one edit per `NEAR_EVERY` characters, or None."""
    want = _key(canonical(expected), TextKind.PROSE)
    allowed = len(want) // NEAR_EVERY
    joined = "".join(_key(canonical(t), TextKind.PROSE) for t in observed)
    if not allowed or not joined:
        return None
    # the least edits of `want` into any substring of `joined` (Sellers): row[j] ends at joined[j - 1]
    row, start = [0] * (len(joined) + 1), list(range(len(joined) + 1))
    for i, c in enumerate(want, 1):
        new, new_start = [i], [0]
        for j, d in enumerate(joined, 1):
            new.append(min(row[j - 1] + (c != d), row[j] + 1, new[j - 1] + 1))
            new_start.append(start[j - 1] if new[j] == row[j - 1] + (c != d) else
                             start[j] if new[j] == row[j] + 1 else new_start[j - 1])
        row, start = new, new_start
    end = min(range(len(row)), key=row.__getitem__)
    return Near(joined[start[end]:end], row[end]) if 0 < row[end] <= allowed else None


def _key(text: str, kind: TextKind) -> str:
    if kind is TextKind.PROSE:
        return re.sub(r"\s", "", text.translate(_CONFUSIONS).lower())
    if kind in (TextKind.ADDRESS, TextKind.AMOUNT):
        return re.sub(r"\s", "", text)
    return text


def _spaced(key: str) -> str:
    """`key` with any whitespace allowed between its characters (wrapped or grouped on the display)."""
    return r"\s*".join(re.escape(c) for c in key)


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z]+", canonical(text).lower())


def _find_words(expected: str, observed: list[str]) -> Match | None:
    want = _words(expected)
    if not want:
        raise ValueError("expected words are empty")
    seen = [(w, i) for i, t in enumerate(observed) for w in _words(t)]
    for s in range(len(seen) - len(want) + 1):
        if [w for w, _ in seen[s:s + len(want)]] == want:
            return Match(tuple(sorted({i for _, i in seen[s:s + len(want)]})))
    return None
