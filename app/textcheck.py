"""Whether a text reads like words: tells a real text layer from OCR garbage or a broken font encoding."""
from __future__ import annotations

import re
import unicodedata

_JOINERS = re.compile(r"[’'\-−–./_:@&,()+]")  # inside one token: l’email, INV-2024, a@b.com, 1,620.00, (870)-931
_RUNS = re.compile(r"\d+|[^\W\d_]+")
_NO_TEXT = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff\ue000-\uf8ff\ufffd]")
_VOWELS = set("aeiouyàáâãäåæèéêëìíîïòóôõöøùúûüýÿœ")


SAMPLE = 100  # tokens looked at, spread over the text: the share settles long before (and it runs on every PDF page)


def word_likeness(text: str) -> float:
    """Share of the whitespace-separated tokens that look like words, numbers or codes (0..1)."""
    tokens = text.split()
    if not tokens:
        return 0.0
    tokens = tokens[:: -(-len(tokens) // SAMPLE)]
    return sum(_plausible(t) for t in tokens) / len(tokens)


def _is_mark(ch: str) -> bool:
    return unicodedata.category(ch)[0] in "PS"  # punctuation and symbols: € • ° * “ ”


def _plausible(token: str) -> bool:
    start, end = 0, len(token)
    while start < end and _is_mark(token[start]):
        start += 1
    while end > start and _is_mark(token[end - 1]):
        end -= 1
    core = token[start:end]
    if not core:
        return True  # a bullet, a currency sign, a rule of asterisks
    if _NO_TEXT.search(core):
        return False  # control, private-use and replacement characters: a font without text
    return all(_plausible_part(p) for p in _JOINERS.split(core) if p)


def _plausible_part(part: str) -> bool:
    if part.isdigit():
        return True
    if part.isalpha():
        if not all(ch < "\u0250" for ch in part):
            return True  # other scripts: no cheap check beyond the character classes
        return len(part) <= 4 or any(ch in _VOWELS for ch in part.lower()) or (part.isupper() and len(part) <= 6)
    if part.isalnum():
        # Codes are upper case and digits (NL50INGB0683, B01); 10kg, 3rd, user9 switch once. Letters and
        # digits alternating in lower case (t1e, qu1ck, br0wn) are misread letters.
        return part == part.upper() or len(_RUNS.findall(part)) <= 2
    return False  # a stray symbol inside a word: qu!ck, br|own
