"""Issue 10 (items 5, 8, 10, 13, 14, 15): bad inputs get a clear error naming the input and the item,
and an empty batch gives empty outputs, on every entry point (arrays, tf.data, exports).

One tiny model and one export serve the whole module (module-scoped fixtures).
"""

import os

import numpy as np
import pytest
import tensorflow as tf

import mmkeras
from mmkeras import preprocessing
from mmkeras.data import make_dataset
from mmkeras.preprocessing import Preprocessor, as_string_array, decode_image, error_reason, fit_images, text_vectorizer
from tests.helpers import tiny_model

SHAPE = (32, 32, 3)
LENGTH = 12
VOCAB = 64  # the tiny models' vocab_size


def png(height=40, width=30, value=0):
    return tf.io.encode_png(np.full((height, width, 3), value, "uint8")).numpy()


def jpeg(height=40, width=30):
    return tf.io.encode_jpeg(np.full((height, width, 3), 100, "uint8")).numpy()


def huge_png(height=20000, width=20000):
    """A small PNG whose header declares `height` x `width` pixels."""
    data = bytearray(png(8, 8))
    data[16:24] = width.to_bytes(4, "big") + height.to_bytes(4, "big")
    return bytes(data)


@pytest.fixture(scope="module")
def model():
    m = tiny_model("s0")
    vectorizer = text_vectorizer(["is it red", "what shape is it"], sequence_length=LENGTH)
    m.preprocessor = Preprocessor.from_vectorizer(vectorizer, image_shape=SHAPE, class_names=["no", "yes"])
    return m


@pytest.fixture(scope="module")
def served(model, tmp_path_factory):
    return mmkeras.load(mmkeras.export_model(model, str(tmp_path_factory.mktemp("export") / "s0")))


def inputs(n=2, seed=0):
    rng = np.random.default_rng(seed)
    return {"image": rng.random((n, *SHAPE), dtype=np.float32), "text": rng.integers(2, VOCAB, (n, LENGTH)).astype("int32")}


def served_error(call):
    with pytest.raises(tf.errors.InvalidArgumentError) as info:
        call()
    return error_reason(info.value)


# Item 5: token ids out of range.


def test_negative_token_ids_are_refused_by_predict_and_fit(model):
    x = inputs()
    x["text"][1, 3] = -1
    with pytest.raises(ValueError, match=r"`text` given as token ids must lie in \[0, 64\) \(the vocabulary size\)\. Received: text\[1, 3\]=-1"):
        model.predict(x, verbose=0)
    model.compile()
    with pytest.raises(ValueError, match="token ids must lie in"):
        model.fit(x, np.zeros((2, 1)), verbose=0)
    x["text"][1, 3] = VOCAB
    with pytest.raises(ValueError, match=r"Received: text\[1, 3\]=64"):
        model.predict(x, verbose=0)


def test_make_dataset_checks_token_ids(model):
    ids = inputs()["text"]
    ids[0, 0] = -5
    with pytest.raises(ValueError, match=r"`texts` given as token ids must be >= 0\. Received: texts\[0, 0\]=-5"):
        make_dataset(None, ids, [0, 1])
    ids[0, 0] = VOCAB + 1
    images = np.zeros((2, *SHAPE), "uint8")
    with pytest.raises(ValueError, match=r"must lie in \[0, 64\) \(the vocabulary size\)\. Received: texts\[0, 0\]=65"):
        make_dataset(images, ids, [0, 1], task=model)
    size = model.preprocessor.vocab_size  # without a task, the preprocessor's vocabulary
    with pytest.raises(ValueError, match=rf"must lie in \[0, {size}\)"):
        make_dataset(images, np.full((2, LENGTH), size), [0, 1], preprocessor=model.preprocessor)


def test_serve_tensors_refuses_out_of_range_token_ids(served):
    x = inputs()
    x["text"][1, 0] = -1
    message = served_error(lambda: served.signatures["serve_tensors"](**{k: tf.constant(v) for k, v in x.items()}))
    assert "`text` token ids must lie in [0, 64)" in message and "] [1] [" in message


