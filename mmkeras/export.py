"""Export and loading: SavedModels that take raw image bytes and raw strings, and `.keras` files.

`export_model(task, path)` exports an mmkeras task (`mmkeras.tasks.Task`: every zoo model, or
your own Keras model wrapped in a `mmkeras.tasks.ModelTask`). The task says everything the export
needs: its serving endpoints (`task.serving_endpoints()`), the resources they use (the
vocabulary table), what they take and give (`task.serving_description()`) and its preprocessor
(image shape, vocabulary, class names). With `format="saved_model"` (the default) it writes a
TensorFlow SavedModel with two signatures:

- `serving_default`: `image` = encoded image bytes (JPEG or PNG; GIF, BMP and WebP decode too),
  `text` = raw strings, both `tf.string` of shape `(batch,)`. Decoding, resizing, scaling and
  tokenization run inside the graph, with the very functions training uses
  (`Preprocessor.decode_images`, `Preprocessor.texts_to_ids`).
- `serve_tensors`: the model's own tensors: `image` float32 `(batch, height, width, channels)` in
  [0, 1], `text` int32 token ids `(batch, sequence_length)` (or raw strings when the model
  tokenizes inside its graph).

Both answer with the same named outputs, the head's (see `docs/serving.md`): each output under
its own name (`label`, `answer`, ...), plus `<name>_class` (the top class as a string) for
binary and multiclass heads, `<name>_probability` for a binary head that outputs a logit and
`<name>_on` (0/1 per label) for a multilabel head. Bad requests fail inside the graph with an
`InvalidArgumentError` that says what was expected (`mmkeras.tasks.serving`).

Beside `saved_model.pb`, `mmkeras_export.json` records the signatures' inputs and outputs, the
class names and the preprocessor: the folder is the whole deliverable. With `format="keras"` the
task is saved whole, its preprocessor inside, in one `.keras` file.

Writes are atomic (`mmkeras.atomic`): the export is written under a hidden temporary name beside
`path`, flushed, then renamed into place, so a crash never leaves a half-written model where a
service looks for one; an existing export is kept unless `overwrite=True`, and is only replaced
once the new one is complete.

Example:

>>> import os, tempfile
>>> import numpy as np
>>> import tensorflow as tf
>>> import mmkeras
>>> from mmkeras.preprocessing import Preprocessor, text_vectorizer
>>> vectorizer = text_vectorizer(["is the circle red?", "what shape is it?"], vocab_size=64,
...                              sequence_length=12)
>>> preprocessor = Preprocessor.from_vectorizer(vectorizer, image_shape=(32, 32, 3),
...                                             class_names=["no", "yes"])
>>> model = mmkeras.get_model("s0", image_shape=(32, 32, 3), sequence_length=12, vocab_size=64,
...                           preprocessor=preprocessor)
>>> path = mmkeras.export_model(model, os.path.join(tempfile.mkdtemp(), "s0"))
>>> served = mmkeras.load(path)
>>> png = tf.io.encode_png(np.zeros((40, 30, 3), "uint8")).numpy()
>>> out = served.signatures["serving_default"](image=tf.constant([png]), text=tf.constant(["is it red?"]))
>>> sorted(out), out["label"].shape, out["label_class"].numpy()[0] in (b"no", b"yes")
(['label', 'label_class'], TensorShape([1, 1]), True)
"""

import contextlib
import json
import logging
import os

import keras
import tensorflow as tf

from mmkeras.atomic import atomic_file, atomic_folder, check_target
from mmkeras.preprocessing import Preprocessor
from mmkeras.tasks import Task
from mmkeras.tasks.serving import SERVING_SIGNATURE, TENSORS_SIGNATURE
from mmkeras.validation import check_one_of, check_positive_int, received

PREPROCESSOR_FILE = "preprocessor.json"  # written by mmkeras 0.1 only; still read
METADATA_FILE = "mmkeras_export.json"
KERAS_FILE = "model.keras"
DEFAULT_EXPORT_DIR = "saved_models"
FORMATS = ("saved_model", "keras")
FORMAT_VERSION = 2
WHAT = "an export"

