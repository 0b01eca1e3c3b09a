"""Image captioning: images with the caption to generate, **templated from their labels**.

Two datasets for captioners (an image encoder and a text decoder trained to write each image's
caption word by word), registered with `task="captioning"`:

- `easy_vqa_captions`: easy-VQA's generated 64x64 images of one coloured shape, captioned "the
  image shows a {colour} {shape}" (`shape_caption`). Colour and shape are read from the answers
  to each image's questions (`colours_and_shapes`, as `easy_vqa_descriptions` does); they are all
  the questions establish (the yes/no questions only ask whether a colour or shape is there), and
  images whose questions do not tell both are left out: 3,578 of the 4,000 training and 888 of
  the 1,000 test images are kept. 24 possible captions.
- `fashion_mnist_pair_captions`: two of Fashion-MNIST's real 28x28 grey product photos side by
  side (one 28x56 image), captioned from the two classes and their places, "a sneaker on the
  left and a shirt on the right", or "two sneakers side by side" for two of one class
  (`pair_caption`). Each official split's photos are shuffled with a seed and paired first half
  with second half, each photo used once: 30,000 training and 5,000 test pairs. 100 possible
  captions.

Each image has exactly one caption, a function of what its pixels show (no template or synonym
drawn per image), so a model can get every caption exactly right and BLEU (`mmkeras.bleu`) can
reach 1.0. **The captions are templated from the labels: there is no free language** in them,
and a captioner here is a classifier that spells its class out in words; the datasets test the
captioning plumbing (teacher forcing, decoding, BLEU) on real and generated images, not
language. Examples carry no labels (`labels` is None): the caption is the target.

Example:

>>> shape_caption(15)  # SHAPE_CLASS_NAMES[15]
'the image shows a red circle'
>>> pair_caption(7, 6), pair_caption(1, 1)  # sneaker and shirt; trousers twice
('a sneaker on the left and a shirt on the right', 'two pairs of trousers side by side')
"""

import numpy as np

from mmkeras.data import fashion_mnist
from mmkeras.data.datasets import register_dataset
from mmkeras.data.easy_vqa import IMAGE_SHAPE as SHAPES_IMAGE_SHAPE, _easy_vqa
from mmkeras.data.pipeline import Examples
from mmkeras.data.retrieval_datasets import (
    COLOURS,
    SHAPE_CLASS_NAMES,
    SHAPES,
    _check_class_id,
    _fashion_arrays,
    _retrieval_splits,
    _shape_images,
)

# easy-VQA.

SHAPE_CAPTION_TEMPLATE = "the image shows a {colour} {shape}"


def shape_caption(class_id):
    """The caption of an easy-VQA image of class `class_id` (`SHAPE_CLASS_NAMES`).

    Args:
        class_id: int in [0, 24): `COLOURS.index(colour) * 3 + SHAPES.index(shape)`.

    Example:

    >>> [shape_caption(c) for c in (5, 11)]
    ['the image shows a blue triangle', 'the image shows a gray triangle']
    """
    colour, shape = divmod(_check_class_id(class_id, len(SHAPE_CLASS_NAMES)), len(SHAPES))
    return SHAPE_CAPTION_TEMPLATE.format(colour=COLOURS[colour], shape=SHAPES[shape])


def _shape_caption_split(easy_vqa, split, limit, verbose):
    paths, classes = _shape_images(easy_vqa, split, limit)
    texts = np.array([shape_caption(c) for c in classes.tolist()], dtype=object)
    return Examples(paths, texts, image_shape=SHAPES_IMAGE_SHAPE, verbose=verbose)


def load_easy_vqa_captions(*, validation_split=0.1, seed=0, limit=None, verbose=True):
    """easy-VQA images captioned with their colour and shape (see the module doc).

    Of the official 4,000 training and 1,000 test images, those whose questions tell both their
    colour and their shape (3,578 and 888) are kept, each decoded once.

    Args:
        validation_split: share of the training images held out for validation. Defaults to `0.1`.
        seed: int, the seed of the validation draw (the captions draw nothing). Defaults to `0`.
        limit: int or None, at most this many images per split (the first by image id).
            Defaults to `None`.
        verbose: bool, progress bars while decoding. Defaults to `True`.

    Example:

    >>> splits = load_easy_vqa_captions(limit=50, verbose=False)
    >>> splits.task, splits.output_name, splits.class_names, splits.image_shape, splits.sequence_length
    ('captioning', 'caption', None, (64, 64, 3), 6)
    >>> len(splits.train), len(splits.validation), len(splits.test), splits.test.texts[0]
    (45, 5, 50, 'the image shows a red triangle')
    """
    easy_vqa = _easy_vqa()
    train = _shape_caption_split(easy_vqa, "train", limit, verbose)
    test = _shape_caption_split(easy_vqa, "test", limit, verbose)
    captions = [shape_caption(c) for c in range(len(SHAPE_CLASS_NAMES))]
    return _retrieval_splits(
        "easy_vqa_captions", train, test, None, SHAPES_IMAGE_SHAPE, max(len(c.split()) for c in captions),
        SHAPES_DESCRIPTION, validation_split, seed, task="captioning", output_name="caption",
    )


SHAPES_DESCRIPTION = (
    "easy-VQA captioning: generated 64x64 images of one coloured shape, each with one caption templated "
    "from its colour and shape (read from the answers to its questions): 'the image shows a red circle'. "
    "24 possible captions (8 colours x 3 shapes), no free language; neither images nor captions are real."
)

