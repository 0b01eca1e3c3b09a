"""Built-in datasets, all offline: `load_dataset(name)`, `list_datasets()`.

| name | task | source |
|---|---|---|
| `easy_vqa` | image + question -> one of 13 answers (softmax) | PyPI `easy-vqa` (generated images and questions) |
| `easy_vqa_yes_no` | image + yes/no question -> yes or no (sigmoid) | the same, its yes/no questions only |
| `fashion_mnist_captions` | photo + caption -> match or not (sigmoid), plus 10-way caption ranking | Debian `dataset-fashion-mnist` (real photos) |
| `fashion_mnist_descriptions` | photo <-> description generated from its class (retrieval, 10 classes) | the same |
| `easy_vqa_descriptions` | shape image <-> description of its colour and shape (retrieval, 24 classes) | PyPI `easy-vqa` |
| `easy_vqa_captions` | shape image -> its caption, templated from its colour and shape (captioning, 24 captions) | PyPI `easy-vqa` |
| `fashion_mnist_pair_captions` | two photos side by side -> a caption templated from their classes (captioning, 100 captions) | Debian `dataset-fashion-mnist` |
| `fashion_pairs` | two photos side by side + a generated statement about them -> true or false (sigmoid); text alone and image alone at chance | Debian `dataset-fashion-mnist` |

Each loader returns a `DatasetSplits`: `train`, `validation` and `test` `Examples`, the class
names and the task, ready for `Examples.to_dataset`. Nothing is ever downloaded.

Example:

>>> from mmkeras import data
>>> splits = data.load_dataset("easy_vqa", limit=200)
>>> splits.task, len(splits.class_names), splits.image_shape
('multiclass', 13, (64, 64, 3))
"""

import collections
import dataclasses
from typing import Callable, Optional

import numpy as np

from mmkeras.data.pipeline import Examples
from mmkeras.defaults import SPLIT_TASKS, TASKS  # noqa: F401  (TASKS: imported from here by tables.py)
from mmkeras.validation import check_fraction, check_one_of, check_positive_int, check_seed



