"""Property tests (hypothesis) over the public entry points: bad input gets a clear error, never a crash.

For generated wrong shapes, ranks and dtypes, NaN and inf, out-of-range token ids, empty and
100k-character strings, corrupt and oversized image bytes, and zero-length or mismatched batches,
every entry point either gives a documented result (outputs with one row per example, finite,
probabilities in [0, 1]; empty in, empty out) or raises a `ValueError` (an `InvalidArgumentError`
naming the input inside an exported graph; exit code 2 with one line from the CLI). Any other
exception, a traceback from the CLI or exit code 1 fails the property.

The default run tries a few examples per property (`FAST`, derandomized: the same examples every
run); `-m slow` runs the same properties with many more (`SLOW`). One tiny model and one export
serve the module.
"""

import contextlib
import functools
import io
import os
import tempfile

import numpy as np
import pytest
import tensorflow as tf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import mmkeras
from mmkeras.cli import main
from mmkeras.data import make_dataset
from mmkeras.preprocessing import Preprocessor, text_vectorizer
from tests.helpers import tiny_model

SHAPE = (32, 32, 3)
LENGTH = 12
VOCAB = 64
COMMON = dict(deadline=None, database=None, suppress_health_check=list(HealthCheck))
FAST = settings(max_examples=10, derandomize=True, **COMMON)
SLOW = settings(max_examples=200, **COMMON)


@functools.lru_cache(maxsize=None)
def state():
    """The module's tiny model (with a vocabulary) and its export, made once."""
    model = tiny_model("s0")
    vectorizer = text_vectorizer(["is it red", "what shape is it", "a photo"], sequence_length=LENGTH)
    model.preprocessor = Preprocessor.from_vectorizer(vectorizer, image_shape=SHAPE, class_names=["no", "yes"])
    folder = tempfile.mkdtemp(prefix="mmkeras-properties-")
    served = mmkeras.load(mmkeras.export_model(model, os.path.join(folder, "s0")))
    return model, served


def both(body):
    """`body(data)` as a default-run test (`FAST`) and a slow-marked one (`SLOW`)."""

    def make(profile):
        @profile
        @given(data=st.data())
        def test(data):
            body(data)

        return test

    return make(FAST), pytest.mark.slow(make(SLOW))


# --- Strategies --------------------------------------------------------------------------------

SPECIAL = st.sampled_from([np.nan, np.inf, -np.inf, 255.0, -1.0, 1.5, 0.0, 1.0])
LONG_TEXT = "red " * 25_000  # 100k characters


def images(draw, n):
    """Images of a random shape, rank and dtype, some with NaN/inf or 0..255 floats."""
    kind = draw(st.sampled_from(["good", "special", "uint8", "rank", "size", "int", "bool"]))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    if kind == "rank":
        return rng.random(draw(st.sampled_from([(n,), (n, 32), (n, 32, 32), (n, 1, 32, 32, 3)]))).astype("float32")
    if kind == "size":
        return rng.random((n, draw(st.integers(1, 40)), draw(st.integers(1, 40)), draw(st.sampled_from([1, 2, 3, 4])))).astype("float32")
    if kind == "uint8":
        return rng.integers(0, 256, (n, *SHAPE)).astype("uint8")
    if kind == "int":
        return rng.integers(-5, 300, (n, *SHAPE))
    if kind == "bool":
        return rng.random((n, *SHAPE)) > 0.5
    array = rng.random((n, *SHAPE)).astype(draw(st.sampled_from(["float32", "float64", "float16"])))
    if kind == "special" and n:
        array[draw(st.integers(0, n - 1)), 0, 0, 0] = draw(SPECIAL)
    return array


def token_ids(draw, n):
    """Token ids, some out of range (negative, >= vocabulary), of a wrong length or dtype."""
    kind = draw(st.sampled_from(["good", "negative", "large", "length", "float", "rank"]))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    ids = rng.integers(0, VOCAB, (n, LENGTH)).astype("int32")
    if kind == "negative" and n:
        ids[draw(st.integers(0, n - 1)), draw(st.integers(0, LENGTH - 1))] = draw(st.integers(-(2**31), -1))
    if kind == "large" and n:
        ids[draw(st.integers(0, n - 1)), draw(st.integers(0, LENGTH - 1))] = draw(st.integers(VOCAB, 2**31 - 1))
    if kind == "length":
        return rng.integers(0, VOCAB, (n, draw(st.sampled_from([0, 1, LENGTH + 1])))).astype("int32")
    if kind == "float":
        return ids.astype("float32") + 0.5
    if kind == "rank":
        return ids[:, 0]
    return ids


TEXTS = st.one_of(
    st.text(max_size=20),
    st.just(""),
    st.just(LONG_TEXT),
    st.sampled_from(["is it red?", "\x00\xff", "🙂" * 10, " " * 50]),
)