__all__ = [
    "export_model",
    "load",
    "load_preprocessor",
    "DEFAULT_EXPORT_DIR",
    "SERVING_SIGNATURE",
    "TENSORS_SIGNATURE",
]


# ---------------------------------------------------------------------------------------------
# Export.


def export_model(
    model, path=None, *, preprocessor=None, format="saved_model", overwrite=False, class_names=None, max_image_pixels=None
):
    """Export a task as a TF SavedModel that takes raw image bytes and strings, or as `.keras`.

    Args:
        model: an mmkeras task (`mmkeras.tasks.Task`): a zoo model (`mmkeras.get_model`,
            `mmkeras.build_model`), or your own functional Keras model wrapped as
            `mmkeras.tasks.ModelTask(model, head=..., preprocessor=...)`.
        path: str or path-like, where to write. For `format="saved_model"`, a folder (for TF
            Serving, a numbered version folder such as `saved_models/vqa/1`). For `format="keras"`,
            a `.keras` file, or a folder that receives `model.keras`. Defaults to
            `saved_models/<model.name>` (`saved_models/<model.name>_keras/` for the keras format)
            under the current folder.
        preprocessor: a `mmkeras.preprocessing.Preprocessor` that replaces the task's own
            (`model.preprocessor`) for this export only; the task is left as it was. Defaults to
            `None`: the task's own, which is what you want for a model built or trained with its
            preprocessor.
        format: `"saved_model"` or `"keras"`. Defaults to `"saved_model"`.
        overwrite: bool, replace an existing export at `path` (only once the new one is
            complete). Defaults to `False`: an existing export raises `FileExistsError`.
        class_names: class names that replace the preprocessor's for this export only (a list
            for a model with one classification output, 2 names, negative first, for a binary
            one; `{output_name: [names]}` for a multi-task model). Defaults to `None`: the
            preprocessor's; without names the class index is served as a string.
        max_image_pixels: int, the most pixels (height x width, as the image's header declares
            them) an encoded image sent to `serving_default` may have; a larger one is refused,
            with its index and size, before it is decoded. Defaults to `None`:
            `mmkeras.preprocessing.MAX_IMAGE_PIXELS` (50 megapixels). Recorded in
            `mmkeras_export.json`.

    Returns:
        The path written, as a str.

    Raises:
        FileExistsError: `path` exists and `overwrite` is False.
        ValueError: a bad argument (the message says which and why).

    Example:

    >>> import os, tempfile
    >>> import mmkeras
    >>> model = mmkeras.get_model("s3", image_shape=(32, 32, 3))   # image-only
    >>> root = tempfile.mkdtemp()
    >>> export_model(model, os.path.join(root, "s3")) == os.path.join(root, "s3")
    True
    >>> sorted(os.listdir(os.path.join(root, "s3")))
    ['assets', 'fingerprint.pb', 'mmkeras_export.json', 'saved_model.pb', 'variables']
    >>> path = export_model(model, os.path.join(root, "s3.keras"), format="keras",
    ...                     class_names=[f"kind_{i}" for i in range(10)])
    >>> load(path).class_names()[:2], model.class_names()   # the task itself is unchanged
    (['kind_0', 'kind_1'], None)
    """
    _check_task(model)
    check_one_of("format", format, FORMATS)
    if preprocessor is not None and not isinstance(preprocessor, Preprocessor):
        raise ValueError(
            f"`preprocessor` must be a mmkeras.preprocessing.Preprocessor or None. {received('preprocessor', preprocessor)}"
        )
    if not isinstance(overwrite, bool):
        raise ValueError(f"`overwrite` must be True or False. {received('overwrite', overwrite)}")
    max_image_pixels = check_positive_int("max_image_pixels", max_image_pixels, allow_none=True)
    if path is None:
        path = os.path.join(DEFAULT_EXPORT_DIR, model.name + ("_keras" if format == "keras" else ""))
    try:
        path = os.fspath(path)
    except TypeError:
        raise ValueError(f"`path` must be a str or a path-like object. {received('path', path)}") from None
    path = path.rstrip(os.sep) or path
    if not path:
        raise ValueError(f"`path` must name a folder or file to create. {received('path', path)}")
    if format == "saved_model" and keras.backend.backend() != "tensorflow":
        raise ValueError(
            "SavedModel export runs the model inside TensorFlow graphs: it needs the TensorFlow "
            "Keras backend (set KERAS_BACKEND=tensorflow), or use format='keras'. "
            f"Received: backend {keras.backend.backend()!r}"
        )
    check_target(path, overwrite, _is_replaceable, WHAT)  # before any work: a refused export costs nothing
    with _preprocessor_in_place(model, preprocessor, class_names):
        if format == "keras":
            _write_keras(model, path, overwrite)
        else:
            _check_servable(model)
            with atomic_folder(path, overwrite=overwrite, replaceable=_is_replaceable, what=WHAT) as tmp:
                _write_saved_model(model, tmp, max_image_pixels)
    return path


