"""`train`: the main job end to end, in named steps.

Load a built-in dataset (offline) or the user's `DatasetSplits`, check it, build a zoo recipe as a
task with the dataset's head and a preprocessor learned from the training texts, compile it
with a warm-up + cosine learning-rate schedule, fit it (on tf.distribute where needed), test it,
and write the run folder (`mmkeras.training.runs`). Every input is checked before training
starts and before anything is written.
"""

import dataclasses
import math
import os
import sys
import time

import keras
import numpy as np
import tensorflow as tf

from mmkeras import data as data_module
from mmkeras import distribute
from mmkeras.defaults import DEFAULT_DATASET, DEFAULT_MODEL  # keras-free: `mmkeras train --help` reads them
from mmkeras.heads import get_head
from mmkeras.precision import PRECISIONS, precision_scope, resolve_precision
from mmkeras.preprocessing import Preprocessor, text_vectorizer
from mmkeras.registry import get_entry, get_model, list_models
from mmkeras.training.runs import check_output, check_writable, default_output, machine, versions, write_run
from mmkeras.validation import (
    check_bool, check_fraction, check_image_shape, check_kwargs, check_one_of, check_positive_int, check_seed,
)


@dataclasses.dataclass
class TrainResult:
    """What `train` returns.

    Attributes:
        model: the trained task (`mmkeras.tasks.Task`; its preprocessor is `model.preprocessor`).
        history: dict `{metric: [value per epoch]}`.
        metrics: dict, the content of `metrics.json` (test accuracy, parameters, wall time...).
        output: str or None, the folder written (None with `output=False`).
    """

    model: keras.Model
    history: dict
    metrics: dict
    output: str = None

    @property
    def preprocessor(self):
        """The model's preprocessor (image shape, vocabulary, class names)."""
        return self.model.preprocessor


def training_defaults(model, dataset=None):
    """The training settings `train` uses for `model` on `dataset` when none are given.

    Example:

    >>> training_defaults("vqa", "easy_vqa")["epochs"]
    8
    """
    return get_entry(model).training_defaults(dataset)


def resolve_dataset(dataset, validation_split, seed, limit, verbose):
    """A `DatasetSplits`: the one given (with a validation split held out if it has none), or the
    built-in dataset of that name, loaded."""
    if isinstance(dataset, data_module.DatasetSplits):
        return dataset.with_validation(validation_split, seed)
    if not isinstance(dataset, str):
        raise ValueError(
            f"`dataset` must be a name in {data_module.list_datasets()} or a DatasetSplits. "
            f"Received: dataset={dataset!r}"
        )
    check_one_of("dataset", dataset, data_module.list_datasets())
    return data_module.load_dataset(
        dataset, validation_split=validation_split, seed=seed, limit=limit, verbose=verbose
    )


# Recipe arguments `train` sets itself, and where to change them.
TRAIN_SETS = {
    "image_shape": "use train's `image_shape`",
    "sequence_length": "the longest training text",
    "vocab_size": "the training texts' vocabulary",
    "head": "the dataset's labels (`task` for your own data)",
    "preprocessor": "learned from the training data",
    "compile": "train compiles with its schedule",
}