def encoded(draw):
    """Encoded image bytes: good PNG/JPEG, corrupt, truncated, empty, TIFF, oversized header."""
    kind = draw(st.sampled_from(["png", "jpeg", "random", "truncated", "empty", "tiff", "huge", "zero"]))
    png = tf.io.encode_png(np.full((draw(st.integers(1, 48)), draw(st.integers(1, 48)), 3), 7, "uint8")).numpy()
    if kind == "png":
        return png
    if kind == "jpeg":
        return tf.io.encode_jpeg(np.zeros((20, 20, 3), "uint8")).numpy()
    if kind == "random":
        return draw(st.binary(min_size=1, max_size=200))
    if kind == "truncated":
        return png[: draw(st.integers(1, len(png) - 13))]
    if kind == "empty":
        return b""
    if kind == "tiff":
        return b"II*\x00" + bytes(100)
    data = bytearray(png)  # a header that declares a huge (or an empty) image
    side = 60_000 if kind == "huge" else 0
    data[16:24] = side.to_bytes(4, "big") * 2
    return bytes(data)


# --- Builders ----------------------------------------------------------------------------------

BAD_VALUES = st.one_of(
    st.integers(-3, 0),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=5),
    st.none(),
    st.booleans(),
    st.sampled_from([(32, 32), (32, 32, 3, 1), (0, 32, 3), (-1,), [], {}, "rnn", "concatenate"]),
)
ARGUMENTS = [
    "image_shape", "sequence_length", "vocab_size", "hidden_units", "dropout", "fusion", "head",
    "num_classes", "learning_rate", "optimizer", "image_encoder", "text_encoder", "raw_text",
]


def builders(data):
    name = data.draw(st.sampled_from(["s0", "s3", "vqa"]))
    overrides = {**mmkeras.get_entry(name).tiny}
    for argument in data.draw(st.lists(st.sampled_from(ARGUMENTS), min_size=1, max_size=2, unique=True)):
        overrides[argument] = data.draw(BAD_VALUES)
    try:
        model = mmkeras.get_model(name, **overrides)
    except ValueError as error:
        assert str(error)
        return
    assert isinstance(model, mmkeras.tasks.Task)


test_builders_take_bad_arguments, test_builders_take_bad_arguments_slow = both(builders)


# --- Task.predict / answer / mmkeras.predict ---------------------------------------------------


def predict_inputs(data):
    model, _ = state()
    n = data.draw(st.integers(0, 3))
    x = {
        "image": images(data.draw, n),
        "text": token_ids(data.draw, data.draw(st.sampled_from([n, n, n + 1]))),  # sometimes mismatched
    }
    try:
        out = model.predict(x, verbose=0)
    except ValueError as error:
        assert str(error)
        return
    # Accepted: only inputs the model takes as they are.
    assert x["image"].dtype.kind == "f" and np.all(np.isfinite(x["image"])) and x["image"].min(initial=0) >= 0
    assert x["image"].max(initial=1) <= 1 and x["text"].min(initial=0) >= 0 and x["text"].max(initial=0) < VOCAB
    assert out.shape == (n, 1) and np.all((out >= 0) & (out <= 1))


test_predict_inputs, test_predict_inputs_slow = both(predict_inputs)


def answer_inputs(data):
    model, _ = state()
    n = data.draw(st.integers(0, 3))
    form = data.draw(st.sampled_from(["arrays", "bytes"]))
    image = images(data.draw, n) if form == "arrays" else [encoded(data.draw) for _ in range(n)]
    texts = data.draw(st.lists(st.one_of(TEXTS, st.none(), st.integers()), min_size=n, max_size=n + 1))
    try:
        answers = model.answer(image=image, text=texts)
    except ValueError as error:
        assert str(error)
        return
    assert len(answers) == n and all(0 <= a["probability"] <= 1 for a in answers)


test_answer_inputs, test_answer_inputs_slow = both(answer_inputs)


def one_prediction(data):
    model, _ = state()
    form = data.draw(st.sampled_from(["array", "bytes"]))
    image = images(data.draw, 1)[0] if form == "array" else encoded(data.draw)
    text = data.draw(st.one_of(TEXTS, st.none(), st.integers()))
    try:
        answer = mmkeras.predict(model, image, text)
    except ValueError as error:
        assert str(error)
        return
    assert answer["answer"] in ("no", "yes") and 0 <= answer["probability"] <= 1


test_mmkeras_predict, test_mmkeras_predict_slow = both(one_prediction)


# --- make_dataset ------------------------------------------------------------------------------


