"""`evaluate` and `predict`: a trained task on a dataset split, or on one raw example.

Both ask the task what it is: its preprocessor decodes and tokenizes, its head checks labels and
turns outputs into answers (`Task.postprocess`).
"""

import os

import keras
import numpy as np

from mmkeras.tasks import Task
from mmkeras.training.runs import load_run, run_info
from mmkeras.training.train import resolve_dataset
from mmkeras.validation import check_one_of, check_positive_int, received


def _task(model):
    """A `Task` from a run folder, a `.keras` file or a task."""
    if isinstance(model, Task):
        return model
    if isinstance(model, keras.Model):
        raise ValueError(
            "`model` must be an mmkeras task, a run folder or a .keras file; wrap a plain Keras model "
            f"with mmkeras.tasks.ModelTask(model, head=..., preprocessor=...). {received('model', model)}"
        )
    return load_run(model)


def evaluate(model, dataset=None, *, split="test", batch_size=256, limit=None, verbose=1):
    """Evaluate a trained task on a built-in dataset's split.

    Args:
        model: a folder written by `train`, a `.keras` file, or a task.
        dataset: str or None, a built-in dataset name (or a `DatasetSplits`); None takes the one
            the run trained on.
        split: `"test"` or `"validation"`. Defaults to `"test"`.
        batch_size: int. Defaults to `256`.
        limit: int or None, at most this many examples. Defaults to `None`.
        verbose: int, 1 prints the metrics. Defaults to `1`.

    Returns:
        dict of metrics (`loss`, `accuracy`, and e.g. `ranking_accuracy` for Fashion-MNIST).

    Example:

    >>> import mmkeras
    >>> result = mmkeras.train(epochs=1, limit=300, max_steps=2, output=False, verbose=0)
    >>> sorted(evaluate(result.model, "easy_vqa", limit=100, verbose=0))
    ['accuracy', 'loss']
    """
    check_one_of("split", split, ("test", "validation"))
    check_positive_int("batch_size", batch_size)
    check_positive_int("limit", limit, allow_none=True)
    info = run_info(model) if isinstance(model, (str, os.PathLike)) else {}
    net = _task(model)
    dataset = dataset or info.get("dataset")
    if dataset is None:
        raise ValueError("`dataset` must be given: the model does not name the one it trained on. Received: dataset=None")
    splits = resolve_dataset(dataset, 0.1 if split == "validation" else 0.0, int(info.get("seed", 0)), limit, verbose)
    examples = getattr(splits, split)
    if examples is None:
        raise ValueError(f"`split` {split!r} is empty for dataset {splits.name!r}. Received: split={split!r}")
    classes = net.class_names() if hasattr(net, "class_names") else None
    if isinstance(classes, list) and splits.class_names is not None and classes != list(splits.class_names):
        raise ValueError(
            f"`dataset` must have the classes the model answers with ({len(classes)}: {classes[:5]}...), so "
            f"that a label means the same class. Received: dataset {splits.name!r} with classes "
            f"{list(splits.class_names)[:5]}..."
        )
    net.check_labels(examples.labels)
    if not net.compiled:
        net.compile()
    result = net.evaluate(examples.to_dataset(task=net, batch_size=batch_size), verbose=0, return_dict=True)
    result = {k: float(v) for k, v in result.items()}
    if split == "test" and splits.extra_metrics is not None:
        result.update(splits.extra_metrics(net, batch_size))
    if verbose:
        print(f"{splits.name} {split} ({len(examples)} examples): " + ", ".join(f"{k} {v:.4f}" for k, v in result.items()))
    return result


def _one_image(image):
    """One image (a path, encoded bytes or an array `(h, w, c)`) as a batch of one."""
    if isinstance(image, (str, os.PathLike)):
        if not os.path.isfile(image):
            raise ValueError(f"`image` must be an existing image file. Received: image={os.fspath(image)!r} (no such file)")
        return [image]
    if isinstance(image, (bytes, bytearray)):
        return [bytes(image)]
    if isinstance(image, np.ndarray) and image.ndim in (2, 3):
        return image[None]
    raise ValueError(
        "`image` must be a file path, encoded image bytes or an image array (h, w, c). "
        f"Received: image of type {type(image).__name__}"
        + (f" and shape {image.shape}" if isinstance(image, np.ndarray) else "")
    )


def predict(model, image=None, text=None, *, preprocessor=None, top_k=3):
    """Answer one question about one image (or score one caption) with a trained task.

    Args:
        model: a folder written by `train`, a `.keras` file, or a task.
        image: an image file path, encoded image bytes, or an array `(h, w, c)` (None for a
            text-only model).
        text: str, the question or caption (None for an image-only model).
        preprocessor: a `Preprocessor` to use instead of the task's own (for this call only).
            Defaults to `None`.
        top_k: int, how many of the most likely classes to list. Defaults to `3`.

    Returns:
        The head's answer for this example (`Task.postprocess`): for a binary or multiclass head
        `{"answer": class name, "probability": p, "top": [(class name, p), ...]}`; for a
        multilabel head `{"answer": [labels on], "probabilities": {...}}`; for a regression head
        `{"answer": value}`; for a multi-task head a dict of those, one per output.

    Example:

    >>> import mmkeras, numpy as np
    >>> model = mmkeras.get_model("s3", image_shape=(32, 32, 3))
    >>> sorted(predict(model, np.zeros((28, 28, 3), "uint8")))
    ['answer', 'probability', 'top']
    """
    check_positive_int("top_k", top_k)
    net = _task(model)
    if text is not None and not isinstance(text, str):
        raise ValueError(f"`text` must be one string. Received: text={text!r}")
    raw = {"image": None if image is None else _one_image(image), "text": None if text is None else [text]}
    own = net.preprocessor
    if preprocessor is not None:
        net.preprocessor = preprocessor
    try:
        return net.answer(**{name: raw.get(name) for name in net.input_kinds}, top_k=top_k)[0]
    finally:
        net.preprocessor = own
