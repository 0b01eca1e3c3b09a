"""Fashion-MNIST pairs: true or false statements about two real photos side by side.

Each example is two of Fashion-MNIST's real 28x28 grey product photos side by side (one 28x56x1
uint8 image) and a short generated sentence about them, labelled `true` (1) or `false` (0): one
sigmoid, output named `answer`. Six sentence templates, each a **fact** about the pair with a few
possible values, stated truly or falsely:

| template | fact about the pair | values | example sentences |
|---|---|---:|---|
| `left` | the class on the left | 10 | "the sneaker is on the left" |
| `right` | the class on the right | 10 | "the trousers are on the right" |
| `presence` | whether a named class is shown (class drawn) | 2 | "there is a bag"; "there is no bag" |
| `relation` | the two (different) classes, in order | 90 | "the shirt is to the left of the ankle boot"; "the ankle boot is to the right of the shirt" |
| `count` | how many items are of a category (footwear or tops, drawn) | 3 | "no item is footwear"; "exactly one item is a top"; "there are two pieces of footwear" |
| `sameness` | whether the two classes are the same | 2 | "both items are the same kind"; "the two items differ" |

Footwear is sandal, sneaker and ankle boot; tops are what is worn on the upper body: t-shirt (the
class "t-shirt or top"), pullover, coat and shirt. The class "t-shirt or top" is called "t-shirt",
so that "top" only names the category.

**Neither the text alone nor the image alone says anything about the label.** Each example is
made in this order, with the split's seed:

1. a template, the same number of examples for each;
2. the fact's value, and what the sentence names without stating it (the class of `presence`,
   the category of `count`, the word order of `relation`): every combination the same number of
   times within a template;
3. the label, balanced within each such combination (so within each template: 50% true, to within
   one example, in the test split and in the whole training split; the validation split, whole
   groups of photos, is balanced only on average), independently of anything else;
4. the sentence: a true one states the pair's value, a false one another value drawn uniformly;
5. the classes of the two photos: ones that have the fact's value (for `left`, the left photo is
   of that class; for `count` with one item of footwear, one side is a random footwear class and
   the other a random class that is not), every other choice uniform; then two real photos of
   those classes (below).

The photos are drawn from the template and the fact (step 5), never from the label, so the label
is independent of the image: an image-only model is at chance. The sentence is independent of the
label too, template by template: the stated value is uniform among the fact's `m` values for true
examples (it is the fact's value, uniform by step 2), and for false ones it is uniform among the
`m - 1` values that differ from a uniform fact, which is uniform again; what the sentence names
without stating it is drawn before the label. So P(sentence | true) = P(sentence | false), and a
text-only model is at chance:

- `left`, `right`: "the sneaker is on the left" is 1/10 of the true and 1/10 of the false
  statements (true: a sneaker on the left; false: another class on the left).
- `presence`: each class is named as often; the pairs show it or not half and half, so "there is
  a bag" is stated by the true examples with a bag and the false ones without, equally many.
- `relation`: each of the 90 ordered pairs of two classes is the fact equally often, and stated
  as often truly as falsely, in either word order.
- `count`: no, one and two items of the category are equally frequent (pairs are made so), so
  each of the three counts is stated by 1/3 of the true and 1/3 of the false examples.
- `sameness`: half the pairs show two items of one class, so "both items are the same kind" is
  stated by the true same-class and the false different-class examples, equally many.

Measured (tests/test_fashion_pairs.py) on the 10,000 test examples, answering with the majority
label of the 60,000 training examples (`seed=0`) of the same exact sentence: 49.4%; of the same
(left class, right class): 49.5%. Only reading both tells the label. The pairs' classes are made
for their facts, not drawn at random: pairs of one class, footwear and tops are more frequent than
in random pairs.

Photos: each official split's photos are dealt, class by class in a seeded order, into groups of
40 (four of each class; 1,500 groups for training, 250 for test), and each group makes 40 pairs,
taking the photos of a class in turn, so a photo is shown about twice (0 to 6 times: the classes
the pairs ask for vary from group to group; 1.4% of the training photos are not shown). The
validation split (`validation_split` when loading) holds out whole groups (`split_by_group`), so
no validation photo is in a training pair; `DatasetSplits.with_validation`, on splits loaded with
`validation_split=0`, would hold out pairs, not photos. The training examples are drawn with
`seed`; the test examples always with `TEST_PAIRING_SEED`, so the test set never changes. 60,000
training (54,000 train + 6,000 validation with `validation_split=0.1`) and 10,000 test examples;
the sentences are lower case, at most 10 words (`sequence_length`). The 28x56 images are built
once per split (the training table is shared by the validation split: use `example_images()`).

Example:

>>> statement("relation", 1, PAIRS.index((6, 9)))  # word order 1: "... to the right of ..."
'the ankle boot is to the right of the shirt'
>>> statement("presence", 8, 0), statement("count", 0, 2)  # a bag, absent; footwear, two
('there is no bag', 'there are two pieces of footwear')
"""

