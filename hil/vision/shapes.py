"""Telling look-alike glyphs apart by their shape on the rectified line, whatever the font.

The recogniser reads some glyphs unsure (1/l/I, 0/o/O): its confidence does not say which one the display
shows. The glyph itself does, measured against the same line's glyphs that were read surely (same font,
same optics), never against a font we know:

  * its height above the line's baseline against the line's levels: x-height (o) against digit and cap
    height (0, O, 1) and the ascender (l);
  * whether it sits on the baseline (a bar "|", a Q, g and q descend; a 9 does not) and has a dot above it (i);
  * its width against its own stroke (a bare stroke: l, I, |), a flag down to the left from its top (1),
    a straight left side meeting a corner (D), and its width against the line's digits (a wide O);
  * what the screen shows of its font elsewhere (`Font`): an l drawn as a bare stroke, or a 1 with its flag
    read surely in a number (an amount's): a glyph drawn as that 1, its own flag going down to the left, is no
    l, I or bar (drawn as two such 1s, whatever its flag).

Each measure only rules candidates out, and only by a margin beyond what blur and noise do to a glyph; a
glyph is decided when exactly one candidate is left. Otherwise (too blurred, a level not on the line, a
font whose glyphs agree on every measure) it stays unsure, and the value check stays INCONCLUSIVE.
assumed: a font's "1" has a flag (a bare-bar "1" is rare), an "l" or "I" has none going down from its top,
and "|" descends below the baseline; figures are lining (a 9 sits on it); a font's l is not drawn as its
flagged 1 (`ALIKE`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from hil.vision.values import SAME_GLYPH

X_HEIGHT = set("acemnorsuvwxzgpqy")
DIGITS = set("0123456789")
CAPS = set("ABCDEFGHKLMNPRSTUVWXYZ")
ASCENDERS = set("bdhk")  # l is what is being told apart; f and t vary by font
SITS = X_HEIGHT - set("gpqy") | DIGITS | CAPS | ASCENDERS  # glyphs on the baseline
# digits and capitals share a level: fonts differ by a few per cent between them, less than blur does
LEVEL = {**{c: "x" for c in X_HEIGHT}, **{c: "cap" for c in DIGITS | CAPS | {"I", "O"}},
         **{c: "asc" for c in ASCENDERS | {"l"}}}
GROUPS = ("1lI|i", "0oOQD", "9gq")  # the look-alikes whose shapes this module tells apart
SURE = 0.97  # a glyph read at least this surely is a reference for the line's levels and for likeness


@dataclass(frozen=True, eq=False)  # one glyph on one screen: compared by identity
class Component:
    x0: int
    x1: int  # exclusive
    top: float  # sub-pixel, rows of the line crop
    bottom: float
    mask: np.ndarray  # its ink (0..1) in its bounding box


@dataclass(frozen=True, eq=False)  # compared and hashed by identity: a line's measure, cached with it
class Ink:
    """One line's glyphs, measured: the component of each non-space character (None when unclear)."""

    chars: str  # the non-space characters as read
    confs: tuple[float, ...]
    glyphs: tuple[Component | None, ...]
    dots: tuple[bool | None, ...]  # ink just above the glyph (the dot of i, j); None: that space is not seen
    baseline: tuple[float, ...]  # the bottom row at x: a polynomial (np.polyval; a lens bends the line)
    levels: dict[str, tuple[float, int]]  # level name -> (height above the baseline, how many glyphs)
    trend: tuple[float, ...]  # the glyphs' size at x against the line's mean (a lens bends and scales it)
    noise: float  # pixels: the spread of the sure glyphs' heights about their levels
    scale: float  # pixels: the line's tallest measured level
    bases: int  # the sure glyphs on the baseline it was fitted to
    rows: int  # the line crop's height: how far below the baseline it shows
    memo: dict = field(default_factory=dict, repr=False)  # what was decided of its glyphs (it lives with them)

    def height(self, i: int) -> float:
        g = self.glyphs[i]
        x = (g.x0 + g.x1) / 2
        return (float(np.polyval(self.baseline, x)) - g.top) / float(np.polyval(self.trend, x))

    def drop(self, i: int) -> float:
        """How far below the baseline glyph `i` ends (pixels)."""
        g = self.glyphs[i]
        return g.bottom - float(np.polyval(self.baseline, (g.x0 + g.x1) / 2))

    def below(self, i: int) -> float:
        """How far below the baseline the crop shows, under glyph `i` (pixels): where its descender would be."""
        g = self.glyphs[i]
        return self.rows - float(np.polyval(self.baseline, (g.x0 + g.x1) / 2))


