"""Train, evaluate and predict: the Python API that the `mmkeras` command is a thin layer over.

`train()` runs the main job end to end: load a built-in dataset (offline), check it, build a
zoo recipe with the dataset's head, compile with a warm-up + cosine learning-rate schedule,
`fit` with a progress bar, evaluate on the official test split, and write into one folder:

    model.keras          the trained model (`keras.saving.load_model(..., safe_mode=True)`)
    preprocessor.json    image shape, vocabulary and class names (`Preprocessor.load`)
    history.png          the training curves (loss and accuracy, train and validation)
    metrics.json         test metrics, parameters, wall time, settings, versions, machine
    saved_model/         a TensorFlow SavedModel serving raw image bytes and raw strings

The folder is written under a temporary name and renamed when everything has succeeded, so an
error (bad data, an interrupted run) never leaves a half-written folder behind; every input is
checked before training starts.

Example:

>>> import mmkeras
>>> result = mmkeras.train(epochs=1, limit=500, output="/tmp/vqa-smoke", verbose=0)
>>> result.output, sorted(os.listdir(result.output))
('/tmp/vqa-smoke', ['history.png', 'metrics.json', 'model.keras', 'preprocessor.json', 'saved_model'])
>>> mmkeras.predict("/tmp/vqa-smoke", image="shape.png", text="what color is the shape?")
{'answer': 'blue', 'probability': 0.97, ...}
"""

import dataclasses
import json
import math
import os
import platform
import shutil
import sys
import tempfile
import time

import keras
import numpy as np

from mmkeras import data as data_module
from mmkeras import distribute
from mmkeras.heads import get_head
from mmkeras.precision import PRECISIONS, precision_scope, resolve_precision
from mmkeras.preprocessing import Preprocessor, fit_images, images_to_float, text_vectorizer
from mmkeras.registry import get_entry, get_model, list_models
from mmkeras.validation import check_fraction, check_image_shape, check_one_of, check_positive_int

DEFAULT_MODEL = "vqa"
DEFAULT_DATASET = "easy_vqa"
DEFAULT_OUTPUT_ROOT = "saved_models"
OUTPUT_FILES = ("model.keras", "preprocessor.json", "metrics.json", "history.png")

def training_defaults(model, dataset=None):
    """The training settings `train` uses for `model` on `dataset` when none are given."""
    return get_entry(model).training_defaults(dataset)


@dataclasses.dataclass
class TrainResult:
    """What `train` returns.

    Attributes:
        model: the trained `keras.Model`.
        preprocessor: the `Preprocessor` (image shape, vocabulary, class names).
        history: dict `{metric: [value per epoch]}`.
        metrics: dict, the content of `metrics.json` (test accuracy, parameters, wall time...).
        output: str or None, the folder written (None with `output=False`).
    """

    model: keras.Model
    preprocessor: Preprocessor
    history: dict
    metrics: dict
    output: str = None


def default_output(model, dataset):
    """`saved_models/<model>-<dataset>` (relative to the current folder)."""
    return os.path.join(DEFAULT_OUTPUT_ROOT, f"{model}-{dataset}")


def _check_output(output):
    """Refuse an output that is a file, or a non-empty folder that is not an mmkeras run."""
    output = os.path.abspath(os.fspath(output))
    if os.path.isfile(output):
        raise ValueError(f"`output` must be a folder, not an existing file. Received: output={output!r}")
    if os.path.isdir(output) and os.listdir(output):
        if not os.path.isfile(os.path.join(output, "metrics.json")):
            raise ValueError(
                "`output` must be a new folder or the folder of an earlier mmkeras run (which is "
                f"replaced); this one holds other files. Received: output={output!r}"
            )
    return output


def _model_inputs(model):
    return [name for name in ("image", "text") if isinstance(model.input, dict) and name in model.input]


def _versions():
    import tensorflow as tf

    from mmkeras import __version__

    return {
        "mmkeras": __version__,
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
    }