def _check_arguments(model, precision, epochs, batch_size, max_steps, limit, learning_rate, seed,
                     validation_split, image_shape, model_overrides, strategy, verbose, backup_dir=None):
    """Every argument of `train` checked before anything is loaded, built or written."""
    check_one_of("model", model, list_models())
    check_one_of("verbose", verbose, (0, 1, 2, False, True))
    check_one_of("precision", precision, PRECISIONS)
    for name, value in (("epochs", epochs), ("batch_size", batch_size), ("max_steps", max_steps), ("limit", limit)):
        check_positive_int(name, value, allow_none=True)
    if learning_rate is not None and (
        isinstance(learning_rate, bool) or not isinstance(learning_rate, (int, float, np.integer, np.floating))
        or not 0 < learning_rate < math.inf
    ):
        raise ValueError(f"`learning_rate` must be a positive number (finite, not NaN). Received: learning_rate={learning_rate!r}")
    check_seed("seed", seed)
    if backup_dir is not None:
        if not isinstance(backup_dir, (str, os.PathLike)):
            raise ValueError(f"`backup_dir` must be a folder path or None. Received: backup_dir={backup_dir!r}")
        if os.path.isfile(backup_dir):
            raise ValueError(f"`backup_dir` must be a folder, not an existing file. Received: backup_dir={os.fspath(backup_dir)!r}")
        check_writable("backup_dir", backup_dir)
    check_fraction("validation_split", validation_split)
    if image_shape is not None:
        check_image_shape("image_shape", image_shape)
    if model_overrides is not None:
        if not isinstance(model_overrides, dict):
            raise ValueError(f"`model_overrides` must be a dict of recipe arguments. Received: {model_overrides!r}")
        owned = sorted(set(model_overrides) & set(TRAIN_SETS))
        if owned:
            raise ValueError(
                f"`model_overrides` cannot set {owned}: train sets them from the data "
                f"({', '.join(f'{k}: {v}' for k, v in TRAIN_SETS.items() if k in owned)}). "
                f"Received: model_overrides with keys {sorted(model_overrides)}"
            )
        task = get_entry(model).task
        if task is not None:
            check_kwargs("model_overrides", model, [task.__init__], model_overrides)
    if not isinstance(strategy, str):
        raise ValueError(f"`strategy` must be a strategy name such as 'auto'. Received: strategy={strategy!r}")


@dataclasses.dataclass
class _Data:
    splits: object
    train: object
    validation: object
    test: object
    preprocessor: Preprocessor
    head: dict


def _prepare_data(splits, settings, image_shape):
    """Check the labels, resize the images once, learn the vocabulary from the training texts."""
    if splits.train.texts is None:
        raise ValueError(
            "`dataset` must give raw training texts (train learns the vocabulary from them). "
            "Received: training examples with token ids or without texts"
        )
    head_spec = None if splits.task in ("retrieval", "captioning") else splits.head_spec()  # no head there
    head = None if head_spec is None else get_head(head_spec)
    for split in ("train", "validation", "test"):
        examples = getattr(splits, split)
        if examples is not None and head is not None:
            examples.check_labels(head)
    image_shape = tuple(image_shape or settings["image_shape"] or splits.image_shape)
    train_examples = splits.train.resized(image_shape)
    vectorizer = text_vectorizer(
        train_examples.texts, vocab_size=settings["vocab_size"], sequence_length=splits.sequence_length
    )
    return _Data(
        splits=splits,
        train=train_examples,
        validation=None if splits.validation is None else splits.validation.resized(image_shape),
        test=splits.test.resized(image_shape),
        preprocessor=Preprocessor.from_vectorizer(vectorizer, image_shape=image_shape, class_names=splits.class_names),
        head=head_spec,
    )


def _build(model, data, model_overrides, tf_strategy, policy, learning_rate, total_steps, warmup):
    """The recipe as a task with the dataset's head and preprocessor, compiled under the strategy."""
    pre = data.preprocessor
    overrides = {
        **(model_overrides or {}),
        "image_shape": pre.image_shape,
        "sequence_length": pre.sequence_length,
        "vocab_size": pre.vocab_size,
        "preprocessor": pre,
        "compile": False,
    }
    if data.head is not None:
        overrides["head"] = data.head
    with tf_strategy.scope(), precision_scope(policy):
        net = get_model(model, **overrides)
        net.compile(optimizer=net.training_optimizer(learning_rate, total_steps, warmup))
    return net


def _pipelines(net, data, batch_size, seed, max_steps):
    """tf.data pipelines of training, validation and test batches that fit `net`."""
    labelled = data.train.labels is not None  # a dual encoder's pairs may have no classes
    train = data.train.to_dataset(task=net, batch_size=batch_size, shuffle=True, seed=int(seed), with_labels=labelled)
    if max_steps:
        train = train.repeat()
    evaluation_batch = max(batch_size, 256)
    validation = None if data.validation is None else data.validation.to_dataset(
        task=net, batch_size=evaluation_batch, with_labels=labelled)
    return train, validation, data.test.to_dataset(task=net, batch_size=evaluation_batch, with_labels=labelled)


