"""Public surface that no other test reaches: each promise here is held by a check that can fail.

GIF and BMP input, the streaming path's table on disk, a local weights file for a `keras.applications`
backbone, masking in the bidirectional text encoder, `distribute.evaluate` / `predict` on one
device, and the multilabel and regression heads from raw data to answers after a reload.
"""

import os

import keras
import numpy as np
import pytest
import tensorflow as tf

import mmkeras
from mmkeras import data, distribute
from mmkeras.encoders.image import applications_encoder
from mmkeras.encoders.text import rnn_encoder
from mmkeras.preprocessing import Preprocessor, text_vectorizer

TEXTS = ["a red circle", "a blue square", "a green circle", "a red square"]
RNG = np.random.default_rng(0)
IMAGES = RNG.integers(0, 256, (4, 12, 12, 3), dtype=np.uint8)


def _pre(image_shape=(12, 12, 3), class_names=None):
    return Preprocessor.from_vectorizer(text_vectorizer(TEXTS, sequence_length=4), image_shape=image_shape, class_names=class_names)


def test_gif_and_bmp_decode_like_png(tmp_path):
    from PIL import Image  # a dependency of matplotlib (so of mmkeras): writes GIF and BMP files

    paths = {}
    for kind in ("png", "gif", "bmp"):
        path = tmp_path / f"x.{kind}"
        Image.fromarray(IMAGES[0]).save(path)
        paths[kind] = str(path)
    pre = _pre()
    png = pre.images([paths["png"]])
    np.testing.assert_allclose(pre.images([paths["bmp"]]), png, atol=1e-6)  # BMP is lossless
    gif = pre.images([paths["gif"]])  # GIF is palette-quantized: close, not equal
    assert gif.shape == png.shape and np.abs(gif - png).mean() < 0.05
    batch = next(iter(data.make_dataset([paths["gif"], paths["bmp"]], TEXTS[:2], preprocessor=pre, batch_size=2, verbose=False)))
    np.testing.assert_allclose(batch["image"][1], png[0], atol=1e-6)


def test_streaming_table_on_disk_gives_the_same_batches_without_rereading_files(tmp_path, monkeypatch):
    paths = []
    for i, image in enumerate(IMAGES):
        path = tmp_path / f"{i}.png"
        path.write_bytes(tf.io.encode_png(image).numpy())
        paths.append(str(path))
    pre = _pre(image_shape=(8, 8, 3))
    folder = tmp_path / "cache"
    folder.mkdir()
    labels = [0, 1, 0, 1]
    in_memory = next(iter(data.make_dataset(paths, TEXTS, labels, preprocessor=pre, batch_size=4, verbose=False)))
    tables = []
    make_table = data.pipeline.image_table
    monkeypatch.setattr(data.pipeline, "image_table", lambda *a, **k: tables.append(make_table(*a, **k)) or tables[-1])
    kept = data.make_dataset(paths, TEXTS, labels, preprocessor=pre, batch_size=4, in_memory=False, cache=str(folder))
    uncached = data.make_dataset(paths, TEXTS, labels, preprocessor=pre, batch_size=4, in_memory=False, cache=False)
    (first,) = list(kept)
    # The table is a file in the folder named, unlinked at once: nothing is left behind.
    assert len(tables) == 1 and isinstance(tables[0], np.memmap)
    assert os.path.dirname(tables[0].filename) == str(folder) and os.listdir(folder) == []
    for path in paths:  # the second pass reads the table, not the files
        os.rename(path, path + ".moved")
    (second,) = list(kept)
    for batch in (first, second):
        np.testing.assert_allclose(batch[0]["image"], in_memory[0]["image"], atol=1e-6)
        np.testing.assert_array_equal(batch[0]["text"], in_memory[0]["text"])
    with pytest.raises(tf.errors.NotFoundError):  # without a table, every pass reads the files
        list(uncached)
    with pytest.raises(ValueError, match=r"`cache` must be True .* Received: cache='.*nowhere'"):
        data.make_dataset(paths, TEXTS, labels, preprocessor=pre, in_memory=False, cache=str(tmp_path / "nowhere"))
    with pytest.raises(ValueError, match=r"`image_storage` must be one of .* Received: image_storage='ram'"):
        data.make_dataset(paths, TEXTS, labels, preprocessor=pre, in_memory=False, image_storage="ram")


