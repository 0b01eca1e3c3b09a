"""Image-text retrieval datasets (mmkeras.data.retrieval_datasets): descriptions generated from labels."""

import os
import re

import numpy as np
import pytest

from mmkeras import data
from mmkeras.data import fashion_mnist
from mmkeras.data import retrieval_datasets as rd

FASHION = (rd.FASHION_TEMPLATES, rd.FASHION_WORDS)
SHAPES = (rd.SHAPE_TEMPLATES, [rd._shape_words(c) for c in range(len(rd.SHAPE_CLASS_NAMES))])
# Approximate RGB of each easy-VQA colour (`COLOURS` order), to check labels against pixels.
SHAPE_RGB = np.array([(36, 36, 36), (33, 33, 253), (174, 65, 65), (138, 138, 138), (33, 253, 33),
                      (253, 33, 33), (27, 141, 141), (254, 254, 21)], "float32")


def _all_descriptions(templates, words_by_class):
    return [rd.possible_descriptions(templates, words) for words in words_by_class]


@pytest.mark.parametrize("templates, words_by_class, class_names", [(*FASHION, rd.FASHION_CLASS_NAMES),
                                                                     (*SHAPES, rd.SHAPE_CLASS_NAMES)])
def test_descriptions_vary_name_their_class_and_are_never_prompts(templates, words_by_class, class_names):
    per_class = _all_descriptions(templates, words_by_class)
    assert len(per_class) == len(class_names)
    owner = {}
    for class_id, texts in enumerate(per_class):
        assert len(texts) >= 24  # several templates and words per class
        for text in texts:
            assert owner.setdefault(text, class_id) == class_id, f"{text!r} describes two classes"
    prompts = {p for per_name in rd.zero_shot_prompts(class_names) for p in per_name}
    assert not prompts & set(owner)
    assert rd._sequence_length(templates, words_by_class) == max(len(t.split()) for t in owner)


def test_fashion_attribute_words_follow_from_the_class():
    per_class = _all_descriptions(*FASHION)
    groups = {"footwear": {"sandal", "sneaker", "ankle boot"},
              "upper": {"t-shirt or top", "pullover", "coat", "shirt"},
              "legwear": {"trousers"}, "one-piece": {"dress"}, "accessory": {"bag"}}
    for word, classes in groups.items():
        having = {rd.FASHION_CLASS_NAMES[c] for c, texts in enumerate(per_class) if any(word in t for t in texts)}
        assert having == classes, word


def test_description_draws_and_errors():
    first = [rd.fashion_description(c, np.random.default_rng(5)) for c in range(10)]
    assert first == [rd.fashion_description(c, np.random.default_rng(5)) for c in range(10)]  # seeded
    rng = np.random.default_rng(0)
    assert len({rd.fashion_description(7, rng) for _ in range(200)}) > 20  # one class, many texts
    with pytest.raises(ValueError, match=r"`class_id` must be an int in \[0, 10\)\. Received: class_id=10"):
        rd.fashion_description(10, rng)
    with pytest.raises(ValueError, match=r"`class_id` must be an int in \[0, 24\)"):
        rd.shape_description(-1, rng)
    with pytest.raises(ValueError, match="each with one `{}`"):
        rd.zero_shot_prompts(["bag"], ["a photo of a bag"])


def test_colours_and_shapes_from_questions():
    texts = ["what color is the circle?", "is there not a red shape?",  # 0: a circle; red is absent
             "is there a triangle?", "is no blue shape present?",  # 1: a triangle; blue absent
             "is a rectangle present?", "is there not a triangle?"]  # 2: no circle left -> eliminated below
    known = rd.colours_and_shapes(texts, ["teal", "yes", "yes", "yes", "no", "yes"], [0, 0, 1, 1, 2, 2])
    assert known == {0: ("teal", "circle"), 1: (None, "triangle"), 2: (None, "circle")}
    with pytest.raises(ValueError, match=r"agree on its shape.*Received: image 3 with present \['circle', 'triangle'\]"):
        rd.colours_and_shapes(["is there a circle?", "what shape is present?"], ["yes", "triangle"], [3, 3])
    easy_vqa = rd._easy_vqa()
    counts = {}
    for split in ("train", "test"):
        known = rd.colours_and_shapes(*getattr(easy_vqa, f"get_{split}_questions")())
        colours, shapes = zip(*known.values())
        counts[split] = (len(known), colours.count(None), shapes.count(None), sum(None not in v for v in known.values()))
    assert counts == {"train": (4000, 288, 163, 3578), "test": (1000, 78, 46, 888)}  # images, no colour, no shape, both


