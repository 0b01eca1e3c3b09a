"""Input pipelines and built-in datasets (mmkeras.data, mmkeras.preprocessing, mmkeras.precision)."""

import os

import numpy as np
import pytest
import tensorflow as tf

from mmkeras import data, precision
from mmkeras.heads import get_head
from mmkeras.preprocessing import Preprocessor, decode_image, fit_images, text_vectorizer

TEXTS = ["is there a red circle?", "what color is the shape?", "what shape is present?", "is no blue shape present?", "is it green?"]
LABELS = np.array([1, 0, 2, 1, 0])
SHAPE = (12, 16, 3)


def _images(n=5, shape=SHAPE, seed=0):
    return np.random.default_rng(seed).integers(0, 256, size=(n, *shape), dtype=np.uint8)


def _png(image):
    return tf.io.encode_png(image).numpy()


def _preprocessor(image_shape=SHAPE, sequence_length=6):
    return Preprocessor.from_vectorizer(
        text_vectorizer(TEXTS, vocab_size=50, sequence_length=sequence_length), image_shape=image_shape
    )


def _batches(dataset):
    out = []
    for inputs, labels in dataset:
        out.append({**{k: v.numpy() for k, v in inputs.items()}, "label": labels.numpy()})
    return out


def _assert_same(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert sorted(x) == sorted(y)
        for key in x:
            np.testing.assert_array_equal(x[key], y[key], err_msg=key)


def test_every_input_form_yields_the_same_batches(tmp_path):
    images = _images()
    pngs = [_png(im) for im in images]
    paths = []
    for i, png in enumerate(pngs):
        paths.append(tmp_path / f"{i}.png")
        paths[-1].write_bytes(png)
    pre = _preprocessor()
    token_ids = pre.texts_to_ids(TEXTS).numpy()
    kwargs = dict(preprocessor=pre, batch_size=2, shuffle=True, seed=7, verbose=False)

    reference = _batches(data.make_dataset(images, TEXTS, LABELS, **kwargs))
    assert [len(b["label"]) for b in reference] == [2, 2, 1]
    assert reference[0]["image"].dtype == np.float32 and reference[0]["image"].max() <= 1.0
    assert reference[0]["text"].shape == (2, 6)
    variants = {
        "float arrays": (images.astype("float32") / 255.0, TEXTS),
        "str paths": ([str(p) for p in paths], TEXTS),
        "PathLike paths": (paths, np.array(TEXTS)),  # numpy str array, which plain fit rejects
        "bytes": (pngs, np.array(TEXTS, dtype=object)),
        "token ids": (images, token_ids),
        "tuple of texts": (list(images), tuple(TEXTS)),
    }
    for name, (imgs, texts) in variants.items():
        got = _batches(data.make_dataset(imgs, texts, LABELS, **kwargs))
        if name == "float arrays":  # float32 in, float32 out: equal to rounding
            for x, y in zip(got, reference):
                np.testing.assert_allclose(x["image"], y["image"], atol=1e-6)
                x["image"] = y["image"]
        _assert_same(got, reference)
    # Streaming (decode inside tf.data, cache) gives the same batches too.
    for imgs in ([str(p) for p in paths], pngs):
        streamed = data.make_dataset(imgs, TEXTS, LABELS, in_memory=False, **kwargs)
        _assert_same(_batches(streamed), reference)
        # Both paths run without tf.data autotuning, whose timer stalls each epoch's end (benchmarks/stall.py).
        assert streamed.options().autotune.enabled is False
    assert data.make_dataset(images, TEXTS, LABELS, **kwargs).options().autotune.enabled is False
    # Same seed, same order; another seed, another order.
    again = _batches(data.make_dataset(images, TEXTS, LABELS, **kwargs))
    _assert_same(again, reference)
    other = _batches(data.make_dataset(images, TEXTS, LABELS, **{**kwargs, "seed": 8}))
    assert any(not np.array_equal(x["label"], y["label"]) for x, y in zip(other, reference)) or not np.array_equal(
        other[0]["text"], reference[0]["text"]
    )


def test_jpeg_resize_and_grey_decode_like_export(tmp_path):
    """Files of another size and format are decoded and resized by `decode_image`, as export does."""
    rgb = _images(3, (20, 24, 3))
    jpegs = [tf.io.encode_jpeg(im).numpy() for im in rgb]
    pre = _preprocessor(image_shape=(8, 8, 3))
    batch = next(iter(data.make_dataset(jpegs, TEXTS[:3], None, preprocessor=pre, batch_size=3, verbose=False)))
    expected = np.stack([decode_image(j, (8, 8, 3)).numpy() for j in jpegs])
    # Resized images are kept as uint8: decode_image's floats rounded to 8 bits.
    np.testing.assert_array_equal(batch["image"].numpy(), np.round(expected * 255) / np.float32(255.0))
    np.testing.assert_allclose(batch["image"].numpy(), expected, atol=0.5 / 255 + 1e-6)
    np.testing.assert_allclose(pre.decode_images(tf.constant(jpegs)).numpy(), expected, atol=1e-6)
    # A mix of sizes: an image of the model's size is exactly decode_image's; a resized one is
    # decode_image's rounded to 8 bits.
    mixed = [_png(_images(1, (8, 8, 3), seed=3)[0]), _png(_images(1, (9, 7, 3), seed=4)[0])]
    batch = next(iter(data.make_dataset(mixed, TEXTS[:2], None, preprocessor=pre, batch_size=2, verbose=False)))
    expected = np.stack([decode_image(m, (8, 8, 3)).numpy() for m in mixed])
    np.testing.assert_array_equal(batch["image"].numpy()[0], expected[0])
    np.testing.assert_array_equal(batch["image"].numpy()[1], np.round(expected[1] * 255) / np.float32(255.0))
    # A list of uint8 arrays of several sizes: each is fitted to the shape as files are.
    arrays = [_images(1, (8, 8, 3), seed=3)[0], _images(1, (9, 7, 3), seed=4)[0]]
    batch2 = next(iter(data.make_dataset(arrays, TEXTS[:2], None, preprocessor=pre, batch_size=2, verbose=False)))
    np.testing.assert_allclose(batch2["image"].numpy(), batch["image"].numpy(), atol=1e-6)
    # Grey arrays are converted to the model's channels.
    assert fit_images(np.zeros((2, 28, 28), "uint8"), (32, 32, 3)).shape == (2, 32, 32, 3)


def test_image_index_shares_images():
    images = _images(2)
    examples = data.Examples(images, TEXTS[:4], LABELS[:4], image_index=[0, 0, 1, 1])
    assert len(examples) == 4 and len(examples.images) == 2
    batch = next(iter(examples.to_dataset(_preprocessor(), batch_size=4)))
    np.testing.assert_array_equal(batch[0]["image"].numpy()[1], images[0] / np.float32(255.0))
    np.testing.assert_array_equal(batch[0]["image"].numpy()[2], images[1] / np.float32(255.0))
    sub = examples.subset([3, 0])
    np.testing.assert_array_equal(sub.example_images(), images[[1, 0]])
    assert sub.labels.tolist() == [LABELS[3], LABELS[0]]


def _error(match, **kwargs):
    args = dict(images=_images(), texts=TEXTS, labels=LABELS, preprocessor=_preprocessor(), verbose=False)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match) as info:
        data.make_dataset(args.pop("images"), args.pop("texts"), args.pop("labels"), **args)
    assert "Received" in str(info.value)
    return str(info.value)


