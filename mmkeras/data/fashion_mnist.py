"""Fashion-MNIST caption matching: real product photos paired with captions built from class names.

The photos are real (Zalando's 28x28 grey article images, Xiao et al. 2017, MIT licence; 60,000
train / 10,000 test, 10 classes), read offline from Debian's `dataset-fashion-mnist` package
(`/usr/share/datasets/fashion-mnist/*.gz`, or the folder named by `MMKERAS_FASHION_MNIST_DIR`).

Each photo gets one caption, "a photo of a sneaker", "this is a dress", ...: its own class name
(label 1) for half the photos, another class name drawn at random (label 0) for the other half, so
the task is balanced: does the caption match the photo (one sigmoid)? The 10-way caption ranking
scores each test photo against the 10 class captions and takes the best: its accuracy is the
10-class accuracy, comparable with the published image-only results (2-layer CNN 91.6%, with
batch norm 93.4%, AutoML 93.9%; humans 83.5%).

**This tests real images and the fusion plumbing, not language**: the captions are a class name
in a fixed template, so a model that reads only the class word does as well as one that reads.
"""

import gzip
import os

import numpy as np

from mmkeras.data.datasets import DatasetSplits, register_dataset, split_by_group
from mmkeras.data.pipeline import Examples

DEFAULT_DIR = "/usr/share/datasets/fashion-mnist"
IMAGE_SHAPE = (28, 28, 1)
CLASS_NAMES = [
    "t-shirt or top", "trouser", "pullover", "dress", "coat",
    "sandal", "shirt", "sneaker", "bag", "ankle boot",
]
TEMPLATES = ["a photo of a {}", "a picture of a {}", "this is a {}", "an image of a {}"]
FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}


def data_dir():
    """The folder with the idx files (`MMKERAS_FASHION_MNIST_DIR`, else Debian's); raise if missing."""
    folder = os.environ.get("MMKERAS_FASHION_MNIST_DIR", DEFAULT_DIR)
    missing = [f for pair in FILES.values() for f in pair if not os.path.isfile(os.path.join(folder, f))]
    if missing:
        raise FileNotFoundError(
            f"Fashion-MNIST is not installed: {folder} lacks {', '.join(missing)}. Install it offline "
            "from Debian with `apt-get install dataset-fashion-mnist` (or point MMKERAS_FASHION_MNIST_DIR "
            "at a folder holding the four idx .gz files). mmkeras never downloads data."
        )
    return folder


def read_idx(path):
    """Parse one (gzipped) idx file -> a numpy array (uint8 images `(n, 28, 28)` or labels `(n,)`).

    Example:

    >>> read_idx(os.path.join(data_dir(), "t10k-labels-idx1-ubyte.gz")).shape
    (10000,)
    """
    with gzip.open(path, "rb") as f:
        data = f.read()
    if len(data) < 4 or data[:2] != b"\x00\x00" or data[2] != 0x08:
        raise ValueError(f"`path` must be an idx file of unsigned bytes. Received: path={path!r}")
    ndim = data[3]
    dims = np.frombuffer(data, dtype=">u4", count=ndim, offset=4).astype(int)
    array = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if array.size != int(np.prod(dims)):
        raise ValueError(f"idx file {path!r} is truncated: {array.size} values for shape {tuple(dims)}")
    return array.reshape(dims)


def caption(class_id, template=0):
    """The caption of class `class_id` in template `template`.

    Example:

    >>> caption(7)
    'a photo of a sneaker'
    """
    return TEMPLATES[template % len(TEMPLATES)].format(CLASS_NAMES[class_id])