def _check_task(model):
    if isinstance(model, Task):
        return
    if isinstance(model, keras.Model):
        raise ValueError(
            "`model` must be an mmkeras task (mmkeras.tasks.Task), which knows its head, preprocessor "
            "and serving endpoints. A plain keras.Model says none of that: wrap it as "
            "mmkeras.tasks.ModelTask(model, head=..., preprocessor=...) and export the task. "
            f"Received: model={type(model).__name__} {model.name!r}"
        )
    raise ValueError(
        "`model` must be an mmkeras task (mmkeras.tasks.Task, e.g. from mmkeras.get_model, or "
        f"mmkeras.tasks.ModelTask around your own Keras model). {received('model', model)}"
    )


@contextlib.contextmanager
def _preprocessor_in_place(model, preprocessor, class_names):
    """The task with `preprocessor` (and `class_names`) in place of its own, for one export."""
    if preprocessor is None and class_names is None:
        yield
        return
    own = model.preprocessor
    replacement = preprocessor if preprocessor is not None else own
    if class_names is not None:
        replacement = Preprocessor.from_config({**replacement.get_config(), "class_names": class_names})
    model.preprocessor = replacement  # checked against the task (shapes, class names)
    try:
        yield
    finally:
        model.preprocessor = own


def _check_servable(model):
    """The `serving_default` signature decodes images and tokenizes strings: it needs to know how."""
    pre = model.preprocessor
    for name, kind in model.input_kinds.items():
        if kind == "token_ids" and pre.vocabulary is None:
            raise ValueError(
                f"`preprocessor` must hold the text vocabulary to export a model whose {name!r} input "
                f"takes token ids: the `{SERVING_SIGNATURE}` signature tokenizes raw strings exactly as "
                "training did. Give the task its training preprocessor (e.g. "
                "`preprocessor=Preprocessor.from_vectorizer(vectorizer, ...)` when building it, or "
                f"`model.preprocessor = ...`). {received('preprocessor', pre)}"
            )


@contextlib.contextmanager
def _pixel_limit(max_pixels):
    """`preprocessing.MAX_IMAGE_PIXELS` set to `max_pixels` while the serving graphs are traced."""
    from mmkeras import preprocessing

    own = preprocessing.MAX_IMAGE_PIXELS
    preprocessing.MAX_IMAGE_PIXELS = own if max_pixels is None else max_pixels
    try:
        yield preprocessing.MAX_IMAGE_PIXELS
    finally:
        preprocessing.MAX_IMAGE_PIXELS = own


def _write_saved_model(model, folder, max_image_pixels=None):
    archive = keras.export.ExportArchive()
    archive.track(model)
    for resource in model.serving_resources():
        archive.track(resource)
    with _pixel_limit(max_image_pixels) as limit:  # the graphs are traced here: the limit is built in
        for name, (function, input_signature) in model.serving_endpoints().items():
            archive.add_endpoint(name, function, input_signature=input_signature)
        with _quiet_tf_logger():  # no "Assets written to: <temporary folder>" lines
            archive.write_out(folder, verbose=False)
    _write_json(os.path.join(folder, METADATA_FILE), {**_metadata(model), "max_image_pixels": limit})


def _write_keras(model, path, overwrite):
    if path.endswith(".keras") and not os.path.isdir(path):
        with atomic_file(path) as tmp:  # `path` was checked above: replaced only with `overwrite`
            model.save(tmp)
        return
    with atomic_folder(path, overwrite=overwrite, replaceable=_is_replaceable, what=WHAT) as tmp:
        model.save(os.path.join(tmp, KERAS_FILE))


