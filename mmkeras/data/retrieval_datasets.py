"""Image-text retrieval: images paired with descriptions **generated from their class labels**.

Two datasets for dual encoders (an image tower and a text tower trained with a contrastive loss
over in-batch pairs, e.g. `mmkeras.get_model("clip_small")`), registered as:

- `fashion_mnist_descriptions`: Fashion-MNIST's real 28x28 grey product photos (60,000 train /
  10,000 test, 10 classes, read offline as in `mmkeras.data.fashion_mnist`), each with one
  description drawn from ten templates, three names of its class and words that follow from
  the class: what kind of article it is (footwear, upper-body garment, legwear, one-piece
  garment, accessory) and a trait of the class ("with laces", "that covers the ankle").
- `easy_vqa_descriptions`: easy-VQA's generated 64x64 images of one coloured shape, each
  described by its colour and shape (24 classes, "red circle", ...), read from the answers to
  its questions (`colours_and_shapes`); images whose questions do not tell both are left out.

Pair i is image i and its description; `labels` hold each pair's class index, so every image
of a description's class counts as relevant to it. **The descriptions say nothing that the
label does not**: no text describes what is particular to one image (a pose, a pattern, a
position), so retrieval here means telling the classes apart through text, not reading
language. Each image's template and words are drawn with the dataset's seed (another seed for
the test split), and no description is ever a zero-shot prompt (`zero_shot_prompts`), so
zero-shot classification is scored on texts the model has not been trained on.

Example:

>>> rng = np.random.default_rng(0)
>>> fashion_description(7, rng)  # class 7: sneaker
'a trainer seen on its own'
>>> zero_shot_prompts(["sneaker"])[0][:2]
['a photo of a sneaker', 'a picture of a sneaker']
"""

import collections
import itertools
import os

import numpy as np

from mmkeras.data import fashion_mnist
from mmkeras.data.datasets import DatasetSplits, register_dataset
from mmkeras.data.easy_vqa import IMAGE_SHAPE as SHAPES_IMAGE_SHAPE, _easy_vqa
from mmkeras.data.pipeline import Examples
from mmkeras.validation import received

# Prompts for zero-shot classification, one per template and class (CLIP's habit); no generated
# description equals one of them.
ZERO_SHOT_TEMPLATES = ("a photo of a {}", "a picture of a {}", "an image of a {}", "a photo of the {}")


def zero_shot_prompts(class_names, templates=ZERO_SHOT_TEMPLATES):
    """The zero-shot prompts of each class: `[[template.format(name) for template] for name]`.

    Args:
        class_names: list of str, the class names (e.g. a `DatasetSplits`' `class_names`).
        templates: str templates with one `{}`. Defaults to `ZERO_SHOT_TEMPLATES`.

    Returns:
        A list, per class, of its prompts (average their text embeddings for one class vector).

    Example:

    >>> zero_shot_prompts(["red circle", "blue triangle"], ["a photo of a {}"])
    [['a photo of a red circle'], ['a photo of a blue triangle']]
    """
    templates = list(templates)
    if not templates or any(not isinstance(t, str) or t.count("{}") != 1 for t in templates):
        raise ValueError(
            f"`templates` must be a non-empty list of strings, each with one `{{}}`. {received('templates', templates)}"
        )
    return [[template.format(name) for template in templates] for name in class_names]


def describe(templates, words, rng):
    """One description: a template and one option for each of its slots, drawn with `rng`.

    Every slot is drawn, used or not, so each description takes the same draws from `rng`.

    Args:
        templates: str templates with `{slot}` fields.
        words: dict, slot -> list of options.
        rng: a `numpy.random.Generator`.

    Example:

    >>> describe(["a {colour} {shape}"], {"colour": ["red"], "shape": ["circle", "disc"]},
    ...          np.random.default_rng(1))
    'a red circle'
    """
    template = templates[rng.integers(len(templates))]
    return template.format(**{slot: options[rng.integers(len(options))] for slot, options in words.items()})


