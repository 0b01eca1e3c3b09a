"""Run folders: what `mmkeras.train` writes, and reading it back.

A run folder holds:

    model.keras     the trained task, its preprocessor (image shape, vocabulary, class names)
                    inside: `keras.saving.load_model(path, safe_mode=True)` is the whole model
    history.png     the training curves (loss and accuracy, train and validation)
    metrics.json    test metrics, parameters, wall time, settings, versions, machine
    saved_model/    a TensorFlow SavedModel serving raw image bytes and raw strings

It is written under a temporary name and moved into place when complete (`mmkeras.atomic`), so
an error never leaves a half-written folder. Folders written by mmkeras 0.1 (a plain model plus
`preprocessor.json`) still load: `load_run` wraps them as a `ModelTask` with the head their
`metrics.json` recorded.
"""

import json
import os
import platform

import keras
import numpy as np

from mmkeras.atomic import atomic_folder
from mmkeras.export import load_keras_file

MODEL_FILE = "model.keras"
METRICS_FILE = "metrics.json"
HISTORY_FILE = "history.png"
SAVED_MODEL_DIR = "saved_model"
DEFAULT_OUTPUT_ROOT = "saved_models"
WHAT = "an mmkeras run folder (with metrics.json)"


def default_output(model, dataset):
    """`saved_models/<model>-<dataset>` (relative to the current folder)."""
    return os.path.join(DEFAULT_OUTPUT_ROOT, f"{model}-{dataset}")


# Everything a run folder may hold (`preprocessor.json`: folders of mmkeras 0.1).
TASK_FILES_DIR = "samples"  # where a task's own files go (`Task.run_files`: a GAN's sample grids)
RUN_FILES = (MODEL_FILE, HISTORY_FILE, METRICS_FILE, SAVED_MODEL_DIR, "preprocessor.json", TASK_FILES_DIR)


def _unexpected_entries(path):
    """What in folder `path` a run does not write (None when `path` is not an mmkeras run).

    A run's `metrics.json` is a dict naming the model, the dataset and the mmkeras version; from
    mmkeras 0.2 on it also lists the folder's files (`"files"`), and only those may be there,
    besides the `robustness/` report `mmkeras evaluate --robustness` writes into the run.
    """
    entries = sorted(os.listdir(path))
    if not entries:
        return []
    info = run_info(path)
    if not (isinstance(info, dict) and "model" in info and "dataset" in info
            and "mmkeras" in (info.get("versions") or {})):
        return None
    allowed = set(RUN_FILES)
    if isinstance(info.get("files"), list):
        allowed &= {*info["files"], METRICS_FILE}
    from mmkeras.robustness import REPORT_DIR, is_report  # `mmkeras evaluate --robustness` writes there

    return [name for name in entries if name not in allowed
            and not (name == REPORT_DIR and is_report(os.path.join(path, name)))]


def is_run_folder(path):
    """Whether `path` is an empty folder, or one an mmkeras run wrote and nothing else: a new run
    may replace it. A folder with any other file (or a `metrics.json` of its own) is the user's.
    """
    if not os.path.isdir(path) or os.path.islink(path):
        return False
    return _unexpected_entries(path) == []


def check_writable(name, path, *, beside=False):
    """Raise `ValueError` unless folder `path` (which may not exist yet) can be written.

    Checks up front, before any data is loaded or training starts: the nearest existing folder
    on the way to `path` (to its parent with `beside=True`: where a folder published by a rename
    is written) must take a new file (tried, then removed), and nothing on the way may be a file.

    Example:

    >>> open("a_file", "w").close()
    >>> check_writable("output", "a_file/run")
    Traceback (most recent call last):
    ...
    ValueError: `output` must be a folder mmkeras can create and write: ...
    """
    path = os.path.abspath(os.fspath(path))
    existing = os.path.dirname(path) if beside else path
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        raise ValueError(
            f"`{name}` must be a folder mmkeras can create and write: {existing!r} is a file, not a "
            f"folder. Received: {name}={path!r}"
        )
    import tempfile

    try:
        fd, probe = tempfile.mkstemp(prefix=".mmkeras-write-check-", dir=existing)
        os.close(fd)
        os.remove(probe)
    except OSError as error:
        raise ValueError(
            f"`{name}` must be a folder mmkeras can create and write: cannot write in {existing!r} "
            f"({error.strerror or error}). Received: {name}={path!r}"
        ) from None