def ink_map(gray: np.ndarray) -> np.ndarray:
    """0 (background) .. 1 (ink), whichever the polarity: the text is the line's minority."""
    g = gray.astype(np.float32)
    lo, hi = np.percentile(g, (3, 97))
    if hi - lo < 1:
        return np.zeros_like(g)
    ink = np.clip((g - lo) / (hi - lo), 0, 1)
    return ink if np.median(ink) < 0.5 else 1 - ink


def _dot(ink: np.ndarray, stat: np.ndarray) -> bool | None:
    """Whether there is ink just above a glyph (over its middle third, up to half its height): a dot. None
    when the line's crop does not show that much above it (absence of a dot is then no evidence)."""
    x, y, w, h = stat[:4]
    reach = max(2, h // 2)
    if y - reach < 0:
        return None
    return bool(ink[y - reach:y - 1, x + w // 3:x + w - w // 3].max(initial=0.0) >= 0.35)


def _edge(profile: np.ndarray, start: int, step: int) -> float:
    """Where `profile` crosses 0.5 going outwards from `start` (sub-pixel)."""
    i = start
    while 0 <= i + step < len(profile) and profile[i + step] >= 0.5:
        i += step
    j = i + step
    if not 0 <= j < len(profile):
        return float(i)
    v0, v1 = profile[i], profile[j]
    return i + step * (v0 - 0.5) / max(v0 - v1, 1e-6)


def measure(gray: np.ndarray, text: str, confs: tuple[float, ...], xs: tuple[float, ...]) -> Ink | None:
    """The line's glyphs (`xs`: the x-centre of each non-space character in `gray`), or None."""
    chars = text.replace(" ", "")
    if len(confs) == len(text):  # the recogniser gave the spaces a confidence too
        confs = tuple(k for c, k in zip(text, confs) if c != " ")
    if not chars or len(xs) != len(chars) or len(confs) != len(chars):
        return None
    ink = ink_map(gray)
    n, labels, stats, _ = cv2.connectedComponentsWithStats((ink >= 0.5).astype(np.uint8), connectivity=8)
    if n < 2:
        return None
    big = [k for k in range(1, n) if stats[k, cv2.CC_STAT_AREA] >= 4]
    if not big:  # specks only (noise, a frame of garbage): no glyph to measure
        return None
    comps: dict[int, Component] = {}

    def component(k: int) -> Component:
        if k not in comps:
            x, y, w, h = stats[k, :4]
            mask = np.where(labels[y:y + h, x:x + w] == k, ink[y:y + h, x:x + w], 0).astype(np.float32)
            lab = labels[:, x:x + w]
            col = ink[:, x:x + w] * ((lab == k) | (lab == 0))  # its ink and the faint edge around it
            prof = col.max(axis=1)
            comps[k] = Component(int(x), int(x + w), _edge(prof, y, -1), _edge(prof, y + h - 1, 1), mask)
        return comps[k]


    def leading(k: int) -> tuple[Component, tuple[int, int, int, int]] | None:
        """The stroke that opens blob k (a glyph blur joined to the next), up to the end of its first
        full-height stem, and its box; None without one. Nothing is joined on its left, where a 1's flag
        would be, so what it shows there is its own."""
        x, y, w, h = stats[k, :4]
        own = np.where(labels[y:y + h, x:x + w] == k, ink[y:y + h, x:x + w], 0)
        cols = np.flatnonzero((own >= 0.5).mean(axis=0) >= 0.6)
        if not len(cols):
            return None
        end = int(cols[0]) + 1
        while end < w and (own[:, end] >= 0.5).mean() >= 0.6:
            end += 1
        rows = np.flatnonzero((own[:, :end] >= 0.5).any(axis=1))
        r0, r1 = int(rows[0]), int(rows[-1]) + 1
        lab = labels[:, x:x + end]
        prof = (ink[:, x:x + end] * ((lab == k) | (lab == 0))).max(axis=1)
        g = Component(int(x), int(x + end), _edge(prof, y + r0, -1), _edge(prof, y + r1 - 1, 1),
                      own[r0:r1, :end].astype(np.float32))
        return g, (int(x), int(y + r0), end, r1 - r0)

    def above(j: int, k: int) -> bool:  # component j is a mark just over component k (the dot of i, j)
        gap = stats[k, 1] - (stats[j, 1] + stats[j, 3])
        return (j != k and -1 <= gap <= 0.4 * stats[k, 3]
                and stats[j, 0] < stats[k, 0] + stats[k, 2] and stats[k, 0] < stats[j, 0] + stats[j, 2])

    def inside(j: int, k: int) -> bool:  # component j lies within component k's box (the dot in a zero)
        return (j != k and stats[k, 0] <= stats[j, 0] and stats[j, 0] + stats[j, 2] <= stats[k, 0] + stats[k, 2]
                and stats[k, 1] <= stats[j, 1] and stats[j, 1] + stats[j, 3] <= stats[k, 1] + stats[k, 3])

    tall = max(stats[k, 3] for k in big)
    big = [k for k in big if not ((stats[k, 1] == 0 or stats[k, 1] + stats[k, 3] >= ink.shape[0])
                                  and stats[k, 3] < 0.5 * tall)]  # pieces of the lines above and below
    main = sorted((k for k in big if not any(above(k, j) or inside(k, j) for j in big)), key=lambda k: stats[k, 0])
    spans = [(stats[k, 0], stats[k, 0] + stats[k, 2]) for k in main]
    owner = align(xs, spans)
    pitch = float(np.median(np.diff(xs))) if len(xs) > 1 else float(gray.shape[0])
    owner = [m if m is not None and max(0, spans[m][0] - x, x - spans[m][1]) <= pitch else None
             for x, m in zip(xs, owner)]  # a centre far from its span: the alignment is not to be trusted there
    glyphs, dots = [], []
    for i, m in enumerate(owner):
        alone = m is not None and owner.count(m) == 1  # two characters in one blob (blur): neither is measured,
        k = main[m] if m is not None else None          # but a stroke glyph opening it (l, 1: `leading`)
        opening = leading(k) if not alone and k is not None and owner.index(m) == i and chars[i] in GROUPS[0] \
            else None
        glyphs.append(component(k) if alone else opening[0] if opening else None)
        dots.append(_dot(ink, stats[k]) if alone else _dot(ink, np.array(opening[1])) if opening else None)
    sure = [i for i, (c, g) in enumerate(zip(chars, glyphs)) if g is not None and confs[i] >= SURE]
    sits = [i for i in sure if chars[i] in SITS]
    if not sits:  # no baseline
        return None
    cx = np.array([(glyphs[i].x0 + glyphs[i].x1) / 2 for i in sits])
    bottoms = np.array([glyphs[i].bottom for i in sits])
    fit = tuple(np.polyfit(cx, bottoms, min(2, len(sits) // 3))) if np.ptp(cx) > 0 else (float(np.median(bottoms)),)
    probe = Ink(chars, tuple(confs), tuple(glyphs), tuple(dots), fit, {}, (1.0,), 0.0, 1.0, len(sits), ink.shape[0])
    refs = [i for i in sure if chars[i] in LEVEL and chars[i] not in "lIO01"]  # look-alikes are no reference
    levels = {k: float(np.median([probe.height(i) for i in refs if LEVEL[chars[i]] == k])) for k in
              {LEVEL[chars[i]] for i in refs}}
    if any(v <= 0 for v in levels.values()):
        return None  # sure glyphs not standing above the baseline: ink that is no text
    trend = (1.0,)
    if len(refs) >= 4:
        x = np.array([(glyphs[i].x0 + glyphs[i].x1) / 2 for i in refs])
        if np.ptp(x) > 0:
            trend = tuple(np.polyfit(x, [probe.height(i) / levels[LEVEL[chars[i]]] for i in refs], 1))
    centres = [(g.x0 + g.x1) / 2 for g in glyphs if g is not None]
    if min(np.polyval(trend, centres)) <= 0:
        return None  # a size trend that shrinks glyphs to nothing: the sure glyphs disagree
    probe = Ink(chars, tuple(confs), tuple(glyphs), tuple(dots), fit, {}, trend, 0.0, 1.0, len(sits), ink.shape[0])
    heights: dict[str, list[float]] = {}
    for i in refs:
        heights.setdefault(LEVEL[chars[i]], []).append(probe.height(i))
    levels = {k: (float(np.median(v)), len(v)) for k, v in heights.items()}
    spread = [abs(h - levels[k][0]) for k, v in heights.items() for h in v if len(v) >= 3]
    spread += [abs(probe.drop(i)) for i in sits]
    noise = max(0.25, 1.4826 * float(np.median(spread))) if len(spread) >= 5 else 0.5
    scale = max([lv for lv, _ in levels.values()] or [gray.shape[0] * 0.6])
    lv = {k: v for k, (v, _) in levels.items()}
    if noise > LEVEL_TOLERANCE * scale or lv.get("x", 0) >= X_MAX * max(lv.get("cap", 0), lv.get("asc", 0)) > 0:
        return None  # the sure glyphs disagree (a glyph matched to the wrong blob): nothing here is evidence
    return Ink(chars, tuple(confs), tuple(glyphs), tuple(dots), fit, levels, trend, noise, scale, len(sits),
               ink.shape[0])


def align(xs: tuple[float, ...], spans: list[tuple[int, int]]) -> list[int | None]:
    """Which span (a component's columns, left to right) holds each character (x-centres, left to right):
    in order, every character in one span, a span holding one or more characters or none (a mark the
    recogniser skipped); the least total distance of the centres from their spans. The recogniser's
    centres are rough (one column is 8 input pixels), the order is not."""
    n, m = len(xs), len(spans)
    if m == 0:
        return [None] * n
    inf = float("inf")
    miss = max(1.0, float(np.median([b - a for a, b in spans])))  # the cost of a span holding no character

    a, b = np.array(spans, float).T
    x = np.array(xs, float)[:, None]
    far = np.maximum(0.0, np.maximum(a - x, x - b)).tolist()  # far[i][j]: centre i's distance from span j
    # cost[i][j]: characters [0, i) placed, spans [0, j) used or skipped, the last character in span j - 1
    cost = [[inf] * (m + 1) for _ in range(n + 1)]
    back = [[0] * (m + 1) for _ in range(n + 1)]  # 0: span skipped, 1: a new span, 2: the same span again
    cost[0][0] = 0.0
    for j in range(1, m + 1):
        cost[0][j] = cost[0][j - 1] + miss
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            options = (cost[i][j - 1] + miss if back[i][j - 1] == 0 or i == 0 else inf,  # span j-1 skipped
                       cost[i - 1][j - 1] + far[i - 1][j - 1],  # character i-1 opens span j-1
                       cost[i - 1][j] + far[i - 1][j - 1] if back[i - 1][j] else inf)  # and shares it
            back[i][j] = options.index(min(options))
            cost[i][j] = options[back[i][j]]
    out: list[int | None] = [None] * n
    ends = [cost[n][jj] + (m - jj) * miss for jj in range(m + 1)]
    i, j = n, ends.index(min(ends))
    while i > 0 and j > 0:
        step = back[i][j]
        if step == 0:
            j -= 1
        else:
            out[i - 1] = j - 1
            i, j = (i - 1, j - 1) if step == 1 else (i - 1, j)
    return out


X_MAX = 0.8  # x-height / cap height stays below this in Latin fonts (0.5-0.77)
LEVEL_TOLERANCE = 0.06  # of the line's height: what blur does to a narrow glyph's top (a 1's flag, an l)
BAR, NOT_BAR = 1.6, 2.2  # a glyph this many of its own stroke widths wide is a bare stroke / clearly is not
DESCENDERS = set("gpqyQ|")
# assumed: Latin descenders (g, p, q, y) reach 0.2-0.3 em below the baseline, at least a quarter of the cap height
# (DejaVu Sans: 0.30): a crop that shows less below a glyph cannot show that it sits on the baseline
DESCENT = 0.25
MIN_BASES = 3  # sure glyphs on the baseline before it tells a glyph that sits on it from one that descends


def _stem(mask: np.ndarray) -> tuple[int, int] | None:
    """The columns of a glyph's vertical stroke: inked on most of its rows."""
    cols = np.flatnonzero((mask >= 0.5).mean(axis=0) >= 0.6)
    return (int(cols[0]), int(cols[-1]) + 1) if len(cols) else None


def strokes(mask: np.ndarray) -> float | None:
    """A glyph's width in its own stroke widths (about 1 for a bare stroke l, I, |), or None."""
    stem = _stem(mask)
    return mask.shape[1] / (stem[1] - stem[0]) if stem else None


def _reach(mask: np.ndarray, rows: slice, stem: tuple[int, int]) -> tuple[float, float]:
    """How far the ink of `rows` reaches left and right of the stroke, in stroke widths."""
    on = (mask[rows] >= 0.5).any(axis=0)
    cols = np.flatnonzero(on)
    w = stem[1] - stem[0]
    return (stem[0] - cols[0]) / w if len(cols) else 0.0, (cols[-1] + 1 - stem[1]) / w if len(cols) else 0.0


@dataclass(frozen=True)
class Font:
    """What a screen's other lines show of its font, measured on glyphs read surely: an l or I drawn as a bare
    stroke (`bar_l`), and 1s drawn with their flag (`ones`: what a 1 looks like on this screen). A screen may
    mix fonts (KeyOS draws addresses in a monospaced one, keyos.md), so a 1 elsewhere decides a glyph only
    where the glyph itself has a 1's flag and that 1's shape, and a bare l elsewhere only among the rows of
    one code (`font`): a title's bare l says nothing of a monospaced address's l. The 1s are numbers' digits
    (whose alphabet has no l), and one of them alone may be a misread l drawn with a flag (as a monospaced font
    draws it): it decides only a glyph whose own flag goes down to the left (`FLAG_DROP`), which no l has;
    `CORROBORATED` of them decide a glyph alike them all."""

    bar_l: bool = False
    ones: tuple[Component, ...] = ()


def code_row(text: str) -> bool:
    """Whether a line reads as a row of a code (an address, a hash: letters and digits, no space), whose
    rows share one font."""
    return len(text) >= 8 and text.isalnum()


def font(lines, code: bool = False) -> Font:
    """The `Font` evidence of a screen's (text, `Ink` or None) lines for a glyph of a code row (``code``) or
    of any other line: a bare l counts only from a code row for a code row."""
    lines = [(text, ink) for text, ink in lines if ink is not None]
    return Font(code and any(bar_l(ink) for text, ink in lines if code_row(text)),
                tuple(ink.glyphs[j] for _, ink in lines for j in flagged_ones(ink)))


# assumed: two views of one glyph, scaled to one height, keep their width within ALIKE_WIDTH of each other and
# their ink correlates by ALIKE or more, and an l and a 1 of one font do not both. Measured (camera views of the
# emulator's DejaVu Sans Bold, and DejaVu Sans, Sans Mono and Serif drawn blurred): a 1 against an amount's 1
# on the same screen 0.89-0.98 (widths within 9 %); a 1 against an l: Sans 0.29-0.59 (2-4x the width), Mono
# 0.68-0.76 (same width), Serif 0.79-0.88 (1.5x the width)
ALIKE, ALIKE_WIDTH = 0.85, 0.2
CORROBORATED = 2  # the 1s of a screen that show its font's 1 by themselves (one may be a misread l)
# assumed: a 1's flag goes down to the left from its top, an l's serif does not (it is a bar at the top, or none):
# the ink left of the stroke over rows 15-35 % of its height, in strokes, measured blurred 0.8-1.6 px at 36 px:
# 1s 0.33-1.67 (DejaVu Sans Bold 0.86), l 0-0.4 (DejaVu Sans, Serif, Mono and their bold; Mono Bold 0.2-0.4)
FLAG_DROP = 0.6


def alike(a: Component, b: Component) -> bool:
    """Whether two glyphs have one shape, whatever their size (see `ALIKE`)."""
    (ha, wa), (hb, wb) = a.mask.shape, b.mask.shape
    ra, rb = wa / ha, wb / hb
    if abs(ra - rb) > ALIKE_WIDTH * max(ra, rb):
        return False
    size = (max(3, round(32 * (ra + rb) / 2)), 32)
    pa, pb = (cv2.resize(m, size, interpolation=cv2.INTER_AREA).ravel() for m in (a.mask, b.mask))
    if pa.std() == 0 or pb.std() == 0:
        return False
    return float(np.corrcoef(pa, pb)[0, 1]) >= ALIKE


def flagged_ones(ink: Ink) -> tuple[int, ...]:
    """The glyphs of the line read surely as a 1 in a number (digits or a decimal point either side, no letter:
    a number's alphabet has no l) that has a 1's flag: no bare stroke, its top reaching left only. They show
    what this font's 1 looks like (`Font.ones`)."""
    if "ones" not in ink.memo:
        out = []
        for j, (c, k, g) in enumerate(zip(ink.chars, ink.confs, ink.glyphs)):
            if c != "1" or k < SURE or g is None or float(g.mask.max()) < 0.8 or (stem := _stem(g.mask)) is None:
                continue
            if not all(n in DIGITS or n in ".," for n in ink.chars[max(0, j - 1):j] + ink.chars[j + 1:j + 2]):
                continue
            left, right = _reach(g.mask, slice(0, max(2, g.mask.shape[0] * 35 // 100)), stem)
            if strokes(g.mask) >= NOT_BAR and left >= 0.5 and right <= 0.25:
                out.append(j)
        ink.memo["ones"] = tuple(out)
    return ink.memo["ones"]


def ruled_out(ink: Ink, i: int, c: str, screen: Font = Font()) -> str | None:
    """Why glyph `i` is not `c`, by a measure beyond what blur and noise do to it, or None. `screen`: what the
    screen shows of its font elsewhere."""
    g = ink.glyphs[i]
    tol = max(3 * ink.noise, LEVEL_TOLERANCE * ink.scale)
    level, h = LEVEL.get(c), ink.height(i)
    if level in ink.levels and abs(h - ink.levels[level][0]) > tol:
        return f"{h:.1f} px tall, the line's {level} height is {ink.levels[level][0]:.1f}"
    tall = ink.levels["cap"][0] if "cap" in ink.levels else None
    if level == "x" and "x" not in ink.levels and tall and h > X_MAX * tall + tol:
        return f"{h:.1f} px tall, near the line's cap height {tall:.1f} (no font's x-height is)"
    short = ink.levels["x"][0] if "x" in ink.levels else None
    if level == "cap" and "cap" not in ink.levels and short and h < short / X_MAX - tol:
        return f"{h:.1f} px tall, near the line's x-height {short:.1f} (no font's digits or capitals are)"
    drop = ink.drop(i)
    if ink.bases >= MIN_BASES:  # a baseline fitted to fewer sure glyphs says nothing of where a glyph ends
        if c in DESCENDERS and drop < tol and ink.below(i) >= DESCENT * ink.scale:  # where a descender is seen
            return "it sits on the baseline"
        if c not in DESCENDERS and drop > max(tol, 0.15 * ink.scale):
            return "it descends below the baseline"
    rows = g.mask.max(axis=1)
    # no dip: a dot that blur joined to its stroke leaves one. assumed: 0.85, measured on the emulator's hard optics
    # only (an i's joined dot dipped to 0.77 of its stroke, an l to 0.91), not on a Prime's panel through a camera;
    # set high, it leaves i open (undecided) rather than deciding l for it
    if c == "i" and rows[2: len(rows) // 2].min(initial=1.0) >= 0.85 * float(np.median(rows)):
        if ink.dots[i] is False:
            return "no dot above it"
        if tall is not None and h >= tall - tol:  # an i's dot sits above its x-height stroke, not a tall one's
            return "a stroke as tall as the capitals, with no dot joined to it"
    stem, wide = _stem(g.mask), strokes(g.mask)
    if c in "1lI|" and stem is not None:
        rows = g.mask.shape[0]
        top_left, top_right = _reach(g.mask, slice(0, max(2, rows * 35 // 100)), stem)
        if c == "1" and wide <= BAR:
            return "a bare stroke (a 1 has a flag)"
        if c in "I|" and top_left >= 0.5 and top_right <= 0.25:
            return "its top reaches left only (an I or a bar is symmetric)"
        if c in "lI" and (screen.bar_l or bar_l(ink)) and wide >= NOT_BAR:
            return f"{wide:.1f} strokes wide, and this code's l or I is a bare stroke"
        if c == "l" and wide >= NOT_BAR and top_left >= 0.5 and top_right <= 0.25:  # its own flag, and a 1's shape
            like = sum(one is not g and alike(g, one) for one in screen.ones)
            drops = _reach(g.mask, slice(rows * 15 // 100, max(rows * 15 // 100 + 1, rows * 35 // 100)), stem)[0]
            if like >= CORROBORATED or like and drops >= FLAG_DROP:
                return "a flag reaching left only, drawn as this screen's 1s read surely elsewhere" if like > 1 else \
                    "a flag going down to the left, drawn as this screen's 1 read surely elsewhere"
    if c in "0oOQD":  # D has a straight left side meeting its top in a corner; the others are round there
        on = g.mask >= 0.5
        lefts = np.where(on.any(axis=1), on.argmax(axis=1), on.shape[1])
        straight = float((lefts <= lefts.min() + 1).mean())
        h, w = g.mask.shape
        corner = float(g.mask[: max(1, h // 5), : max(1, w // 5)].max())
        if c == "D" and corner < 0.3:
            return "a round top left corner"
        if c != "D" and straight > 0.8 and corner >= 0.5:
            return "a straight left side with a corner"
    digits = [ink.glyphs[j].x1 - ink.glyphs[j].x0 for j, d in enumerate(ink.chars)  # 0 and 1 have look-alikes
              if d in DIGITS - {"0", "1"} and ink.glyphs[j] is not None and ink.confs[j] >= SURE]
    if c == "0" and len(digits) >= 2 and (g.x1 - g.x0) > 1.3 * float(np.median(digits)):
        return "wider than the line's digits by a third"  # (an O may be no wider: monospaced fonts)
    return None


def bar_l(ink: Ink | None) -> bool:
    """Whether the line shows this font's l as a bare stroke: a glyph read as one of 1, l, I among lowercase
    letters or digits (no capital: so no capital I), as tall as the line's capitals or more, and neither a 1
    (a bare stroke: a 1 has a flag), a bar nor an i. A glyph clearly wider is then no l."""
    if ink is None or "cap" not in ink.levels and "asc" not in ink.levels:
        return False
    if "bar_l" in ink.memo:
        return ink.memo["bar_l"]
    tall = max(ink.levels[k][0] for k in ("cap", "asc") if k in ink.levels)
    tol = max(3 * ink.noise, LEVEL_TOLERANCE * ink.scale)

    def lower_between(j: int) -> bool:  # its neighbours: lowercase letters or digits, and no capital
        near = [ink.chars[k] for k in (j - 1, j + 1) if 0 <= k < len(ink.chars) and ink.chars[k].isalnum()]
        return bool(near) and not any(c.isupper() for c in near)

    ink.memo["bar_l"] = any(c in "1lI" and g is not None and ink.height(j) >= tall - tol and lower_between(j)
                            and all(ruled_out(ink, j, other) for other in "1|i")  # a bare stroke, on the baseline
                            for j, (c, g) in enumerate(zip(ink.chars, ink.glyphs)))
    return ink.memo["bar_l"]


def decide(ink: Ink | None, i: int, read: str, screen: Font = Font()) -> tuple[str, str] | None:
    """(the one glyph of `read`'s look-alike group that glyph `i` can be, why not the others), or None when
    its shape does not tell (or `read` is no look-alike this module measures). Glyphs fonts draw alike
    (I, l: `values.SAME_GLYPH`) count as one. A glyph too faint to measure (blur thinned it below the
    line's ink level) is never decided. `screen`: what the screen shows of its font elsewhere (`font`).
    Kept with the line's measure: a screen's lines are told apart again as each is read."""
    group = next((g for g in GROUPS if read in g), None)
    if group is None or ink is None or ink.glyphs[i] is None or float(ink.glyphs[i].mask.max()) < 0.8:
        return None
    key = (i, read, screen)
    if key not in ink.memo:
        left, why = [], []
        for c in group:
            reason = ruled_out(ink, i, c, screen)
            if reason is None:
                left.append(c)
            else:
                why.append(f"not {c!r}: {reason}")
        same = {c for c in left if c in SAME_GLYPH}
        # a bar is what is left when a glyph of no candidate (a j read as i) is ruled out: no decision
        undecided = len(left) - len(same) + bool(same) != 1 or left == ["|"]
        ink.memo[key] = None if undecided else ((read if read in left else left[0]), "; ".join(why))
    return ink.memo[key]
