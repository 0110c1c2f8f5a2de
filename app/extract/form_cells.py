"""Form pages read as cells: phrases of their lines, each a label with its value inline, a label
alone, or text. Labels without a colon count only when they read as labels: short, capitalised, and
holding a word forms use for their fields (or an instruction in parentheses).
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from .dates import fold
from .labels import BLANK, split_label
from .layout import Page, Span, Word, phrases

# Words that name a form's fields; a label without a colon needs one of them.
FIELD_WORDS = frozenset("""
name names date dated number numbers no nos num to from re subject cc bcc attn attention company firm
organization organisation phone telephone tel fax facsimile voice pages page address city state zip
country code title department dept account accounts sender recipient recipients reference ref signature
comments comment message amount total type description quantity qty item items volume stores store
division div brand brands media value issue expiration expires cost center centre study report reason
approval approvals approved class structure compound location time period project product products price
job order invoice client customer contact email mail office room file case court counsel plaintiff
defendant served status remarks notes note est estimated circulation initiator assigned required
requested budget fee payment due id serial model sex age birth mobile cell ext extension position manager
supervisor prepared submitted authorized authorised signed checked copies distribution instructions
purpose source weight size unit units rep reps event events samples market region territory area
district program programme telex dates agency vendor supplier buyer contract category sponsor
""".split())
# Short words that name a field only as (nearly) the whole label: "TO", "FROM", "RE", "CC", "NO."
_SHORT_WORDS = frozenset("to from re cc bcc attn no nos num by".split())
FIELD_WORDS = FIELD_WORDS - _SHORT_WORDS
_FUNCTION = frozenset("of the and or for to in on at by per if as a an with this from your our s".split())
_SHORT_LABELS = {"to", "re", "cc", "no", "id", "by", "at", "tel", "ph", "fax", "date"}
STRIP = " #,.;:‘’'\"“”-_~|*©@•+=»«>[]{}"
_WORD = re.compile(r"[a-z]+")
_GLUED = re.compile(r"^([A-Z][A-Z/&#.]+)([A-Z][a-z].*)$")  # "DATEOctober" -> "DATE" + "October"
_CAPS_WORD = re.compile(r"^[\W_]*[A-Z][A-Z/&#.()'-]*[\W_]*$|^[/&#(+—–-]+$")
_INLINE_COLON = re.compile(r"^([A-Za-z][A-Za-z.#]+:)([^/\s].*)$")
_BOX = re.compile(r"^\s*[©@☐□■❑☑☒]\s")  # a check box read in front of its label ("© Media type")
_PAGE_NUMBER = re.compile(r"(?i)^\W*page\s+\d+(\s+of\s+\d+)?\W*$")  # "PAGE 1 OF 2": no field
_RULE = re.compile(r"_{3,}|\.{4,}|…{2,}")
_NUMBER = re.compile(r"[+(]?\d[\d ()./-]{5,}\d\)?")  # a telephone or account number
_FIGURE = re.compile(r"^[$€£]?\d[\d.,]*[¢c%]?$|^[$€£]$")  # "$7.00", "40c", "$": a figure naming an offer
_CONTACT = re.compile(r"(?i)^(tel|tel\.|telephone|phone|fax|telex|telefax)$")


@dataclass
class Cell:
    span: Span
    label: str | None = None  # the label's text, without its colon
    value: Span | None = None  # a value on the cell itself, after the label
    colon: bool = False
    row: int = 0  # index of the page line the cell came from
    checkbox: bool = False  # a check box printed in front of the label: its value is whatever is right of it
    ruled: bool = False  # a rule line follows the label ("Signature ______"): its value is on it, never below
    used: bool = False

    @property
    def box(self):
        return self.span.box

    @property
    def lone(self) -> bool:
        return self.label is not None and self.value is None


def form_key(label: str) -> str:
    """A form label as a snake_case key in its own words: "Fax No." -> "fax_no", "# REPS" -> "number_reps"."""
    text = fold(label).replace("e-mail", "email").replace("#", " number ").replace("n°", " number ")
    return "_".join(re.sub(r"[^a-z0-9]+", " ", text).split())[:60] or "value"


def field_words(text: str) -> bool:
    words = _WORD.findall(fold(text))
    return any(w in FIELD_WORDS for w in words) or bool(words) and words[-1] in _SHORT_WORDS and len(words) <= 2


def label_like(text: str) -> bool:
    """Short, capitalised, mostly letters, no figures: how a printed field label reads (a note in
    parentheses aside: "Number of Pages (this page included)"). Capitals running into mixed case
    ("REASON FOR THE AMENDMENT Request from sponsor") are a label and its value; lowercase words
    other than "of", "the", ... before the last word make a sentence."""
    text = re.sub(r"\s*\([^)\d]*\)?\s*", " ", text).strip(STRIP) or text.strip(STRIP)
    words = text.split()
    letters = sum(c.isalpha() for c in text)
    if not words or letters < 2 or len(words) > 10 or letters < 0.65 * len(text.replace(" ", "")):
        return False
    if sum(c.isdigit() for c in text) > 1 or not text[0].isupper() or text[-1:] == "!":
        return False
    if text.isupper():
        return True
    plain = [re.sub(r"[^A-Za-z]", "", w) for w in words]
    caps = sum(len(w) >= 2 and w.isupper() for w in plain)
    mixed = sum(len(w) >= 3 and not w.isupper() and w.lower() not in _FUNCTION for w in plain)
    if caps >= 2 and mixed:
        return False
    lower = [i for i, w in enumerate(plain) if w and w.islower() and w not in _FUNCTION]
    return not lower or lower == [len(words) - 1] and len(words) <= 4


def weak_label(text: str) -> bool:
    """A label without a colon: label-like, and naming a field or followed by an instruction in
    parentheses ("AMENDMENT (Attach additional sheets as necessary)")."""
    return label_like(text) and (field_words(text) or bool(re.search(r"\([a-z ]*[a-z]{3,}[a-z ]*\)", text.lower())
                                                              and re.search(r"\(\s*[A-Za-z]+ [a-z]", text)))


def cells(page: Page, lh: float) -> list[Cell]:
    out = []
    for row, line in enumerate(page.lines):
        parts = phrases(line)
        for phrase in parts:
            spans = _split_contacts([s for part in _split_inner(_unglue(_recase(phrase))) for s in _split_bars(part)])
            for span in spans:
                cell = _classify(span, row)
                if cell.lone and not cell.colon and len(parts) == 1 and len(spans) == 1 and _centred(span, page):
                    cell = Cell(span, None, None, False, row)  # a title ("FACSIMILE COVER SHEET"), not a label
                if cell.label is not None and sum(c.isalpha() for c in cell.label) < 3 \
                        and fold(cell.label).strip(" .#") not in _SHORT_LABELS:
                    cell = Cell(span, None, None, False, row)  # "Xe: Gad": noise, not a label
                out.append(cell)
    return out


def _centred(span: Span, page: Page) -> bool:
    box = span.box
    return bool(box and page.width) and abs((box[0] + box[2]) / 2 - page.width / 2) < 0.06 * page.width


def _recase(span: Span) -> Span:
    """Capitals OCR read in mixed case ("AcCOUNT", "voLUME", "sToREs") back in capitals, so a header
    reads as labels; names in mixed case ("McKeesport") have more small letters than capitals."""
    words = [Word(w.text.upper(), w.box, w.confidence) if _miscased(w.text) else w for w in span.words]
    changed = any(a is not b for a, b in zip(words, span.words))
    return Span(span.page, words, confidence=span.confidence) if changed else span


def _miscased(text: str) -> bool:
    if re.search(r"\d", text):
        return False
    turns = len(re.findall(r"[a-z][A-Z]", text))
    return turns >= 2 or turns == 1 and sum(c.isupper() for c in text) >= sum(c.islower() for c in text)


def _unglue(span: Span) -> Span:
    """Words OCR glued to a label: "NAME_Induction" and "DATEOctober" become two words each."""
    words = []
    for w in span.words:
        parts = [p for p in re.split(r"_+", w.text) if p] if "_" in w.text.strip("_") else [w.text]
        if len(parts) == 1 and (m := _INLINE_COLON.match(w.text)):
            parts = [m[1], m[2]]  # "Fax:614-466-5087"
        if len(parts) == 1 and (m := _GLUED.match(w.text)) and len(m[1]) >= 2:
            parts = [m[1], m[2]]
        if len(parts) == 1:
            words.append(w)
            continue
        total = sum(len(p) for p in parts) or 1
        left, width, pos = (w.box[0], w.box[2] - w.box[0], 0) if w.box else (0, 0, 0)
        for p in parts:
            box = (left + width * pos // total, w.box[1], left + width * (pos + len(p)) // total, w.box[3]) if w.box else None
            words.append(Word(p, box, w.confidence))
            pos += len(p)
    return span if len(words) == len(span.words) else Span(span.page, words, confidence=span.confidence)


def _split_inner(span: Span) -> list[Span]:
    """ "To: Sam Zolot MANUFACTURER: B&W" -> "To: Sam Zolot", "MANUFACTURER: B&W": a value stops at the next label."""
    words, cuts = span.words, [0]
    for i, w in enumerate(words):
        if i < 2 or not w.text.endswith(":") or len(w.text) < 3:
            continue
        start = i  # the label: up to four capitalised words ending at this one
        while start > cuts[-1] + 1 and i - start < 3 and _CAPS_WORD.match(words[start - 1].text) \
                and _CAPS_WORD.match(w.text):
            start -= 1
        head = " ".join(x.text for x in words[start:i + 1])
        before = " ".join(x.text for x in words[cuts[-1]:start])
        # a label after a value, told by a colon before it or by a change of case: "Mllw. South DIVISION
        # NAME:", "ATT. GEN. ADMIN. OFFICE Fax:"
        in_value = ":" in before or bool(re.search(r"[a-z]", before)) != bool(re.search(r"[a-z]", head))
        if start > cuts[-1] + 1 and head[0].isupper() and (head.isupper() or field_words(head) or start == i) \
                and in_value:
            cuts.append(start)  # only a value is cut at a label: "Label: value NEXT LABEL: value"
    if len(cuts) == 1:
        return [span]
    bounds = cuts + [len(words)]
    return [Span(span.page, words[a:b], confidence=span.confidence) for a, b in zip(bounds, bounds[1:])]


def _split_bars(span: Span) -> list[Span]:
    """ "NAME OF ACCOUNT | VOLUME | STORES": OCR reads a ruled table's column lines as bars; each bar
    between words ends a cell (a bar at either end of the line is a border and is only dropped)."""
    parts, current = [], []
    for w in span.words:
        text = w.text
        if re.fullmatch(r"\W*\|\W*", text):
            parts.append(current)
            current = []
            continue
        if text.startswith("|") and len(text) > 1:
            parts.append(current)
            current = []
        current.append(w)
        if text.rstrip("'\".,;:]").endswith("|"):
            parts.append(current)
            current = []
    parts.append(current)
    parts = [p for p in parts if p and any(re.search(r"[A-Za-z0-9]", w.text) for w in p)]
    if len(parts) < 2:
        return [span]
    return [Span(span.page, [_unbarred(w) for w in p], confidence=span.confidence) for p in parts]


def _unbarred(word: Word) -> Word:
    text = word.text.strip("|'‘“\".;,]")
    return word if text == word.text or not text else Word(text, word.box, word.confidence)


def _split_contacts(spans: list[Span]) -> list[Span]:
    """ "Washington, DC 20087 Tel 202-785-9700 Fax 202-887-0680": a number's label inside a line starts a cell."""
    out = []
    for span in spans:
        words, cuts = span.words, [0]
        for i in range(1, len(words) - 1):
            if _CONTACT.match(words[i].text) and _NUMBER.fullmatch(words[i + 1].text):
                cuts.append(i)
        bounds = cuts + [len(words)]
        out += [span] if len(cuts) == 1 else [Span(span.page, words[a:b], confidence=span.confidence)
                                               for a, b in zip(bounds, bounds[1:])]
    return out


