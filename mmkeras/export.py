"""Export and loading: SavedModels that take raw image bytes and raw strings, and `.keras` files.

`export_model(model, path, preprocessor=...)` writes a TensorFlow SavedModel with two signatures:

- `serving_default`: `image` = encoded image bytes (JPEG or PNG; GIF, BMP and WebP decode too),
  `text` = raw strings, both `tf.string` of shape `(batch,)`. Decoding, resizing, scaling and
  tokenization run inside the graph, with the very functions training uses
  (`Preprocessor.decode_images`, `Preprocessor.texts_to_ids`).
- `serve_tensors`: the model's own tensors: `image` float32 `(batch, height, width, channels)` in
  [0, 1], `text` int32 token ids `(batch, sequence_length)` (or raw strings when the model holds its
  own `TextVectorization`).

Both answer with the same named outputs: each model output under its own name (the head's
name: `label`, `answer`, `sentiment`, ...), and for classification heads also `<name>_class`, the
top class as a string (a class name when class names are known, else the class index), plus
`<name>_probability` when the head outputs logits. A model with only an image (or only a text)
input gets signatures with only that input. Bad requests (wrong rank, empty image bytes, batches
of different sizes, wrong tensor shapes) fail inside the graph with an `InvalidArgumentError`
that says what was expected; corrupt image bytes fail in the decoder with its own message.

Writes are atomic: the export is written to a hidden temporary folder beside `path`, flushed,
then renamed into place, so a crash never leaves a half-written model where a service looks for
one; an existing export is kept unless `overwrite=True`, and is only replaced once the new one is
complete. The preprocessor (`preprocessor.json`) and a description of the signatures
(`mmkeras_export.json`) sit beside `saved_model.pb`: the folder is the whole deliverable.

Example:

>>> import mmkeras
>>> from mmkeras.preprocessing import Preprocessor, text_vectorizer
>>> vectorizer = text_vectorizer(["is the circle red?", "what shape is it?"], vocab_size=64,
...                              sequence_length=12)
>>> preprocessor = Preprocessor.from_vectorizer(vectorizer, image_shape=(32, 32, 3),
...                                             class_names=["no", "yes"])
>>> model = mmkeras.get_model("s0", image_shape=(32, 32, 3), sequence_length=12, vocab_size=64)
>>> path = mmkeras.export_model(model, "saved_models/s0", preprocessor=preprocessor)
>>> served = mmkeras.load(path)
>>> png = open("circle.png", "rb").read()
>>> served.signatures["serving_default"](image=tf.constant([png]), text=tf.constant(["is it red?"]))
{'label': <tf.Tensor: shape=(1, 1), dtype=float32, ...>, 'label_class': <... numpy=array([b'no'], ...)>}
"""

import contextlib
import ctypes
import dataclasses
import json
import logging
import os
import shutil
import tempfile

import keras
import tensorflow as tf

from mmkeras.preprocessing import Preprocessor
from mmkeras.validation import check_one_of

SERVING_SIGNATURE = "serving_default"
TENSORS_SIGNATURE = "serve_tensors"
PREPROCESSOR_FILE = "preprocessor.json"
METADATA_FILE = "mmkeras_export.json"
KERAS_FILE = "model.keras"
DEFAULT_EXPORT_DIR = "saved_models"
FORMATS = ("saved_model", "keras")
FORMAT_VERSION = 1

__all__ = [
    "export_model",
    "load",
    "load_preprocessor",
    "DEFAULT_EXPORT_DIR",
    "SERVING_SIGNATURE",
    "TENSORS_SIGNATURE",
]


# ---------------------------------------------------------------------------------------------
# What the model takes and gives.


@dataclasses.dataclass
class _InputPlan:
    """One model input: its name, what the raw request carries for it, and its tensor spec."""

    name: str
    kind: str  # "image" (float images), "token_ids" (int ids) or "text" (raw strings)
    shape: tuple  # per-example shape, e.g. (32, 32, 3), (12,) or ()
    dtype: str
    preprocessor: Preprocessor = None