import os

import numpy as np

from mmkeras.data import fashion_mnist
from mmkeras.data.datasets import DatasetSplits, register_dataset, split_by_group
from mmkeras.data.pipeline import Examples
from mmkeras.validation import check_one_of, received

# Fashion-MNIST's classes (`fashion_mnist.CLASS_NAMES` order) as the sentences name them.
NOUNS = ["t-shirt", "trousers", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "ankle boot"]
_PLURAL = {1}  # "the trousers are", "there are no trousers"
CATEGORIES = {"footwear": (5, 7, 9), "tops": (0, 2, 4, 6)}
COUNT_SENTENCES = {
    "footwear": ("no item is footwear", "exactly one item is footwear", "there are two pieces of footwear"),
    "tops": ("no item is a top", "exactly one item is a top", "there are two tops"),
}
SAMENESS_SENTENCES = ("the two items differ", "both items are the same kind")
# The ordered pairs of two different classes: the values of `relation`.
PAIRS = [(a, b) for a in range(len(NOUNS)) for b in range(len(NOUNS)) if a != b]
# Per template: (what the sentence names without stating it, how many values the fact has).
TEMPLATES = {
    "left": (1, len(NOUNS)),
    "right": (1, len(NOUNS)),
    "presence": (len(NOUNS), 2),
    "relation": (2, len(PAIRS)),
    "count": (len(CATEGORIES), 3),
    "sameness": (1, 2),
}
CLASS_NAMES = ["false", "true"]
IMAGE_SHAPE = (28, 56, 1)
PHOTOS_PER_CLASS = 4  # per group of photos: a group holds 40 photos and makes 40 pairs
# The test examples are always drawn with this seed, whatever `seed` the training ones take.
TEST_PAIRING_SEED = 2002


def _the(class_id):
    return f"the {NOUNS[class_id]} {'are' if class_id in _PLURAL else 'is'}"


def _there_is(class_id, present):
    noun = NOUNS[class_id]
    if class_id in _PLURAL:
        return f"there are {noun}" if present else f"there are no {noun}"
    article = "an" if noun[0] in "aeiou" else "a"
    return f"there is {article} {noun}" if present else f"there is no {noun}"