def pair_captions(classes, seed):
    """Balanced caption pairs: `(texts, match_labels)`, half true captions, half other classes."""
    rng = np.random.default_rng(seed)
    n = len(classes)
    match = np.zeros(n, "int32")
    match[rng.permutation(n)[: (n + 1) // 2]] = 1
    shift = rng.integers(1, len(CLASS_NAMES), size=n)  # another class, uniformly
    shown = np.where(match == 1, classes, (classes + shift) % len(CLASS_NAMES))
    templates = rng.integers(0, len(TEMPLATES), size=n)
    texts = np.array([caption(c, t) for c, t in zip(shown, templates)], dtype=object)
    return texts, match


def _split(folder, split, limit, seed):
    images_file, labels_file = FILES[split]
    images = read_idx(os.path.join(folder, images_file))
    classes = read_idx(os.path.join(folder, labels_file)).astype("int64")
    if limit is not None:
        images, classes = images[:limit], classes[:limit]
    texts, match = pair_captions(classes, seed + (0 if split == "train" else 1))
    examples = Examples(images[..., None], texts, match, class_names=["no match", "match"], verbose=False)
    examples.classes = classes  # the photo's class, for the ranking metric
    return examples


def ranking_accuracy(model, examples, batch_size=256):
    """10-way caption ranking: score each photo against the 10 class captions, take the best.

    Args:
        model: a trained task (`mmkeras.tasks.Task`) with a binary match output.
        examples: the `Examples` of photos to rank (with their `classes`).
        batch_size: int. Defaults to `256`.

    Returns the share of photos whose best caption is their own class (= 10-class accuracy).
    """
    n, k = len(examples), len(CLASS_NAMES)
    photos = examples.example_images()
    texts = np.array([caption(c) for c in range(k)] * n, dtype=object)
    pairs = Examples(photos, texts, image_index=np.repeat(np.arange(n), k), verbose=False)
    dataset = pairs.to_dataset(task=model, batch_size=batch_size, with_labels=False)
    scores = np.asarray(model.predict(dataset, verbose=0)).reshape(n, k)
    return float(np.mean(scores.argmax(axis=1) == examples.classes))


def load_fashion_mnist_captions(*, validation_split=0.1, seed=0, limit=None, verbose=True):
    """Fashion-MNIST caption matching as `DatasetSplits` (see the module doc).

    Args:
        validation_split: share of the training photos held out for validation. Defaults to `0.1`.
        seed: int, the seed of the caption pairing and of the validation draw. Defaults to `0`.
        limit: int or None, at most this many photos per split. Defaults to `None`.
        verbose: unused (nothing to decode: the idx files are raw pixels).

    Example:

    >>> splits = load_fashion_mnist_captions(limit=100)
    >>> [CLASS_NAMES[c] for c in splits.train.classes[:2]]  # what the first two photos show
    ['ankle boot', 't-shirt or top']
    >>> splits.train.texts[:2].tolist(), splits.train.labels[:2].tolist()  # 1: the caption matches
    (['this is a sandal', 'this is a t-shirt or top'], [0, 1])
    """
    folder = data_dir()
    train = _split(folder, "train", limit, seed)
    test = _split(folder, "test", limit, seed)
    validation = None
    if validation_split:
        train_rows, val_rows = split_by_group(np.arange(len(train)), validation_split, seed)
        classes = train.classes
        train, validation = train.subset(train_rows), train.subset(val_rows)
        train.classes, validation.classes = classes[train_rows], classes[val_rows]
    return DatasetSplits(
        name="fashion_mnist_captions",
        train=train,
        validation=validation,
        test=test,
        class_names=["no match", "match"],
        task="binary",
        output_name="match",
        image_shape=IMAGE_SHAPE,
        sequence_length=max(len(t.split()) for t in TEMPLATES) + max(len(c.split()) for c in CLASS_NAMES) - 1,
        description=DESCRIPTION,
        extra_metrics=lambda model, batch_size=256: {
            "ranking_accuracy": ranking_accuracy(model, test, batch_size)
        },
    )


DESCRIPTION = (
    "Fashion-MNIST caption matching: real 28x28 product photos and captions built from the 10 class "
    "names (match or not, balanced), plus 10-way caption ranking (= 10-class accuracy). Tests real "
    "images and the fusion plumbing, not language."
)

register_dataset(
    "fashion_mnist_captions",
    load_fashion_mnist_captions,
    "Fashion-MNIST photos + class-name captions: match or not, and 10-way caption ranking (real images)",
    task="binary",
)
