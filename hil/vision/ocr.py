"""Text on the rectified display, read by RapidOCR (PP-OCRv6 small, ONNX models shipped in the wheel:
works offline; the most accurate engine measured on this machine, dependencies.md §4).

The engine loads once per process (about a second) and runs on one thread: lab workers run in
parallel, one per station. Detection costs about 100 ms for the whole panel and recognition about
40 ms per line, so a verification reads only the regions it needs, and `RegionReader` skips what has
not changed since it was last read.
"""

from __future__ import annotations

import functools
import logging
import re
import threading
from dataclasses import dataclass, field, replace

import cv2
import numpy as np

from hil.vision import marks, shapes
from hil.vision.values import RESOLVE_BELOW


@dataclass(frozen=True)
class Line:
    """One line of text as read: its box (x0, y0, x1, y1) in display pixels and the engine's confidence."""

    text: str
    box: tuple[int, int, int, int]
    confidence: float
    chars: tuple[float, ...] = ()  # the confidence of each non-space character, where the engine gave them
    shapes: tuple[str, ...] = ()  # per non-space character: the look-alike its shape proved it is, or ""
    ink: shapes.Ink | None = field(default=None, compare=False, repr=False)  # its glyphs, measured
    raw: str | None = None  # the recogniser's own reading, where `told_apart` wrote `text` otherwise

    @property
    def read(self) -> str:
        """What the recogniser read, before any look-alike was told apart by its shape."""
        return self.text if self.raw is None else self.raw

    def to_json(self) -> dict:
        out = {"text": self.text, "box": list(self.box), "confidence": round(self.confidence, 4)}
        if self.read != self.text:
            out["read"] = self.read  # the recogniser's reading; "text" is what was decided from it
        if any(self.shapes):
            out["shapes"] = "".join(s or "." for s in self.shapes)
        return out


