"""`fashion_pairs` (mmkeras.data.fashion_pairs): true or false statements about two Fashion-MNIST photos."""

import collections
import os
import re

import numpy as np
import pytest

import mmkeras
from mmkeras import data
from mmkeras.data import fashion_mnist
from mmkeras.data import fashion_pairs as fp

needs_fashion = pytest.mark.skipif(not os.path.isdir(fashion_mnist.DEFAULT_DIR),
                                   reason="dataset-fashion-mnist is not installed")
TEMPLATE_NAMES = list(fp.TEMPLATES)
NOUN = "|".join(sorted(fp.NOUNS, key=len, reverse=True))
CATEGORY_WORDS = {"footwear": "footwear", "a top": "tops", "tops": "tops"}
NUMBERS = {"no item is": 0, "exactly one item is": 1, "there are two": 2}


def holds(text, left, right):
    """Whether `text` is true of a photo of class `left` beside one of class `right`, read from its words."""
    shown = {fp.NOUNS[left], fp.NOUNS[right]}
    if m := re.fullmatch(rf"the ({NOUN}) (?:is|are) on the (left|right)", text):
        return m[1] == fp.NOUNS[left if m[2] == "left" else right]
    if m := re.fullmatch(rf"there (?:is|are) (?:an? )?(no )?({NOUN})", text):
        return (m[2] in shown) != bool(m[1])
    if m := re.fullmatch(rf"the ({NOUN}) (?:is|are) to the (left|right) of the ({NOUN})", text):
        first, second = (m[1], m[3]) if m[2] == "left" else (m[3], m[1])
        return (first, second) == (fp.NOUNS[left], fp.NOUNS[right])
    if m := re.fullmatch(r"(no item is|exactly one item is|there are two) (?:pieces of )?(footwear|a top|tops)", text):
        members = fp.CATEGORIES[CATEGORY_WORDS[m[2]]]
        return (left in members) + (right in members) == NUMBERS[m[1]]
    if text in fp.SAMENESS_SENTENCES:
        return (left == right) == (text == "both items are the same kind")
    raise AssertionError(f"no template reads {text!r}")


def lookup_accuracy(train_keys, train_labels, test_keys, test_labels):
    """Test accuracy of the majority training label of each key (the overall majority for an unseen key)."""
    by_key = collections.defaultdict(collections.Counter)
    for key, label in zip(train_keys, train_labels):
        by_key[key][int(label)] += 1
    default = collections.Counter(int(label) for label in train_labels).most_common(1)[0][0]
    guesses = [by_key[key].most_common(1)[0][0] if key in by_key else default for key in test_keys]
    return float(np.mean(np.asarray(guesses) == np.asarray(test_labels)))


def test_statements_are_short_lower_case_and_one_per_value():
    sentences = fp.all_sentences()
    assert len(sentences) == 10 + 10 + 20 + 180 + 6 + 2
    for text in sentences:
        assert text == text.lower() and re.fullmatch(r"[a-z -]+", text) and len(text.split()) <= 10
    assert max(len(s.split()) for s in sentences) == 10
    assert fp.statement("left", 0, 7) == "the sneaker is on the left"
    assert fp.statement("right", 0, 1) == "the trousers are on the right"
    assert (fp.statement("presence", 8, 1), fp.statement("presence", 8, 0)) == ("there is a bag", "there is no bag")
    assert fp.statement("presence", 9, 1) == "there is an ankle boot"
    shirt_boot = fp.PAIRS.index((6, 9))
    assert fp.statement("relation", 0, shirt_boot) == "the shirt is to the left of the ankle boot"
    assert fp.statement("relation", 1, shirt_boot) == "the ankle boot is to the right of the shirt"
    assert [fp.statement("count", 0, n) for n in range(3)] == [
        "no item is footwear", "exactly one item is footwear", "there are two pieces of footwear"]
    assert fp.statement("sameness", 0, 1) == "both items are the same kind"
    # Each sentence says what it states: true exactly for the class pairs that have that value.
    for left in range(10):
        for right in range(10):
            assert holds(fp.statement("left", 0, left), left, right) and holds(fp.statement("right", 0, right), left, right)
            assert holds(fp.statement("sameness", 0, int(left == right)), left, right)
    with pytest.raises(ValueError, match=r"`value` must be an int in \[0, 90\) for 'relation'\. Received: value=90"):
        fp.statement("relation", 0, 90)
    with pytest.raises(ValueError, match=r"`named` must be an int in \[0, 1\) for 'left'"):
        fp.statement("left", 1, 0)
    with pytest.raises(ValueError, match="`template`"):
        fp.statement("top", 0, 0)