def check_output(output):
    """The absolute output path; raise unless it is new, empty or an earlier run's folder (holding
    nothing else), and writable."""
    output = os.path.abspath(os.fspath(output))
    if os.path.isfile(output):
        raise ValueError(f"`output` must be a folder, not an existing file. Received: output={output!r}")
    if os.path.isdir(output):
        unexpected = _unexpected_entries(output)
        if unexpected and run_info(output):
            # What a killed `mmkeras evaluate --robustness` left in the run (its process has ended).
            from mmkeras.atomic import clean_stale
            from mmkeras.robustness import REPORT_DIR

            clean_stale(os.path.join(output, REPORT_DIR))
            unexpected = _unexpected_entries(output)
        if unexpected is None:
            raise ValueError(
                "`output` must be a new folder or the folder of an earlier mmkeras run (which is "
                "replaced); this one holds other files and no mmkeras metrics.json. Nothing was "
                f"changed; choose another folder. Received: output={output!r}"
            )
        if unexpected:
            raise ValueError(
                "`output` must be a new folder or the folder of an earlier mmkeras run (which is "
                f"replaced); this run folder also holds files a run does not write: {unexpected}. "
                f"Nothing was changed; move them out or choose another folder. Received: output={output!r}"
            )
    check_writable("output", output, beside=True)
    return output


def write_run(output, model, history, metrics, *, export=True, started=None, verbose=0):
    """Write a run folder atomically: model, curves, SavedModel, then metrics (last).

    `metrics["files"]` is filled in with what the folder holds, and `metrics["total_wall_time_s"]`
    with the time since `started` (a `time.perf_counter()` value) when given. Returns `output`.
    """
    import time

    from mmkeras.training.reporting import plot_history

    with atomic_folder(output, overwrite=True, replaceable=is_run_folder, what=WHAT) as staging:
        model.save(os.path.join(staging, MODEL_FILE))
        plot_history(history, os.path.join(staging, HISTORY_FILE), title=f"{metrics['model']} on {metrics['dataset']}")
        for relative, content in model.run_files().items() if hasattr(model, "run_files") else ():
            parts = os.path.normpath(relative).split(os.sep)
            if len(parts) < 2 or parts[0] != TASK_FILES_DIR or ".." in parts:
                raise ValueError(f"A task's run files must lie under {TASK_FILES_DIR}/. Received: {relative!r}")
            path = os.path.join(staging, relative)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "wb") as f:
                f.write(content)
        if export:
            from mmkeras.export import export_model

            if verbose:
                print("Exporting a SavedModel ...")
            export_model(model, os.path.join(staging, SAVED_MODEL_DIR))
        if started is not None:
            metrics["total_wall_time_s"] = round(time.perf_counter() - started, 2)
        metrics["files"] = sorted({*os.listdir(staging), METRICS_FILE})
        with open(os.path.join(staging, METRICS_FILE), "w", encoding="utf-8") as f:
            json.dump(metrics, f, indent=2)
    return output


def run_info(path):
    """The run's `metrics.json` as a dict ({} when missing or unreadable)."""
    try:
        with open(os.path.join(path, METRICS_FILE), encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


def load_run(path):
    """Load the task a run folder holds (a folder written by `train`, or a `.keras` file).

    Example:

    >>> import os, mmkeras
    >>> result = mmkeras.train(epochs=1, limit=300, max_steps=2, output="runs/doc", export=False, verbose=0)
    >>> sorted(os.listdir("runs/doc"))  # with export=True (the default) also saved_model/
    ['history.png', 'metrics.json', 'model.keras']
    >>> model = load_run("runs/doc")
    >>> type(model).__name__, model.preprocessor.class_names[:2]
    ('FusionClassifier', ['circle', 'green'])
    """
    import mmkeras  # noqa: F401  (registers mmkeras' classes for deserialization)
    from mmkeras.tasks import ModelTask, Task

    try:
        path = os.fspath(path)
    except TypeError:
        raise ValueError(f"`model` must be a run folder or a .keras file. Received: model={path!r}") from None
    model_file = path if path.endswith(".keras") and os.path.isfile(path) else os.path.join(path, MODEL_FILE)
    if not os.path.isfile(model_file):
        raise ValueError(
            f"`model` must be a folder written by `mmkeras train` (holding {MODEL_FILE}) or a .keras file. "
            f"Received: model={path!r}" + ("" if os.path.exists(path) else " (it does not exist)")
        )
    model = load_keras_file(model_file, "model")
    if isinstance(model, Task):
        return model
    return ModelTask.from_v0_1_run(os.path.dirname(os.path.abspath(model_file)))


def versions():
    """Versions of mmkeras and what it runs on."""
    import tensorflow as tf

    from mmkeras import __version__

    return {
        "mmkeras": __version__,
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
    }


def machine():
    """The CPU, core count, GPUs, platform and load average."""
    import tensorflow as tf

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), cpu)
    except OSError:
        pass
    info = {
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "gpus": [d.name for d in tf.config.list_physical_devices("GPU")],
        "platform": platform.platform(),
    }
    if hasattr(os, "getloadavg"):
        info["load_average"] = [round(x, 2) for x in os.getloadavg()]
    return info