@dataclasses.dataclass
class _OutputPlan:
    """One model output and what the signatures add to it."""

    name: str
    units: int
    kind: str  # "binary", "multiclass", "multilabel" or None (regression, unknown)
    from_logits: bool = False
    class_names: list = None

    @property
    def class_key(self):
        return f"{self.name}_class" if self.kind else None

    @property
    def probability_key(self):
        return f"{self.name}_probability" if self.kind and self.from_logits else None


def _model_inputs(model):
    """[(name, KerasTensor)] and a function that packs `{name: tensor}` the way the model takes it."""
    try:
        structure = model.input
    except (AttributeError, ValueError):
        structure = None
    if structure is None:
        raise ValueError(
            "`model` must be a functional keras.Model with defined inputs (as mmkeras.build_model "
            f"makes): a subclassed model without inputs cannot be exported. Received: model={model!r}"
        )
    if isinstance(structure, dict):
        items = list(structure.items())
        return items, lambda features: {name: features[name] for name, _ in items}
    if isinstance(structure, (list, tuple)):
        items = [(tensor.name, tensor) for tensor in structure]
        return items, lambda features: [features[name] for name, _ in items]
    return [(structure.name, structure)], lambda features: features[structure.name]


def _model_outputs(model):
    """[(name, KerasTensor)] in the order of the model's outputs, with their public names."""
    structure = model.output
    if isinstance(structure, dict):
        return list(structure.items())
    if isinstance(structure, (list, tuple)):
        return list(zip(model.output_names, structure))
    return [(model.output_names[0], structure)]


def _plan_inputs(model, preprocessor):
    plans = []
    for name, tensor in _model_inputs(model)[0]:
        shape = tuple(tensor.shape[1:])
        dtype = str(tensor.dtype)
        if dtype == "string" and len(shape) == 0:
            plans.append(_InputPlan(name, "text", shape, dtype))
        elif dtype.startswith(("float", "bfloat")) and len(shape) == 3:
            plans.append(_InputPlan(name, "image", shape, dtype, _image_preprocessor(name, shape, preprocessor)))
        elif dtype.startswith(("int", "uint")) and len(shape) == 1:
            plans.append(_InputPlan(name, "token_ids", shape, dtype, _text_preprocessor(name, shape, preprocessor)))
        else:
            raise ValueError(
                f"The model input {name!r} cannot be served from raw data: the `{SERVING_SIGNATURE}` "
                "signature takes images (float, (batch, height, width, channels)), token ids (int, "
                f"(batch, length)) or strings ((batch,)). Received: input {name!r} of dtype {dtype} "
                f"and shape {(None, *shape)}"
            )
    return plans


def _image_preprocessor(name, shape, preprocessor):
    if preprocessor is not None and preprocessor.image_shape is not None:
        if any(m is not None and m != p for m, p in zip(shape, preprocessor.image_shape)):
            raise ValueError(
                f"`preprocessor.image_shape` must match the model's {name!r} input {shape}. "
                f"Received: preprocessor.image_shape={preprocessor.image_shape}"
            )
        return preprocessor
    if None in shape:
        raise ValueError(
            f"The model input {name!r} has an unknown size {shape}: pass a `preprocessor` with an "
            "`image_shape` to say what size served images are resized to. "
            f"Received: preprocessor={preprocessor!r}"
        )
    return Preprocessor(image_shape=shape)  # decoding needs only the shape


def _text_preprocessor(name, shape, preprocessor):
    if preprocessor is None or preprocessor.vocabulary is None:
        raise ValueError(
            f"`preprocessor` must hold the text vocabulary (a mmkeras.preprocessing.Preprocessor, e.g. "
            f"Preprocessor.from_vectorizer(vectorizer, ...)) to export a model whose {name!r} input "
            f"takes token ids: the `{SERVING_SIGNATURE}` signature tokenizes raw strings exactly as "
            f"training did. Received: preprocessor={preprocessor!r}"
        )
    if shape[0] is not None and preprocessor.sequence_length != shape[0]:
        raise ValueError(
            f"`preprocessor.sequence_length` must equal the length of the model's {name!r} input "
            f"({shape[0]}). Received: preprocessor.sequence_length={preprocessor.sequence_length}"
        )
    return preprocessor