# Item 8: NaN, inf and 0..255 float images; a preprocessor that does not fit the model.


@pytest.mark.parametrize("bad", [np.nan, np.inf, 255.0])
def test_bad_float_images_are_refused(model, served, bad):
    x = inputs()
    x["image"][1, 0, 0, 0] = bad
    expected = "NaN or inf" if not np.isfinite(bad) else "values from"
    with pytest.raises(ValueError, match=f"`image` must hold .*{expected}"):
        model.predict(x, verbose=0)
    with pytest.raises(ValueError, match=f"`image` .*{expected}"):
        model.answer(image=x["image"], text=["a", "b"])
    with pytest.raises(ValueError, match="`image`"):
        mmkeras.predict(model, x["image"][1], "is it red")
    message = served_error(lambda: served.signatures["serve_tensors"](**{k: tf.constant(v) for k, v in x.items()}))
    assert "`image` must hold" in message and "in item (0-based index)] [1" in message


def test_uint8_images_are_refused_by_predict(model):
    x = inputs()
    x["image"] = (x["image"] * 255).astype("uint8")
    with pytest.raises(ValueError, match="`image` must be float images in \\[0, 1\\].*uint8"):
        model.predict(x, verbose=0)


def test_a_larger_vocabulary_than_the_model_is_refused(model, tmp_path):
    big = Preprocessor(image_shape=SHAPE, sequence_length=LENGTH, vocabulary=["", "[UNK]"] + [f"w{i}" for i in range(198)])
    with pytest.raises(ValueError, match="must have at most the 64 tokens .* Received: a vocabulary of 200 tokens"):
        mmkeras.export_model(model, str(tmp_path / "x"), preprocessor=big)
    assert not os.path.exists(tmp_path / "x")
    with pytest.raises(ValueError, match="at most the 64 tokens"):
        model.preprocessor = big
    other = Preprocessor(image_shape=(16, 16, 3), sequence_length=LENGTH)
    with pytest.raises(ValueError, match="image_shape"):
        mmkeras.export_model(model, str(tmp_path / "y"), preprocessor=other)


# Item 10: the pixel limit.


def test_pixel_limit_on_every_decode_path(model, served, monkeypatch):
    bomb = huge_png()
    with pytest.raises(tf.errors.InvalidArgumentError, match="declares 20000x20000 pixels"):
        decode_image(bomb, SHAPE)
    with pytest.raises(ValueError, match=r"images\[1\] \(\d+ bytes\) declares 20000x20000 pixels \(400000000\)"):
        make_dataset([png(), bomb], ["a", "b"], [0, 1], task=model)
    with pytest.raises(ValueError, match=r"declares 20000x20000"):
        model.answer(image=[bomb], text=["a"])
    message = served_error(lambda: served.signatures["serving_default"](image=tf.constant([png(), bomb]), text=tf.constant(["a", "b"])))
    assert message.startswith("image[1] (") and "declares 20000x20000 pixels" in message
    monkeypatch.setattr(preprocessing, "MAX_IMAGE_PIXELS", 100)  # configurable
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"declares 40x30 pixels \(1200\); an image may have 1 to 100"):
        decode_image(png(), SHAPE)


def test_export_of_the_default_recipe_records_its_pixel_limit_and_serves_empty_batches(tmp_path):
    m = tiny_model("vqa")  # the default recipe: an empty batch used to fail inside its graph
    vectorizer = text_vectorizer(["is it red", "what shape"], sequence_length=m.input["text"].shape[1])
    m.preprocessor = Preprocessor.from_vectorizer(vectorizer, image_shape=SHAPE)
    with pytest.raises(ValueError, match="`max_image_pixels` must be a positive integer"):
        mmkeras.export_model(m, str(tmp_path / "bad"), max_image_pixels=0)
    path = mmkeras.export_model(m, str(tmp_path / "small"), max_image_pixels=1000)
    served = mmkeras.load(path)
    serve = served.signatures["serving_default"]
    assert serve(image=tf.constant([png(20, 30)]), text=tf.constant(["a"]))["answer"].shape == (1, 13)
    message = served_error(lambda: serve(image=tf.constant([png(40, 30)]), text=tf.constant(["a"])))
    assert "declares 40x30 pixels (1200); an image may have 1 to 1000 pixels" in message
    with open(os.path.join(path, "mmkeras_export.json"), encoding="utf-8") as f:
        assert '"max_image_pixels": 1000' in f.read()
    out = serve(image=tf.constant([], tf.string), text=tf.constant([], tf.string))
    assert out["answer"].shape == (0, 13) and out["answer_class"].shape == (0,)
    out = served.signatures["serve_tensors"](image=tf.zeros((0, *SHAPE)), text=tf.zeros((0, m.input["text"].shape[1]), tf.int32))
    assert out["answer"].shape == (0, 13)