def test_drawn_examples_are_true_or_false_as_labelled_balanced_and_seeded():
    classes = np.repeat(np.arange(10), 400)  # 4,000 photos, 400 per class
    drawn = fp.draw_examples(classes, seed=3)
    n = len(classes)
    assert {k: v.shape for k, v in drawn.items()} == {
        "texts": (n,), "labels": (n,), "templates": (n,), "classes": (n, 2), "photos": (n, 2), "groups": (n,)}
    # The label says whether the sentence is true of the classes shown, and the photos show them.
    truth = [holds(t, a, b) for t, (a, b) in zip(drawn["texts"], drawn["classes"].tolist())]
    np.testing.assert_array_equal(np.asarray(truth, "int32"), drawn["labels"])
    np.testing.assert_array_equal(classes[drawn["photos"]], drawn["classes"])
    assert np.all(drawn["photos"][:, 0] != drawn["photos"][:, 1])  # two photos, even of one class
    # Groups of 40 photos (4 per class), 40 pairs each; a pair's photos come from its group.
    assert np.bincount(drawn["groups"]).tolist() == [40] * 100
    group_of = {}
    for group, photos in zip(drawn["groups"].tolist(), drawn["photos"].tolist()):
        for photo in photos:
            assert group_of.setdefault(photo, group) == group
    # Templates equally frequent, each 50% true to within one example.
    counts = np.bincount(drawn["templates"], minlength=6)
    assert counts.max() - counts.min() <= 1
    for t in range(6):
        labels = drawn["labels"][drawn["templates"] == t]
        assert abs(2 * labels.sum() - len(labels)) <= 1
    # The same seed gives the same examples; another seed others.
    again = fp.draw_examples(classes, seed=3)
    for key in drawn:
        np.testing.assert_array_equal(again[key], drawn[key])
    other = fp.draw_examples(classes, seed=4)
    assert other["texts"].tolist() != drawn["texts"].tolist()