def _classify(span: Span, row: int) -> Cell:
    split = split_label(span.text.lstrip("[{(<"))  # "[TYPE OF PACKINGS: All Packings"
    if split:
        label, value = split
        value = value.strip()
        if not value or BLANK.fullmatch(value):
            return Cell(span, label, None, True, row, ruled=_RULE.search(value) is not None)
        colon = span.text.index(":") if ":" in span.text else span.text.index(";")
        tail = span.tail(colon + 1)
        return Cell(span, label, tail if tail.words else None, True, row)
    if (cell := _figure_label(span, row)) is not None:
        return cell
    head = span.text.rstrip(" _.-—")
    if head.endswith((":", "?")) and len(head.split()) <= 14 and not re.search(r"\d", head) \
            and (head.isupper() or label_like(head[:-1])):
        # a long label alone ("RECORDS ... BY:"), or a question ("Pack and/or Carton?")
        return Cell(span, head[:-1].strip(STRIP), None, True, row)
    if _BOX.match(span.text) and sum(c.isalpha() for c in span.text) >= 3:
        return Cell(span, span.text.strip(STRIP), None, False, row, checkbox=True)
    if _PAGE_NUMBER.match(span.text):
        return Cell(span, None, None, False, row)
    if weak_label(span.text):
        return Cell(span, span.text.strip(STRIP), None, False, row, ruled=_RULE.search(span.text) is not None)
    # "STUDY NUMBER I-7016.401", "No. of Pages 37": a label naming a field, then the value in figures
    # or (after capitals) in mixed case
    words = span.words
    caps = 0
    while caps < len(words) and _CAPS_WORD.match(words[caps].text) and not re.search(r"\d", words[caps].text):
        caps += 1
    figures = next((i for i, w in enumerate(words) if re.search(r"\d", w.text)), len(words))
    number = _NUMBER.fullmatch(" ".join(w.text for w in words[figures:])) is not None
    for n in dict.fromkeys((caps, figures)):
        if not 0 < n < len(words) or n == figures != caps and n < 2 and not number:
            continue  # "Page 14 and Table 4" is text; "No. of Pages 37", "Tel 202-785-9700" a label and its value
        head = " ".join(w.text for w in words[:n])
        rest = [w for w in words[n:] if not BLANK.fullmatch(w.text)]
        if rest and weak_label(head) and sum(c.isalpha() for c in head) >= 3 and re.search(r"[a-z\d]", rest[0].text):
            return Cell(span, head.strip(STRIP), Span(span.page, rest, confidence=span.confidence), False, row)
    return Cell(span, None, None, False, row)


def _figure_label(span: Span, row: int) -> Cell | None:
    """ "$7.00 CARTON COUPON/BUYDOWN: Effective in ...": a label in capitals may start with the figure it
    is about (a price, an offer); text labels start with a letter, so split_label leaves these alone."""
    words = span.words
    figures = 0
    while figures < len(words) and _FIGURE.match(words[figures].text):
        figures += 1
    if not 0 < figures <= 2:
        return None
    end = next((i for i, w in enumerate(words[:8]) if w.text.endswith(":")), None)
    if end is None or end < figures:
        return None
    head = words[figures:end + 1]
    if not all(_CAPS_WORD.match(w.text) for w in head) or sum(c.isalpha() for w in head for c in w.text) < 6:
        return None
    label = " ".join(w.text for w in words[:end + 1]).rstrip(":").strip(STRIP.replace("$", ""))
    rest = [w for w in words[end + 1:] if not BLANK.fullmatch(w.text)]
    value = Span(span.page, rest, confidence=span.confidence) if rest else None
    return Cell(span, label, value, True, row)