def test_image_header_reads_every_format():
    from PIL import Image
    import io

    # WebP in its three layouts: lossy (VP8), lossless (VP8L), extended (VP8X: here for an ICC profile).
    webp = [("WEBP", {}, b"VP8 "), ("WEBP", {"lossless": True}, b"VP8L"), ("WEBP", {"icc_profile": b"icc"}, b"VP8X")]
    for form, options, chunk in [("GIF", {}, None), ("BMP", {}, None), ("PNG", {}, None), ("JPEG", {}, None), *webp]:
        for size in ((10, 12), (300, 17)):
            buffer = io.BytesIO()
            Image.fromarray(np.zeros((*size, 3), "uint8")).save(buffer, form, **options)
            data = buffer.getvalue()
            assert chunk is None or data[12:16] == chunk
            kind, height, width = preprocessing.image_header(data)
            assert (kind.numpy().decode(), int(height), int(width)) == (form.lower(), *size), (form, options)
    buffer = io.BytesIO()  # a BMP whose negative height says its rows are stored top-down
    Image.fromarray(np.zeros((5, 7, 3), "uint8")).save(buffer, "BMP")
    top_down = bytearray(buffer.getvalue())
    top_down[22:26] = (-5).to_bytes(4, "little", signed=True)
    assert [int(v) for v in preprocessing.image_header(bytes(top_down))[1:]] == [5, 7]


# Item 13: which item failed.


BAD_IMAGES = [
    (b"not an image", "is not an encoded image"),
    (png()[:60], "is a truncated or corrupt PNG image"),
    (jpeg()[:200], "is a truncated or corrupt JPEG image"),
    (b"II*\x00" + b"\x00" * 100, "is not an encoded image"),  # TIFF
]


def test_a_bad_item_is_named(model, served):
    for bad, reason in BAD_IMAGES:
        message = served_error(
            lambda: served.signatures["serving_default"](image=tf.constant([png(), png(), bad]), text=tf.constant(["a"] * 3))
        )
        assert message.startswith(f"image[2] ({len(bad)} bytes) {reason}")
        with pytest.raises(ValueError, match=rf"images\[2\] \({len(bad)} bytes\) {reason}"):
            make_dataset([png(), png(), bad], ["a"] * 3, [0, 1, 0], task=model)