# Fashion-MNIST pairs.

# Each class (`FASHION_CLASS_NAMES` order) once and twice, in words the text standardization
# (lower case, no punctuation) keeps: `FASHION_CLASS_NAMES`' own, but "t-shirt or top" as "top".
FASHION_NOUNS = [
    ("a top", "two tops"),
    ("a pair of trousers", "two pairs of trousers"),
    ("a pullover", "two pullovers"),
    ("a dress", "two dresses"),
    ("a coat", "two coats"),
    ("a sandal", "two sandals"),
    ("a shirt", "two shirts"),
    ("a sneaker", "two sneakers"),
    ("a bag", "two bags"),
    ("an ankle boot", "two ankle boots"),
]
PAIR_TEMPLATE = "{left} on the left and {right} on the right"
SAME_CLASS_TEMPLATE = "{two} side by side"
# The test pairs are always drawn with this seed, whatever `seed` the training pairs take, so
# every run is scored on the same 5,000 test pairs.
TEST_PAIRING_SEED = 2002


def pair_caption(left, right):
    """The caption of a photo of class `left` beside one of class `right` (`FASHION_CLASS_NAMES`).

    Args:
        left, right: ints in [0, 10), the classes of the left and the right photo.

    Example:

    >>> pair_caption(9, 0), pair_caption(8, 8)  # ankle boot and t-shirt or top; two bags
    ('an ankle boot on the left and a top on the right', 'two bags side by side')
    """
    left = _check_class_id(left, len(FASHION_NOUNS))
    right = _check_class_id(right, len(FASHION_NOUNS))
    if left == right:
        return SAME_CLASS_TEMPLATE.format(two=FASHION_NOUNS[left][1])
    return PAIR_TEMPLATE.format(left=FASHION_NOUNS[left][0], right=FASHION_NOUNS[right][0])


def fashion_pairs(n, seed):
    """Which photos make each pair: `(left, right)` index arrays of `n // 2` photos each.

    A permutation of `range(n)` drawn with `seed`, its first half on the left, its second half
    on the right: each photo is used once (the last is left out when `n` is odd).

    Example:

    >>> left, right = fashion_pairs(6, seed=0)
    >>> sorted(left.tolist() + right.tolist())
    [0, 1, 2, 3, 4, 5]
    """
    order = np.random.default_rng(seed).permutation(n)
    half = n // 2
    return order[:half], order[half:2 * half]


def _pair_caption_split(folder, split, limit, seed):
    images, classes = _fashion_arrays(folder, split)
    left, right = fashion_pairs(len(classes), seed)
    if limit is not None:
        left, right = left[:limit], right[:limit]
    texts = np.array([pair_caption(a, b) for a, b in zip(classes[left].tolist(), classes[right].tolist())], object)
    pairs = np.concatenate([images[left], images[right]], axis=2)[..., None]  # (pairs, 28, 56, 1), built once
    return Examples(pairs, texts, verbose=False)


def load_fashion_mnist_pair_captions(*, validation_split=0.1, seed=0, limit=None, verbose=True):
    """Pairs of Fashion-MNIST photos side by side, captioned from their classes (see the module doc).

    Args:
        validation_split: share of the training pairs held out for validation. Defaults to `0.1`.
        seed: int, the seed of the training pairs and of the validation draw; the test pairs are
            always drawn with `TEST_PAIRING_SEED`. Defaults to `0`.
        limit: int or None, at most this many pairs per split (the first ones, the pairs they
            are in the whole dataset). Defaults to `None`.
        verbose: unused (nothing to decode: the idx files are raw pixels).

    Example:

    >>> splits = load_fashion_mnist_pair_captions(limit=100)
    >>> splits.task, splits.image_shape, len(splits.train), len(splits.validation), len(splits.test)
    ('captioning', (28, 56, 1), 90, 10, 100)
    >>> splits.test.texts[0]
    'a pair of trousers on the left and a sandal on the right'
    """
    folder = fashion_mnist.data_dir()
    train = _pair_caption_split(folder, "train", limit, seed)
    test = _pair_caption_split(folder, "test", limit, TEST_PAIRING_SEED)
    captions = [pair_caption(a, b) for a in range(len(FASHION_NOUNS)) for b in range(len(FASHION_NOUNS))]
    return _retrieval_splits(
        "fashion_mnist_pair_captions", train, test, None, PAIR_IMAGE_SHAPE, max(len(c.split()) for c in captions),
        PAIRS_DESCRIPTION, validation_split, seed, task="captioning", output_name="caption",
    )


PAIR_IMAGE_SHAPE = (28, 56, 1)
PAIRS_DESCRIPTION = (
    "Fashion-MNIST pair captioning: two real 28x28 product photos side by side (28x56), each pair with "
    "one caption templated from the two class labels and their places: 'a sneaker on the left and a "
    "shirt on the right', 'two bags side by side'. 100 possible captions, no free language."
)

register_dataset(
    "easy_vqa_captions",
    load_easy_vqa_captions,
    "easy-VQA shapes + one caption templated from their colour and shape: captioning (generated images)",
    task="captioning",
)
register_dataset(
    "fashion_mnist_pair_captions",
    load_fashion_mnist_pair_captions,
    "Two Fashion-MNIST photos side by side + a caption templated from their classes: captioning (real images)",
    task="captioning",
)
