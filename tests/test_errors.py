"""Bad arguments raise `ValueError` naming the argument and the value received."""

import re

import keras
import numpy as np
import pytest

import mmkeras
from mmkeras.heads import get_head


def _raises(match, func, *args, **kwargs):
    with pytest.raises(ValueError, match=match) as info:
        func(*args, **kwargs)
    assert "Received" in str(info.value)
    return str(info.value)


TINY = {"image_shape": (32, 32, 3), "sequence_length": 8, "vocab_size": 32}


def test_unknown_fusion_names_the_argument_and_suggests():
    message = _raises("`fusion` must be one of", mmkeras.build_model, fusion="concat", **TINY)
    assert "fusion='concat'" in message and "concatenate" in message


@pytest.mark.parametrize("shape", [(32, 32), (1, 32, 32, 3), (32, 0, 3), "32x32"])
def test_image_shape_of_the_wrong_rank(shape):
    _raises(re.escape("`image_shape` must be a tuple (height, width, channels)"), mmkeras.get_model, "s1", image_shape=shape)


@pytest.mark.parametrize("vocab_size", [0, -5, 2.5])
def test_vocab_size_must_be_positive(vocab_size):
    message = _raises("`vocab_size` must be a positive integer", mmkeras.get_model, "s0", vocab_size=vocab_size)
    assert f"vocab_size={vocab_size!r}" in message


def test_unknown_model_name_suggests_the_closest():
    message = _raises("`name` must be one of", mmkeras.get_model, "fusion_gate")
    assert "did you mean 'fusion_gated'" in message


def test_binary_head_with_several_classes():
    _raises("`num_classes` must be 1 for a binary head", mmkeras.get_model, "s1", num_classes=3, **TINY)


def test_multiclass_head_with_one_class():
    _raises("`num_classes` must be at least 2", get_head, "multiclass", num_classes=1)


@pytest.mark.parametrize(
    "head, labels, match",
    [
        ({"kind": "multiclass", "num_classes": 3}, [0, 1, 3], r"integers in \[0, 3\)"),
        ({"kind": "multiclass", "num_classes": 3}, np.eye(4), "class indices of shape"),
        ("binary", [0, 2], "must be 0 or 1"),
        ("binary", np.zeros((4, 2)), r"shape \(n,\) or \(n, 1\)"),
        ({"kind": "regression", "units": 2}, np.zeros((4, 3)), r"shape \(n,\) or \(n, 2\)"),
    ],
)
def test_labels_that_do_not_match_the_head(head, labels, match):
    _raises(match, get_head(head).check_labels, labels)


def test_multitask_labels_must_name_every_output():
    head = get_head({"kind": "multitask", "heads": {"a": "binary", "b": {"kind": "regression"}}})
    _raises("keys", head.check_labels, {"a": [0, 1]})


def test_duplicate_registration_raises():
    @mmkeras.register_model("tmp_model_for_test", family="test")
    def tmp(**overrides):
        return mmkeras.build_model(**{**TINY, **overrides})

    try:
        with pytest.raises(ValueError, match="already registered"):
            mmkeras.register_model("tmp_model_for_test", family="test")(tmp)
        assert "tmp_model_for_test" in mmkeras.list_models()
    finally:
        mmkeras.unregister_model("tmp_model_for_test")
    assert "tmp_model_for_test" not in mmkeras.list_models()


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"fusion": {"kind": "sum"}}, "set `units` to project"),
        ({"fusion": {"kind": "gated", "unitz": 3}}, "Invalid arguments for `fusion`"),
        ({"image_encoder": {"kind": "cnn", "filters": (8, 8, 8, 8, 8)}}, "`image_shape` is too small"),
        ({"image_encoder": {"kind": "cnn", "pooling": "median"}}, "`pooling` must be one of"),
        ({"image_encoder": {"kind": "cnn", "convs_per_block": 0}}, "`convs_per_block` must be"),
        ({"image_encoder": {"kind": "cnn", "filters": (8, 8, 8), "convs_per_block": 3}}, "`image_shape` is too small"),
        ({"text_encoder": {"kind": "rnn", "cell": "rnn"}}, "`cell` must be one of"),
        ({"text_encoder": {"kind": "transformer", "embedding_dim": 10, "num_heads": 3}}, "divisible"),
        ({"image_encoder": {"kind": "applications", "backbone": "ResNet50", "weights": "imagenet"}}, "never downloads"),
        ({"image_encoder": None, "text_encoder": None}, "at least one"),
        ({"text_encoder": None}, "`fusion` must be None"),
        ({"hidden_units": (64, -1)}, "`hidden_units` must be"),
        ({"dropout": 1.5}, r"`dropout` must be a number in \[0, 1\)"),
        ({"learning_rate": 0}, "`learning_rate` must be a positive number"),
        ({"head": "softmax"}, "`head` must be one of"),
        ({"image_encoder": 3}, "`image_encoder` must be a registered name"),
    ],
)
def test_bad_builder_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        mmkeras.build_model(**{**TINY, **kwargs})


def test_fusion_needs_two_modalities():
    layer = mmkeras.fusion.ConcatenateFusion()
    with pytest.raises(ValueError, match="between 2 and"):
        layer([keras.ops.ones((2, 3))])
