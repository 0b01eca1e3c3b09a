"""Corpus BLEU (mmkeras.bleu) against NLTK, published values and hand computations."""

import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mmkeras.bleu import corpus_bleu, exact_match, tokens

WEIGHTS = {"bleu1": (1.0,), "bleu2": (1 / 2,) * 2, "bleu3": (1 / 3,) * 3, "bleu4": (1 / 4,) * 4}
FAST = settings(max_examples=60, derandomize=True, deadline=None, database=None,
                suppress_health_check=list(HealthCheck))

# NLTK's `corpus_bleu` docstring example (nltk/translate/bleu_score.py), itself from Papineni et al.'s
# example sentences: documented values 0.5920... (BLEU-4) and, with weights (0.5, 0.5), 0.8242...
HYP1 = ["It", "is", "a", "guide", "to", "action", "which", "ensures", "that", "the", "military", "always",
        "obeys", "the", "commands", "of", "the", "party"]
REF1A = ["It", "is", "a", "guide", "to", "action", "that", "ensures", "that", "the", "military", "will",
         "forever", "heed", "Party", "commands"]
REF1B = ["It", "is", "the", "guiding", "principle", "which", "guarantees", "the", "military", "forces", "always",
         "being", "under", "the", "command", "of", "the", "Party"]
REF1C = ["It", "is", "the", "practical", "guide", "for", "the", "army", "always", "to", "heed", "the",
         "directions", "of", "the", "party"]
HYP2 = ["he", "read", "the", "book", "because", "he", "was", "interested", "in", "world", "history"]
REF2A = ["he", "was", "interested", "in", "world", "history", "because", "he", "read", "the", "book"]


def _nltk(references, hypotheses):
    """NLTK's cumulative BLEU-1..4 of the same corpus (tokenized as mmkeras does), no smoothing."""
    bleu_score = pytest.importorskip("nltk.translate.bleu_score")
    refs = [[tokens(r) for r in ([rs] if isinstance(rs, str) else rs)] for rs in references]
    hyps = [tokens(h) for h in hypotheses]
    return {name: bleu_score.corpus_bleu(refs, hyps, weights=w) for name, w in WEIGHTS.items()}


def _close(ours, theirs):
    assert ours.keys() == theirs.keys()
    for name in ours:  # NLTK gives about 1e-77 where a precision is 0 (its "no smoothing" floor)
        assert ours[name] == pytest.approx(theirs[name], rel=1e-12, abs=1e-12), name


def test_published_values():
    # NLTK's documented example: 0.8242... (BLEU-2) and 0.5920... (BLEU-4).
    scores = corpus_bleu([[REF1A, REF1B, REF1C], [REF2A]], [HYP1, HYP2])
    assert math.floor(scores["bleu2"] * 1e4) == 8242 and math.floor(scores["bleu4"] * 1e4) == 5920
    # Papineni et al. 2002, section 2.1: "the the the the the the the" against these two references has a
    # modified unigram precision of 2/7 (and, 7 words against a 7-word reference, no brevity penalty).
    scores = corpus_bleu([["the cat is on the mat", "there is a cat on the mat"]], ["the the the the the the the"])
    assert scores["bleu1"] == pytest.approx(2 / 7) and scores["bleu2"] == 0.0 == scores["bleu4"]


@pytest.mark.filterwarnings("ignore::UserWarning")  # NLTK warns of zero n-gram overlaps
@pytest.mark.parametrize("references, hypotheses", [
    ([[REF1A, REF1B, REF1C], [REF2A]], [HYP1, HYP2]),
    ([["the cat is on the mat", "there is a cat on the mat"]], ["the the the the the the the"]),
    (["a sneaker on the left and a shirt on the right", "two bags side by side"],
     ["a sneaker on the left and a bag on the right", "two bags side by side"]),
    ([["the image shows a red circle", "a red circle"]], ["The image shows  a red CIRCLE"]),
    ([["a b c d e f", "a b c d"]], ["a b c d e"]),  # closest references 4 and 6 tie: the shorter, 4
    ([["a b c d e f g h", "x y z w"]], ["a b c d e f"]),  # shorter than its closest reference: brevity penalty
    ([["a b c d"]], ["d c b a"]),  # unigrams only
    ([["a b c d", "b c d e"], ["c c c c"]], ["a b c d e", "c c c c c c"]),
])
def test_against_nltk_on_hand_cases(references, hypotheses):
    _close(corpus_bleu(references, hypotheses), _nltk(references, hypotheses))


