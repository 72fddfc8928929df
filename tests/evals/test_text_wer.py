"""Text normalisation and WER/CER against hand-computed alignments (and jiwer if present)."""

from __future__ import annotations

import numpy as np
import pytest
from arbiter.evals.text import normalize_text, number_to_words, ordinal_words, word_count
from arbiter.evals.wer import align, cer, wer, word_alignment

pytestmark = pytest.mark.evals


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Hello,   WORLD!", "hello world"),
        ("Dr. Smith paid $5.", "dr smith paid five dollars"),
        (
            "It’s the 21st-century “rock & roll” [laughter]",
            "it's the twenty first century rock and roll",
        ),
        ("Um, I have 1,234 apples", "i have one thousand two hundred thirty four apples"),
        ("3.5 pears at 3:30pm", "three point five pears at three thirty pm"),
        ("-4 degrees, 100% sure", "minus four degrees one hundred percent sure"),
        ("twenty-five", "twenty five"),
        ("Café naïve", "cafe naive"),
        ("'quoted' words", "quoted words"),
        ("   ", ""),
    ],
)
def test_normalize_text(raw, expected):
    assert normalize_text(raw) == expected
    assert normalize_text(expected) == expected  # idempotent


def test_digits_and_words_normalise_to_the_same_text():
    assert normalize_text("I was born in 1990") == normalize_text(
        "i was born in one thousand nine hundred ninety"
    )
    assert normalize_text("25 cats") == normalize_text("Twenty-five cats.")


def test_fillers_can_be_kept():
    assert normalize_text("uh hello", drop_fillers=False) == "uh hello"
    assert normalize_text("uh hello") == "hello"


@pytest.mark.parametrize(
    ("n", "words"),
    [
        (0, "zero"),
        (13, "thirteen"),
        (40, "forty"),
        (105, "one hundred five"),
        (1_000_001, "one million one"),
        (2_500_000_000, "two billion five hundred million"),
    ],
)
def test_number_to_words(n, words):
    assert number_to_words(n) == words


def test_ordinals():
    assert [ordinal_words(n) for n in (1, 2, 3, 12, 20, 21, 100)] == [
        "first",
        "second",
        "third",
        "twelfth",
        "twentieth",
        "twenty first",
        "one hundredth",
    ]


def test_word_count():
    assert word_count("Hello, world! It's 2 o'clock.") == 5


# ---------------------------------------------------------------- hand-computed alignments


def test_substitution_and_deletion():
    a = word_alignment("the cat sat on the mat", "the cat sit on mat")
    assert (a.substitutions, a.deletions, a.insertions, a.hits) == (1, 1, 0, 4)
    assert a.rate == pytest.approx(2 / 6)


def test_insertions():
    a = word_alignment("a b c", "a x b c d")
    assert (a.substitutions, a.deletions, a.insertions) == (0, 0, 2)
    assert wer("a b c", "a x b c d") == pytest.approx(2 / 3)


def test_wer_can_exceed_one():
    assert wer("yes", "no no no") == pytest.approx(3.0)


def test_empty_hypothesis_is_all_deletions():
    a = word_alignment("hello world", "")
    assert (a.deletions, a.rate) == (2, 1.0)


def test_empty_reference_is_undefined():
    with pytest.raises(ValueError, match="empty reference"):
        wer("", "something")
    with pytest.raises(ValueError, match="empty reference"):
        wer("[noise]", "something")  # normalises to nothing


def test_normalisation_applies_before_wer():
    assert wer("Dr. Smith paid $5.", "dr smith paid five dollars") == 0.0
    assert wer("Dr. Smith paid $5.", "dr smith paid five dollars", normalize=False) > 0.0


def test_cer_kitten_sitting():
    assert cer("kitten", "sitting") == pytest.approx(3 / 6)
    assert cer("abc", "abc") == 0.0
    # spaces count as characters: "a b" -> "ab" deletes one of three
    assert cer("a b", "ab") == pytest.approx(1 / 3)


def test_align_matches_a_plain_dynamic_programme():
    rng = np.random.default_rng(3)
    for _ in range(200):
        ref = list(rng.integers(0, 4, rng.integers(0, 9)))
        hyp = list(rng.integers(0, 4, rng.integers(0, 9)))
        d = [[i + j if i * j == 0 else 0 for j in range(len(hyp) + 1)] for i in range(len(ref) + 1)]
        for i in range(1, len(ref) + 1):
            for j in range(1, len(hyp) + 1):
                d[i][j] = min(
                    d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (ref[i - 1] != hyp[j - 1])
                )
        a = align([str(t) for t in ref], [str(t) for t in hyp])
        assert a.errors == d[-1][-1]
        assert a.hits + a.substitutions + a.deletions == len(ref)
        assert a.hits + a.substitutions + a.insertions == len(hyp)


def test_cross_check_with_jiwer():
    jiwer = pytest.importorskip("jiwer")
    rng = np.random.default_rng(11)
    vocab = ["the", "a", "cat", "dog", "sat", "ran", "on", "under", "mat", "rug", "quickly"]
    for _ in range(50):
        ref = " ".join(rng.choice(vocab, rng.integers(1, 15)))
        hyp = " ".join(rng.choice(vocab, rng.integers(0, 15)))
        assert wer(ref, hyp, normalize=False) == pytest.approx(jiwer.wer(ref, hyp))
        assert cer(ref, hyp, normalize=False) == pytest.approx(jiwer.cer(ref, hyp))