@dataclasses.dataclass
class DatasetSplits:
    """A built-in dataset, split and decoded.

    Attributes:
        name: the dataset's registry name.
        train, validation, test: `Examples` (validation may be None with `validation_split=0`).
        class_names: list of str, the name of each class (for a binary task `[negative, positive]`);
            None for regression.
        task: what the dataset trains, one of `SPLIT_TASKS`: a head (`"binary"`, `"multiclass"`,
            `"multilabel"` or `"regression"`), `"retrieval"`: (image, text) pairs for a dual
            encoder, labelled with their class index (every image of a text's class is relevant), or
            `"captioning"`: images with the caption to generate as their text (no labels).
        output_name: str, the name of the model's output (`"answer"`, `"match"`, `"similarity"`).
        image_shape: `(height, width, channels)` of the images.
        sequence_length: int, token ids per text that covers the longest text.
        description: one paragraph on what the dataset is (and is not).
        extra_metrics: None or `fn(task, batch_size) -> dict` of further test metrics
            (Fashion-MNIST's 10-way caption ranking).
        source: None or a dict saying where the data came from (the tables `load_table` read and
            its settings), recorded in a run's `metrics.json` so `evaluate` can read it again.

    Raises:
        ValueError: for a `task` not in `SPLIT_TASKS`, or class names that do not fit it.
    """

    name: str
    train: Examples
    validation: Optional[Examples]
    test: Examples
    class_names: list
    task: str
    output_name: str
    image_shape: tuple
    sequence_length: int
    description: str = ""
    extra_metrics: Optional[Callable] = None
    source: Optional[dict] = None

    def __post_init__(self):
        check_one_of("task", self.task, SPLIT_TASKS)
        if self.task in ("regression", "captioning") or (self.task == "retrieval" and self.class_names is None):
            return  # no classes (captions are the targets); pairs without classes: pair-level retrieval metrics
        if self.class_names is None or len(self.class_names) < 2:
            raise ValueError(
                f"`class_names` must name at least two classes for a {self.task} task. "
                f"Received: class_names={self.class_names!r}"
            )
        if self.task == "binary" and len(self.class_names) != 2:
            raise ValueError(
                "`class_names` must be [negative, positive] for a binary task. "
                f"Received: {len(self.class_names)} class names"
            )

    def __repr__(self):
        sizes = ", ".join(
            f"{split}={len(getattr(self, split))}" for split in ("train", "validation", "test") if getattr(self, split)
        )
        classes = f"{len(self.class_names)} classes" if self.class_names else "no classes"
        return f"<DatasetSplits {self.name!r}: {self.task}, {classes}, {sizes}>"

    def baselines(self):
        """What the texts alone give on the test split (see `text_only_baselines`).

        Learned from the training and validation examples; needs texts and class-index labels.
        """
        parts = [e for e in (self.train, self.validation) if e is not None]
        return text_only_baselines(
            np.concatenate([e.texts for e in parts]),
            np.concatenate([e.labels for e in parts]),
            self.test.texts,
            self.test.labels,
        )

    def head_spec(self):
        """The `head` argument of `build_model` for this task.

        Raises:
            ValueError: for a retrieval or captioning dataset, which trains a model without a head.
        """
        trains = {"retrieval": "a dual encoder (e.g. mmkeras.get_model('clip_small'))",
                  "captioning": "a captioner (e.g. mmkeras.get_model('caption_transformer'))"}
        if self.task in trains:
            raise ValueError(
                f"a {self.task} dataset trains {trains[self.task]}, which has no head: pass it to that "
                f"family, not to a model with a head. Received: dataset {self.name!r} with task={self.task!r}"
            )
        if self.task == "binary":
            return {"kind": "binary", "name": self.output_name}
        if self.task == "regression":
            return {"kind": "regression", "name": self.output_name}
        key = "num_labels" if self.task == "multilabel" else "num_classes"
        return {"kind": self.task, key: len(self.class_names), "name": self.output_name}

    def with_validation(self, validation_split, seed=0):
        """These splits, with `validation_split` of the training images held out for validation.

        Returns `self` when there already is a validation split or `validation_split` is 0.
        Examples that share an image stay on one side.
        """
        check_fraction("validation_split", validation_split)
        if self.validation is not None or not validation_split:
            return self
        groups = self.train.image_index if self.train.image_index is not None else np.arange(len(self.train))
        keep, held = split_by_group(groups, validation_split, seed)
        if len(keep) == 0 or len(held) == 0:
            raise ValueError(
                f"`validation_split` leaves no training or no validation example from {len(self.train)} "
                f"training examples. Received: validation_split={validation_split}"
            )
        return dataclasses.replace(self, train=self.train.subset(keep), validation=self.train.subset(held))


def text_only_baselines(train_texts, train_labels, test_texts, test_labels):
    """Test accuracy of two answers that never look at the image.

    - `most_common_answer`: always the most frequent training label;
    - `question_only`: for each test text, the most frequent training label of the same text
      (lower-cased, stripped); the most common answer for a text never seen in training.

    A multimodal model must beat `question_only` to show that it uses the image.

    Example:

    >>> text_only_baselines(["is it red?", "is it red?", "what shape?"], [1, 1, 2],
    ...                     ["is it red?", "what shape?", "what color?"], [1, 0, 1])
    {'most_common_answer': 0.6666666666666666, 'question_only': 0.6666666666666666}
    """
    train_labels, test_labels = np.asarray(train_labels), np.asarray(test_labels)
    if train_labels.ndim != 1 or test_labels.ndim != 1:
        raise ValueError(
            "`train_labels` and `test_labels` must be one class index per example. "
            f"Received: shapes {train_labels.shape} and {test_labels.shape}"
        )
    values, counts = np.unique(train_labels, return_counts=True)
    most_common = values[np.argmax(counts)]
    by_text = collections.defaultdict(collections.Counter)
    for text, label in zip(train_texts, train_labels):
        by_text[str(text).lower().strip()][label.item()] += 1
    guesses = [
        by_text[key].most_common(1)[0][0] if key in by_text else most_common
        for key in (str(text).lower().strip() for text in test_texts)
    ]
    return {
        "most_common_answer": float(np.mean(test_labels == most_common)),
        "question_only": float(np.mean(np.asarray(guesses) == test_labels)),
    }