def possible_descriptions(templates, words):
    """Every description `describe(templates, words, rng)` can give, sorted.

    Example:

    >>> possible_descriptions(["a {colour} {shape}", "a {shape}"], {"colour": ["red"], "shape": ["circle", "disc"]})
    ['a circle', 'a disc', 'a red circle', 'a red disc']
    """
    slots = list(words)
    return sorted(
        {t.format(**dict(zip(slots, choice))) for t in templates for choice in itertools.product(*words.values())}
    )


def _check_class_id(class_id, num_classes):
    if isinstance(class_id, bool) or not isinstance(class_id, (int, np.integer)) or not 0 <= class_id < num_classes:
        raise ValueError(f"`class_id` must be an int in [0, {num_classes}). {received('class_id', class_id)}")
    return int(class_id)


def _sequence_length(templates, words_by_class):
    """Words in the longest possible description (the standardization only removes punctuation)."""
    return max(len(text.split()) for words in words_by_class for text in possible_descriptions(templates, words))


def _retrieval_splits(name, train, test, class_names, image_shape, sequence_length, description, validation_split,
                      seed, *, task="retrieval", output_name="similarity"):
    """`DatasetSplits` of generated data, with `validation_split` of `train` held out (also for captions)."""
    splits = DatasetSplits(
        name=name,
        train=train,
        validation=None,
        test=test,
        class_names=None if class_names is None else list(class_names),
        task=task,
        output_name=output_name,
        image_shape=image_shape,
        sequence_length=sequence_length,
        description=description,
    )
    return splits.with_validation(validation_split, seed)


# Fashion-MNIST.

# The class names the dataset gives (and zero-shot prompts use): Fashion-MNIST's, with "trouser"
# in its usual plural, the word the descriptions use.
FASHION_CLASS_NAMES = ["trousers" if name == "trouser" else name for name in fashion_mnist.CLASS_NAMES]

_UPPER = ["a piece of top wear", "an upper-body garment", "a garment for the upper body"]
_FOOTWEAR = ["a piece of footwear", "a shoe", "something worn on the feet"]

# Per class (in `fashion_mnist.CLASS_NAMES` order): its names, what kind of article it is and
# traits that follow from the class. A noun or a trait of one class is never another's.
FASHION_WORDS = [
    {  # t-shirt or top
        "noun": ["a t-shirt", "a top", "a tee"],
        "kind": _UPPER,
        "trait": ["with short sleeves or none", "made of light fabric", "for casual wear"],
    },
    {  # trouser
        "noun": ["a pair of trousers", "trousers", "a pair of pants"],
        "kind": ["a piece of legwear", "a garment for the legs", "a lower-body garment"],
        "trait": ["with two long legs", "reaching down to the ankles", "worn from the waist down"],
    },
    {  # pullover
        "noun": ["a pullover", "a sweater", "a jumper"],
        "kind": _UPPER,
        "trait": ["with long knitted sleeves", "knitted for warmth", "pulled on over the head"],
    },
    {  # dress
        "noun": ["a dress", "a frock", "a summer dress"],
        "kind": ["a one-piece garment", "a garment worn from the shoulders down", "a piece of womenswear"],
        "trait": ["with a skirt", "hanging from the shoulders", "in a single piece"],
    },
    {  # coat
        "noun": ["a coat", "a jacket", "an overcoat"],
        "kind": _UPPER + ["a piece of outerwear"],
        "trait": ["worn over other clothes", "that opens at the front", "for cold weather"],
    },
    {  # sandal
        "noun": ["a sandal", "a summer sandal", "an open shoe"],
        "kind": _FOOTWEAR,
        "trait": ["with open straps", "that leaves the toes bare", "for warm weather"],
    },
    {  # shirt
        "noun": ["a shirt", "a blouse", "a button-up shirt"],
        "kind": _UPPER,
        "trait": ["with a collar", "with buttons down the front", "with a collar and cuffs"],
    },
    {  # sneaker
        "noun": ["a sneaker", "a trainer", "a sports shoe"],
        "kind": _FOOTWEAR,
        "trait": ["with laces", "with a flat rubber sole", "for sport and running"],
    },
    {  # bag
        "noun": ["a bag", "a handbag", "a tote"],
        "kind": ["an accessory", "something to carry things in", "a carry-all"],
        "trait": ["with handles or a strap", "for carrying things", "with room inside"],
    },
    {  # ankle boot
        "noun": ["an ankle boot", "a short boot", "a bootie"],
        "kind": _FOOTWEAR,
        "trait": ["that covers the ankle", "with a closed toe", "for the colder months"],
    },
]
FASHION_TEMPLATES = [
    "{noun} {trait}",
    "a photo of {noun} {trait}",
    "{kind}: {noun}",
    "{noun}, {kind}",
    "{kind} {trait}",
    "a grey product photo of {noun}",
    "this is {noun}, {kind} {trait}",
    "a small picture showing {noun}",
    "{noun} seen on its own",
    "an online shop photo of {kind}: {noun}",
]