def _record(model, data, net, test, extra, history, settings, started):
    """The content of `metrics.json`."""
    splits = data.splits
    return {
        "model": model,
        "dataset": splits.name,
        "task": splits.task,
        "data": splits.source,
        "task_class": type(net).__name__,
        "head": net.head.get_config() if hasattr(net, "head") else None,
        "test_accuracy": test.get("accuracy", test.get(f"{splits.output_name}_accuracy")),
        "test_loss": test.get("loss"),
        "test_metrics": test,
        **{f"test_{k}": v for k, v in extra.items()},
        "validation_accuracy": (history.get("val_accuracy") or [None])[-1],
        "parameters": int(net.count_params()),
        **settings,
        "examples": {
            "train": len(data.train),
            "validation": 0 if data.validation is None else len(data.validation),
            "test": len(data.test),
        },
        "image_shape": list(data.preprocessor.image_shape),
        "history": history,
        "versions": versions(),
        "machine": {**machine(), "load_average_at_start": started["load"]},
        "argv": [os.path.basename(sys.argv[0])] + sys.argv[1:] if sys.argv else None,
    }


def _data_splits(dataset, data, test_data, validation_data, task, image_storage, data_options,
                 image_shape, validation_split, seed, limit, verbose):
    """The `DatasetSplits` to train on: a built-in or given dataset, or the user's tables read."""
    if data is None:
        for name, value in (("test_data", test_data), ("validation_data", validation_data), ("task", task),
                            ("data_options", data_options)):
            if value is not None:
                raise ValueError(f"`{name}` goes with `data` (your own table). Received: {name}={value!r} and data=None")
        return resolve_dataset(dataset, validation_split, seed, limit, verbose)
    if limit is not None:
        raise ValueError(f"`limit` is for the built-in datasets; use `max_steps` for a quick run on `data`. Received: limit={limit}")
    return data_module.load_table(
        data, test_data=test_data, validation_data=validation_data, task=task, image_shape=image_shape,
        validation_split=validation_split, seed=seed, image_storage=image_storage, verbose=verbose,
        **(data_options or {}),
    )