@needs_fashion
def test_load_small_splits(monkeypatch, tmp_path):
    splits = data.load_dataset("fashion_pairs", limit=200, seed=3, verbose=False)
    assert (splits.task, splits.output_name, splits.class_names) == ("binary", "answer", ["false", "true"])
    assert splits.head_spec() == {"kind": "binary", "name": "answer"}
    assert splits.image_shape == (28, 56, 1) and splits.sequence_length == 10
    assert len(splits.train) + len(splits.validation) == 200 and len(splits.test) == 200
    assert 10 <= len(splits.validation) <= 30
    assert data.dataset_task("fashion_pairs") == "binary" and "true or false" in data.dataset_description("fashion_pairs")
    folder = fashion_mnist.data_dir()
    for split, parts in (("train", (splits.train, splits.validation)), ("test", (splits.test,))):
        photos = fashion_mnist.read_idx(os.path.join(folder, fashion_mnist.FILES[split][0]))
        classes = fashion_mnist.read_idx(os.path.join(folder, fashion_mnist.FILES[split][1]))
        for part in parts:
            assert part.images.dtype == np.uint8 and part.images.shape[1:] == (28, 56, 1)
            pictures = part.example_images()[..., 0]
            np.testing.assert_array_equal(pictures[:, :, :28], photos[part.photos[:, 0]])  # left photo, right photo
            np.testing.assert_array_equal(pictures[:, :, 28:], photos[part.photos[:, 1]])
            np.testing.assert_array_equal(classes[part.photos], part.classes)
            assert [holds(t, a, b) for t, (a, b) in zip(part.texts, part.classes.tolist())] == part.labels.astype(bool).tolist()
    assert splits.validation.images is splits.train.images  # one table, shared
    # Held out by photo: no validation photo is in a training pair.
    assert not set(splits.train.photos.ravel().tolist()) & set(splits.validation.photos.ravel().tolist())
    assert not set(splits.train.groups.tolist()) & set(splits.validation.groups.tolist())
    # Deterministic for a seed; the seed draws the training examples, never the test ones.
    again = data.load_dataset("fashion_pairs", limit=200, seed=3, verbose=False)
    assert again.train.texts.tolist() == splits.train.texts.tolist()
    np.testing.assert_array_equal(again.validation.example_images(), splits.validation.example_images())
    other = data.load_dataset("fashion_pairs", limit=200, seed=4, verbose=False)
    assert other.train.texts.tolist() != splits.train.texts.tolist()
    assert other.test.texts.tolist() == splits.test.texts.tolist()
    np.testing.assert_array_equal(other.test.images, splits.test.images)
    whole = data.load_dataset("fashion_pairs", seed=3, validation_split=0, limit=None, verbose=False)
    assert whole.validation is None and whole.test.texts[:200].tolist() == splits.test.texts.tolist()  # the first ones
    monkeypatch.setenv("MMKERAS_FASHION_MNIST_DIR", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="apt-get install dataset-fashion-mnist"):
        data.load_dataset("fashion_pairs")


@needs_fashion
def test_full_dataset_is_balanced_and_neither_modality_alone_beats_chance():
    splits = data.load_dataset("fashion_pairs", verbose=False)
    train, validation, test = splits.train, splits.validation, splits.test
    assert (len(train), len(validation), len(test)) == (54000, 6000, 10000)
    assert len(train.images) == 60000 and len(test.images) == 10000
    texts = np.concatenate([train.texts, validation.texts, test.texts])
    assert set(texts.tolist()) == set(fp.all_sentences())  # every sentence occurs
    # (a) each template 50% true: to within one example in the test and the whole training split.
    templates = np.concatenate([train.templates, validation.templates])
    labels = np.concatenate([train.labels, validation.labels])
    for t in range(len(fp.TEMPLATES)):
        for part_templates, part_labels in ((templates, labels), (test.templates, test.labels)):
            assert abs(2 * part_labels[part_templates == t].sum() - (part_templates == t).sum()) <= 1
        for part, tolerance in ((train, 0.01), (validation, 0.06)):  # whole groups held out: about 1,000 per template
            assert abs(part.labels[part.templates == t].mean() - 0.5) < tolerance, (TEMPLATE_NAMES[t], part)
    # (b) text only: the majority label of the same exact sentence.
    text_only = lookup_accuracy(np.concatenate([train.texts, validation.texts]), labels, test.texts, test.labels)
    assert abs(text_only - 0.5) <= 0.02, text_only
    assert abs(splits.baselines()["question_only"] - text_only) < 1e-9
    # (c) image only: the majority label of the same (left class, right class).
    pairs = lambda part: list(map(tuple, part.classes.tolist()))  # noqa: E731
    image_only = lookup_accuracy(pairs(train) + pairs(validation), labels, pairs(test), test.labels)
    assert abs(image_only - 0.5) <= 0.02, image_only


@needs_fashion
def test_training_reports_the_accuracy_of_each_template():
    result = mmkeras.train(
        "vqa", "fashion_pairs", epochs=1, max_steps=2, limit=120, batch_size=16, precision="float32",
        model_overrides={k: v for k, v in mmkeras.get_entry("vqa").tiny.items() if k != "image_shape"},
        output=False, verbose=0,
    )
    assert result.model.output_names == ["answer"] and result.model.input["image"].shape[1:] == (28, 56, 1)
    for name in fp.TEMPLATES:
        assert 0.0 <= result.metrics[f"test_accuracy_{name}"] <= 1.0