def statement(template, named, value):
    """The sentence of `template` that names `named` and states the fact's `value`.

    Args:
        template: str, one of `TEMPLATES`.
        named: int, what the sentence names without stating it: the class of `presence`, the
            category of `count` (`CATEGORIES` order), the word order of `relation` (0: "to the
            left of", 1: "to the right of"); 0 for the other templates.
        value: int, the value stated: a class (`left`, `right`), absent 0 / present 1
            (`presence`), an index in `PAIRS` (`relation`), a count (`count`), different 0 /
            same 1 (`sameness`).

    Example:

    >>> statement("left", 0, 7), statement("right", 0, 1), statement("presence", 9, 1)
    ('the sneaker is on the left', 'the trousers are on the right', 'there is an ankle boot')
    >>> statement("count", 1, 1), statement("sameness", 0, 1)
    ('exactly one item is a top', 'both items are the same kind')
    """
    check_one_of("template", template, TEMPLATES)
    names, values = TEMPLATES[template]
    for argument, number, limit in (("named", named, names), ("value", value, values)):
        if isinstance(number, bool) or not isinstance(number, (int, np.integer)) or not 0 <= number < limit:
            raise ValueError(
                f"`{argument}` must be an int in [0, {limit}) for {template!r}. {received(argument, number)}"
            )
    if template in ("left", "right"):
        return f"{_the(value)} on the {template}"
    if template == "presence":
        return _there_is(named, value == 1)
    if template == "relation":
        left, right = PAIRS[value]
        return f"{_the(left)} to the left of the {NOUNS[right]}" if named == 0 else \
            f"{_the(right)} to the right of the {NOUNS[left]}"
    if template == "count":
        return COUNT_SENTENCES[list(CATEGORIES)[named]][value]
    return SAMENESS_SENTENCES[value]


def all_sentences():
    """Every sentence the templates can give, sorted.

    Example:

    >>> len(all_sentences()), max(len(s.split()) for s in all_sentences())
    (228, 10)
    """
    return sorted({statement(t, n, v) for t, (names, values) in TEMPLATES.items()
                   for n in range(names) for v in range(values)})


def _balanced(rng, n, k):
    """`n` draws of `range(k)`, each value `n // k` or `n // k + 1` times, in random order."""
    values = np.resize(rng.permutation(k), n)
    return values[rng.permutation(n)]


def _pair_classes(rng, template, named, fact):
    """Classes `(left, right)` of one pair whose fact is `fact` (uniform otherwise)."""
    k = len(NOUNS)
    if template == "left":
        return fact, rng.integers(k)
    if template == "right":
        return rng.integers(k), fact
    if template == "relation":
        return PAIRS[fact]
    if template == "sameness":
        return (c := rng.integers(k), c) if fact else PAIRS[rng.integers(len(PAIRS))]
    if template == "presence":
        if fact:
            other = rng.integers(k)
            return (named, other) if rng.integers(2) else (other, named)
        others = [c for c in range(k) if c != named]
        return others[rng.integers(k - 1)], others[rng.integers(k - 1)]
    members = CATEGORIES[list(CATEGORIES)[named]]  # count
    outside = [c for c in range(k) if c not in members]
    sides = [members[rng.integers(len(members))] for _ in range(fact)]
    sides += [outside[rng.integers(len(outside))] for _ in range(2 - fact)]
    return tuple(sides) if rng.integers(2) else tuple(sides[::-1])