def _loss_info(loss):
    """(lower-case loss name, from_logits) of a compiled loss (a string or a Keras loss object)."""
    if loss is None:
        return "", False
    if isinstance(loss, str):
        return loss.lower(), False
    config = {}
    with contextlib.suppress(Exception):
        config = loss.get_config() or {}
    name = str(config.get("name") or getattr(loss, "name", "") or type(loss).__name__)
    return name.lower(), bool(config.get("from_logits", getattr(loss, "from_logits", False)))


def _output_loss(model, name, index):
    loss = getattr(model, "loss", None)
    if isinstance(loss, dict):
        return loss.get(name)
    if isinstance(loss, (list, tuple)):
        return loss[index] if index < len(loss) else None
    return loss


def _activation(tensor):
    history = getattr(tensor, "_keras_history", None)
    layer = history[0] if history else None
    if isinstance(layer, keras.layers.Softmax):
        return "softmax"
    return getattr(getattr(layer, "activation", None), "__name__", "unknown")


def _plan_outputs(model, class_names):
    plans = []
    for index, (name, tensor) in enumerate(_model_outputs(model)):
        units = tensor.shape[-1] if len(tensor.shape) == 2 else None
        activation = _activation(tensor)
        loss_name, from_logits = _loss_info(_output_loss(model, name, index))
        kind = None
        if units is not None:
            if activation == "softmax":
                kind = "multiclass"
            elif activation == "sigmoid":
                kind = "binary" if units == 1 else "multilabel"
            elif activation == "linear" and from_logits:
                if units == 1:
                    kind = "binary"
                else:
                    kind = "multiclass" if "categorical" in loss_name else "multilabel"
        plans.append(_OutputPlan(name, units, kind, from_logits=kind is not None and activation == "linear"))
    _attach_class_names(plans, class_names)
    names = {p.name for p in plans}
    for plan in plans:
        for key in (plan.class_key, plan.probability_key):
            if key in names:
                raise ValueError(
                    f"The model's output names clash with the exported output {key!r} (the top class "
                    f"of output {plan.name!r}): rename that output. Received: outputs {sorted(names)}"
                )
    return plans


def _attach_class_names(plans, class_names):
    classified = [p for p in plans if p.kind]
    if class_names is None:
        return
    if not isinstance(class_names, dict):
        if len(classified) != 1:
            raise ValueError(
                "`class_names` (or `preprocessor.class_names`) given as one list needs exactly one "
                f"classification output; this model has {[p.name for p in classified]}: pass "
                "`class_names={output_name: [names]}`. "
                f"Received: class_names={class_names!r}"
            )
        class_names = {classified[0].name: class_names}
    by_name = {p.name: p for p in classified}
    for name, names in class_names.items():
        if name not in by_name:
            raise ValueError(
                f"`class_names` keys must be classification outputs of the model {sorted(by_name)}. "
                f"Received: class_names key {name!r}"
            )
        plan = by_name[name]
        expected = 2 if plan.kind == "binary" else plan.units
        names = [str(n) for n in names]
        if len(names) != expected:
            raise ValueError(
                f"`class_names` for output {name!r} ({plan.kind}, {plan.units} unit(s)) must hold "
                f"{expected} names{' (negative, positive)' if plan.kind == 'binary' else ''}. "
                f"Received: {len(names)} names {names[:20]!r}"
            )
        plan.class_names = names


# ---------------------------------------------------------------------------------------------
# The graph: request checks, preprocessing, model, named outputs.


def _checked(value, condition, *message):
    """`value` once `condition` holds; else an InvalidArgumentError that prints `message`."""
    check = tf.debugging.Assert(condition, ["Invalid request:", *message], summarize=8)
    with tf.control_dependencies([check]):
        return tf.identity(value)