def test_applications_backbone_loads_a_local_weights_file(tmp_path):
    source = keras.applications.MobileNetV3Small(include_top=False, weights=None, input_shape=(32, 32, 3), pooling="avg")
    path = str(tmp_path / "backbone.weights.h5")
    source.save_weights(path)
    encoder = applications_encoder((32, 32, 3), backbone="MobileNetV3Small", weights=path)
    backbone = next(layer for layer in encoder.layers if isinstance(layer, keras.Model))
    for mine, theirs in zip(backbone.get_weights(), source.get_weights()):
        np.testing.assert_array_equal(mine, theirs)
    with pytest.raises(ValueError, match="never downloads"):
        applications_encoder((32, 32, 3), weights="imagenet")


def test_bidirectional_rnn_ignores_padding():
    long = rnn_encoder(sequence_length=6, vocab_size=20, embedding_dim=4, units=3, bidirectional=True)
    short = rnn_encoder(sequence_length=3, vocab_size=20, embedding_dim=4, units=3, bidirectional=True)
    short.set_weights(long.get_weights())
    ids = np.array([[5, 7, 2]], "int32")
    padded = np.concatenate([ids, np.zeros((1, 3), "int32")], axis=1)
    np.testing.assert_allclose(long.predict(padded, verbose=0), short.predict(ids, verbose=0), atol=1e-6)
    unmasked = rnn_encoder(sequence_length=6, vocab_size=20, embedding_dim=4, units=3, bidirectional=True, mask_zero=False)
    unmasked.set_weights(long.get_weights())
    assert not np.allclose(unmasked.predict(padded, verbose=0), short.predict(ids, verbose=0), atol=1e-4)


def test_distribute_evaluate_and_predict_on_one_device():
    model = mmkeras.get_model("s0", **mmkeras.get_entry("s0").tiny)
    x = {"image": RNG.random((6, 32, 32, 3), dtype=np.float32), "text": RNG.integers(1, 60, (6, 12)).astype("int32")}
    y = RNG.integers(0, 2, (6, 1)).astype("float32")
    dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(4)
    np.testing.assert_allclose(distribute.predict(model, dataset), model.predict(x, verbose=0), atol=1e-6)
    expected = model.evaluate(x, y, batch_size=4, verbose=0, return_dict=True)
    got = distribute.evaluate(model, dataset)
    assert sorted(got) == sorted(expected)
    for key in expected:
        assert got[key] == pytest.approx(expected[key], abs=1e-6)


@pytest.mark.parametrize(
    "head, labels",
    [
        ({"kind": "multilabel", "num_labels": 3, "name": "tags"}, np.array([[1, 0, 1], [0, 1, 0], [1, 1, 0], [0, 0, 1]], "float32")),
        ({"kind": "regression", "units": 1, "name": "price"}, np.array([0.5, -1.0, 2.0, 0.0], "float32")),
    ],
    ids=["multilabel", "regression"],
)
def test_multilabel_and_regression_from_raw_data_to_answers(head, labels, tmp_path):
    names = ["red", "round", "big"] if head["kind"] == "multilabel" else None
    model = mmkeras.build_model(
        image_encoder={"kind": "cnn", "filters": (4,), "output": "avg"}, text_encoder={"kind": "rnn", "embedding_dim": 4, "units": 4},
        fusion="concatenate", head=head, image_shape=(12, 12, 3), sequence_length=4, vocab_size=16,
        preprocessor=_pre(class_names=names), learning_rate=0.01,
    )
    dataset = data.make_dataset(IMAGES, TEXTS, labels, preprocessor=model.preprocessor, batch_size=4, verbose=False)
    history = model.fit(dataset, epochs=20, verbose=0).history["loss"]
    assert history[-1] < history[0]
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras", safe_mode=True)
    answers = loaded.answer(image=IMAGES, text=TEXTS)
    raw = model.predict(next(iter(dataset))[0], verbose=0)
    if head["kind"] == "multilabel":
        assert [sorted(a["probabilities"]) for a in answers] == [sorted(names)] * 4
        for answer, row in zip(answers, raw):
            assert sorted(answer["answer"]) == sorted(n for n, p in zip(names, row) if p >= 0.5)
    else:
        np.testing.assert_allclose([a["answer"] for a in answers], raw[:, 0], atol=1e-5)