WORDS = st.lists(st.sampled_from("a b c d e".split()), min_size=4, max_size=12)


@FAST
@given(corpus=st.lists(st.tuples(st.lists(WORDS, min_size=1, max_size=3), WORDS), min_size=1, max_size=8))
def test_against_nltk_on_random_corpora(corpus):
    # Hypotheses of at least 4 words: NLTK counts a shorter one as one n-gram of each longer order (see below).
    references = [[" ".join(r) for r in refs] for refs, _ in corpus]
    hypotheses = [" ".join(h) for _, h in corpus]
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = _nltk(references, hypotheses)
    _close(corpus_bleu(references, hypotheses), theirs)


def test_a_perfect_corpus_scores_one():
    captions = ["the image shows a red circle", "two bags side by side", "a coat on the left and a top on the right"]
    assert corpus_bleu([[c, "something else entirely"] for c in captions], captions) == {
        "bleu1": 1.0, "bleu2": 1.0, "bleu3": 1.0, "bleu4": 1.0}
    assert exact_match(captions, [c.upper() for c in captions]) == 1.0


def test_brevity_penalty_and_empty_hypotheses():
    # 5 words against 6: every n-gram matches, the penalty is exp(1 - 6/5) at every order.
    scores = corpus_bleu(["the image shows a red circle"], ["the image shows a red"])
    assert scores == pytest.approx({f"bleu{n}": math.exp(1 - 6 / 5) for n in range(1, 5)})
    assert corpus_bleu(["a red circle on the left"], [""]) == {"bleu1": 0.0, "bleu2": 0.0, "bleu3": 0.0, "bleu4": 0.0}
    # An empty hypothesis adds no n-gram (the paper; NLTK would count one per order) and its closest
    # reference length (2) to r: c = 6, r = 8, all precisions 1.
    scores = corpus_bleu(["a red circle on the left", "two bags"], ["a red circle on the left", ""])
    assert scores == pytest.approx({f"bleu{n}": math.exp(1 - 8 / 6) for n in range(1, 5)})
    # A hypothesis of 2 words has no trigram: the corpus' trigram precision is over the other's only.
    scores = corpus_bleu(["a b c d", "x y"], ["a b c d", "x y"])
    assert scores == {"bleu1": 1.0, "bleu2": 1.0, "bleu3": 1.0, "bleu4": 1.0}
    # No hypothesis has 4 words: no 4-gram at all, BLEU-4 is 0 (no smoothing).
    assert corpus_bleu(["a b c"], ["a b c"]) == {"bleu1": 1.0, "bleu2": 1.0, "bleu3": 1.0, "bleu4": 0.0}
    # No bigram matches: BLEU-2 and above are 0 whatever the unigrams.
    assert corpus_bleu(["a b c d"], ["d c b a"]) == {"bleu1": 1.0, "bleu2": 0.0, "bleu3": 0.0, "bleu4": 0.0}


def test_inputs_and_max_order():
    assert list(corpus_bleu(["a b"], ["a b"], max_order=2)) == ["bleu1", "bleu2"]
    assert corpus_bleu(["a b c"], [["a", "b", "c"]]) == corpus_bleu([[["a", "b", "c"]]], ["A B C"])
    assert exact_match([["a red circle", "a red disc"], "a blue box"], ["a red disc", "a blue circle"]) == 0.5


@pytest.mark.parametrize("call, message", [
    (lambda: corpus_bleu(["a", "b"], ["a"]), r"`references` and `hypotheses` must have the same length "
                                             r"\(one list of references per hypothesis\)\. Received: 2 references "
                                             r"and 1 hypotheses"),
    (lambda: corpus_bleu([], []), r"`hypotheses` must hold at least one hypothesis\. Received: hypotheses=\[\]"),
    (lambda: corpus_bleu(["a"], ["a"], max_order=0), r"`max_order` must be an int >= 1\. Received: max_order=0"),
    (lambda: corpus_bleu(["a"], ["a"], max_order="4"), r"Received: max_order='4'"),
    (lambda: corpus_bleu(["a"], "a"), r"`hypotheses` must be a list, one entry per hypothesis\. Received: "
                                      r"hypotheses='a'"),
    (lambda: corpus_bleu([[]], ["a"]), r"a non-empty list of references\. Received: references\[0\]=\[\]"),
    (lambda: exact_match([["a"]], [3]), r"A text must be a str or a list of str tokens\. Received: text=3"),
])
def test_errors(call, message):
    with pytest.raises(ValueError, match=message):
        call()