def _check_tensor(value, name, shape, what):
    """Check a request tensor's rank and known dimensions at run time, then give it a static shape.

    The signatures declare unknown shapes on purpose: a loaded signature (and TF Serving) does
    not enforce declared shapes, and a declared shape would let the graph optimizer fold these
    checks away. So they run here, in the graph, for every request.
    """
    rank = len(shape) + 1
    actual = tf.shape(value)
    condition = tf.equal(tf.size(actual), rank)
    known = [(i + 1, d) for i, d in enumerate(shape) if d is not None]
    if known:
        # Padded to `rank` entries, so the comparison itself never fails on a wrong rank.
        padded = tf.concat([actual, tf.fill([rank], -1)], axis=0)[:rank]
        same = tf.equal(tf.gather(padded, [i for i, _ in known]), [d for _, d in known])
        condition = tf.logical_and(condition, tf.reduce_all(same))
    value = _checked(
        value,
        condition,
        f"`{name}` must be {what} of shape {_shape_text(shape)}; received a tensor of shape",
        actual,
    )
    value.set_shape((None, *shape))
    return value


def _shape_text(shape):
    return "(" + ", ".join(["batch", *("?" if d is None else str(d) for d in shape)]) + ("," if not shape else "") + ")"


def _check_same_batch(features, names):
    """All request tensors must hold the same number of examples."""
    if len(names) < 2:
        return features
    sizes = tf.stack([tf.shape(features[n])[0] for n in names])
    first = names[0]
    features[first] = _checked(
        features[first],
        tf.reduce_all(tf.equal(sizes, sizes[0])),
        f"the inputs {', '.join(f'`{n}`' for n in names)} must hold the same number of examples; "
        "received batch sizes",
        sizes,
    )
    return features


def _check_image_bytes(images, name):
    empty = tf.equal(tf.strings.length(images), 0)
    return _checked(
        images,
        tf.logical_not(tf.reduce_any(empty)),
        f"`{name}` must hold the encoded bytes of one image (JPEG or PNG) per example; these items "
        "are empty strings (0-based indices):",
        tf.where(empty)[:, 0],
    )


def _postprocess(outputs, plans):
    result = {}
    for plan in plans:
        value = outputs[plan.name]
        result[plan.name] = value
        if not plan.kind:
            continue
        probabilities = value
        if plan.from_logits:
            probabilities = tf.nn.softmax(value) if plan.kind == "multiclass" else tf.sigmoid(value)
            result[plan.probability_key] = probabilities
        if plan.kind == "binary":
            index = tf.cast(probabilities[:, 0] >= 0.5, tf.int32)
        else:
            index = tf.argmax(probabilities, axis=-1, output_type=tf.int32)
        names = plan.class_names or [str(i) for i in range(2 if plan.kind == "binary" else plan.units)]
        result[plan.class_key] = tf.gather(tf.constant(names), index)
    return result


def _call_model(model, pack, features, plans):
    outputs = model(pack(features), training=False)
    if not isinstance(outputs, dict):
        outputs = [outputs] if not isinstance(outputs, (list, tuple)) else outputs
        outputs = dict(zip([p.name for p in plans], outputs))
    return _postprocess(outputs, plans)


def _make_serving_fn(model, pack, input_plans, output_plans):
    """Raw request -> named outputs: bytes are decoded and strings tokenized inside the graph."""

    def serve(request):
        features = {}
        for plan in input_plans:
            value = request[plan.name]
            if plan.kind == "image":
                value = _check_tensor(value, plan.name, (), "a batch of encoded images (tf.string)")
                value = _check_image_bytes(value, plan.name)
            else:
                value = _check_tensor(value, plan.name, (), "a batch of texts (tf.string)")
            features[plan.name] = value
        features = _check_same_batch(features, [p.name for p in input_plans])
        for plan in input_plans:
            if plan.kind == "image":
                features[plan.name] = tf.cast(plan.preprocessor.decode_images(features[plan.name]), plan.dtype)
            elif plan.kind == "token_ids":
                features[plan.name] = tf.cast(plan.preprocessor.texts_to_ids(features[plan.name]), plan.dtype)
        return _call_model(model, pack, features, output_plans)

    return serve