def test_bad_inputs_fail_up_front_naming_the_argument(tmp_path):
    good = tmp_path / "ok.png"
    good.write_bytes(_png(_images(1)[0]))
    missing = str(tmp_path / "missing.png")
    message = _error("`images` must name existing image files", images=[str(good)] * 4 + [missing])
    assert "images[4]" in message and "missing.png" in message
    _error("`images` must name existing image files", images=[str(good)] * 4 + [missing], in_memory=False)
    message = _error("`images` must be encoded PNG", images=[_png(_images(1)[0])] * 4 + [b"not an image"])
    assert "images[4]" in message
    _error("`images` must be encoded PNG", images=[_png(_images(1)[0])[:40]] * 5)  # truncated
    _error("`images` and `texts` must have the same length", texts=TEXTS[:4])
    _error("`labels` must have one label per example", labels=LABELS[:3])
    _error("`images` must hold at least one example", images=np.zeros((0, *SHAPE), "uint8"), texts=[], labels=[])
    _error("`texts` must be a 1-D sequence of strings", texts=[1, 2, 3, 4, 5])
    _error("`images` given as floats must lie in", images=_images().astype("float32"))
    _error("`image_index` must hold positions", images=_images(2), image_index=[0, 1, 2, 0, 1])
    _error(r"labels for multiclass head 'label' must be integers in \[0, 3\)", labels=[0, 1, 2, 3, 0], head=get_head("multiclass", num_classes=3))
    _error("labels for binary head", labels=[0, 1, 2, 1, 0], head=get_head("binary"))
    with pytest.raises(ValueError, match=r"`labels` must be class indices in \[0, 2\)"):
        data.Examples(_images(), TEXTS, [0, 1, 2, 0, 1], class_names=["no", "yes"])
    with pytest.raises(ValueError, match="`texts` must hold at least one example"):
        data.Examples(None, [], [])
    with pytest.raises(ValueError, match="`images` must be all file paths"):
        data.image_form(["a.png", b"bytes"])