def _machine():
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    import tensorflow as tf

    machine = {
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "gpus": [d.name for d in tf.config.list_physical_devices("GPU")],
        "platform": platform.platform(),
    }
    if hasattr(os, "getloadavg"):
        machine["load_average"] = [round(x, 2) for x in os.getloadavg()]
    return machine


def plot_history(history, path, title=None):
    """Save the training curves (loss and accuracy per epoch, train and validation) as a PNG.

    Uses matplotlib's Agg canvas directly, so it works headless and leaves pyplot's backend alone.

    Example:

    >>> plot_history({"loss": [0.9, 0.4], "val_loss": [0.8, 0.5]}, "/tmp/history.png")
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    groups = [k for k in ("loss", "accuracy") if k in history] or [
        k for k in history if not k.startswith("val_")
    ][:2]
    figure = Figure(figsize=(5 * max(1, len(groups)), 3.6), dpi=100)
    FigureCanvasAgg(figure)
    for i, key in enumerate(groups, start=1):
        axes = figure.add_subplot(1, len(groups), i)
        for name, label in ((key, "train"), (f"val_{key}", "validation")):
            values = history.get(name)
            if values:
                axes.plot(range(1, len(values) + 1), values, marker="o", label=label)
        if key == "loss" and all(v > 0 for name in (key, f"val_{key}") for v in history.get(name, [])):
            axes.set_yscale("log")
        axes.set_xlabel("epoch")
        axes.set_ylabel(key)
        axes.grid(alpha=0.3)
        axes.legend()
    if title:
        figure.suptitle(title)
    figure.tight_layout()
    figure.savefig(path)


def learning_rate_schedule(learning_rate, total_steps, warmup=0.05):
    """Linear warm-up to `learning_rate` over `warmup` of the steps, then cosine decay to 0.

    Example:

    >>> schedule = learning_rate_schedule(3e-3, total_steps=1000)
    >>> float(schedule(50)) == 3e-3
    True
    """
    warmup_steps = int(total_steps * warmup)
    return keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=learning_rate / 10 if warmup_steps else learning_rate,
        decay_steps=max(1, total_steps - warmup_steps),
        alpha=0.0,
        warmup_target=learning_rate if warmup_steps else None,
        warmup_steps=warmup_steps,
    )


def _resolve_dataset(dataset, validation_split, seed, limit, verbose):
    if isinstance(dataset, data_module.DatasetSplits):
        return dataset
    if not isinstance(dataset, str):
        raise ValueError(
            f"`dataset` must be a name in {data_module.list_datasets()} or a DatasetSplits. "
            f"Received: dataset={dataset!r}"
        )
    check_one_of("dataset", dataset, data_module.list_datasets())
    return data_module.load_dataset(
        dataset, validation_split=validation_split, seed=seed, limit=limit, verbose=bool(verbose)
    )


def train(
    model=DEFAULT_MODEL,
    dataset=DEFAULT_DATASET,
    *,
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
    verbose=1,
):
    """Train a zoo recipe on a built-in dataset, test it, and save everything in one folder.

    Args:
        model: str, a name from `mmkeras.list_models()`. Defaults to `"vqa"`, the tuned default
            recipe. The recipe's head is replaced by the dataset's (13-way softmax named
            `"answer"` for easy-VQA, one sigmoid named `"match"` for Fashion-MNIST captions).
        dataset: str, a name from `mmkeras.data.list_datasets()`, or a `DatasetSplits` of your
            own. Defaults to `"easy_vqa"`.
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
        image_shape: tuple or None, the model's image shape; the dataset's own when None.
        model_overrides: dict or None, extra recipe arguments (see `mmkeras.build_model`), e.g.
            `{"image_encoder": {"filters": (8, 16)}}`.
        export: bool, also export a SavedModel (`mmkeras.export.export_model`) into
            `<output>/saved_model`. Defaults to `True`.
        verbose: int, 0 silent, 1 progress bars and a summary. Defaults to `1`.

    Returns:
        A `TrainResult` (model, preprocessor, history, metrics, output folder).

    Raises:
        ValueError: for any bad argument or data, before training starts and before anything is
            written.

    Example:

    >>> result = train("vqa", "easy_vqa", epochs=1, limit=300, output=False, verbose=0)
    >>> 0 <= result.metrics["test_accuracy"] <= 1
    True
    """
    started = time.perf_counter()
    load_at_start = [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None
    # Arguments first: nothing is loaded, built or written before they are all checked.
    check_one_of("model", model, list_models())
    check_one_of("precision", precision, PRECISIONS)
    epochs = check_positive_int("epochs", epochs, allow_none=True)
    batch_size = check_positive_int("batch_size", batch_size, allow_none=True)
    max_steps = check_positive_int("max_steps", max_steps, allow_none=True)
    limit = check_positive_int("limit", limit, allow_none=True)
    if learning_rate is not None and (
        isinstance(learning_rate, bool) or not isinstance(learning_rate, (int, float)) or not learning_rate > 0
    ):
        raise ValueError(f"`learning_rate` must be a positive number. Received: learning_rate={learning_rate!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise ValueError(f"`seed` must be an integer. Received: seed={seed!r}")
    check_fraction("validation_split", validation_split)
    if image_shape is not None:
        image_shape = check_image_shape("image_shape", image_shape)
    if model_overrides is not None and not isinstance(model_overrides, dict):
        raise ValueError(f"`model_overrides` must be a dict of recipe arguments. Received: {model_overrides!r}")
    if not isinstance(strategy, str):
        raise ValueError(f"`strategy` must be a strategy name such as 'auto'. Received: strategy={strategy!r}")
    policy = resolve_precision(precision)
    dataset_name = dataset if isinstance(dataset, str) else getattr(dataset, "name", "custom")
    settings = training_defaults(model, dataset_name)
    epochs = epochs or settings["epochs"]
    batch_size = batch_size or settings["batch_size"]
    learning_rate = float(learning_rate or settings["learning_rate"])
    if output is None:
        output = default_output(model, dataset_name)
    if output is not False:
        output = _check_output(output)
    if backup_dir is not None:
        backup_dir = os.fspath(backup_dir)

    # The strategy comes before any other TensorFlow work: collective ops must be set up first.
    tf_strategy = distribute.get_strategy(strategy)
    custom_loop = distribute.needs_custom_loop(tf_strategy)
    if output is not False and not distribute.is_chief(tf_strategy):
        output = False  # in a multi-worker run only the chief writes the run folder

    # Data: loaded and checked (files, bytes, lengths, labels) before anything is built.
    keras.utils.set_random_seed(int(seed))
    splits = _resolve_dataset(dataset, validation_split, int(seed), limit, verbose)
    if splits.train.texts is None:
        raise ValueError(
            "`dataset` must give raw training texts (train learns the vocabulary from them). "
            "Received: training examples with token ids or without texts"
        )
    head = get_head(splits.head_spec())
    for split in ("train", "validation", "test"):
        examples = getattr(splits, split)
        if examples is not None:
            examples.check_labels(head)
    image_shape = image_shape or settings["image_shape"] or tuple(splits.image_shape)
    train_examples = splits.train.resized(image_shape)
    val_examples = None if splits.validation is None else splits.validation.resized(image_shape)
    test_examples = splits.test.resized(image_shape)
    vectorizer = text_vectorizer(
        train_examples.texts, vocab_size=settings["vocab_size"], sequence_length=splits.sequence_length
    )
    preprocessor = Preprocessor.from_vectorizer(vectorizer, image_shape=image_shape, class_names=splits.class_names)

    # Model: built and compiled under the strategy's scope and the precision policy.
    steps_per_epoch = math.ceil(len(train_examples) / batch_size)
    if max_steps:
        steps_per_epoch = min(steps_per_epoch, max_steps)
    overrides = {
        **(model_overrides or {}),
        "image_shape": image_shape,
        "sequence_length": preprocessor.sequence_length,
        "vocab_size": preprocessor.vocab_size,
        "head": splits.head_spec(),
        "compile": False,
    }
    with tf_strategy.scope(), precision_scope(policy):
        try:
            net = get_model(model, **overrides)
        except TypeError as error:
            raise ValueError(f"`model_overrides` do not fit recipe {model!r}: {error}. Received: {model_overrides!r}") from None
        schedule = learning_rate_schedule(learning_rate, epochs * steps_per_epoch, settings["warmup"])
        net.compile(optimizer=keras.optimizers.Adam(schedule), **head.compile_args())
    inputs = _model_inputs(net)
    train_data = train_examples.to_dataset(preprocessor, batch_size=batch_size, shuffle=True, seed=int(seed), inputs=inputs)
    if max_steps:
        train_data = train_data.repeat()
    val_data = None
    if val_examples is not None:
        val_data = val_examples.to_dataset(preprocessor, batch_size=max(batch_size, 256), inputs=inputs)
    test_data = test_examples.to_dataset(preprocessor, batch_size=max(batch_size, 256), inputs=inputs)

    if verbose:
        print(
            f"Training {model!r} on {splits.name!r}: {len(train_examples):,} train / "
            f"{0 if val_examples is None else len(val_examples):,} validation / {len(test_examples):,} test "
            f"examples, {net.count_params():,} parameters, {epochs} epochs x {steps_per_epoch} steps of "
            f"{batch_size}, precision {policy}, {tf_strategy.num_replicas_in_sync} replica(s)."
        )
    fit_started = time.perf_counter()
    # model.fit (with BackupAndRestore), or the tf.distribute loop where fit cannot run.
    history = distribute.fit(
        net,
        train_data,
        epochs=epochs,
        validation_data=val_data,
        backup_dir=backup_dir,
        steps_per_epoch=steps_per_epoch,
        verbose=1 if verbose else 0,
    )
    train_seconds = time.perf_counter() - fit_started
    history = {k: [float(v) for v in values] for k, values in dict(history).items()}
    test = distribute.evaluate(net, test_data)
    test = {k: float(v) for k, v in test.items()}
    extra = {}
    if splits.extra_metrics is not None and not custom_loop:
        extra = splits.extra_metrics(net, preprocessor, max(batch_size, 256))
    metrics = {
        "model": model,
        "dataset": splits.name,
        "task": splits.task,
        "test_accuracy": test.get("accuracy", test.get(f"{splits.output_name}_accuracy")),
        "test_loss": test.get("loss"),
        **{f"test_{k}": v for k, v in extra.items()},
        "validation_accuracy": (history.get("val_accuracy") or [None])[-1],
        "parameters": int(net.count_params()),
        "train_wall_time_s": round(train_seconds, 2),
        "total_wall_time_s": None,
        "epochs": epochs,
        "steps_per_epoch": steps_per_epoch,
        "batch_size": batch_size,
        "learning_rate": learning_rate,
        "precision": policy,
        "precision_requested": precision,
        "strategy": strategy,
        "replicas": int(tf_strategy.num_replicas_in_sync),
        "seed": int(seed),
        "examples": {
            "train": len(train_examples),
            "validation": 0 if val_examples is None else len(val_examples),
            "test": len(test_examples),
        },
        "image_shape": list(image_shape),
        "history": history,
        "versions": _versions(),
        "machine": {**_machine(), "load_average_at_start": load_at_start},
        "argv": [os.path.basename(sys.argv[0])] + sys.argv[1:] if sys.argv else None,
    }
    if output is not False:
        _write_run(net, preprocessor, history, metrics, output, export, started, verbose)
    else:
        metrics["total_wall_time_s"] = round(time.perf_counter() - started, 2)
    if verbose:
        line = f"Test accuracy: {metrics['test_accuracy']:.4f}"
        if extra:
            line += "  (" + ", ".join(f"{k} {v:.4f}" for k, v in extra.items()) + ")"
        print(f"{line}  [{len(test_examples):,} test examples; training took {train_seconds:.1f} s]")
        if output is not False:
            print(f"Saved to {output}")
    return TrainResult(model=net, preprocessor=preprocessor, history=history, metrics=metrics, output=output or None)


def _write_run(model, preprocessor, history, metrics, output, export, started, verbose):
    """Write every artifact into a temporary sibling folder, then rename it to `output`."""
    parent = os.path.dirname(output)
    os.makedirs(parent, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=f".{os.path.basename(output)}.", suffix=".partial", dir=parent)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(staging, 0o777 & ~umask)  # mkdtemp makes it private; the run folder is an ordinary folder
    try:
        model.save(os.path.join(staging, "model.keras"))
        preprocessor.save(os.path.join(staging, "preprocessor.json"))
        plot_history(history, os.path.join(staging, "history.png"), title=f"{metrics['model']} on {metrics['dataset']}")
        if export:
            from mmkeras.export import export_model

            if verbose:
                print("Exporting a SavedModel ...")
            export_model(model, os.path.join(staging, "saved_model"), preprocessor=preprocessor, overwrite=True)
        metrics["total_wall_time_s"] = round(time.perf_counter() - started, 2)
        metrics["files"] = sorted({*os.listdir(staging), "metrics.json"})
        with open(os.path.join(staging, "metrics.json"), "w", encoding="utf-8") as f:
            json.dump(metrics, f, indent=2)
        old = None
        if os.path.exists(output):
            old = f"{staging}.old"
            os.replace(output, old)
        os.replace(staging, output)
        if old:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def load_run(path):
    """Load a folder written by `train`: `(model, preprocessor)`.

    Example:

    >>> model, preprocessor = load_run("saved_models/vqa-easy_vqa")
    """
    path = os.fspath(path)
    model_file = os.path.join(path, "model.keras")
    pre_file = os.path.join(path, "preprocessor.json")
    if not (os.path.isfile(model_file) and os.path.isfile(pre_file)):
        raise ValueError(
            "`model` must be a folder written by `mmkeras train` (with model.keras and "
            f"preprocessor.json). Received: model={path!r}"
        )
    import mmkeras  # noqa: F401  (registers mmkeras' layers for deserialization)

    model = keras.saving.load_model(model_file, safe_mode=True)
    return model, Preprocessor.load(pre_file)


def _run_info(path):
    try:
        with open(os.path.join(path, "metrics.json"), encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


def evaluate(model, dataset=None, *, split="test", batch_size=256, limit=None, verbose=1):
    """Evaluate a trained run (a folder written by `train`) on a built-in dataset's split.

    Args:
        model: str, a folder written by `train`.
        dataset: str or None, a built-in dataset name; None takes the one the model trained on.
        split: `"test"` or `"validation"`. Defaults to `"test"`.
        batch_size: int. Defaults to `256`.
        limit: int or None, at most this many examples. Defaults to `None`.
        verbose: int, 1 prints the metrics. Defaults to `1`.

    Returns:
        dict of metrics (`loss`, `accuracy`, and e.g. `ranking_accuracy` for Fashion-MNIST).

    Example:

    >>> evaluate("saved_models/vqa-easy_vqa")["accuracy"]
    0.999...
    """
    check_one_of("split", split, ("test", "validation"))
    check_positive_int("batch_size", batch_size)
    check_positive_int("limit", limit, allow_none=True)
    info = _run_info(model) if isinstance(model, (str, os.PathLike)) else {}
    net, preprocessor = load_run(model)
    dataset = dataset or info.get("dataset")
    if dataset is None:
        raise ValueError(f"`dataset` must be given: the run folder does not name one. Received: dataset=None")
    splits = _resolve_dataset(dataset, 0.1 if split == "validation" else 0.0, int(info.get("seed", 0)), limit, verbose)
    examples = getattr(splits, split)
    if examples is None:
        raise ValueError(f"`split` {split!r} is empty for dataset {dataset!r}. Received: split={split!r}")
    get_head(splits.head_spec()).check_labels(examples.labels)
    inputs = _model_inputs(net)
    result = net.evaluate(examples.to_dataset(preprocessor, batch_size=batch_size, inputs=inputs), verbose=0, return_dict=True)
    result = {k: float(v) for k, v in result.items()}
    if split == "test" and splits.extra_metrics is not None:
        result.update(splits.extra_metrics(net, preprocessor, batch_size))
    if verbose:
        print(f"{dataset} {split} ({len(examples)} examples): " + ", ".join(f"{k} {v:.4f}" for k, v in result.items()))
    return result


def _read_image(image):
    """A path, encoded bytes or an array -> what `Preprocessor` can take."""
    if isinstance(image, (str, os.PathLike)):
        path = os.fspath(image)
        if not os.path.isfile(path):
            raise ValueError(f"`image` must be an existing image file. Received: image={path!r} (no such file)")
        with open(path, "rb") as f:
            return f.read()
    if isinstance(image, (bytes, bytearray)):
        return bytes(image)
    if isinstance(image, np.ndarray):
        return image
    raise ValueError(
        f"`image` must be a file path, encoded image bytes or an image array. Received: image of type {type(image).__name__}"
    )


def predict(model, image, text, *, preprocessor=None, top_k=3):
    """Answer one question about one image (or score one caption) with a trained model.

    Args:
        model: a folder written by `train`, or a `keras.Model` (then pass `preprocessor`).
        image: an image file path, encoded image bytes, or an array `(h, w, c)`.
        text: str, the question or caption.
        preprocessor: a `Preprocessor`, when `model` is a `keras.Model`.
        top_k: int, how many of the most likely classes to list. Defaults to `3`.

    Returns:
        dict: `answer` (the most likely class name), `probability` (its probability),
        `top` (a list of `(class name, probability)`, most likely first).

    Example:

    >>> predict("saved_models/vqa-easy_vqa", "circle.png", "what shape is in the image?")
    {'answer': 'circle', 'probability': 0.9998, 'top': [('circle', 0.9998), ...]}
    """
    import tensorflow as tf

    check_positive_int("top_k", top_k)
    if isinstance(model, keras.Model):
        if preprocessor is None:
            raise ValueError("`preprocessor` must be given with a keras.Model. Received: preprocessor=None")
        net = model
    else:
        net, preprocessor = load_run(model)
    if not isinstance(text, str):
        raise ValueError(f"`text` must be one string. Received: text={text!r}")
    inputs = _model_inputs(net)
    features = {}
    if "image" in inputs:
        raw = _read_image(image)
        if isinstance(raw, bytes):
            try:
                features["image"] = preprocessor.decode_images(tf.constant([raw]))
            except tf.errors.InvalidArgumentError as error:
                reason = str(error.message).strip().splitlines()[-1]
                raise ValueError(
                    f"`image` must be an encoded PNG, JPEG, GIF or BMP image. Received: {len(raw)} bytes that "
                    f"cannot be decoded ({reason})"
                ) from None
        else:
            features["image"] = images_to_float(fit_images(raw[None], preprocessor.image_shape, "image"))
    if "text" in inputs:
        features["text"] = preprocessor.texts_to_ids(tf.constant([text]))
    output = net(features, training=False)
    if isinstance(output, dict):
        output = next(iter(output.values()))
    scores = np.asarray(output, dtype="float64")[0]
    layer = net.get_layer(net.output_names[0]) if net.output_names else None
    activation = getattr(getattr(layer, "activation", None), "__name__", "")
    names = preprocessor.class_names
    if scores.shape[-1] == 1:
        p = scores[0] if activation == "sigmoid" else 1 / (1 + np.exp(-scores[0]))
        probabilities = np.array([1 - p, p])
        names = names or ["0", "1"]
    else:
        probabilities = scores if activation == "softmax" else np.exp(scores - scores.max()) / np.exp(scores - scores.max()).sum()
        names = names or [str(i) for i in range(len(probabilities))]
    order = np.argsort(-probabilities)[:top_k]
    top = [(names[i], float(probabilities[i])) for i in order]
    return {"answer": top[0][0], "probability": top[0][1], "top": top}
