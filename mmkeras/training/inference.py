"""`evaluate` and `predict`: a trained task on a dataset split, or on one raw example.

Both ask the task what it is: its preprocessor decodes and tokenizes, its head checks labels and
turns outputs into answers (`Task.postprocess`).
"""

import os

import keras
import numpy as np

from mmkeras import data as data_module
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


TABLE_OPTIONS = ("image_column", "text_column", "label_column", "label_separator", "caption")


def _table_examples(net, data, options, verbose):
    """Your own table as examples for `net`: its head kind, class names and image shape."""
    head = getattr(net, "head", None)
    if head is None or head.kind not in data_module.TASKS:
        raise ValueError(
            f"`data` needs a model with one binary, multiclass, multilabel or regression head. "
            f"Received: a model with head {getattr(head, 'kind', None)!r}"
        )
    classes = net.class_names() if head.kind in ("binary", "multiclass", "multilabel") else None
    if classes is None and head.kind != "regression":
        raise ValueError("`data` needs a model that names its classes (its preprocessor has no class names).")
    return data_module.load_examples(
        data, task=head.kind, class_names=classes, image_shape=net.preprocessor.image_shape, verbose=verbose,
        **{k: v for k, v in options.items() if k in TABLE_OPTIONS and v is not None},
    )


def _recorded_examples(net, source, split, verbose):
    """The split of the user's data a run trained with, read again from the tables it recorded."""
    given = source.get(f"{split}_data")
    if given is not None:
        return _table_examples(net, given, source, verbose)
    if not source.get("data"):
        raise ValueError(
            "`data` must be given: this run trained on data given in Python, which it cannot read again. "
            "Received: data=None"
        )
    options = {k: source.get(k) for k in (*TABLE_OPTIONS, "class_names", "task", "validation_split", "test_split", "seed")}
    options = {k: v for k, v in options.items() if v is not None}
    splits = data_module.load_table(
        source["data"], image_shape=net.preprocessor.image_shape, verbose=verbose, decode=(split,),
        validation_data=source.get("validation_data"), **options,
    )
    return getattr(splits, split)


def evaluate(model, dataset=None, *, data=None, split="test", batch_size=256, limit=None, verbose=1, data_options=None):
    """Evaluate a trained task on a dataset's split, or on a table of your own.

    Args:
        model: a folder written by `train`, a `.keras` file, or a task.
        dataset: str or None, a built-in dataset name (or a `DatasetSplits`); None takes the data
            the run trained on: a built-in dataset, or your own tables, read again (the test table,
            or the same seeded held-out share of the training table).
        data: your own table to evaluate on, instead of `dataset` (see
            `mmkeras.data.load_table`); its labels must be classes the model knows. Defaults to
            `None`.
        split: `"test"` or `"validation"`. Defaults to `"test"`.
        batch_size: int. Defaults to `256`.
        limit: int or None, at most this many examples. Defaults to `None`.
        verbose: int, 1 prints the metrics. Defaults to `1`.
        data_options: dict or None: `image_column`, `text_column`, `label_column`,
            `label_separator`, `caption` for `data` (default: the run's, else the defaults).

    Returns:
        dict of metrics (`loss`, `accuracy`, and e.g. `ranking_accuracy` for Fashion-MNIST).

    Example:

    >>> import mmkeras
    >>> result = mmkeras.train(epochs=1, limit=300, max_steps=2, output=False, verbose=0)
    >>> sorted(evaluate(result.model, "easy_vqa", limit=100, verbose=0))
    ['accuracy', 'loss']
    """
    check_positive_int("batch_size", batch_size)
    net, examples, name, extra_metrics = evaluation_examples(
        model, dataset, data=data, split=split, limit=limit, verbose=verbose, data_options=data_options
    )
    if not net.compiled:
        net.compile()
    dataset = examples.to_dataset(task=net, batch_size=batch_size, with_labels=examples.labels is not None)
    result = net.evaluate(dataset, verbose=0, return_dict=True)  # a captioner's examples have no labels
    result = {k: float(v) for k, v in result.items()}
    if split == "test" and extra_metrics is not None:
        result.update(extra_metrics(net, batch_size))
    result.update(net.extra_metrics(examples, batch_size))  # e.g. a dual encoder's retrieval metrics
    if verbose:
        header = f"{name} {split} ({len(examples)} examples)"
        if len(result) > 6:  # a dual encoder's retrieval metrics: one per line
            print(f"{header}:\n" + "\n".join(f"  {k:<26} {v:.4f}" for k, v in result.items()))
        else:
            print(f"{header}: " + ", ".join(f"{k} {v:.4f}" for k, v in result.items()))
    return result


def evaluation_examples(model, dataset=None, *, data=None, split="test", limit=None, verbose=1, data_options=None):
    """`(task, examples, name, extra_metrics)`: what `evaluate` runs, loaded as it loads them.

    The arguments are `evaluate`'s (see there); `examples` are the labelled split (checked
    against the task's head, cut to `limit`), `name` names the data in messages, and
    `extra_metrics` is the dataset's `fn(task, batch_size)` of further test metrics, or None.
    `mmkeras.robustness` reads its examples through this too.
    """
    check_one_of("split", split, ("test", "validation"))
    check_positive_int("limit", limit, allow_none=True)
    if data is not None and dataset is not None:
        raise ValueError(f"Pass `dataset` or `data`, not both. Received: dataset={dataset!r}")
    if data_options is not None and (not isinstance(data_options, dict) or set(data_options) - set(TABLE_OPTIONS)):
        raise ValueError(f"`data_options` must be a dict with keys among {list(TABLE_OPTIONS)}. Received: {data_options!r}")
    info = run_info(model) if isinstance(model, (str, os.PathLike)) else {}
    net = _task(model)
    source = info.get("data") or {}
    extra_metrics, name = None, None
    if data is not None:
        examples, name = _table_examples(net, data, {**source, **(data_options or {})}, verbose), data_module.data_name(data)
    elif dataset is None and source:
        examples, name = _recorded_examples(net, source, split, verbose), info.get("dataset")
    else:
        examples, name, extra_metrics = _dataset_examples(net, dataset or info.get("dataset"), split, info, limit, verbose)
    if examples is None:
        raise ValueError(f"`split` {split!r} is empty for dataset {name!r}. Received: split={split!r}")
    if limit is not None and limit < len(examples):
        examples = examples.subset(np.arange(limit))
    net.check_labels(examples.labels)
    return net, examples, name, extra_metrics


def _dataset_examples(net, dataset, split, info, limit, verbose):
    """`(examples, name, extra_metrics)` of a built-in (or given) dataset's split for `net`."""
    if dataset is None:
        raise ValueError("`dataset` must be given: the model does not name the one it trained on. Received: dataset=None")
    if isinstance(dataset, str) and dataset not in data_module.list_datasets() and info.get("dataset") == dataset:
        raise ValueError(
            f"`dataset` or `data` must be given: this run trained on data given in Python ({dataset!r}), which "
            f"it cannot read again. Received: dataset=None, data=None"
        )
    splits = resolve_dataset(dataset, 0.1 if split == "validation" else 0.0, int(info.get("seed", 0)), limit, verbose)
    classes = net.class_names() if hasattr(net, "class_names") else None
    if isinstance(classes, list) and splits.class_names is not None and classes != list(splits.class_names):
        raise ValueError(
            f"`dataset` must have the classes the model answers with ({len(classes)}: {classes[:5]}...), so "
            f"that a label means the same class. Received: dataset {splits.name!r} with classes "
            f"{list(splits.class_names)[:5]}..."
        )
    return getattr(splits, split), splits.name, splits.extra_metrics


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