def read_line(image: np.ndarray, box: tuple[int, int, int, int]) -> Line:
    """The line in `box` of `image`, its glyphs measured (see `told_apart`)."""
    x0, y0, x1, y1 = box
    m0, m1 = max(0, x0 - (y1 - y0) // 2), min(image.shape[1], x1 + (y1 - y0) // 2)  # a glyph at the box's edge whole
    measured: dict[tuple, shapes.Ink | None] = {}

    def ink(reading: tuple) -> shapes.Ink | None:
        text, _, chars, xs = reading
        if not set(text) & LOOK_ALIKE:  # nothing in it for `told_apart` to tell: measuring would cost ~5 ms for naught
            return None
        if reading not in measured:
            xs = tuple(x + x0 - m0 for x in xs)
            measured[reading] = shapes.measure(gray_line(image[y0:y1, m0:m1]), text, chars, xs)
        return measured[reading]

    def told(reading: tuple, unsure: list[int]) -> bool:
        """A code's unsure glyphs decided by their shape on this line. Only a code (letters and digits run
        together: an address row): in words a second look may also find a space the first one missed."""
        text = reading[0]
        code = text.isalnum() and not text.isalpha() and not text.isdigit()
        return code and all(i < len(text) and shapes.decide(ink(reading), i, text[i]) is not None for i in unsure)

    reading = recognise_chars(image[y0:y1, x0:x1], told, (image[y0:y1, m0:m1], x0 - m0))
    return Line(reading[0], box, reading[1], reading[2], (), ink(reading))


LOOK_ALIKE = set("".join(shapes.GROUPS))  # the glyphs `shapes` tells apart (a line of none has nothing to decide)


def told_apart(lines: list[Line]) -> list[Line]:
    """The lines of one screen with their look-alike glyphs told apart by their shape where that is
    decisive (`hil.vision.shapes`); what one line shows of the font (a 1 with its flag read surely; an l as
    a bare stroke, among the rows of a code) tells about the others (`shapes.Font`). The text shows what was told (`as_told`); the recogniser's
    own reading stays in `ink` and `read`."""
    measured = [(ln.read, ln.ink) for ln in lines]
    fonts = {code: shapes.font(measured, code) for code in (False, True)}
    out = []

    def decided(ln: Line, text: str) -> tuple[str, ...]:
        font = fonts[shapes.code_row(ln.read)]
        return tuple((shapes.decide(ln.ink, i, c, font) or ("",))[0] for i, c in enumerate(text.replace(" ", "")))

    for ln in lines:
        text = as_told(ln.read, ln.chars, decided(ln, ln.read))
        told = decided(ln, text)  # of glyphs drawn alike (I, l) the one now written
        out.append(replace(ln, text=text, shapes=told if any(told) else (), raw=ln.read if text != ln.read else None))
    return out


def as_told(text: str, chars: tuple[float, ...], decided: tuple[str, ...]) -> str:
    """`text` with each glyph replaced by the look-alike its shape proved, and a capital I that sans fonts draw
    as an l (`values.SAME_GLYPH`) written l in a word of lowercase letters and digits (`_ell`). In a word with a
    digit (a code, a number, a short row of an address) the shape wins even over a sure reading: the recogniser
    guesses such glyphs from their neighbours ("l2" read surely as "12"); in a word of letters its sure reading
    stands (it knows the word: an i whose dot blur merged is still read "i"). The value checks take a sure reading
    that the shape contradicts for unsure either way (`values.glyphs`, from `Line.read`)."""
    confs = tuple(k for c, k in zip(text, chars) if c != " ") if len(chars) == len(text) else chars
    it = iter(range(len(text.replace(" ", ""))))
    words = []
    for word in text.split(" "):
        code = any(c.isdigit() for c in word)
        words.append(_ell("".join(
            decided[i] if (i := next(it)) < len(decided) and decided[i]
            and (code or i < len(confs) and confs[i] < RESOLVE_BELOW) else c for c in word)))
    return " ".join(words)


def _ell(word: str) -> str:
    """`word` with its capital I written l where it stands among lowercase letters and digits (no other
    capital); a word's first I stays, as in "Information", unless digits show the word is no word."""
    if "I" not in word or re.search(r"[A-HJ-Z]", word) or not re.search(r"[a-z]", word):
        return word
    head = word[0] if word[0] == "I" and not re.search(r"\d", word) else ""
    return head + word[len(head):].replace("I", "l")


REC_HEIGHT, REC_MIN_WIDTH = 48, 48  # the recogniser's input height and least width (set in `engine`)
# input pixels per output column of the recogniser's CTC head: the shipped PP-OCR model gives 6, 20 and 40 columns
# for inputs 48, 160 and 320 wide (measured on rapidocr 3.10's model; rapidocr's own word boxes divide the line
# by that column count: rapidocr/ch_ppocr_rec/utils.py `line_txt_len`, cal_rec_boxes/main.py `avg_col_width`).
# assumed: another release's model keeps it (tests/test_vision_shapes.py checks each character's centre falls on it)
REC_STRIDE = 8
_engine_lock = threading.Lock()  # RapidOCR keeps per-call flags on the engine: one call at a time


# the least mean text score of a detected box: at rapidocr's default (0.5) a lone short mark, the empty PIN field's
# "-" (16x6 display pixels, 10x4 at the detector's scale), is dropped even on a clean screenshot; at 0.3 it is found
# (measured on the emulator's lock screen; the benchmark's accuracy and time: docs/benchmarks.md "Camera OCR")
DET_BOX_THRESH = 0.3


@functools.cache
def engine():
    """The process's one RapidOCR engine (models from the wheel, no download)."""
    from rapidocr import RapidOCR

    logging.getLogger("RapidOCR").setLevel(logging.ERROR)
    return RapidOCR(params={
        "Global.log_level": "error",
        "Global.use_cls": False,  # the panel is rectified: text is upright
        "Global.text_score": 0.3,  # keep weak reads: a low confidence is reported, not hidden
        "Det.limit_type": "max",  # never upscale a region crop: display pixels are already large
        "Det.limit_side_len": 480,  # the panel's text is large: detection at 0.6 scale finds every line
        "Det.box_thresh": DET_BOX_THRESH,
        "Rec.rec_img_shape": [3, REC_HEIGHT, REC_MIN_WIDTH],  # a short line ("To", "12") is not padded to 320
        "EngineConfig.onnxruntime.intra_op_num_threads": 1,
        "EngineConfig.onnxruntime.inter_op_num_threads": 1,
    })


@functools.cache
def frame_engine():
    """An engine for whole camera frames: detection at the frame's own scale (text is small in it), and
    the 0/180 degree line classifier (the camera may be mounted turned)."""
    from rapidocr import RapidOCR

    engine()  # quiet the logger once
    return RapidOCR(params={
        "Global.log_level": "error",
        "Global.text_score": 0.3,
        "Det.limit_type": "max",
        "Det.limit_side_len": 1280,
        "Det.box_thresh": DET_BOX_THRESH,
        "Rec.rec_img_shape": [3, REC_HEIGHT, REC_MIN_WIDTH],
        "EngineConfig.onnxruntime.intra_op_num_threads": 1,
        "EngineConfig.onnxruntime.inter_op_num_threads": 1,
    })


def quads(image: np.ndarray, eng=None) -> list[np.ndarray]:
    """The text lines' quadrilaterals (4x2, image pixels), as the detector found them."""
    with _engine_lock:
        out = (eng or engine())(image, use_det=True, use_cls=False, use_rec=False)
    return [] if out.boxes is None else [np.asarray(q, np.float32) for q in out.boxes]


def equalised(image: np.ndarray) -> np.ndarray:
    """`image` with its contrast equalised tile by tile (`EQUALISE`): text the display dims (a screen behind a
    prompt's dark overlay) is then found as well as text at full contrast."""
    grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY) if image.ndim == 3 else image
    return cv2.cvtColor(cv2.createCLAHE(*EQUALISE).apply(grey), cv2.COLOR_GRAY2BGR)  # one each: not thread-safe