def draw_examples(classes, seed):
    """The examples of one split, everything but the images: a dict of arrays, one row per example.

    Args:
        classes: int array `(n,)`, the class of each photo of the split (`n` examples are drawn).
        seed: int, the seed of every draw.

    Returns:
        A dict: `texts` (object array of sentences), `labels` (int32, 1: true), `templates`
        (int8, positions in `TEMPLATES`), `classes` (int32 `(n, 2)`: left and right class),
        `photos` (int32 `(n, 2)`: left and right photo, positions in `classes`) and `groups`
        (int32, the group of photos each example was drawn from).

    Example:

    >>> drawn = draw_examples(np.repeat(np.arange(10), 4), seed=0)  # four photos of each class
    >>> for i in (1, 2):
    ...     print(drawn["texts"][i], drawn["labels"][i], [NOUNS[c] for c in drawn["classes"][i]])
    the sneaker is on the left 0 ['ankle boot', 't-shirt']
    no item is a top 1 ['sneaker', 'sneaker']
    """
    classes = np.asarray(classes)
    n = len(classes)
    rng = np.random.default_rng([seed, 0xFA5])
    names = list(TEMPLATES)
    templates = _balanced(rng, n, len(names)).astype("int8")
    named, facts, labels, stated = (np.zeros(n, "int64") for _ in range(4))
    for t, name in enumerate(names):
        rows = np.flatnonzero(templates == t)
        namings, values = TEMPLATES[name]
        cells = _balanced(rng, len(rows), namings * values)
        named[rows], facts[rows] = np.divmod(cells, values)
        order = np.argsort(cells, kind="stable")  # rows are in random order: alternate within each cell
        labels[rows[order]] = (np.arange(len(rows)) + rng.integers(2)) % 2
        shift = rng.integers(1, values, size=len(rows))  # a false sentence states another value
        stated[rows] = np.where(labels[rows] == 1, facts[rows], (facts[rows] + shift) % values)
    pair_classes = np.array([_pair_classes(rng, names[t], a, f) for t, a, f in zip(templates, named, facts)], "int32")
    texts = np.array([statement(names[t], a, v) for t, a, v in zip(templates, named, stated)], dtype=object)
    photos, groups = _photos(rng, classes, pair_classes)
    return {"texts": texts, "labels": labels.astype("int32"), "templates": templates, "classes": pair_classes,
            "photos": photos, "groups": groups}


