"""Word and character error rates by Levenshtein alignment.

    WER = (S + D + I) / N     over words of the normalised reference (N words)
    CER = (S + D + I) / N     over characters of the normalised reference, spaces included

S, D, I are the substitutions, deletions and insertions of a minimum-cost alignment (each edit
costs 1). Both are unitless ratios >= 0 and can exceed 1 when the hypothesis inserts words;
clamp before using them as a 0..1 score.

The dynamic programme is vectorised by rows: within a row the insertion chain
``d[j] = min(base[j], d[j-1] + 1)`` equals ``j + cummin(base[k] - k)``, so each row is a few
numpy operations instead of a Python loop over cells. The full table is kept for the backtrace
that splits the distance into S, D and I (memory (N+1)(M+1) int32).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from arbiter.evals.text import normalize_text

__all__ = ["Alignment", "align", "cer", "wer", "word_alignment"]


@dataclass(frozen=True, slots=True)
class Alignment:
    """Edit counts of one alignment. ``reference_length`` is N in the rate formulas."""

    substitutions: int
    deletions: int
    insertions: int
    hits: int
    reference_length: int

    @property
    def errors(self) -> int:
        """S + D + I: the edit distance."""
        return self.substitutions + self.deletions + self.insertions

    @property
    def rate(self) -> float:
        """(S + D + I) / N. Raises ValueError for an empty reference (the rate is undefined)."""
        if self.reference_length == 0:
            raise ValueError("error rate is undefined for an empty reference")
        return self.errors / self.reference_length


def _encode(ref: Sequence[str], hyp: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Map tokens to integers so comparisons are vectorised."""
    vocab: dict[str, int] = {}
    r = np.array([vocab.setdefault(t, len(vocab)) for t in ref], dtype=np.int64)
    h = np.array([vocab.setdefault(t, len(vocab)) for t in hyp], dtype=np.int64)
    return r, h


def align(reference: Sequence[str], hypothesis: Sequence[str]) -> Alignment:
    """Minimum edit alignment of two token sequences (words or characters).

    Ties in the backtrace prefer match/substitution, then deletion, then insertion, so the
    split of a given distance into S/D/I is deterministic.
    """
    n, m = len(reference), len(hypothesis)
    if n == 0 or m == 0:
        return Alignment(0, n, m, 0, n)
    r, h = _encode(reference, hypothesis)
    cols = np.arange(m + 1, dtype=np.int32)
    table = np.empty((n + 1, m + 1), dtype=np.int32)
    table[0] = cols
    for i in range(1, n + 1):
        prev = table[i - 1]
        cost = (h != r[i - 1]).astype(np.int32)
        base = np.empty(m + 1, dtype=np.int32)
        base[0] = i
        base[1:] = np.minimum(prev[1:] + 1, prev[:-1] + cost)
        table[i] = np.minimum.accumulate(base - cols) + cols

    subs = dels = ins = hits = 0
    i, j = n, m
    while i > 0 or j > 0:
        here = table[i, j]
        if i > 0 and j > 0:
            same = r[i - 1] == h[j - 1]
            if here == table[i - 1, j - 1] + (0 if same else 1):
                hits += int(same)
                subs += int(not same)
                i, j = i - 1, j - 1
                continue
        if i > 0 and here == table[i - 1, j] + 1:
            dels += 1
            i -= 1
        else:
            ins += 1
            j -= 1
    return Alignment(subs, dels, ins, hits, n)


def word_alignment(reference: str, hypothesis: str, *, normalize: bool = True) -> Alignment:
    """Word-level alignment of two texts (normalised with :func:`normalize_text` by default)."""
    if normalize:
        reference, hypothesis = normalize_text(reference), normalize_text(hypothesis)
    return align(reference.split(), hypothesis.split())


def wer(reference: str, hypothesis: str, *, normalize: bool = True) -> float:
    """Word error rate (S + D + I) / N_words. ValueError if the reference has no words."""
    return word_alignment(reference, hypothesis, normalize=normalize).rate


def cer(reference: str, hypothesis: str, *, normalize: bool = True) -> float:
    """Character error rate (S + D + I) / N_chars, spaces counted, whitespace collapsed.

    ValueError if the reference has no characters.
    """
    if normalize:
        reference, hypothesis = normalize_text(reference), normalize_text(hypothesis)
    else:
        reference, hypothesis = " ".join(reference.split()), " ".join(hypothesis.split())
    return align(list(reference), list(hypothesis)).rate