def fashion_description(class_id, rng):
    """A description of a photo of Fashion-MNIST class `class_id`, drawn with `rng`.

    Args:
        class_id: int in [0, 10), an index into `fashion_mnist.CLASS_NAMES`.
        rng: a `numpy.random.Generator`.

    Example:

    >>> rng = np.random.default_rng(3)
    >>> [fashion_description(c, rng) for c in (5, 1, 9)]  # sandal, trouser, ankle boot
    ['a sandal seen on its own', 'a photo of a pair of pants reaching down to the ankles',
     'an ankle boot with a closed toe']
    """
    return describe(FASHION_TEMPLATES, FASHION_WORDS[_check_class_id(class_id, len(FASHION_WORDS))], rng)


def _fashion_arrays(folder, split):
    """Fashion-MNIST's official `split`: uint8 photos `(n, 28, 28)` and int32 class indices `(n,)`."""
    images_file, labels_file = fashion_mnist.FILES[split]
    images = fashion_mnist.read_idx(os.path.join(folder, images_file))
    return images, fashion_mnist.read_idx(os.path.join(folder, labels_file)).astype("int32")


def _fashion_split(folder, split, limit, seed):
    images, classes = _fashion_arrays(folder, split)
    if limit is not None:
        images, classes = images[:limit], classes[:limit]
    rng = np.random.default_rng(seed)
    texts = np.array([fashion_description(c, rng) for c in classes.tolist()], dtype=object)
    return Examples(images[..., None], texts, classes, class_names=FASHION_CLASS_NAMES, verbose=False)


def load_fashion_mnist_descriptions(*, validation_split=0.1, seed=0, limit=None, verbose=True):
    """Fashion-MNIST photos with generated descriptions, for retrieval (see the module doc).

    Args:
        validation_split: share of the training photos held out for validation. Defaults to `0.1`.
        seed: int, the seed of the training descriptions (`seed + 1` draws the test ones) and of
            the validation draw. Defaults to `0`.
        limit: int or None, at most this many photos per split (the first ones, with the
            descriptions they have in the whole dataset). Defaults to `None`.
        verbose: unused (nothing to decode: the idx files are raw pixels).

    Example:

    >>> splits = load_fashion_mnist_descriptions(limit=100)
    >>> splits.task, splits.output_name, len(splits.class_names), len(splits.train), len(splits.test)
    ('retrieval', 'similarity', 10, 90, 100)
    >>> splits.class_names[splits.test.labels[0]], splits.test.texts[0]
    ('ankle boot', 'something worn on the feet for the colder months')
    """
    folder = fashion_mnist.data_dir()
    train = _fashion_split(folder, "train", limit, seed)
    test = _fashion_split(folder, "test", limit, seed + 1)
    return _retrieval_splits(
        "fashion_mnist_descriptions", train, test, FASHION_CLASS_NAMES, fashion_mnist.IMAGE_SHAPE,
        _sequence_length(FASHION_TEMPLATES, FASHION_WORDS), FASHION_DESCRIPTION, validation_split, seed,
    )


FASHION_DESCRIPTION = (
    "Fashion-MNIST retrieval: real 28x28 product photos, each paired with one description generated "
    "from its class label (templates, class names, the kind of article and a trait of the class; "
    "nothing particular to the photo). 10 classes; every photo of a description's class is relevant."
)