def _make_tensors_fn(model, pack, input_plans, output_plans):
    """The model's own tensors -> the same named outputs."""
    what = {"image": "a batch of float images", "token_ids": "a batch of token ids", "text": "a batch of texts"}

    def serve_tensors(request):
        features = {p.name: _check_tensor(request[p.name], p.name, p.shape, what[p.kind]) for p in input_plans}
        features = _check_same_batch(features, [p.name for p in input_plans])
        return _call_model(model, pack, features, output_plans)

    return serve_tensors


def _raw_specs(input_plans):
    return {p.name: tf.TensorSpec(None, tf.string, name=p.name) for p in input_plans}


def _tensor_specs(input_plans):
    return {p.name: tf.TensorSpec(None, tf.as_dtype(p.dtype), name=p.name) for p in input_plans}


def _signature_description(input_plans, output_plans):
    """The signatures' contract, for `mmkeras_export.json` and the docs (shapes use null for any)."""
    outputs = {}
    for plan in output_plans:
        outputs[plan.name] = {"dtype": "float32", "shape": [None, plan.units]}
        if plan.probability_key:
            outputs[plan.probability_key] = {"dtype": "float32", "shape": [None, plan.units]}
        if plan.class_key:
            outputs[plan.class_key] = {"dtype": "string", "shape": [None]}
    raw = {
        p.name: {
            "dtype": "string",
            "shape": [None],
            "content": "encoded image bytes (JPEG or PNG)" if p.kind == "image" else "raw text",
        }
        for p in input_plans
    }
    tensors = {
        p.name: {
            "dtype": p.dtype,
            "shape": [None, *p.shape],
            "content": {"image": "float image in [0, 1]", "token_ids": "token ids", "text": "raw text"}[p.kind],
        }
        for p in input_plans
    }
    return {
        SERVING_SIGNATURE: {"inputs": raw, "outputs": outputs},
        TENSORS_SIGNATURE: {"inputs": tensors, "outputs": outputs},
    }


# ---------------------------------------------------------------------------------------------
# Atomic writes.


def _umask():
    """The process umask, read without changing it (`os.umask` would, for every thread)."""
    with contextlib.suppress(OSError, ValueError, StopIteration):
        with open("/proc/self/status", encoding="ascii") as f:
            return int(next(line for line in f if line.startswith("Umask:")).split()[1], 8)
    return 0o022


def _make_readable(path, folder=True):
    """`mkdtemp` / `mkstemp` create private (0700 / 0600) entries: give the export the usual
    permissions (umask applied), so a service running as another user can read it."""
    os.chmod(path, (0o777 if folder else 0o666) & ~_umask())


def _fsync_tree(root):
    """Flush every file and folder under `root` to disk (best effort)."""
    for folder, _, files in os.walk(root):
        for name in files:
            _fsync(os.path.join(folder, name))
        _fsync(folder)


def _fsync(path):
    """Flush one file or folder to disk (best effort)."""
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _exchange(a, b):
    """Swap two paths atomically (Linux `renameat2(RENAME_EXCHANGE)`); False where unsupported."""
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    return renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0


def _is_replaceable(path):
    """Whether `overwrite=True` may replace `path`: an export of the same kind, or an empty folder.

    A folder export (SavedModel, or `model.keras` + `preprocessor.json`) replaces only such a
    folder or an empty one; a `.keras` file replaces only a `.keras` file. Nothing else is deleted.
    """
    if path.endswith(".keras") and not os.path.isdir(path):
        return os.path.isfile(path)
    if os.path.isdir(path) and not os.path.islink(path):
        entries = os.listdir(path)
        return not entries or "saved_model.pb" in entries or KERAS_FILE in entries
    return False