def train(
    model=DEFAULT_MODEL,
    dataset=None,
    *,
    data=None,
    test_data=None,
    validation_data=None,
    task=None,
    image_storage="auto",
    data_options=None,
    epochs=None,
    batch_size=None,
    learning_rate=None,
    seed=0,
    output=None,
    precision="auto",
    strategy="auto",
    backup_dir=None,
    max_steps=None,
    limit=None,
    validation_split=0.1,
    image_shape=None,
    model_overrides=None,
    export=True,
    deterministic=False,
    verbose=1,
):
    """Train a zoo recipe on a built-in dataset, test it, and save everything in one folder.

    Args:
        model: str, a name from `mmkeras.list_models()`. Defaults to `"vqa"`, the tuned default
            recipe. The recipe's head is replaced by the dataset's (13-way softmax named
            `"answer"` for easy-VQA, one sigmoid named `"match"` for Fashion-MNIST captions).
        dataset: str, a name from `mmkeras.data.list_datasets()`, or a `DatasetSplits` of your
            own (a validation split is held out of its training examples if it has none).
            Defaults to `"easy_vqa"` when no `data` is given.
        data: your own training table instead of `dataset`: a .csv / .jsonl / .parquet file, a
            pandas DataFrame, a list of dicts or a dict of columns, with an image path, a text and
            a label per row; or an image folder by class (see `mmkeras.data.load_table`).
            Defaults to `None`.
        test_data, validation_data: tables like `data`, or None: a seeded share of `data`'s
            images is held out instead (`validation_split`, and `data_options["test_split"]`,
            default 0.1).
        task: None (inferred from the labels: binary, multiclass, multilabel or regression) or
            one of those names, for `data`. Defaults to `None`.
        image_storage: `"auto"`, `"memory"` or `"disk"`: where `data`'s decoded images are kept
            (`"auto"`: on disk when they would take more than a quarter of the memory).
        data_options: dict or None, further arguments of `mmkeras.data.load_table`:
            `image_column`, `text_column`, `label_column`, `class_names`, `label_separator`,
            `caption`, `test_split`, `memory_budget`.
        epochs: int or None, the recipe's tuned value when None.
        batch_size: int or None, the **global** batch size (split across replicas under a
            distribution strategy); the recipe's tuned value when None.
        learning_rate: float or None, the peak learning rate of the warm-up + cosine schedule
            (Adam); the recipe's tuned value when None.
        seed: int, seeds weights, shuffling and the validation draw. Defaults to `0`.
        output: str, the folder to write (replaced if it holds an earlier run); `None` means
            `saved_models/<model>-<dataset>`; `False` writes nothing. Defaults to `None`.
        precision: `"auto"`, `"float32"`, `"mixed_bfloat16"` or `"mixed_float16"`. `"auto"` picks
            bfloat16 where the CPU (AVX512_BF16 / AMX) or GPU supports it. Defaults to `"auto"`.
        strategy: str, a `mmkeras.distribute` strategy name. Defaults to `"auto"`.
        backup_dir: str or None, where `keras.callbacks.BackupAndRestore` keeps the state that
            lets an interrupted run resume. Defaults to `None`.
        max_steps: int or None, at most this many training steps per epoch (smoke tests).
        limit: int or None, at most this many examples per split (smoke tests).
        validation_split: float in [0, 1), share of the training images held out for validation.
            Defaults to `0.1`.
        image_shape: tuple or None, the model's image shape; the recipe's tuned shape, else the
            dataset's own, when None.
        model_overrides: dict or None, extra arguments of the recipe's task (see
            `mmkeras.tasks.FusionClassifier`), e.g. `{"image_encoder": {"filters": (8, 16)}}`.
        export: bool, also export a SavedModel (`mmkeras.export_model`) into
            `<output>/saved_model`. Defaults to `True`.
        deterministic: bool, switch TensorFlow's op determinism on
            (`tf.config.experimental.enable_op_determinism`), so that two runs with the same
            seed, data and machine give the same weights and metrics, bit for bit, on any
            device. Like that function, it stays on for the rest of the process. What it costs
            in speed: docs/benchmarks.md, "Determinism". Defaults to `False`.
        verbose: int, 0 silent, 1 progress bars and a summary, 2 one line per epoch and a
            summary (for logs). Defaults to `1`.

    Returns:
        A `TrainResult` (model, history, metrics, output folder).

    Raises:
        ValueError: for any bad argument or data, before training starts and before anything is
            written.

    Example:

    >>> result = train("vqa", "easy_vqa", epochs=1, limit=300, max_steps=2, output=False, verbose=0)
    >>> 0 <= result.metrics["test_accuracy"] <= 1, result.model.head.kind
    (True, 'multiclass')
    """
    started = {"time": time.perf_counter(), "load": [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None}
    _check_arguments(model, precision, epochs, batch_size, max_steps, limit, learning_rate, seed,
                     validation_split, image_shape, model_overrides, strategy, verbose, backup_dir)
    check_bool("deterministic", deterministic)
    if data is not None and dataset is not None:
        raise ValueError(f"Pass `dataset` (built in) or `data` (your own table), not both. Received: dataset={dataset!r}")
    if data_options is not None and not isinstance(data_options, dict):
        raise ValueError(f"`data_options` must be a dict of load_table arguments. Received: data_options={data_options!r}")
    dataset = DEFAULT_DATASET if dataset is None and data is None else dataset
    policy = resolve_precision(precision)
    if data is not None:
        dataset_name = data_module.data_name(data)
    else:
        dataset_name = dataset if isinstance(dataset, str) else getattr(dataset, "name", "custom")
    defaults = training_defaults(model, dataset_name)
    epochs, batch_size = epochs or defaults["epochs"], batch_size or defaults["batch_size"]
    learning_rate = float(learning_rate or defaults["learning_rate"])
    if output is None:
        output = default_output(model, dataset_name)
    if output is not False:
        output = check_output(output)

    if isinstance(dataset, str):  # a built-in dataset: refuse a model that cannot train on it before loading
        _check_model_fits_task(model, dataset, data_module.dataset_task(dataset))

    # The strategy comes before any other TensorFlow work: collective ops must be set up first.
    tf_strategy = distribute.get_strategy(strategy)
    if output is not False and not distribute.is_chief(tf_strategy):
        output = False  # in a multi-worker run only the chief writes the run folder

    keras.utils.set_random_seed(int(seed))
    if deterministic:
        tf.config.experimental.enable_op_determinism()
    splits = _data_splits(dataset, data, test_data, validation_data, task, image_storage, data_options,
                          image_shape or defaults["image_shape"], validation_split, int(seed), limit, verbose)
    _check_model_fits_task(model, splits.name, splits.task)
    data = _prepare_data(splits, defaults, image_shape)
    steps_per_epoch = math.ceil(len(data.train) / batch_size)
    steps_per_epoch = min(steps_per_epoch, max_steps) if max_steps else steps_per_epoch
    net = _build(model, data, model_overrides, tf_strategy, policy, learning_rate, epochs * steps_per_epoch, defaults["warmup"])
    train_data, val_data, test_data = _pipelines(net, data, batch_size, seed, max_steps)
    if verbose:
        print(
            f"Training {model!r} on {data.splits.name!r}: {len(data.train):,} train / "
            f"{0 if data.validation is None else len(data.validation):,} validation / {len(data.test):,} test "
            f"examples, {net.count_params():,} parameters, {epochs} epochs x {steps_per_epoch} steps of "
            f"{batch_size}, precision {policy}, {tf_strategy.num_replicas_in_sync} replica(s)."
        )

    fit_started = time.perf_counter()
    backup_settings = {
        "model": model, "dataset": data.splits.name, "epochs": epochs, "batch_size": batch_size,
        "steps_per_epoch": steps_per_epoch, "learning_rate": learning_rate, "seed": int(seed),
        "precision": str(policy), "limit": limit, "validation_split": validation_split,
        "image_shape": list(data.preprocessor.image_shape),
    }
    history = distribute.fit(
        net, train_data, epochs=epochs, validation_data=val_data, backup_dir=backup_dir,
        steps_per_epoch=steps_per_epoch, verbose=int(verbose), callbacks=[keras.callbacks.TerminateOnNaN(), *net.training_callbacks()],
        backup_settings=backup_settings, keep_backup=True,
    )
    train_seconds = time.perf_counter() - fit_started
    history = {k: [float(v) for v in values] for k, values in dict(history).items()}
    _check_finite(net, history, learning_rate, backup_dir)
    test = {k: float(v) for k, v in distribute.evaluate(net, test_data).items()}
    extra = {}
    if not distribute.needs_custom_loop(tf_strategy):
        if data.splits.extra_metrics is not None:
            extra = data.splits.extra_metrics(net, max(batch_size, 256))
        extra.update(net.extra_metrics(data.test, max(batch_size, 256)))
    settings = {
        "train_wall_time_s": round(train_seconds, 2), "total_wall_time_s": None, "epochs": epochs,
        "steps_per_epoch": steps_per_epoch, "batch_size": batch_size, "learning_rate": learning_rate,
        "precision": policy, "precision_requested": precision, "strategy": strategy,
        "replicas": int(tf_strategy.num_replicas_in_sync), "seed": int(seed), "deterministic": deterministic,
    }
    metrics = _record(model, data, net, test, extra, history, settings, started)
    if output is not False:
        write_run(output, net, history, metrics, export=export, started=started["time"], verbose=verbose)
    else:
        metrics["total_wall_time_s"] = round(time.perf_counter() - started["time"], 2)
    if backup_dir is not None and distribute.is_chief(tf_strategy):
        distribute.delete_backup(backup_dir)  # kept until the run folder is safe: a kill before resumes
    if verbose:
        _print_summary(metrics, extra, len(data.test), train_seconds, output)
    return TrainResult(model=net, history=history, metrics=metrics, output=output or None)


def _check_model_fits_task(model, dataset_name, dataset_task):
    """Refuse a dataset the model's family does not train on (`Task.trains_on`), naming models that do."""
    from mmkeras.tasks import Task

    if dataset_task is None:
        return
    task = get_entry(model).task
    trains_on = task.trains_on if isinstance(task, type) and issubclass(task, Task) else Task.trains_on
    if dataset_task in trains_on:
        return
    fitting = [name for name in list_models() if dataset_task in getattr(get_entry(name).task, "trains_on", ())]
    raise ValueError(
        f"`model` {model!r} ({getattr(task, '__name__', task)}) trains on {' or '.join(trains_on)} datasets, and "
        f"`dataset` {dataset_name!r} is a {dataset_task} dataset: train "
        + (", ".join(repr(n) for n in fitting[:6]) if fitting else "another family") + " on it. "
        f"Received: model={model!r}, dataset={dataset_name!r}"
    )


def _check_finite(net, history, learning_rate, backup_dir):
    """Raise before anything is written when training diverged (a NaN or inf loss or weight)."""
    losses = history.get("loss") or []
    bad_epoch = next((i for i, v in enumerate(losses) if not math.isfinite(v)), None)
    if bad_epoch is None and all(np.isfinite(np.asarray(w, dtype="float64")).all() for w in net.get_weights()):
        return
    where = f"the training loss became {losses[bad_epoch]} in epoch {bad_epoch + 1}" if bad_epoch is not None \
        else "the weights became NaN or infinite"
    backup = ""
    if backup_dir is not None:
        distribute.delete_backup(backup_dir)  # it holds the diverged weights: resuming them is useless
        backup = f"; its backup in {os.fspath(backup_dir)!r} was removed (diverged weights)"
    raise ValueError(
        f"Training diverged: {where}; nothing was saved{backup}. Try a smaller `learning_rate` "
        f"(CLI: --learning-rate). Received: learning_rate={learning_rate!r}"
    )


def headline(metrics):
    """The line that says how good a run is: its test accuracy, or its other test metrics."""
    if metrics.get("test_accuracy") is not None:
        return f"Test accuracy: {metrics['test_accuracy']:.4f}"
    if metrics.get("test_t2i_recall@1") is not None:  # a dual encoder: its retrieval metrics
        names = {"t2i_recall@1": "text->image Recall@1", "class_t2i_recall@1": "class-level",
                 "zero_shot_accuracy": "zero-shot accuracy"}
        return "Test " + ", ".join(f"{label}: {metrics[f'test_{k}']:.4f}" for k, label in names.items()
                                   if metrics.get(f"test_{k}") is not None)
    if metrics.get("test_beam_bleu4") is not None:  # a captioner: BLEU-4 and exact match of its captions
        return (f"Test BLEU-4: {metrics['test_beam_bleu4']:.4f} (greedy {metrics['test_greedy_bleu4']:.4f}), "
                f"exact match: {metrics['test_beam_exact_match']:.4f}")
    others = {k: v for k, v in (metrics.get("test_metrics") or {}).items() if k != "loss"}
    return "Test " + ", ".join(f"{k}: {v:.4f}" for k, v in others.items())


def _print_summary(metrics, extra, test_size, train_seconds, output):
    line = headline(metrics)
    if extra and metrics.get("test_t2i_recall@1") is None and metrics.get("test_beam_bleu4") is None:  # see metrics.json
        line += "  (" + ", ".join(f"{k} {v:.4f}" for k, v in extra.items()) + ")"
    print(f"{line}  [{test_size:,} test examples; training took {train_seconds:.1f} s]")
    if output is not False:
        print(f"Saved to {output}")