# easy-VQA.

COLOURS = ("black", "blue", "brown", "gray", "green", "red", "teal", "yellow")
SHAPES = ("circle", "rectangle", "triangle")
# Class `COLOURS.index(colour) * len(SHAPES) + SHAPES.index(shape)`.
SHAPE_CLASS_NAMES = [f"{colour} {shape}" for colour in COLOURS for shape in SHAPES]
_COLOUR_WORDS = {colour: [colour] for colour in COLOURS} | {"gray": ["gray", "grey"]}
_SHAPE_WORDS = {
    "circle": ["circle", "round shape", "disc"],
    "rectangle": ["rectangle", "four-sided shape", "box shape"],
    "triangle": ["triangle", "three-sided shape", "three-cornered shape"],
}
SHAPE_TEMPLATES = [
    "a {colour} {shape}",
    "an image of a {colour} {shape} on a plain background",
    "a {shape} coloured {colour}",
    "one {colour} {shape} and nothing else",
    "a simple drawing of a {colour} {shape}",
    "a {colour} {shape} on a pale background",
    "a single {shape}, {colour}",
    "the picture shows a {colour} {shape}",
]


def _shape_words(class_id):
    colour, shape = divmod(_check_class_id(class_id, len(SHAPE_CLASS_NAMES)), len(SHAPES))
    return {"colour": _COLOUR_WORDS[COLOURS[colour]], "shape": _SHAPE_WORDS[SHAPES[shape]]}


def shape_description(class_id, rng):
    """A description of an easy-VQA image of class `class_id` (`SHAPE_CLASS_NAMES`), drawn with `rng`.

    Args:
        class_id: int in [0, 24): `COLOURS.index(colour) * 3 + SHAPES.index(shape)`.
        rng: a `numpy.random.Generator`.

    Example:

    >>> rng = np.random.default_rng(0)
    >>> [(SHAPE_CLASS_NAMES[c], shape_description(c, rng)) for c in (15, 5, 11)]
    [('red circle', 'a single round shape, red'), ('blue triangle', 'a simple drawing of a blue triangle'),
     ('gray triangle', 'a triangle coloured gray')]
    """
    return describe(SHAPE_TEMPLATES, _shape_words(class_id), rng)


def colours_and_shapes(texts, answers, image_ids):
    """What each easy-VQA image shows, read from its questions and answers.

    A question naming a colour or shape, with its answer, says that it is present ("what is the
    red shape?", "is there a circle?" yes, "is there not a circle?" no) or absent; an open
    question's answer is present. Where nothing names the present one, all but one ruled out
    gives it.

    Args:
        texts, answers, image_ids: the three lists of `easy_vqa.get_train_questions()`.

    Returns:
        dict, image id -> `(colour, shape)`, each None where the questions do not tell.

    Raises:
        ValueError: if the questions of one image disagree.

    Example:

    >>> colours_and_shapes(["what is the red shape?", "is there not a blue shape?", "is no circle present?"],
    ...                    ["circle", "yes", "yes"], [0, 1, 1])
    {0: ('red', 'circle'), 1: (None, None)}
    """
    facts = collections.defaultdict(lambda: {"colour": (set(), set()), "shape": (set(), set())})
    for text, answer, image_id in zip(texts, answers, image_ids):
        words = text.rstrip("?").split()
        named = [("colour", w) for w in words if w in COLOURS] + [("shape", w) for w in words if w in SHAPES]
        if answer in ("yes", "no"):  # "is there not a circle?" no: a circle is present
            present = (answer == "yes") != ("not" in words or "no" in words)
        else:  # "what is the red shape?" circle: the named colour and the answer are present
            present = True
            named.append(("colour" if answer in COLOURS else "shape", answer))
        for kind, word in named:
            facts[image_id][kind][0 if present else 1].add(word)
    return {
        image_id: (
            _resolve(image_id, "colour", *known["colour"], COLOURS),
            _resolve(image_id, "shape", *known["shape"], SHAPES),
        )
        for image_id, known in facts.items()
    }


