"""Captioning datasets (mmkeras.data.caption_datasets): one caption per image, templated from its labels."""

import os
import re

import numpy as np
import pytest

from mmkeras import data
from mmkeras.data import caption_datasets as cd
from mmkeras.data import fashion_mnist
from mmkeras.data import retrieval_datasets as rd

# Approximate RGB of each easy-VQA colour (`COLOURS` order), to check captions against pixels.
SHAPE_RGB = np.array([(36, 36, 36), (33, 33, 253), (174, 65, 65), (138, 138, 138), (33, 253, 33),
                      (253, 33, 33), (27, 141, 141), (254, 254, 21)], "float32")
SHAPE_CAPTION = re.compile(r"^the image shows a (\w+) (\w+)$")
needs_fashion = pytest.mark.skipif(not os.path.isdir(fashion_mnist.DEFAULT_DIR),
                                   reason="dataset-fashion-mnist is not installed")


def _standardized(text):
    """What `lower_and_strip_punctuation` leaves of a caption's words."""
    return re.sub(r"[^\w\s]", "", text.lower()).split()


def test_captions_are_one_per_class_and_survive_the_standardization():
    shapes = [cd.shape_caption(c) for c in range(len(rd.SHAPE_CLASS_NAMES))]
    pairs = [cd.pair_caption(a, b) for a in range(10) for b in range(10)]
    assert len(set(shapes)) == 24 and len(set(pairs)) == 100
    for text in shapes + pairs:
        assert _standardized(text) == text.split() and len(text.split()) >= 4  # BLEU-4 is defined
    for class_id, name in enumerate(rd.SHAPE_CLASS_NAMES):
        assert SHAPE_CAPTION.match(shapes[class_id]).groups() == tuple(name.split())
    for class_id, (one, two) in enumerate(cd.FASHION_NOUNS):  # the class's own words, "top" for "t-shirt or top"
        assert one.split()[-1] in rd.FASHION_CLASS_NAMES[class_id].split() + ["trousers"]
        assert two.startswith("two ") and cd.pair_caption(class_id, class_id) == f"{two} side by side"
    assert cd.pair_caption(7, 6) == "a sneaker on the left and a shirt on the right"
    assert cd.pair_caption(1, 9) == "a pair of trousers on the left and an ankle boot on the right"
    with pytest.raises(ValueError, match=r"`class_id` must be an int in \[0, 10\)\. Received: class_id=10"):
        cd.pair_caption(3, 10)
    with pytest.raises(ValueError, match=r"`class_id` must be an int in \[0, 24\)"):
        cd.shape_caption(24)


def test_fashion_pairs_use_each_photo_once_and_follow_the_seed():
    left, right = cd.fashion_pairs(11, seed=4)
    assert len(left) == len(right) == 5 and len(set(left.tolist() + right.tolist())) == 10
    again = cd.fashion_pairs(11, seed=4)
    np.testing.assert_array_equal(left, again[0])
    np.testing.assert_array_equal(right, again[1])
    assert not np.array_equal(left, cd.fashion_pairs(11, seed=5)[0])


def test_easy_vqa_captions_match_the_questions_and_the_pixels():
    splits = data.load_dataset("easy_vqa_captions", limit=40, verbose=False)
    assert (splits.task, splits.output_name, splits.class_names) == ("captioning", "caption", None)
    assert (len(splits.train), len(splits.validation), len(splits.test)) == (36, 4, 40)
    assert splits.image_shape == (64, 64, 3) and splits.sequence_length == 6
    assert "templated" in splits.description and "no free language" in splits.description
    easy_vqa = rd._easy_vqa()
    texts, answers, image_ids = easy_vqa.get_test_questions()
    kept = sorted(i for i, v in rd.colours_and_shapes(texts, answers, image_ids).items() if None not in v)[:40]
    examples = splits.test
    assert examples.labels is None and examples.images.dtype == np.uint8 and len(examples.images) == 40
    caption = dict(zip(kept, examples.texts.tolist()))
    checked = 0
    for text, answer, image_id in zip(texts, answers, image_ids):  # each open question's answer is in the caption
        if image_id in caption and answer not in ("yes", "no"):
            assert answer in caption[image_id].split(), (text, answer, caption[image_id])
            named = [w for w in text.rstrip("?").split() if w in rd.COLOURS + rd.SHAPES]
            assert set(named) <= set(caption[image_id].split())  # "what is the red shape?" names a present colour
            checked += 1
    assert checked > 40
    # The caption's colour is the colour of the shape's pixels, in every split.
    for part in (splits.train, splits.validation, splits.test):
        images = part.example_images().astype("float32")
        shape_pixels = np.abs(images - images[:, :1, :1]).sum(-1) > 60
        mean = np.stack([image[mask].mean(0) for image, mask in zip(images, shape_pixels)])
        nearest = np.argmin(((mean[:, None] - SHAPE_RGB[None]) ** 2).sum(-1), axis=1)
        colours = [SHAPE_CAPTION.match(t).group(1) for t in part.texts]
        assert [rd.COLOURS[c] for c in nearest] == colours