@contextlib.contextmanager
def _quiet_tf_logger():
    logger = tf.get_logger()
    level = logger.level
    logger.setLevel(max(level, logging.WARNING))
    try:
        yield
    finally:
        logger.setLevel(level)


def _class_names_by_output(model):
    """`{output_name: [names]}` for the outputs whose class names are known."""
    names = model.class_names()
    if names is None or not hasattr(model, "head"):  # a dual encoder: its classes are in "preprocessor"
        return {}
    if isinstance(names, dict):
        return {k: v for k, v in names.items() if v}
    return {model.output_names[0]: names}


def _metadata(model):
    from mmkeras import __version__

    return {
        "format": "mmkeras.saved_model",
        "format_version": FORMAT_VERSION,
        "model_name": model.name,
        "task": type(model).__name__,
        "mmkeras_version": __version__,
        "keras_version": keras.__version__,
        "tensorflow_version": tf.__version__,
        "signatures": model.serving_description(),
        "class_names": _class_names_by_output(model),
        "preprocessor": model.preprocessor.get_config(),
    }


def _write_json(path, data):
    with open(path, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=2)


def _is_replaceable(path):
    """Whether `overwrite=True` may replace `path`: an export of the same kind, or an empty folder.

    A folder export (SavedModel, or a folder with `model.keras`) replaces only such a folder or
    an empty one; a `.keras` file replaces only a `.keras` file. Nothing else is deleted.
    """
    if path.endswith(".keras") and not os.path.isdir(path):
        return os.path.isfile(path)
    if os.path.isdir(path) and not os.path.islink(path):
        entries = os.listdir(path)
        return not entries or "saved_model.pb" in entries or KERAS_FILE in entries
    return False


# ---------------------------------------------------------------------------------------------
# Loading.


def _locate(path):
    """("saved_model", folder) or ("keras", .keras file) for what `path` holds."""
    if os.path.isdir(path):
        if os.path.exists(os.path.join(path, "saved_model.pb")):
            return "saved_model", path
        if os.path.exists(os.path.join(path, KERAS_FILE)):
            return "keras", os.path.join(path, KERAS_FILE)
    elif os.path.isfile(path) and path.endswith(".keras"):
        return "keras", path
    raise ValueError(
        "`path` must be a SavedModel folder (with saved_model.pb), a .keras file, or a folder "
        f"holding {KERAS_FILE}. {received('path', path)}"
        + ("" if os.path.exists(path) else " (it does not exist)")
    )


def _saved_model_preprocessor(folder):
    """The preprocessor of a SavedModel export: in `mmkeras_export.json` (format 2), else the
    `preprocessor.json` mmkeras 0.1 wrote beside it; None when there is neither."""
    metadata_file = os.path.join(folder, METADATA_FILE)
    if os.path.isfile(metadata_file):
        with open(metadata_file, encoding="utf-8") as f:
            config = json.load(f).get("preprocessor")
        if config is not None:
            return Preprocessor.from_config(config)
    pre_file = os.path.join(folder, PREPROCESSOR_FILE)
    return Preprocessor.load(pre_file) if os.path.isfile(pre_file) else None


def _keras_preprocessor(model, model_file):
    """A task's own preprocessor; for a plain model (mmkeras 0.1) the `preprocessor.json` beside it."""
    if isinstance(model, Task):
        return model.preprocessor
    pre_file = os.path.join(os.path.dirname(os.path.abspath(model_file)), PREPROCESSOR_FILE)
    return Preprocessor.load(pre_file) if os.path.isfile(pre_file) else None