def _photos(rng, classes, pair_classes):
    """Real photos for the pairs' classes, each pair within one group, each group's photos in turn."""
    n, k = len(pair_classes), len(NOUNS)
    counts = np.bincount(classes, minlength=k)
    num_groups = max(1, int(counts.min()) // PHOTOS_PER_CLASS)
    if counts.min() < 2:
        raise ValueError(f"`classes` must hold at least two photos of each class. Received: counts {counts.tolist()}")
    # Each class's photos in a seeded order, dealt round-robin into the groups; then sorted by group,
    # class and deal, so the photos of one (group, class) are `order[starts[key]:starts[key] + sizes[key]]`.
    dealt = np.empty(len(classes), "int64")
    for c in range(k):
        dealt[rng.permutation(np.flatnonzero(classes == c))] = np.arange(counts[c])
    photo_group = dealt % num_groups
    order = np.lexsort((dealt, classes, photo_group))
    starts = np.searchsorted(photo_group[order] * k + classes[order], np.arange(num_groups * k))
    sizes = np.diff(np.append(starts, len(order)))
    # The pairs' groups (balanced) and their photos: the picks of one (group, class) take its photos in
    # turn, a pair's left before its right, so a pair of one class shows two different photos.
    groups = _balanced(rng, n, num_groups)
    picks = (groups[:, None] * k + pair_classes).reshape(-1)
    by_key = np.argsort(picks, kind="stable")
    turn = np.empty(len(picks), "int64")
    turn[by_key] = np.arange(len(picks)) - np.searchsorted(picks[by_key], picks[by_key])
    photos = order[starts[picks] + turn % sizes[picks]].reshape(n, 2)
    return photos.astype("int32"), groups.astype("int32")


def _pair_images(photos, pairs):
    """The uint8 28x56x1 image of each pair, built once into one array."""
    images = np.empty((len(pairs), *IMAGE_SHAPE), np.uint8)
    width = photos.shape[2]
    for start in range(0, len(pairs), 8192):  # a chunk at a time: no full-size temporaries
        rows = pairs[start:start + 8192]
        images[start:start + 8192, :, :width, 0] = photos[rows[:, 0]]
        images[start:start + 8192, :, width:, 0] = photos[rows[:, 1]]
    return images


_DRAWN = ("templates", "classes", "photos", "groups")


def _split(folder, split, limit, seed):
    images_file, labels_file = fashion_mnist.FILES[split]
    photos = fashion_mnist.read_idx(os.path.join(folder, images_file))
    drawn = draw_examples(fashion_mnist.read_idx(os.path.join(folder, labels_file)).astype("int64"), seed)
    if limit is not None:
        drawn = {key: value[:limit] for key, value in drawn.items()}
    examples = Examples(_pair_images(photos, drawn["photos"]), drawn["texts"], drawn["labels"],
                        class_names=CLASS_NAMES, verbose=False)
    for key in _DRAWN:  # what each example was drawn from, for tests and per-template metrics
        setattr(examples, key, drawn[key])
    return examples


def _subset(examples, rows):
    part = examples.subset(rows)
    for key in _DRAWN:
        setattr(part, key, getattr(examples, key)[rows])
    return part


def template_accuracy(model, examples, batch_size=256):
    """Accuracy per template: `{"accuracy_left": ..., ...}` of `model`'s answers on `examples`.

    Args:
        model: a trained task (`mmkeras.tasks.Task`) with a binary output.
        examples: `Examples` of this dataset (with their `templates`).
        batch_size: int. Defaults to `256`.
    """
    dataset = examples.to_dataset(task=model, batch_size=batch_size, with_labels=False)
    scores = np.asarray(model.predict(dataset, verbose=0)).reshape(-1)
    right = (scores > 0.5) == (examples.labels == 1)
    return {f"accuracy_{name}": float(right[examples.templates == t].mean()) for t, name in enumerate(TEMPLATES)}


def load_fashion_pairs(*, validation_split=0.1, seed=0, limit=None, verbose=True):
    """Fashion-MNIST pairs with true or false statements about them (see the module doc).

    Args:
        validation_split: share of the training groups of photos (and so of the training
            examples) held out for validation; no validation photo is in a training pair.
            Defaults to `0.1`.
        seed: int, the seed of the training examples and of the validation draw; the test
            examples are always drawn with `TEST_PAIRING_SEED`. Defaults to `0`.
        limit: int or None, at most this many examples per split (the first ones, as they are in
            the whole dataset). Defaults to `None`.
        verbose: unused (nothing to decode: the idx files are raw pixels).

    Example:

    >>> splits = load_fashion_pairs(limit=100)
    >>> splits.task, splits.class_names, splits.image_shape, splits.sequence_length
    ('binary', ['false', 'true'], (28, 56, 1), 10)
    >>> len(splits.train), len(splits.validation), len(splits.test)
    (90, 10, 100)
    >>> for i in (0, 1):  # the sentence, its label (1: true) and the classes shown, left then right
    ...     print(splits.test.texts[i], splits.test.labels[i], [NOUNS[c] for c in splits.test.classes[i]])
    the bag is to the left of the sandal 0 ['coat', 'trousers']
    the bag is on the right 1 ['dress', 'bag']
    """
    folder = fashion_mnist.data_dir()
    train = _split(folder, "train", limit, seed)
    test = _split(folder, "test", limit, TEST_PAIRING_SEED)
    validation = None
    if validation_split:
        train_rows, val_rows = split_by_group(train.groups, validation_split, seed)
        train, validation = _subset(train, train_rows), _subset(train, val_rows)
    return DatasetSplits(
        name="fashion_pairs",
        train=train,
        validation=validation,
        test=test,
        class_names=CLASS_NAMES,
        task="binary",
        output_name="answer",
        image_shape=IMAGE_SHAPE,
        sequence_length=max(len(s.split()) for s in all_sentences()),
        description=DESCRIPTION,
        extra_metrics=lambda model, batch_size=256: template_accuracy(model, test, batch_size),
    )


DESCRIPTION = (
    "Fashion-MNIST pairs: two real 28x28 product photos side by side (28x56) and a generated sentence "
    "about them (which item is on the left or right, whether an item is there, the order of two items, "
    "how many are footwear or tops, whether both are the same kind), true or false. Balanced per "
    "template, and made so that the text alone and the image alone are at chance."
)

register_dataset(
    "fashion_pairs",
    load_fashion_pairs,
    "Two Fashion-MNIST photos side by side + a generated statement about them: true or false (real images)",
    task="binary",
)