def upside_down(image: np.ndarray, boxes: list[tuple[int, int, int, int]]) -> bool:
    """Whether most text lines in `boxes` are upside down (the classifier's majority of the first 12 lines,
    by line; it stops once the lines left cannot change it)."""
    lines = boxes[:12]
    flips = upright = 0
    for x0, y0, x1, y1 in lines:
        with _engine_lock:
            out = frame_engine()(np.ascontiguousarray(image[y0:y1, x0:x1]), use_det=False, use_cls=True,
                                 use_rec=False)
        flipped = bool(out.cls_res) and out.cls_res[0][0] == "180"
        flips, upright = flips + flipped, upright + (not flipped)
        if flips * 2 > len(lines) or upright * 2 >= len(lines):
            break
    return flips * 2 > len(lines)


def detect(image: np.ndarray) -> list[tuple[int, int, int, int]]:
    """Boxes (x0, y0, x1, y1) of the text lines in `image`, found on it `equalised`."""
    return boxes_in(equalised(image))


def boxes_in(flat: np.ndarray) -> list[tuple[int, int, int, int]]:
    """Boxes (x0, y0, x1, y1) of the text lines the detector finds in `flat` (an image already `equalised`)."""
    h, w = flat.shape[:2]
    boxes = []
    for q in quads(flat):
        x0, y0 = np.floor(q.min(axis=0)).astype(int)
        x1, y1 = np.ceil(q.max(axis=0)).astype(int)
        x0, y0, x1, y1 = max(0, x0), max(0, y0), min(w, x1), min(h, y1)
        if x1 - x0 >= 4 and y1 - y0 >= 4:
            boxes.append((int(x0), int(y0), int(x1), int(y1)))
    return boxes


def second_search(image: np.ndarray, boxes: list[tuple[int, int, int, int]]) -> list[tuple[int, int, int, int]]:
    """Boxes of text lines in `image` that the first detection (on it `equalised`, giving `boxes`) missed:
    the detector is run again on the image as it is (equalising amplifies the noise around small glyphs: a
    PIN field's asterisks) and on it denoised and equalised harder (text dimmed behind a prompt's overlay,
    a few grey levels over a noisy background). Only boxes overlapping no line already found are new."""
    grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY) if image.ndim == 3 else image
    dim = cv2.createCLAHE(*DIM_EQUALISE).apply(cv2.GaussianBlur(grey, (0, 0), DENOISE))
    found = list(boxes)
    for flat in (image, cv2.cvtColor(dim, cv2.COLOR_GRAY2BGR)):
        found += [b for b in boxes_in(flat)
                  if not any(overlap(b, f) > 0.3 or overlap(f, b) > 0.3 for f in found)]
    return found[len(boxes):]