def test_easy_vqa_descriptions():
    splits = data.load_dataset("easy_vqa_descriptions", limit=40, verbose=False)
    assert (splits.task, splits.output_name, splits.image_shape) == ("retrieval", "similarity", (64, 64, 3))
    assert splits.class_names == rd.SHAPE_CLASS_NAMES and splits.class_names[15] == "red circle"
    assert (len(splits.train), len(splits.validation), len(splits.test)) == (36, 4, 40)
    assert "generated" in splits.description
    for examples, seed in ((splits.test, 1), (splits.train, None)):
        assert examples.class_names == splits.class_names and len(examples.images) == 40  # each image once
        if seed is not None:
            rng = np.random.default_rng(seed)
            assert examples.texts.tolist() == [rd.shape_description(c, rng) for c in examples.labels.tolist()]
        for text, label in zip(examples.texts, examples.labels):
            colour, shape = splits.class_names[label].split()
            assert colour in text.replace("grey", "gray")
        # The colour read from the questions is the colour of the shape's pixels.
        images = examples.example_images().astype("float32")
        shape_pixels = np.abs(images - images[:, :1, :1]).sum(-1) > 60
        mean = np.stack([image[mask].mean(0) for image, mask in zip(images, shape_pixels)])
        nearest = np.argmin(((mean[:, None] - SHAPE_RGB[None]) ** 2).sum(-1), axis=1)
        np.testing.assert_array_equal(nearest, examples.labels // len(rd.SHAPES))
    assert splits.sequence_length >= max(len(t.split()) for t in splits.test.texts)


def test_fashion_mnist_descriptions(monkeypatch, tmp_path):
    if not os.path.isdir(fashion_mnist.DEFAULT_DIR):
        pytest.skip("dataset-fashion-mnist is not installed")
    splits = data.load_dataset("fashion_mnist_descriptions", limit=200, seed=3, verbose=False)
    assert (splits.task, splits.output_name, splits.image_shape) == ("retrieval", "similarity", (28, 28, 1))
    assert splits.class_names == rd.FASHION_CLASS_NAMES and "generated from its class label" in splits.description
    assert (len(splits.train), len(splits.validation), len(splits.test)) == (180, 20, 200)
    folder = fashion_mnist.data_dir()
    for split, seed, parts in (("train", 3, (splits.train, splits.validation)), ("test", 4, (splits.test,))):
        images_file, labels_file = fashion_mnist.FILES[split]
        images = fashion_mnist.read_idx(os.path.join(folder, images_file))[:200]
        classes = fashion_mnist.read_idx(os.path.join(folder, labels_file))[:200]
        rng = np.random.default_rng(seed)  # image i's description is the i-th draw of its split's seed
        expected = np.array([rd.fashion_description(c, rng) for c in classes.tolist()])
        for examples in parts:
            position = examples.image_index if examples.image_index is not None else np.arange(len(examples))
            np.testing.assert_array_equal(examples.example_images()[..., 0], images[position])  # pair i = image i
            np.testing.assert_array_equal(examples.labels, classes[position])
            np.testing.assert_array_equal(examples.texts.astype(str), expected[position])
    assert not set(map(bytes, splits.train.example_images())) & set(map(bytes, splits.validation.example_images()))
    assert splits.sequence_length >= max(len(t.split()) for t in splits.train.texts)
    with pytest.raises(ValueError, match=r"a retrieval dataset trains a dual encoder \(e.g. mmkeras.get_model"):
        splits.head_spec()
    monkeypatch.setenv("MMKERAS_FASHION_MNIST_DIR", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="apt-get install dataset-fashion-mnist"):
        data.load_dataset("fashion_mnist_descriptions")


def test_dataset_splits_accept_retrieval():
    examples = data.Examples(np.zeros((2, 8, 8, 1), "uint8"), ["a bag", "a sandal"], [0, 1],
                             class_names=["bag", "sandal"])
    common = dict(name="mine", train=examples, validation=None, test=examples, output_name="similarity",
                  image_shape=(8, 8, 1), sequence_length=2)
    splits = data.DatasetSplits(class_names=["bag", "sandal"], task="retrieval", **common)
    assert repr(splits) == "<DatasetSplits 'mine': retrieval, 2 classes, train=2, test=2>"
    with pytest.raises(ValueError, match="which has no head"):
        splits.head_spec()
    with pytest.raises(ValueError, match="at least two classes for a retrieval task"):
        data.DatasetSplits(class_names=["bag"], task="retrieval", **common)
    with pytest.raises(ValueError, match=r"`task` must be one of \[.*'retrieval'\] \(did you mean 'retrieval'"):
        data.DatasetSplits(class_names=["bag", "sandal"], task="retreival", **common)
    assert {"fashion_mnist_descriptions", "easy_vqa_descriptions"} <= set(data.list_datasets())
    assert "generated" in data.dataset_description("easy_vqa_descriptions")


def test_the_docs_quote_descriptions_the_templates_give():
    with open(os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "docs", "datasets.md")) as f:
        page = f.read()
    section = page[page.index("### Image-text retrieval"):page.index("## Your own data: a table")]
    quoted = {}
    for name, cell in re.findall(r"^\| ([a-z -]+) \| (\".*\") \|$", section, flags=re.M):
        quoted[name] = re.findall(r'"([^"]+)"', cell)
    assert len(quoted) == 6
    for name, texts in quoted.items():
        if name in rd.FASHION_CLASS_NAMES:
            templates, words = rd.FASHION_TEMPLATES, rd.FASHION_WORDS[rd.FASHION_CLASS_NAMES.index(name)]
        else:
            templates, words = rd.SHAPE_TEMPLATES, rd._shape_words(rd.SHAPE_CLASS_NAMES.index(name))
        possible = rd.possible_descriptions(templates, words)
        assert set(texts) <= set(possible), name