def _check_target(path, overwrite):
    if not os.path.lexists(path):
        return
    if not overwrite:
        raise FileExistsError(
            f"`path` already holds an export; it is kept. Pass overwrite=True (CLI: --overwrite) to "
            f"replace it once the new export is complete. Received: path={path!r}"
        )
    if not _is_replaceable(path):
        raise ValueError(
            "`path` exists and is not an export (a SavedModel folder, a folder with model.keras, a "
            ".keras file) nor an empty folder: overwrite=True only replaces exports. "
            f"Received: path={path!r}"
        )


def _publish_dir(tmp, path, overwrite):
    """Move the complete folder `tmp` to `path`; an existing `path` is replaced only with `overwrite`."""
    parent = os.path.dirname(os.path.abspath(path))
    _fsync_tree(tmp)
    if not os.path.lexists(path):
        try:
            os.rename(tmp, path)  # fails if `path` appeared meanwhile and is not empty
        except OSError as error:
            raise FileExistsError(f"`path` appeared while exporting; it is kept. Received: path={path!r}") from error
    else:
        _check_target(path, overwrite)
        if not _exchange(tmp, path):
            # No atomic swap here: the old export steps aside, the new one moves in. In between
            # (two renames) `path` is briefly absent, never half-written.
            old = tempfile.mkdtemp(prefix=f".{os.path.basename(path)}.old-", dir=parent)
            os.rmdir(old)
            os.rename(path, old)
            try:
                os.rename(tmp, path)
            except BaseException:
                os.rename(old, path)
                raise
            tmp = old
        _remove(tmp)  # the old export
    _fsync(parent)


def _remove(path):
    """Delete a file or a folder (best effort)."""
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(OSError):
            os.remove(path)


# ---------------------------------------------------------------------------------------------
# Public API.