# the second search's harder equalisation and the denoising before it (a Gaussian's sigma, display pixels).
# Measured on the benchmark's prompt screens (benchmarks/ocr.py, hard and random optics): the launcher's rows
# dimmed behind the overlay stand 12-25 grey levels over a background whose noise is 2-4 levels; equalised as
# the first detection does (`EQUALISE`) they are found on 1 of 4 views, denoised at 1.5 and clipped at 10 on 4
SECOND_SEARCH_CONFIDENCE = 0.7  # a line only the second search found is kept when read this surely (noise on the
# hard optics reads as digits at 0.54; the dimmed rows are read at 0.75 or more)
DIM_EQUALISE, DENOISE = (10.0, (4, 8)), 1.5


def second_search_kept(line: Line) -> bool:
    """Whether a line only the second search found is text rather than noise: read surely, and with a Latin
    letter, a digit or an asterisk in it (KeyOS's English screens show those; the recogniser's model also
    knows CJK, and a blurred blob reads as a lone stroke such as `一` at 0.77)."""
    return line.confidence >= SECOND_SEARCH_CONFIDENCE and any(c.isascii() and (c.isalnum() or c == "*")
                                                               for c in line.text)


def with_marks(flat: np.ndarray, boxes: list[tuple[int, int, int, int]]) -> tuple[list, dict]:
    """The detector's `boxes` in `flat` (an image `equalised`) with the lone marks it misses or whose one glyph
    the recogniser misreads (`hil.vision.marks`: the empty PIN field's dash): the boxes to read, and the marks
    among them by box, read by their shape."""
    lone, whole = marks.lone_bars(flat, boxes)
    bars = {mark.box: mark for mark in lone}
    return [b for k, b in enumerate(boxes) if k not in whole] + list(bars), bars


def marked(mark: marks.Mark, box: tuple[int, int, int, int]) -> Line:
    """A lone mark as a line of text at `box` (its own, moved to the image the region was cut from)."""
    return Line(mark.text, box, mark.confidence)


EQUALISE = (3.0, (4, 8))  # CLAHE clip limit and tiles (120x100 display pixels). Measured (benchmarks/ocr.py,
# 3 optics): 58 character errors, against 68 at 2.5 and 97 without; at 3 a short word next to a longer line
# ("Fee") may be lost on a blurred view


def recognise(line: np.ndarray) -> tuple[str, float]:
    """The text of one line image and the engine's confidence (see `recognise_chars`)."""
    return recognise_chars(line)[:2]