def test_a_batch_is_checked_at_once_and_its_first_bad_item_named():
    """`check_encoded_images` (what the served model runs) agrees with `check_encoded_image` item by item."""
    def verdict(call):
        try:
            call()
        except tf.errors.InvalidArgumentError as error:
            return error_reason(error)
        return None

    big = png(50, 30)  # 1500 pixels, where png() and jpeg() have 1200
    items = [png(), jpeg(), *(bad for bad, _ in BAD_IMAGES), big]
    for i, item in enumerate(items):  # each item alone and batched: the same verdict and message
        alone = verdict(lambda: preprocessing.check_encoded_image(item, f"image[{i}]", max_pixels=1200))
        batch = verdict(lambda: preprocessing.check_encoded_images(tf.constant([png(), item]), max_pixels=1200))
        assert (alone is None) == (batch is None) == (i < 2), (i, alone, batch)
        if alone is not None:
            assert batch == alone.replace(f"image[{i}]", "image[1]"), (batch, alone)
    assert "declares 50x30 pixels (1500)" in verdict(lambda: preprocessing.check_encoded_image(big, max_pixels=1200))
    # Several bad items: the first is named; skipped (absent) items are not checked.
    mixed = tf.constant([png(), b"", b"not an image", png()[:60]])
    assert served_error(lambda: preprocessing.check_encoded_images(mixed)).startswith("image[1] (0 bytes) is not an encoded image")
    skip = tf.constant([False, True, True, False])
    assert served_error(lambda: preprocessing.check_encoded_images(mixed, "photo", skip=skip)).startswith(
        "photo[3] (60 bytes) is a truncated or corrupt PNG image"
    )
    assert preprocessing.check_encoded_images(tf.constant([], tf.string)).shape == (0,)
    # Traced (as in an export), a batch of PNGs and JPEGs decodes as `decode_image` does item by item
    # (eagerly: the graph's resize may differ in the last bit).
    decode = tf.function(lambda b: Preprocessor(image_shape=(20, 20, 3)).decode_images(b))
    batch = [png(40, 30, value=7), jpeg(), png(20, 20, value=200)]
    expected = np.stack([decode_image(b, (20, 20, 3)) for b in batch])
    np.testing.assert_allclose(decode(tf.constant(batch)).numpy(), expected, rtol=0, atol=1e-6)


def test_a_bad_file_is_named_when_streamed(model, tmp_path):
    good, bad = tmp_path / "good.png", tmp_path / "bad.png"
    good.write_bytes(png())
    bad.write_bytes(png()[:60])
    dataset = make_dataset([str(good), str(bad)], ["a", "b"], [0, 1], task=model, in_memory=False, batch_size=1)
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"images\[1\]=.*bad\.png.* \(60 bytes\) is a truncated"):
        list(dataset)


# Item 14: empty in, empty out.


def test_empty_batches_give_empty_outputs(model, served):
    empty = {"image": np.zeros((0, *SHAPE), "float32"), "text": np.zeros((0, LENGTH), "int32")}
    out = model.predict(empty, verbose=0)
    assert out.shape == (0, 1) and out.dtype == np.float32
    assert model.answer(image=np.zeros((0, 8, 8, 3), "uint8"), text=[]) == []
    for name, request in [
        ("serving_default", {"image": tf.constant([], tf.string), "text": tf.constant([], tf.string)}),
        ("serve_tensors", {k: tf.constant(v) for k, v in empty.items()}),
    ]:
        out = served.signatures[name](**request)
        assert out["label"].shape == (0, 1) and out["label"].dtype == tf.float32
        assert out["label_class"].shape == (0,) and out["label_class"].dtype == tf.string


# Item 15: messages that say what is wrong.


def test_truncated_keras_file_is_named(model, tmp_path):
    path = tmp_path / "m.keras"
    model.save(path)
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(ValueError, match=r"must be a valid \.keras file .*not a zip archive \(100 bytes"):
        mmkeras.load(str(path))
    empty = tmp_path / "empty.keras"
    empty.write_bytes(b"")
    with pytest.raises(ValueError, match=r"\(0 bytes"):
        mmkeras.load(str(empty))


def test_nan_images_say_nan():
    images = np.full((3, 8, 8, 3), 0.5, "float32")
    images[2, 1, 1, 1] = np.nan
    with pytest.raises(ValueError, match=r"`images` must hold finite values in \[0, 1\]\. Received: images\[2\] containing NaN or inf"):
        fit_images(images, (4, 4, 3))


def test_none_text_is_named():
    with pytest.raises(ValueError, match=r"must be a 1-D sequence of strings\. Received: texts\[1\]=None of type NoneType"):
        as_string_array(["a", None])


def test_four_channels_blame_image_shape():
    with pytest.raises(ValueError, match=r"`image_shape` must have 1 \(grey\) or 3 \(RGB\) channels .*Received: image_shape=\(32, 32, 4\)"):
        fit_images(np.zeros((2, 8, 8, 3), "uint8"), (32, 32, 4))