def export_model(model, path=None, *, preprocessor=None, format="saved_model", overwrite=False, class_names=None):
    """Export `model` as a TF SavedModel that takes raw image bytes and strings, or as `.keras`.

    Args:
        model: a functional `keras.Model` with named inputs (`"image"`, `"text"`, as
            `mmkeras.build_model` makes; images `(batch, H, W, C)` floats in [0, 1], texts int token
            ids or raw strings).
        path: str or path-like, where to write. For `format="saved_model"`, a folder (for TF
            Serving, a numbered version folder such as `saved_models/vqa/1`). For `format="keras"`,
            a `.keras` file (`preprocessor.json` is written beside it), or a folder that receives
            `model.keras` and `preprocessor.json`. Defaults to `saved_models/<model.name>`
            (`saved_models/<model.name>_keras/` for the keras format) under the current folder.
        preprocessor: a `mmkeras.preprocessing.Preprocessor` (image shape, vocabulary, class
            names), the one training used. Needed when the model takes token ids (the signature
            tokenizes raw strings with its vocabulary); optional for image-only models and models
            that take raw strings. Defaults to `None`.
        format: `"saved_model"` or `"keras"`. Defaults to `"saved_model"`.
        overwrite: bool, replace an existing export at `path` (only once the new one is
            complete). Defaults to `False`: an existing export raises `FileExistsError`.
        class_names: names of the classes for the `<output>_class` outputs: a list (for the one
            classification output; 2 names, negative first, for a binary output) or a dict
            `{output_name: [names]}`. Defaults to `preprocessor.class_names`; without names the
            class index is returned as a string.

    Returns:
        The path written, as a str.

    Raises:
        FileExistsError: `path` exists and `overwrite` is False.
        ValueError: a bad argument, or a model the signatures cannot serve (the message says why).

    Example:

    >>> model = mmkeras.get_model("s3", image_shape=(32, 32, 3))   # image-only
    >>> export_model(model, "saved_models/s3")
    'saved_models/s3'
    >>> export_model(model, "saved_models/s3.keras", format="keras")
    'saved_models/s3.keras'
    """
    if not isinstance(model, keras.Model):
        raise ValueError(f"`model` must be a keras.Model. Received: model={model!r}")
    check_one_of("format", format, FORMATS)
    if preprocessor is not None and not isinstance(preprocessor, Preprocessor):
        raise ValueError(
            "`preprocessor` must be a mmkeras.preprocessing.Preprocessor (or None). "
            f"Received: preprocessor={preprocessor!r}"
        )
    if not isinstance(overwrite, bool):
        raise ValueError(f"`overwrite` must be True or False. Received: overwrite={overwrite!r}")
    if path is None:
        path = os.path.join(DEFAULT_EXPORT_DIR, model.name + ("_keras" if format == "keras" else ""))
    try:
        path = os.fspath(path)
    except TypeError:
        raise ValueError(f"`path` must be a str or a path-like object. Received: path={path!r}") from None
    path = path.rstrip(os.sep) or path
    if not path:
        raise ValueError(f"`path` must name a folder or file to create. Received: path={path!r}")
    _check_target(path, overwrite)
    parent = os.path.dirname(os.path.abspath(path))
    os.makedirs(parent, exist_ok=True)

    if format == "keras":
        _export_keras(model, path, preprocessor, overwrite)
        return path

    if keras.backend.backend() != "tensorflow":
        raise ValueError(
            "SavedModel export runs the model inside TensorFlow graphs: it needs the TensorFlow "
            "Keras backend (set KERAS_BACKEND=tensorflow), or use format='keras'. "
            f"Received: backend {keras.backend.backend()!r}"
        )
    if class_names is None and preprocessor is not None:
        class_names = preprocessor.class_names
    input_plans = _plan_inputs(model, preprocessor)
    output_plans = _plan_outputs(model, class_names)
    _, pack = _model_inputs(model)

    tmp = tempfile.mkdtemp(prefix=f".{os.path.basename(path)}.tmp-", dir=parent)
    _make_readable(tmp)
    try:
        archive = keras.export.ExportArchive()
        archive.track(model)
        for plan in input_plans:
            if plan.kind == "token_ids":
                plan.preprocessor.texts_to_ids(tf.constant([""]))  # builds the vectorizer's table
                archive.track(plan.preprocessor.vectorizer)
        archive.add_endpoint(
            SERVING_SIGNATURE,
            _make_serving_fn(model, pack, input_plans, output_plans),
            input_signature=[_raw_specs(input_plans)],
        )
        archive.add_endpoint(
            TENSORS_SIGNATURE,
            _make_tensors_fn(model, pack, input_plans, output_plans),
            input_signature=[_tensor_specs(input_plans)],
        )
        with _quiet_tf_logger():  # no "Assets written to: <temporary folder>" lines
            archive.write_out(tmp, verbose=False)
        if preprocessor is not None:
            preprocessor.save(os.path.join(tmp, PREPROCESSOR_FILE))
        _write_json(os.path.join(tmp, METADATA_FILE), _metadata(model, input_plans, output_plans))
        _publish_dir(tmp, path, overwrite)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)  # only left behind if something above failed
    return path


@contextlib.contextmanager
def _quiet_tf_logger():
    logger = tf.get_logger()
    level = logger.level
    logger.setLevel(max(level, logging.WARNING))
    try:
        yield
    finally:
        logger.setLevel(level)


def _metadata(model, input_plans, output_plans):
    from mmkeras import __version__

    return {
        "format": "mmkeras.saved_model",
        "format_version": FORMAT_VERSION,
        "model_name": model.name,
        "mmkeras_version": __version__,
        "keras_version": keras.__version__,
        "tensorflow_version": tf.__version__,
        "signatures": _signature_description(input_plans, output_plans),
        "class_names": {p.name: p.class_names for p in output_plans if p.class_names},
    }


def _write_json(path, data):
    with open(path, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=2)