def load_keras_file(path, name="path"):
    """`keras.saving.load_model(path, safe_mode=True)`, with a clear error for a file that is not a
    `.keras` archive (empty, truncated by a crash, or another format).

    Keras reports such a file as "File not found"; this says what it is instead.

    Example:

    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "empty.keras")
    >>> open(path, "wb").close()
    >>> load_keras_file(path)
    Traceback (most recent call last):
    ...
    ValueError: `path` must be a valid .keras file (a zip archive written by `model.save`). Received: path='...empty.keras', which is not a zip archive (0 bytes: empty, truncated or of another format)
    """
    import zipfile

    if not zipfile.is_zipfile(path):
        raise ValueError(
            f"`{name}` must be a valid .keras file (a zip archive written by `model.save`). Received: "
            f"{name}={os.fspath(path)!r}, which is not a zip archive ({os.path.getsize(path)} bytes: empty, "
            "truncated or of another format)"
        )
    try:
        return keras.saving.load_model(path, safe_mode=True)
    except (OSError, zipfile.BadZipFile, KeyError, EOFError) as error:
        raise ValueError(
            f"`{name}` must be a valid .keras file (a zip archive written by `model.save`). Received: "
            f"{name}={os.fspath(path)!r} ({os.path.getsize(path)} bytes), which cannot be read: {error}"
        ) from None


def _fspath(path):
    try:
        return os.fspath(path)
    except TypeError:
        raise ValueError(f"`path` must be a str or a path-like object. {received('path', path)}") from None


def load_preprocessor(path):
    """The `Preprocessor` of the export at `path`, or None when it has none.

    For a SavedModel folder it is the one recorded in `mmkeras_export.json` (or, for an export
    written by mmkeras 0.1, its `preprocessor.json`); for a `.keras` task, the task's own; for a
    `.keras` file written by mmkeras 0.1, the `preprocessor.json` beside it.

    Example:

    >>> import os, tempfile
    >>> import mmkeras
    >>> from mmkeras.preprocessing import Preprocessor
    >>> model = mmkeras.get_model("s3", image_shape=(32, 32, 3),
    ...     preprocessor=Preprocessor(image_shape=(32, 32, 3), class_names=list("abcdefghij")))
    >>> path = mmkeras.export_model(model, os.path.join(tempfile.mkdtemp(), "s3"))
    >>> load_preprocessor(path).class_names[:3]
    ['a', 'b', 'c']
    """
    kind, location = _locate(_fspath(path))
    if kind == "saved_model":
        return _saved_model_preprocessor(location)
    return _keras_preprocessor(load_keras_file(location), location)


def load(path, *, return_preprocessor=False):
    """Load an export: a SavedModel folder, a `.keras` file, or a folder holding `model.keras`.

    A SavedModel is loaded with `tf.saved_model.load`: the returned object serves
    `obj.signatures["serving_default"](image=..., text=...)` (keyword arguments, `tf.string`
    tensors) and `obj.signatures["serve_tensors"](...)`; `obj.serving_default({"image": ...,
    "text": ...})` is the same function taking one dict. A `.keras` file is loaded with
    `keras.saving.load_model(path, safe_mode=True)`: a task (`mmkeras.tasks.Task`, its
    preprocessor inside), or for a file written by mmkeras 0.1 the plain Keras model it holds
    (wrap it in `mmkeras.tasks.ModelTask` to export or `answer` with it).

    Args:
        path: str or path-like.
        return_preprocessor: bool. If True, return `(loaded, preprocessor)`, where
            `preprocessor` is what `load_preprocessor(path)` returns (None when the export has
            none). Defaults to False.

    Returns:
        The loaded object, or `(loaded, preprocessor)`.

    Example:

    >>> import os, tempfile
    >>> import mmkeras
    >>> model = mmkeras.get_model("s3", image_shape=(32, 32, 3))
    >>> root = tempfile.mkdtemp()
    >>> served, preprocessor = load(mmkeras.export_model(model, os.path.join(root, "s3")),
    ...                             return_preprocessor=True)
    >>> sorted(served.signatures), preprocessor.image_shape
    (['serve_tensors', 'serving_default'], (32, 32, 3))
    >>> task = load(mmkeras.export_model(model, os.path.join(root, "s3.keras"), format="keras"))
    >>> type(task).__name__, task.preprocessor.image_shape
    ('FusionClassifier', (32, 32, 3))
    """
    kind, location = _locate(_fspath(path))
    if kind == "saved_model":
        loaded = tf.saved_model.load(location)
        return (loaded, _saved_model_preprocessor(location)) if return_preprocessor else loaded
    loaded = load_keras_file(location)
    return (loaded, _keras_preprocessor(loaded, location)) if return_preprocessor else loaded