def recognise_chars(line: np.ndarray, told=None, wide: tuple[np.ndarray, int] | None = None
                    ) -> tuple[str, float, tuple[float, ...], tuple[float, ...]]:
    """The text of one line image, the engine's confidence, its confidence in each non-space character
    (what tells a shown look-alike from a confused one), and each non-space character's x-centre in
    `line`. The line's contrast is stretched first: a camera's exposure and glare flatten it, and the
    model then confuses 1 and l. A character at either end read unsure gets the line a second look, unless
    `told` (reading, their indexes -> bool) says their shapes already decide them. A dim line (faint against
    the sensor's noise: `contrast_to_noise`) read unsure is read once more denoised, with the image around it
    where `wide` gives it (the line with room on both sides, and the line's left edge in it): a box detected
    on a dim line often cuts its end glyphs."""
    g = gray_line(line)
    first = _rec(g)
    n = len(first[2])
    unsure = [i for i in sorted({0, 1, n - 2, n - 1}) if 0 <= i < n and first[2][i] < UNSURE]
    if unsure and not (told is not None and told(first, unsure)):  # a second look, with room around the line:
        h = g.shape[0]  # the model reads thin glyphs (l, 1, i) at a crop's edge less surely (elsewhere: `shapes`)
        second = _rec(cv2.copyMakeBorder(g, h // 4, h // 4, h // 2, h // 2, cv2.BORDER_REPLICATE))
        if second[2] and min(second[2]) > min(first[2]):
            first = (*second[:3], tuple(x - h // 2 for x in second[3]))
    if first[1] < UNSURE and contrast_to_noise(g) < DIM:  # a dim line read unsure: read it denoised too
        room, left = wide if wide is not None else (line, 0)
        third = _rec(gray_line(cv2.GaussianBlur(room, (0, 0), DENOISE)))
        if third[1] > first[1]:
            return (*third[:3], tuple(x - left for x in third[3]))
    return first


def contrast_to_noise(gray: np.ndarray) -> float:
    """A line's contrast (1st to 99th percentile) in units of its sensor noise (the robust spread of what a
    Gaussian of sigma `DENOISE` smooths away): text dimmed behind an overlay is 7-24 of them, text at full
    contrast 15 or more (measured on the benchmark's camera views, hard and random optics), so the
    denoised look is for lines read unsure, and keeps the surer reading."""
    g = gray.astype(np.float32)
    lo, hi = np.percentile(g, (1, 99))
    fine = g - cv2.GaussianBlur(g, (0, 0), DENOISE)
    noise = 1.4826 * float(np.median(np.abs(fine - np.median(fine))))
    return float(hi - lo) / max(noise, 0.5)


DIM = 30.0  # contrast-to-noise under which a line read unsure is read again denoised (`contrast_to_noise`)


def gray_line(line: np.ndarray) -> np.ndarray:
    """A line image in grey, its contrast stretched (1st to 99th percentile)."""
    g = cv2.cvtColor(line, cv2.COLOR_BGR2GRAY) if line.ndim == 3 else line
    lo, hi = np.percentile(g, (1, 99))
    return np.clip((g.astype(np.float32) - lo) * (255.0 / max(hi - lo, 1.0)), 0, 255).astype(np.uint8)


UNSURE = 0.9  # a character read with less confidence than this gets a line a second look


def _rec(gray: np.ndarray) -> tuple[str, float, tuple[float, ...], tuple[float, ...]]:
    with _engine_lock:
        out = engine()(cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR), use_det=False, use_cls=False, use_rec=True,
                       return_word_box=True)
    if not out.txts:
        return "", 0.0, (), ()
    info = out.word_results[0] if out.word_results else None
    chars = tuple(float(c) for c in getattr(info, "confs", None) or ())
    h, w = gray.shape[:2]
    resized = min(max(REC_MIN_WIDTH, REC_HEIGHT * w / h), np.ceil(REC_HEIGHT * w / h))
    cols = [c for word in (getattr(info, "word_cols", None) or ()) for c in word]
    xs = tuple(float((c + 0.5) * REC_STRIDE * w / resized) for c in cols)  # a column's centre, in `gray`
    return str(out.txts[0]), float(out.scores[0]), chars, xs


def reading_order(boxes: list[tuple[int, int, int, int]]) -> list[tuple[int, int, int, int]]:
    """Rows top to bottom (boxes whose centres are within half a line height share a row), left to
    right within a row."""
    rows: list[list[tuple[int, int, int, int]]] = []
    for b in sorted(boxes, key=lambda b: (b[1] + b[3]) / 2):
        cy, h = (b[1] + b[3]) / 2, b[3] - b[1]
        if rows and abs(cy - np.mean([(r[1] + r[3]) / 2 for r in rows[-1]])) < h / 2:
            rows[-1].append(b)
        else:
            rows.append([b])
    return [b for row in rows for b in sorted(row, key=lambda b: b[0])]


def sort_lines(lines: list[Line]) -> list[Line]:
    """`lines` in reading order."""
    by_box = {ln.box: ln for ln in lines}
    return [by_box[b] for b in reading_order(list(by_box))]


def signature(image: np.ndarray) -> np.ndarray:
    """A blurred, half-size grey copy: what `difference` compares."""
    g = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY) if image.ndim == 3 else image
    return cv2.GaussianBlur(cv2.resize(g, None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA),
                            (5, 5), 0).astype(np.int16)


def difference(a: np.ndarray, b: np.ndarray) -> float:
    """The largest grey-level change between two signatures. The maximum, not a mean: a mean over a
    region would hide one changed digit."""
    return float(np.abs(a - b).max()) if a.shape == b.shape else float("inf")


class RegionReader:
    """Reads display regions, skipping what has not changed since the last reading: a region whose
    `signature` moved nowhere by more than `threshold` grey levels keeps its detected lines, and a
    line whose pixels did not change keeps its text (typing a digit re-reads one line, not the
    screen). Sensor noise stays below the threshold; a changed glyph does not."""

    def __init__(self, threshold: float = 20.0):
        self.threshold = threshold
        # per region: its signature, its lines' boxes, which of them are lone marks (`hil.vision.marks`), and
        # which only the second search found (None: not searched yet)
        self._regions: dict[tuple[int, int, int, int], tuple[np.ndarray, tuple[list, dict, frozenset | None]]] = {}
        self._lines: list[tuple[np.ndarray, Line]] = []  # (signature, line), display coordinates
        self.calls = 0  # recognitions run, for benchmarks and tests

    def read(self, image: np.ndarray, box: tuple[int, int, int, int], until=None) -> list[Line]:
        """The lines in `box` of `image`, in reading order. With `until` (lines so far -> bool), stop
        recognising as soon as it holds: a verification needs the lines up to its text, not all. Where the
        lines found do not satisfy it (or without `until`), the region is searched again for lines the first
        detection missed (`second_search`), and those read too."""
        x0, y0, x1, y1 = box
        crop = np.ascontiguousarray(image[y0:y1, x0:x1])
        sig = signature(crop)
        last = self._regions.get(box)
        if last is not None and difference(last[0], sig) <= self.threshold:
            boxes, bars, more = last[1]
        else:
            flat = equalised(crop)
            found, bars = with_marks(flat, boxes_in(flat))
            bars = {shifted(b, x0, y0): mark for b, mark in bars.items()}
            boxes, more = reading_order([shifted(b, x0, y0) for b in found]), None
        lines, done = self._lines_in(image, boxes, bars, more, until)
        if more is None and not done:
            more = frozenset(shifted(b, x0, y0) for b in second_search(crop, [shifted(b, -x0, -y0) for b in boxes]))
            if more:
                boxes = reading_order(boxes + list(more))
                lines = self._lines_in(image, boxes, bars, more, until)[0]
        self._regions[box] = (sig, (boxes, bars, more))
        return lines

    def _lines_in(self, image: np.ndarray, boxes: list, bars: dict, more: frozenset | None,
                  until) -> tuple[list[Line], bool]:
        """The lines in `boxes` read (lone marks by their shape), up to `until`, and whether it held; of the boxes
        only the second search found (`more`), only lines read surely enough (the second search finds noise too)."""
        lines: list[Line] = []
        for b in boxes:
            line = marked(bars[b], b) if b in bars else self._line(image, b)
            if line.text and (not more or b not in more or second_search_kept(line)):
                lines.append(line)
                if until is not None and until(lines):
                    return lines, True
        return lines, False

    def _line(self, image: np.ndarray, box: tuple[int, int, int, int]) -> Line:
        for cached_sig, cached in self._lines:
            if _iou(cached.box, box) > 0.7:
                cx0, cy0, cx1, cy1 = cached.box
                if difference(cached_sig, signature(image[cy0:cy1, cx0:cx1])) <= self.threshold:
                    return cached
        x0, y0, x1, y1 = box
        self.calls += 1
        line = read_line(image, box)
        self._lines = [(s, ln) for s, ln in self._lines if _iou(ln.box, box) <= 0.7][-200:]
        self._lines.append((signature(image[y0:y1, x0:x1]), line))
        return line

    def forget(self) -> None:
        """After the camera or panel moved: nothing cached is comparable any more."""
        self._regions.clear()
        self._lines.clear()


def shifted(box: tuple[int, int, int, int], dx: int, dy: int) -> tuple[int, int, int, int]:
    return box[0] + dx, box[1] + dy, box[2] + dx, box[3] + dy


def overlap(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> float:
    """Share of box `a` covered by box `b` (a line on a region border is read by both regions)."""
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    return max(0, w) * max(0, h) / max(1, (a[2] - a[0]) * (a[3] - a[1]))


def _iou(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> float:
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    inter = max(0, w) * max(0, h)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union else 0.0