def test_preprocessor_round_trip(tmp_path):
    pre = Preprocessor.from_vectorizer(text_vectorizer(TEXTS, sequence_length=6), image_shape=SHAPE, class_names=["a", "b", "c"])
    pre.save(tmp_path / "pre.json")
    loaded = Preprocessor.load(tmp_path / "pre.json")
    assert loaded.get_config() == pre.get_config()
    np.testing.assert_array_equal(loaded.texts_to_ids(TEXTS).numpy(), pre.texts_to_ids(TEXTS).numpy())


def test_easy_vqa_splits():
    splits = data.load_dataset("easy_vqa", limit=300, verbose=False)
    assert splits.task == "multiclass" and len(splits.class_names) == 13
    assert splits.image_shape == (64, 64, 3) and splits.train.images.dtype == np.uint8
    assert len(splits.train) + len(splits.validation) == 300 and len(splits.test) == 300
    train_images = set(map(bytes, splits.train.example_images()))
    assert not train_images & set(map(bytes, splits.validation.example_images()))  # split by image
    assert splits.train.labels.max() < 13 and splits.sequence_length >= 6
    again = data.load_dataset("easy_vqa", limit=300, verbose=False)
    np.testing.assert_array_equal(again.validation.labels, splits.validation.labels)  # fixed seed
    yes_no = data.load_dataset("easy_vqa_yes_no", limit=200, validation_split=0.0, verbose=False)
    assert yes_no.class_names == ["no", "yes"] and yes_no.validation is None
    assert set(yes_no.train.labels.tolist()) == {0, 1} and yes_no.head_spec()["kind"] == "binary"


def test_fashion_mnist_captions(monkeypatch, tmp_path):
    if not os.path.isdir(data.fashion_mnist.DEFAULT_DIR):
        pytest.skip("dataset-fashion-mnist is not installed")
    splits = data.load_dataset("fashion_mnist_captions", limit=400, verbose=False)
    assert splits.image_shape == (28, 28, 1) and splits.task == "binary"
    assert abs(splits.test.labels.mean() - 0.5) < 0.01  # balanced
    for text, label, cls in zip(splits.test.texts, splits.test.labels, splits.test.classes):
        assert (data.fashion_mnist.CLASS_NAMES[cls] in text) == bool(label) or cls in (0, 6)  # shirt / t-shirt overlap
    monkeypatch.setenv("MMKERAS_FASHION_MNIST_DIR", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="apt-get install dataset-fashion-mnist"):
        data.load_dataset("fashion_mnist_captions")


def test_unknown_dataset_and_bad_split():
    with pytest.raises(ValueError, match="`dataset` must be one of"):
        data.load_dataset("easy_vq")
    with pytest.raises(ValueError, match="`validation_split` must be a number in"):
        data.load_dataset("easy_vqa", validation_split=1.5)


def test_precision_auto(monkeypatch, tmp_path):
    flags = tmp_path / "cpuinfo"
    flags.write_text("processor : 0\nflags : fpu sse avx512f avx512_bf16\n")
    assert precision.cpu_supports_bfloat16(str(flags))
    flags.write_text("processor : 0\nflags : fpu sse avx2\n")
    precision.cpu_supports_bfloat16.cache_clear()
    assert not precision.cpu_supports_bfloat16(str(flags))
    monkeypatch.setattr(precision, "cpu_supports_bfloat16", lambda: False)
    monkeypatch.setattr(precision, "gpu_supports_bfloat16", lambda: False)
    assert precision.resolve_precision("auto") == "float32"
    monkeypatch.setattr(precision, "cpu_supports_bfloat16", lambda: True)
    assert precision.resolve_precision("auto") == "mixed_bfloat16"
    with pytest.raises(ValueError, match="`precision` must be one of"):
        precision.resolve_precision("bf16")
    import keras

    with precision.precision_scope("mixed_bfloat16"):
        assert keras.mixed_precision.global_policy().name == "mixed_bfloat16"
    assert keras.mixed_precision.global_policy().name == "float32"