_DATASETS = {}


def register_dataset(name, loader, description, task=None):
    """Register `loader(validation_split=..., seed=..., limit=..., verbose=...) -> DatasetSplits`.

    `task` (one of `SPLIT_TASKS`, or None if unknown) is what the loaded splits train: `train`
    checks that a model fits it before loading anything.
    """
    if name in _DATASETS:
        raise ValueError(f"`name` is already a registered dataset. Received: name={name!r}")
    if task is not None:
        check_one_of("task", task, SPLIT_TASKS)
    _DATASETS[name] = (loader, description, task)
    return loader


def list_datasets():
    """Sorted names of the built-in datasets.

    Example:

    >>> list_datasets()
    ['easy_vqa', 'easy_vqa_captions', 'easy_vqa_descriptions', 'easy_vqa_yes_no', 'fashion_mnist_captions',
     'fashion_mnist_descriptions', 'fashion_mnist_pair_captions', 'fashion_pairs']
    """
    return sorted(_DATASETS)


def dataset_description(name):
    """One line on the dataset `name`."""
    check_one_of("dataset", name, _DATASETS)
    return _DATASETS[name][1]


def dataset_task(name):
    """What the built-in dataset `name` trains (one of `SPLIT_TASKS`), or None if not registered.

    Example:

    >>> dataset_task("fashion_mnist_descriptions"), dataset_task("easy_vqa")
    ('retrieval', 'multiclass')
    """
    entry = _DATASETS.get(name)
    return None if entry is None else entry[2]


def load_dataset(name="easy_vqa", *, validation_split=0.1, seed=0, limit=None, verbose=True):
    """Load a built-in dataset, offline, split into train / validation / test `Examples`.

    Args:
        name: one of `list_datasets()`. Defaults to `"easy_vqa"`.
        validation_split: float in [0, 1): the share of the official training split held out
            for validation, drawn with `seed` (by image, so no validation image is trained on).
            The official test split is never touched. Defaults to `0.1`.
        seed: int, the seed of the validation draw (and of generated pairings). Defaults to `0`.
        limit: int or None: at most this many examples per split (for quick runs and tests).
            Defaults to `None` (everything).
        verbose: bool, a progress bar while decoding images. Defaults to `True`.

    Returns:
        A `DatasetSplits`.

    Example:

    >>> splits = load_dataset("easy_vqa_yes_no", limit=100)
    >>> splits.class_names
    ['no', 'yes']
    """
    check_one_of("dataset", name, _DATASETS)
    check_fraction("validation_split", validation_split)
    check_seed("seed", seed)
    check_positive_int("limit", limit, allow_none=True)
    loader = _DATASETS[name][0]
    return loader(validation_split=validation_split, seed=int(seed), limit=limit, verbose=verbose)




def split_by_group(groups, validation_split, seed):
    """Indices `(train, validation)` that keep each group (e.g. an image) on one side.

    `validation_split` of the distinct groups, drawn with `seed`, go to validation.

    Example:

    >>> train, val = split_by_group(np.array([0, 0, 1, 1, 2, 2, 3, 3, 4, 4]), 0.2, seed=0)
    >>> len(train), len(val)
    (8, 2)
    """
    groups = np.asarray(groups)
    distinct = np.unique(groups)
    rng = np.random.default_rng(seed)
    count = int(round(len(distinct) * validation_split))
    if validation_split and count == 0 and len(distinct) > 1:
        count = 1
    held = rng.choice(distinct, size=count, replace=False) if count else np.array([], groups.dtype)
    mask = np.isin(groups, held)
    return np.flatnonzero(~mask), np.flatnonzero(mask)
