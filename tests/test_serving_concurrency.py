"""An exported model served from several threads at once: good requests get the answers a single
thread gets (bitwise), bad ones a clear error naming the item, and neither disturbs the other."""

import concurrent.futures
import os

import numpy as np
import pytest
import tensorflow as tf

import mmkeras
from mmkeras.preprocessing import Preprocessor, error_reason, text_vectorizer
from tests.helpers import tiny_model

THREADS = 6
ROUNDS = 4


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    model = tiny_model("s0")
    vectorizer = text_vectorizer(["is it red", "what shape is it", "a photo"], sequence_length=12)
    model.preprocessor = Preprocessor.from_vectorizer(vectorizer, image_shape=(32, 32, 3), class_names=["no", "yes"])
    return mmkeras.load(mmkeras.export_model(model, os.path.join(tmp_path_factory.mktemp("export"), "s0")))


def requests():
    """Mixed requests: `(images, texts, expected error or None)`."""
    rng = np.random.default_rng(0)
    good = []
    for i in range(4):
        images = [tf.io.encode_png(rng.integers(0, 256, (20 + i, 30, 3)).astype("uint8")).numpy() for _ in range(i + 1)]
        good.append((images, ["is it red?", "what shape is it"][: 1] * (i + 1), None))
    png = good[0][0][0]
    bad = [
        ([png, b"not an image"], ["a", "b"], "image[1] (12 bytes) is not an encoded image"),
        ([png, png, png[:40]], ["a", "b", "c"], "image[2] (40 bytes) is a truncated or corrupt PNG image"),
        ([png], ["a", "b"], "must hold the same number of examples"),
    ]
    return good + bad


def serve(served, images, texts):
    out = served.signatures["serving_default"](image=tf.constant(images), text=tf.constant(texts))
    return {k: v.numpy() for k, v in out.items()}


def test_threads_get_the_single_threaded_answers(served):
    cases = requests()
    single = [serve(served, images, texts) if error is None else None for images, texts, error in cases]

    def one(i):
        images, texts, error = cases[i % len(cases)]
        try:
            return i, serve(served, images, texts), None
        except tf.errors.InvalidArgumentError as failure:
            return i, None, failure.message

    with concurrent.futures.ThreadPoolExecutor(THREADS) as pool:
        results = list(pool.map(one, range(THREADS * ROUNDS)))
    for i, out, message in results:
        images, texts, error = cases[i % len(cases)]
        if error is None:
            assert message is None, message
            expected = single[i % len(cases)]
            assert sorted(out) == sorted(expected)
            for key in out:
                assert np.array_equal(out[key], expected[key]), key  # bitwise
        else:
            assert out is None and error in message, message


def test_error_reason_reads_a_served_error(served):
    with pytest.raises(tf.errors.InvalidArgumentError) as info:
        serve(served, [b"junk"], ["a"])
    assert error_reason(info.value).startswith("image[0] (4 bytes) is not an encoded image")