def _export_keras(model, path, preprocessor, overwrite):
    parent = os.path.dirname(os.path.abspath(path))
    if path.endswith(".keras"):
        # One file, plus `preprocessor.json` beside it; the model file is replaced last.
        pre_path = os.path.join(parent, PREPROCESSOR_FILE)
        if preprocessor is not None:
            if os.path.lexists(pre_path) and not overwrite:
                raise FileExistsError(
                    f"`path`'s folder already holds a {PREPROCESSOR_FILE} (another model's?); it is "
                    f"kept. Pass overwrite=True to replace it. Received: path={path!r}"
                )
        fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.tmp-", suffix=".keras", dir=parent)
        os.close(fd)
        _make_readable(tmp, folder=False)
        try:
            model.save(tmp)
            if preprocessor is not None:
                preprocessor.save(pre_path)
            _fsync(tmp)
            os.replace(tmp, path)
            _fsync(parent)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.remove(tmp)
        return
    tmp = tempfile.mkdtemp(prefix=f".{os.path.basename(path)}.tmp-", dir=parent)
    _make_readable(tmp)
    try:
        model.save(os.path.join(tmp, KERAS_FILE))
        if preprocessor is not None:
            preprocessor.save(os.path.join(tmp, PREPROCESSOR_FILE))
        _publish_dir(tmp, path, overwrite)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _locate(path):
    """(kind, model path, preprocessor path) for a SavedModel folder, a .keras file or a folder
    holding `model.keras`."""
    if os.path.isdir(path):
        if os.path.exists(os.path.join(path, "saved_model.pb")):
            return "saved_model", path, os.path.join(path, PREPROCESSOR_FILE)
        if os.path.exists(os.path.join(path, KERAS_FILE)):
            return "keras", os.path.join(path, KERAS_FILE), os.path.join(path, PREPROCESSOR_FILE)
    elif os.path.isfile(path) and path.endswith(".keras"):
        return "keras", path, os.path.join(os.path.dirname(os.path.abspath(path)), PREPROCESSOR_FILE)
    raise ValueError(
        "`path` must be a SavedModel folder (with saved_model.pb), a .keras file, or a folder "
        f"holding {KERAS_FILE}. Received: path={path!r}"
        + ("" if os.path.exists(path) else " (it does not exist)")
    )


def load_preprocessor(path):
    """The `Preprocessor` saved with the export at `path`, or None when none was saved.

    Example:

    >>> load_preprocessor("saved_models/s0").class_names
    ['no', 'yes']
    """
    _, _, pre_path = _locate(os.fspath(path))
    return Preprocessor.load(pre_path) if os.path.exists(pre_path) else None


def load(path, *, return_preprocessor=False):
    """Load an export: a SavedModel folder, a `.keras` file, or a folder holding `model.keras`.

    A SavedModel is loaded with `tf.saved_model.load`: the returned object serves
    `obj.signatures["serving_default"](image=..., text=...)` (keyword arguments, `tf.string`
    tensors) and `obj.signatures["serve_tensors"](...)`; `obj.serving_default({"image": ...,
    "text": ...})` is the same function taking one dict. A `.keras` file is loaded with
    `keras.saving.load_model(path, safe_mode=True)` and returns the Keras model.

    Args:
        path: str or path-like.
        return_preprocessor: bool. If True, return `(loaded, preprocessor)`, where
            `preprocessor` is the saved `Preprocessor` (`preprocessor.json` inside the SavedModel
            folder or beside the `.keras` file) or None when none was saved. Defaults to False.

    Returns:
        The loaded object, or `(loaded, preprocessor)`.

    Example:

    >>> served, preprocessor = load("saved_models/s0", return_preprocessor=True)
    >>> sorted(served.signatures)
    ['serve_tensors', 'serving_default']
    >>> model = load("saved_models/s0.keras")   # a keras.Model
    """
    try:
        path = os.fspath(path)
    except TypeError:
        raise ValueError(f"`path` must be a str or a path-like object. Received: path={path!r}") from None
    kind, model_path, pre_path = _locate(path)
    if kind == "saved_model":
        loaded = tf.saved_model.load(model_path)
    else:
        loaded = keras.saving.load_model(model_path, safe_mode=True)
    if not return_preprocessor:
        return loaded
    return loaded, (Preprocessor.load(pre_path) if os.path.exists(pre_path) else None)