def _resolve(image_id, kind, present, absent, choices):
    if len(present) > 1 or present & absent:
        raise ValueError(
            f"The easy-VQA questions of one image must agree on its {kind}: one present, none both present and "
            f"absent. Received: image {image_id} with present {sorted(present)}, absent {sorted(absent)}"
        )
    left = present or set(choices) - absent
    return next(iter(left)) if len(left) == 1 else None


def _shape_images(easy_vqa, split, limit):
    """easy-VQA's `split` images whose questions tell colour and shape, by id: `(paths, classes)`.

    The first `limit` of them (None: all); classes index `SHAPE_CLASS_NAMES`.
    """
    paths = getattr(easy_vqa, f"get_{split}_image_paths")()
    known = colours_and_shapes(*getattr(easy_vqa, f"get_{split}_questions")())
    ids = [i for i in sorted(paths) if None not in known.get(i, (None, None))]
    if limit is not None:
        ids = ids[:limit]
    classes = np.array([COLOURS.index(known[i][0]) * len(SHAPES) + SHAPES.index(known[i][1]) for i in ids], "int32")
    return [paths[i] for i in ids], classes


def _shapes_split(easy_vqa, split, limit, seed, verbose):
    paths, classes = _shape_images(easy_vqa, split, limit)
    rng = np.random.default_rng(seed)
    texts = np.array([shape_description(c, rng) for c in classes.tolist()], dtype=object)
    return Examples(
        paths, texts, classes, image_shape=SHAPES_IMAGE_SHAPE, class_names=SHAPE_CLASS_NAMES, verbose=verbose,
    )


def load_easy_vqa_descriptions(*, validation_split=0.1, seed=0, limit=None, verbose=True):
    """easy-VQA images described by their colour and shape, for retrieval (see the module doc).

    Of the official 4,000 training and 1,000 test images, those whose questions tell both their
    colour and their shape (3,578 and 888) are kept, each decoded once.

    Args:
        validation_split: share of the training images held out for validation. Defaults to `0.1`.
        seed: int, the seed of the training descriptions (`seed + 1` draws the test ones) and of
            the validation draw. Defaults to `0`.
        limit: int or None, at most this many images per split (the first by image id).
            Defaults to `None`.
        verbose: bool, progress bars while decoding. Defaults to `True`.

    Example:

    >>> splits = load_easy_vqa_descriptions(limit=50, verbose=False)
    >>> splits.task, len(splits.class_names), splits.image_shape, len(splits.train), len(splits.validation)
    ('retrieval', 24, (64, 64, 3), 45, 5)
    >>> splits.class_names[splits.test.labels[0]], splits.test.texts[0]
    ('red triangle', 'one red three-sided shape and nothing else')
    """
    easy_vqa = _easy_vqa()
    train = _shapes_split(easy_vqa, "train", limit, seed, verbose)
    test = _shapes_split(easy_vqa, "test", limit, seed + 1, verbose)
    return _retrieval_splits(
        "easy_vqa_descriptions", train, test, SHAPE_CLASS_NAMES, SHAPES_IMAGE_SHAPE,
        _sequence_length(SHAPE_TEMPLATES, [_shape_words(c) for c in range(len(SHAPE_CLASS_NAMES))]),
        SHAPES_DESCRIPTION, validation_split, seed,
    )


SHAPES_DESCRIPTION = (
    "easy-VQA retrieval: generated 64x64 images of one coloured shape, each paired with one description "
    "generated from its colour and shape (read from the answers to its questions). 24 classes (8 colours "
    "x 3 shapes); every image of a description's class is relevant. Neither images nor texts are real."
)

register_dataset(
    "fashion_mnist_descriptions",
    load_fashion_mnist_descriptions,
    "Fashion-MNIST photos + descriptions generated from the class label: image-text retrieval (real images)",
    task="retrieval",
)
register_dataset(
    "easy_vqa_descriptions",
    load_easy_vqa_descriptions,
    "easy-VQA shapes + descriptions generated from their colour and shape: image-text retrieval (generated images)",
    task="retrieval",
)