@needs_fashion
def test_fashion_mnist_pair_captions_match_the_labels(monkeypatch, tmp_path):
    splits = data.load_dataset("fashion_mnist_pair_captions", limit=200, seed=3, verbose=False)
    assert (splits.task, splits.output_name, splits.class_names) == ("captioning", "caption", None)
    assert (len(splits.train), len(splits.validation), len(splits.test)) == (180, 20, 200)
    assert splits.image_shape == (28, 56, 1) and splits.sequence_length == 14
    assert "templated from the two class labels" in splits.description
    assert repr(splits) == "<DatasetSplits 'fashion_mnist_pair_captions': captioning, no classes, " \
                           "train=180, validation=20, test=200>"
    folder = fashion_mnist.data_dir()
    for split, seed, parts in (("train", 3, (splits.train, splits.validation)),
                               ("test", cd.TEST_PAIRING_SEED, (splits.test,))):
        images_file, labels_file = fashion_mnist.FILES[split]
        images = fashion_mnist.read_idx(os.path.join(folder, images_file))
        classes = fashion_mnist.read_idx(os.path.join(folder, labels_file))
        left, right = cd.fashion_pairs(len(classes), seed)
        for part in parts:
            assert part.labels is None and part.images.dtype == np.uint8 and part.images.shape[1:] == (28, 56, 1)
            position = part.image_index if part.image_index is not None else np.arange(len(part))
            pictures = part.example_images()[..., 0]
            np.testing.assert_array_equal(pictures[:, :, :28], images[left[position]])  # left photo, right photo
            np.testing.assert_array_equal(pictures[:, :, 28:], images[right[position]])
            for text, a, b in zip(part.texts, classes[left[position]], classes[right[position]]):
                if a == b:
                    assert text == f"{cd.FASHION_NOUNS[a][1]} side by side"
                else:
                    assert text == f"{cd.FASHION_NOUNS[a][0]} on the left and {cd.FASHION_NOUNS[b][0]} on the right"
    assert not set(splits.train.image_index.tolist()) & set(splits.validation.image_index.tolist())
    halves = lambda part: {bytes(h) for p in part.example_images() for h in (p[:, :28], p[:, 28:])}  # noqa: E731
    assert not halves(splits.train) & halves(splits.validation)  # no photo on both sides
    # Deterministic for a seed; the seed draws the training pairs, never the test pairs.
    again = data.load_dataset("fashion_mnist_pair_captions", limit=200, seed=3, verbose=False)
    np.testing.assert_array_equal(again.validation.example_images(), splits.validation.example_images())
    assert again.train.texts.tolist() == splits.train.texts.tolist()
    other = data.load_dataset("fashion_mnist_pair_captions", limit=200, seed=4, verbose=False)
    assert other.train.texts.tolist() != splits.train.texts.tolist()
    assert other.test.texts.tolist() == splits.test.texts.tolist()
    np.testing.assert_array_equal(other.test.images, splits.test.images)
    monkeypatch.setenv("MMKERAS_FASHION_MNIST_DIR", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="apt-get install dataset-fashion-mnist"):
        data.load_dataset("fashion_mnist_pair_captions")


def test_captioning_datasets_are_registered_without_a_head():
    assert data.dataset_task("easy_vqa_captions") == data.dataset_task("fashion_mnist_pair_captions") == "captioning"
    for name in ("easy_vqa_captions", "fashion_mnist_pair_captions"):
        assert "templated" in data.dataset_description(name)
    splits = data.load_dataset("easy_vqa_captions", limit=10, validation_split=0, verbose=False)
    assert splits.validation is None
    with pytest.raises(ValueError, match=r"a captioning dataset trains a captioner .*which has no head.*"
                                         r"Received: dataset 'easy_vqa_captions' with task='captioning'"):
        splits.head_spec()
    again = data.load_dataset("easy_vqa_captions", limit=10, validation_split=0, verbose=False)
    np.testing.assert_array_equal(again.train.images, splits.train.images)  # deterministic
    assert again.train.texts.tolist() == splits.train.texts.tolist()


@pytest.mark.slow
@pytest.mark.parametrize("name, sizes, shape, longest", [
    ("easy_vqa_captions", (3220, 358, 888), (64, 64, 3), 6),
    pytest.param("fashion_mnist_pair_captions", (27000, 3000, 5000), (28, 56, 1), 14, marks=needs_fashion),
])
def test_full_sizes(name, sizes, shape, longest):
    splits = data.load_dataset(name, verbose=False)
    assert (len(splits.train), len(splits.validation), len(splits.test)) == sizes
    assert len(splits.train.images) == sizes[0] + sizes[1] and splits.image_shape == shape  # one table, shared
    texts = splits.train.texts.tolist() + splits.validation.texts.tolist() + splits.test.texts.tolist()
    assert max(len(t.split()) for t in texts) == longest == splits.sequence_length
    assert len(set(texts)) == (24 if name == "easy_vqa_captions" else 100)  # every caption occurs
