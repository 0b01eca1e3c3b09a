"""Corpus BLEU (Papineni, Roukos, Ward and Zhu 2002), in pure Python: no Keras, no TensorFlow.

BLEU-n is the brevity penalty times the geometric mean of the modified n-gram precisions of
orders 1 to n (uniform weights), all counted over the whole corpus, as in the paper:

- the modified precision of order k is the sum over the corpus of each hypothesis' n-gram counts,
  each clipped to the most times the n-gram occurs in one of its references, over the number of
  n-grams in all the hypotheses;
- the brevity penalty is 1 when the hypotheses' total length c exceeds r, the sum over the corpus
  of the reference length closest to each hypothesis' length (the shorter one on a tie, as NLTK
  does), else exp(1 - r / c) (0 when c is 0).

There is no smoothing: an order whose precision is 0 (no n-gram matches, or no hypothesis has n
words) gives BLEU 0 for that order and every order above it. This agrees with NLTK's
`corpus_bleu` (tested against it), except that NLTK counts a hypothesis shorter than n as one
n-gram of order n (its denominator is at least 1 per sentence), where the paper counts none.

Texts are lower-cased and split on whitespace; a text given as a list of tokens is used as it is.

Example:

>>> scores = corpus_bleu([["the cat is on the mat", "there is a cat on the mat"]], ["the cat is on the mat"])
>>> {name: round(value, 4) for name, value in scores.items()}
{'bleu1': 1.0, 'bleu2': 1.0, 'bleu3': 1.0, 'bleu4': 1.0}
>>> round(corpus_bleu(["a red circle on the left"], ["a red circle on the right"])["bleu2"], 4)  # sqrt(5/6 * 4/5)
0.8165
>>> exact_match([["two bags side by side"], "a bag"], ["Two bags side by side", "a sandal"])
0.5
"""

import collections
import math

from mmkeras.validation import received


def tokens(text):
    """The tokens of `text`: a str lower-cased and split on whitespace, or a list of tokens as it is.

    Example:

    >>> tokens("The image shows  a Red circle"), tokens(["A", "bag"])
    (['the', 'image', 'shows', 'a', 'red', 'circle'], ['A', 'bag'])
    """
    if isinstance(text, str):
        return text.lower().split()
    if isinstance(text, (list, tuple)) and all(isinstance(token, str) for token in text):
        return list(text)
    raise ValueError(f"A text must be a str or a list of str tokens. {received('text', text)}")


def _corpus(references, hypotheses):
    """Check the corpus; return `(references, hypotheses)` as token lists (a list of references each)."""
    for name, value in (("references", references), ("hypotheses", hypotheses)):
        if isinstance(value, str) or not hasattr(value, "__len__"):
            raise ValueError(f"`{name}` must be a list, one entry per hypothesis. {received(name, value)}")
    if len(references) != len(hypotheses):
        raise ValueError(
            "`references` and `hypotheses` must have the same length (one list of references per hypothesis). "
            f"Received: {len(references)} references and {len(hypotheses)} hypotheses"
        )
    if len(hypotheses) == 0:
        raise ValueError(f"`hypotheses` must hold at least one hypothesis. {received('hypotheses', hypotheses)}")
    token_references = []
    for i, refs in enumerate(references):
        refs = [refs] if isinstance(refs, str) else refs
        if not isinstance(refs, (list, tuple)) or len(refs) == 0:
            raise ValueError(
                "`references` must give each hypothesis a str or a non-empty list of references. "
                f"Received: references[{i}]={refs!r}"
            )
        token_references.append([tokens(ref) for ref in refs])
    return token_references, [tokens(hypothesis) for hypothesis in hypotheses]


def _ngrams(words, order):
    return collections.Counter(tuple(words[i:i + order]) for i in range(len(words) - order + 1))


def corpus_bleu(references, hypotheses, max_order=4):
    """Cumulative corpus BLEU-1 to BLEU-`max_order` of `hypotheses` against their `references`.

    Args:
        references: one entry per hypothesis: a str (its one reference) or a list of references,
            each a str or a list of tokens (so one tokenized reference is `[["a", "bag"]]`).
        hypotheses: list of str (or lists of tokens), the generated captions.
        max_order: int >= 1, the longest n-gram. Defaults to `4`.

    Returns:
        dict `{"bleu1": ..., "bleu{max_order}": ...}` of floats in [0, 1]: BLEU-n is the brevity
        penalty times the geometric mean of the modified precisions of orders 1 to n.

    Raises:
        ValueError: for lengths that differ, an empty corpus, a hypothesis without references,
            a text that is neither a str nor a list of str, or `max_order` < 1.

    Example:

    >>> corpus_bleu(["a red circle"], ["a red circle"], max_order=3)
    {'bleu1': 1.0, 'bleu2': 1.0, 'bleu3': 1.0}
    >>> round(corpus_bleu(["the image shows a red circle"], ["the image shows a circle"])["bleu1"], 4)  # exp(1 - 6/5)
    0.8187
    """
    if isinstance(max_order, bool) or not isinstance(max_order, int) or max_order < 1:
        raise ValueError(f"`max_order` must be an int >= 1. {received('max_order', max_order)}")
    references, hypotheses = _corpus(references, hypotheses)
    matches, totals = [0] * max_order, [0] * max_order
    hypothesis_length = reference_length = 0
    for refs, hypothesis in zip(references, hypotheses):
        length = len(hypothesis)
        hypothesis_length += length
        reference_length += min((len(ref) for ref in refs), key=lambda n: (abs(n - length), n))
        for k in range(max_order):
            counts = _ngrams(hypothesis, k + 1)
            most = collections.Counter()
            for ref in refs:
                most |= _ngrams(ref, k + 1)  # the most times each n-gram occurs in one reference
            matches[k] += sum(min(count, most[ngram]) for ngram, count in counts.items())
            totals[k] += sum(counts.values())
    if hypothesis_length == 0:
        penalty = 0.0
    elif hypothesis_length > reference_length:
        penalty = 1.0
    else:
        penalty = math.exp(1 - reference_length / hypothesis_length)
    scores, logs = {}, []
    for k in range(max_order):
        if logs is not None and matches[k]:
            logs.append(math.log(matches[k] / totals[k]))
        else:
            logs = None  # no smoothing: a zero precision is BLEU 0 at this order and above
        scores[f"bleu{k + 1}"] = 0.0 if logs is None else penalty * math.exp(math.fsum(logs) / (k + 1))
    return scores


def exact_match(references, hypotheses):
    """The share of `hypotheses` equal to one of their references (after `tokens`).

    Args:
        references, hypotheses: as `corpus_bleu` takes them.

    Example:

    >>> exact_match([["a red circle", "a red disc"], "a blue box"], ["a red  disc", "a blue circle"])
    0.5
    """
    references, hypotheses = _corpus(references, hypotheses)
    return sum(hypothesis in refs for refs, hypothesis in zip(references, hypotheses)) / len(hypotheses)
