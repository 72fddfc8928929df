"""English text normalisation before WER, the way speech benchmarks score transcripts.

A transcript is judged on the words, not on how they were written: "Dr. Smith paid $5." and
"dr smith paid five dollars" must match. The reference and the hypothesis go through the same
function, so every rule only has to be consistent, not linguistically complete:

1. Unicode NFKC; accents removed (é -> e); curly quotes made straight; lower case.
2. Non-speech annotations in [brackets], <angle brackets> or (parentheses) dropped.
3. Symbols spoken as words: & -> and, % -> percent, $N / €N / £N -> N dollars / euros / pounds.
4. Numbers spelled out: 1,234 -> one thousand two hundred thirty four; 3.5 -> three point
   five; 21st -> twenty first; -4 -> minus four. (Digits -> words, never the reverse.)
5. Hyphens and other punctuation become spaces; apostrophes inside words stay (don't).
6. Hesitations (um, uh, er, ah, hmm, mm) dropped, whitespace collapsed.
"""

from __future__ import annotations

import re
import unicodedata

__all__ = ["normalize_text", "number_to_words", "ordinal_words", "word_count"]


# fmt: off
_ONES = [
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
    "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen",
    "nineteen",
]
# fmt: on
_TENS = ["_", "_", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]
_SCALES = ((10**12, "trillion"), (10**9, "billion"), (10**6, "million"), (10**3, "thousand"))
# fmt: off
_ORDINAL_WORDS = {
    "one": "first", "two": "second", "three": "third", "five": "fifth", "eight": "eighth",
    "nine": "ninth", "twelve": "twelfth",
}
# fmt: on
_CURRENCY = {"$": "dollars", "€": "euros", "£": "pounds", "¥": "yen"}
_FILLERS = frozenset({"um", "umm", "uh", "uhh", "er", "erm", "ah", "hmm", "mm", "mhm"})

_BRACKETED = re.compile(r"\[[^\]]*\]|<[^>]*>|\([^)]*\)")
_CURRENCY_AMOUNT = re.compile(r"([$€£¥])\s?(\d[\d,]*(?:\.\d+)?)")
_ORDINAL = re.compile(r"\b(\d+)(st|nd|rd|th)\b")
_NUMBER = re.compile(r"(?<![\w.])(-)?(\d{1,3}(?:,\d{3})+|\d+)(?:\.(\d+))?")
_NON_WORD = re.compile(r"[^\w' ]+")
_EDGE_APOSTROPHE = re.compile(r"(?<!\w)'|'(?!\w)")


def number_to_words(n: int) -> str:
    """Spell a non-negative integer in English words, without "and" (1105 -> one thousand one
    hundred five). Integers of 10**15 or more are read digit by digit."""
    if n < 0:
        return "minus " + number_to_words(-n)
    if n >= 10**15:
        return " ".join(_ONES[int(d)] for d in str(n))
    if n < 20:
        return _ONES[n]
    if n < 100:
        tens, ones = divmod(n, 10)
        return _TENS[tens] + ("" if ones == 0 else " " + _ONES[ones])
    if n < 1000:
        hundreds, rest = divmod(n, 100)
        return _ONES[hundreds] + " hundred" + ("" if rest == 0 else " " + number_to_words(rest))
    for value, name in _SCALES:
        if n >= value:
            head, rest = divmod(n, value)
            tail = "" if rest == 0 else " " + number_to_words(rest)
            return number_to_words(head) + " " + name + tail
    raise AssertionError("unreachable")  # pragma: no cover


def ordinal_words(n: int) -> str:
    """Spell an ordinal (21 -> twenty first, 12 -> twelfth, 100 -> one hundredth)."""
    words = number_to_words(n).split()
    last = words[-1]
    if last in _ORDINAL_WORDS:
        words[-1] = _ORDINAL_WORDS[last]
    elif last.endswith("y"):
        words[-1] = last[:-1] + "ieth"
    else:
        words[-1] = last + "th"
    return " ".join(words)


def _spell_number(match: re.Match[str]) -> str:
    sign, integer, fraction = match.group(1), match.group(2), match.group(3)
    words = number_to_words(int(integer.replace(",", "")))
    if fraction:
        words += " point " + " ".join(_ONES[int(d)] for d in fraction)
    return (" minus " if sign else " ") + words + " "


def _spell_currency(match: re.Match[str]) -> str:
    return f" {match.group(2)} {_CURRENCY[match.group(1)]} "


def _strip_accents(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def normalize_text(text: str, *, drop_fillers: bool = True) -> str:
    """Normalise English text for WER/CER (rules in the module docstring).

    Idempotent: normalize_text(normalize_text(s)) == normalize_text(s).
    """
    s = unicodedata.normalize("NFKC", text)
    s = _strip_accents(s)
    s = s.replace("\u2019", "'").replace("\u2018", "'").replace("`", "'")
    s = s.lower()
    s = _BRACKETED.sub(" ", s)
    s = s.replace("&", " and ").replace("%", " percent ")
    s = _CURRENCY_AMOUNT.sub(_spell_currency, s)
    s = _ORDINAL.sub(lambda m: " " + ordinal_words(int(m.group(1))) + " ", s)
    s = _NUMBER.sub(_spell_number, s)
    s = s.replace("_", " ")
    s = _NON_WORD.sub(" ", s)
    s = _EDGE_APOSTROPHE.sub(" ", s)
    words = s.split()
    if drop_fillers:
        words = [w for w in words if w not in _FILLERS]
    return " ".join(words)


def word_count(text: str) -> int:
    """Number of words after normalisation (what speaking rate counts)."""
    return len(normalize_text(text).split())