def datasets(data):
    model, _ = state()
    n = data.draw(st.integers(0, 3))
    image = images(data.draw, n) if data.draw(st.booleans()) else [encoded(data.draw) for _ in range(n)]
    texts = (
        data.draw(st.lists(st.one_of(TEXTS, st.none()), min_size=max(0, n - 1), max_size=n + 1))
        if data.draw(st.booleans())
        else token_ids(data.draw, n)
    )
    labels = data.draw(st.one_of(
        st.lists(st.sampled_from([0, 1, 2, -1, 0.5, np.nan]), min_size=max(0, n - 1), max_size=n + 1), st.none()
    ))
    try:
        dataset = make_dataset(image, texts, labels, task=model, batch_size=2, verbose=False)
    except ValueError as error:
        assert str(error)
        return
    batch = next(iter(dataset))
    inputs = batch[0] if labels is not None else batch
    assert tuple(inputs["image"].shape[1:]) == SHAPE and tuple(inputs["text"].shape[1:]) == (LENGTH,)
    assert float(tf.reduce_min(inputs["image"])) >= 0 and float(tf.reduce_max(inputs["image"])) <= 1
    assert int(tf.reduce_min(inputs["text"])) >= 0 and int(tf.reduce_max(inputs["text"])) < VOCAB


test_make_dataset, test_make_dataset_slow = both(datasets)


# --- The exported signatures -------------------------------------------------------------------


def serving_default(data):
    _, served = state()
    n = data.draw(st.integers(0, 3))
    image = [encoded(data.draw) for _ in range(n)]
    texts = data.draw(st.lists(TEXTS, min_size=n, max_size=n + data.draw(st.sampled_from([0, 0, 1]))))
    try:
        out = served.signatures["serving_default"](image=tf.constant(image, tf.string), text=tf.constant(texts, tf.string))
    except tf.errors.InvalidArgumentError as error:
        message = error.message
        assert "image" in message or "text" in message, message
        return
    assert out["label"].shape == (n, 1) and out["label_class"].shape == (n,)
    assert np.all((out["label"].numpy() >= 0) & (out["label"].numpy() <= 1))


test_serving_default, test_serving_default_slow = both(serving_default)


def serve_tensors(data):
    _, served = state()
    n = data.draw(st.integers(0, 3))
    image = images(data.draw, n)
    ids = token_ids(data.draw, data.draw(st.sampled_from([n, n, n + 1])))
    try:
        out = served.signatures["serve_tensors"](
            image=tf.constant(image.astype("float32")), text=tf.constant(ids.astype("int32") if ids.dtype.kind == "i" else ids)
        )
    except tf.errors.InvalidArgumentError as error:
        message = error.message
        if "was expected to be a int32 tensor" in message:  # a dtype the signature does not take: TF's own check
            assert ids.dtype.kind == "f", message
            return
        assert "`image`" in message or "`text`" in message, message
        return
    except (TypeError, ValueError) as error:  # the same, raised while binding the arguments
        assert ids.dtype.kind == "f", error
        return
    good = image.astype("float32")
    assert np.all(np.isfinite(good)) and good.min(initial=0) >= 0 and good.max(initial=1) <= 1
    assert ids.min(initial=0) >= 0 and ids.max(initial=0) < VOCAB
    assert out["label"].shape == (n, 1)


test_serve_tensors, test_serve_tensors_slow = both(serve_tensors)


# --- The CLI's argument parsing ----------------------------------------------------------------

OPTION_VALUES = {
    "--epochs": ["0", "-1", "x", "1e9", ""],
    "--batch-size": ["0", "-4", "two"],
    "--image-shape": ["32,32,4", "a,b,c", "0,0,3", "32", ""],
    "--seed": ["-1", "x"],
    "--validation-split": ["1.5", "-0.1", "nan"],
    "--model": ["bogus", ""],
    "--top-k": ["0", "-1", "x"],
    "--format": ["zip", ""],
}
# Each `train` command carries one of these, so no generated command trains for real.
GUARDS = [["--model", "no_such_model"], ["--batch-size", "0"], ["--data", "/no/such/table.csv"]]


def cli(data):
    command = data.draw(st.sampled_from(["train", "predict", "export", "evaluate", "list", "bogus", ""]))
    argv = [command] if command else []
    if command in ("predict", "export", "evaluate"):
        folder = tempfile.mkdtemp()
        target = data.draw(st.sampled_from(["missing", "empty_keras", "folder"]))
        path = {"missing": os.path.join(folder, "nope"), "folder": folder}.get(target)
        if target == "empty_keras":
            path = os.path.join(folder, "m.keras")
            open(path, "wb").close()
        argv.append(path)
        if command == "predict":
            argv += [os.path.join(folder, "x.png"), data.draw(st.sampled_from(["", "is it red?", LONG_TEXT]))]
    options = data.draw(st.lists(st.sampled_from(sorted(OPTION_VALUES)), max_size=3, unique=True))
    for option in options:
        argv += [option, data.draw(st.sampled_from(OPTION_VALUES[option]))]
    if command == "train":
        argv += data.draw(st.sampled_from(GUARDS))
    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(io.StringIO()):
        try:
            code = main(argv)
        except SystemExit as exit:  # argparse: usage errors exit 2, --help 0
            code = exit.code
    assert code in (0, 2), (argv, code, stderr.getvalue())
    assert "Traceback" not in stderr.getvalue(), (argv, stderr.getvalue())


test_cli_arguments, test_cli_arguments_slow = both(cli)
