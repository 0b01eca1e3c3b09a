"""easy-VQA: visual question answering on generated shapes (PyPI `easy-vqa`, MIT licence).

**The images and questions are generated, not real.** Each 64x64 PNG shows one circle,
rectangle or triangle in one of 8 colours on a pale background, and each question comes from
a few dozen templates ("what color is the shape?", "is there not a red shape in the image?").
It is a clean test that a model joins the two modalities (the answer needs both the picture and
the question: the question alone gives at most 67.0%, the most common answer 37.3%), not a test
of visual or linguistic understanding.

Official split: 4,000 training images with 38,575 questions, 1,000 test images with 9,673
questions; 13 answers (about 74% of the questions are yes/no). Published: a small Keras CNN +
bag-of-words model reaches 93.8% test accuracy (Victor Zhou, "Easy VQA", 2020).

Registered as `easy_vqa` (13-way answers, softmax) and `easy_vqa_yes_no` (its yes/no questions,
one sigmoid). Validation images are carved from the training images with a fixed seed; the
official test split is used only for testing.
"""

import numpy as np

from mmkeras.data.datasets import DatasetSplits, register_dataset, split_by_group
from mmkeras.data.pipeline import Examples
from mmkeras.validation import check_one_of

IMAGE_SHAPE = (64, 64, 3)


def _easy_vqa():
    try:
        import easy_vqa
    except ImportError:  # pragma: no cover - easy-vqa is a dependency of mmkeras
        raise ImportError(
            "The easy_vqa dataset needs the `easy-vqa` package (a dependency of mmkeras, installed "
            "offline from its wheel): pip install easy-vqa==1.0"
        ) from None
    return easy_vqa


def _sequence_length(texts):
    """Words in the longest text (the standardization only removes punctuation)."""
    return max(len(t.split()) for t in texts)


def _split(easy_vqa, split, task, limit, verbose):
    texts, answers, image_ids = getattr(easy_vqa, f"get_{split}_questions")()
    paths = getattr(easy_vqa, f"get_{split}_image_paths")()
    texts = np.asarray(texts, dtype=object)
    answers = np.asarray(answers, dtype=object)
    image_ids = np.asarray(image_ids)
    if task == "binary":
        keep = np.isin(answers, ("yes", "no"))
        texts, answers, image_ids = texts[keep], answers[keep], image_ids[keep]
        class_names = ["no", "yes"]
    else:
        class_names = list(easy_vqa.get_answers())
    if limit is not None:
        texts, answers, image_ids = texts[:limit], answers[:limit], image_ids[:limit]
    lookup = {name: i for i, name in enumerate(class_names)}
    labels = np.array([lookup[a] for a in answers], dtype="int32")
    used = np.unique(image_ids)
    position = {image_id: i for i, image_id in enumerate(used)}
    examples = Examples(
        [paths[i] for i in used],
        texts,
        labels,
        image_shape=IMAGE_SHAPE,
        image_index=np.array([position[i] for i in image_ids], dtype="int32"),
        class_names=class_names,
        verbose=verbose,
    )
    return examples, image_ids, class_names


def load_easy_vqa(task="multiclass", *, validation_split=0.1, seed=0, limit=None, verbose=True):
    """easy-VQA as `DatasetSplits` (see the module doc; use `mmkeras.data.load_dataset`).

    Args:
        task: `"multiclass"` (13 answers) or `"binary"` (the yes/no questions).
        validation_split: share of the training images held out for validation. Defaults to `0.1`.
        seed: int, the seed of the validation draw. Defaults to `0`.
        limit: int or None, at most this many questions per split. Defaults to `None`.
        verbose: bool, progress bars while decoding. Defaults to `True`.

    Example:

    >>> splits = load_easy_vqa(limit=100)
    >>> splits.train.texts[0], splits.class_names[splits.train.labels[0]]
    ('what is the blue shape?', 'rectangle')
    """
    check_one_of("task", task, ("multiclass", "binary"))
    easy_vqa = _easy_vqa()
    train, train_ids, class_names = _split(easy_vqa, "train", task, limit, verbose)
    test, _, _ = _split(easy_vqa, "test", task, limit, verbose)
    validation = None
    if validation_split:
        train_rows, val_rows = split_by_group(train_ids, validation_split, seed)
        if len(train_rows) and len(val_rows):
            train, validation = train.subset(train_rows), train.subset(val_rows)
    name = "easy_vqa" if task == "multiclass" else "easy_vqa_yes_no"
    return DatasetSplits(
        name=name,
        train=train,
        validation=validation,
        test=test,
        class_names=class_names,
        task=task,
        output_name="answer",
        image_shape=IMAGE_SHAPE,
        sequence_length=max(_sequence_length(train.texts), _sequence_length(test.texts)),
        description=DESCRIPTION,
    )


DESCRIPTION = (
    "easy-VQA: generated 64x64 images of one coloured shape and generated questions about them "
    "(not real photos or language); 13 answers."
)

register_dataset(
    "easy_vqa",
    lambda **kwargs: load_easy_vqa("multiclass", **kwargs),
    "easy-VQA, 13-way answers (generated images and questions; official train/test split)",
    task="multiclass",
)
register_dataset(
    "easy_vqa_yes_no",
    lambda **kwargs: load_easy_vqa("binary", **kwargs),
    "easy-VQA's yes/no questions as a binary task (generated images and questions)",
    task="binary",
)
