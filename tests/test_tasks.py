"""The task protocol: a model knows its head, preprocessor, compile defaults and answers.

`mmkeras.predict` is checked for every head kind against the model's raw outputs, computed here
from the same tensors; a `.keras` file carries the preprocessor; runs written by mmkeras 0.1 still
load and answer the same.
"""

import json
import os

import keras
import numpy as np
import pytest

import mmkeras
from mmkeras.preprocessing import Preprocessor, text_vectorizer
from mmkeras.tasks import FusionClassifier, ModelTask, Task

TEXTS = ["is the circle red?", "what shape is it?", "is there a blue square?", "what color is it?"]
IMAGE_SHAPE = (16, 16, 3)

HEADS = {
    "binary": ({"kind": "binary", "name": "match"}, ["no", "yes"]),
    "binary_logits": ({"kind": "binary", "name": "match", "from_logits": True}, ["no", "yes"]),
    "multiclass": ({"kind": "multiclass", "num_classes": 4, "name": "answer"}, ["red", "blue", "circle", "square"]),
    "multilabel": ({"kind": "multilabel", "num_labels": 3, "name": "tags", "threshold": 0.4}, ["red", "round", "big"]),
    "regression": ({"kind": "regression", "units": 2, "name": "size"}, None),
    "multitask": (
        {"kind": "multitask", "heads": {"kind_of": {"kind": "multiclass", "num_classes": 3}, "match": "binary"}},
        {"kind_of": ["a", "b", "c"], "match": ["no", "yes"]},
    ),
}


def preprocessor(class_names=None):
    vectorizer = text_vectorizer(TEXTS, vocab_size=32, sequence_length=6)
    return Preprocessor.from_vectorizer(vectorizer, image_shape=IMAGE_SHAPE, class_names=class_names)


def task_with(head, class_names=None, **kwargs):
    return mmkeras.build_model(
        image_encoder={"kind": "cnn", "filters": (4,), "output": "avg"},
        text_encoder={"kind": "rnn", "embedding_dim": 4, "units": 4},
        fusion="concatenate",
        head=head,
        image_shape=IMAGE_SHAPE,
        sequence_length=6,
        vocab_size=32,
        hidden_units=(8,),
        preprocessor=preprocessor(class_names),
        **kwargs,
    )


def raw_outputs(model, image, text):
    """The model's own outputs for one raw example, from tensors made here."""
    x = {
        # Resized in floats, as an exported model resizes a request (a uint8 table would round).
        "image": mmkeras.preprocessing.fit_images(image[None] / np.float32(255.0), IMAGE_SHAPE),
        "text": model.preprocessor.texts_to_ids([text]).numpy(),
    }
    return model.predict(x, verbose=0)


@pytest.mark.parametrize("kind", sorted(HEADS))
def test_predict_answers_match_the_raw_outputs(kind):
    head, names = HEADS[kind]
    model = task_with(head, names)
    image = np.random.default_rng(0).integers(0, 255, (20, 24, 3), dtype=np.uint8)
    text = "is the circle blue?"
    answer = mmkeras.predict(model, image, text, top_k=2)
    raw = raw_outputs(model, image, text)
    if kind == "multitask":
        assert sorted(answer) == ["kind_of", "match"]
        p = raw["kind_of"][0]
        assert answer["kind_of"]["answer"] == names["kind_of"][int(np.argmax(p))]
        np.testing.assert_allclose(answer["kind_of"]["probability"], p.max(), atol=1e-6)
        q = float(raw["match"][0, 0])
        assert answer["match"]["answer"] == ("yes" if q >= 0.5 else "no")
        return
    if kind.startswith("binary"):
        p = float(raw[0, 0])
        p = 1 / (1 + np.exp(-p)) if kind == "binary_logits" else p
        assert answer["answer"] == ("yes" if p >= 0.5 else "no")
        np.testing.assert_allclose(answer["probability"], max(p, 1 - p), atol=1e-6)
        assert [n for n, _ in answer["top"]] == (["yes", "no"] if p >= 0.5 else ["no", "yes"])
    elif kind == "multiclass":
        p = raw[0]
        assert abs(p.sum() - 1) < 1e-5  # a softmax: never softmaxed twice
        assert [n for n, _ in answer["top"]] == [names[i] for i in np.argsort(-p)[:2]]
        np.testing.assert_allclose([v for _, v in answer["top"]], np.sort(p)[::-1][:2], atol=1e-6)
    elif kind == "multilabel":
        p = raw[0]
        assert answer["probabilities"] == pytest.approx(dict(zip(names, p.tolist())), abs=1e-6)
        assert sorted(answer["answer"]) == sorted(n for n, v in zip(names, p) if v >= 0.4)
    elif kind == "regression":
        np.testing.assert_allclose(answer["answer"], raw[0], atol=1e-6)  # values, not probabilities


@pytest.mark.parametrize(
    "kind, loss",
    [("binary", "binary_crossentropy"), ("multiclass", "sparse_categorical_crossentropy"),
     ("multilabel", "binary_crossentropy"), ("regression", "mean_squared_error")],
)
def test_compile_with_no_arguments_uses_the_head(kind, loss):
    model = task_with(HEADS[kind][0], HEADS[kind][1], compile=False, learning_rate=0.01)
    model.compile()
    assert model.loss == loss
    assert float(model.optimizer.learning_rate) == pytest.approx(0.01)
    model.compile(loss="mean_absolute_error")  # what is given explicitly wins
    assert model.loss == "mean_absolute_error"


def test_keras_file_is_the_whole_model(tmp_path):
    head, names = HEADS["multiclass"]
    model = task_with(head, names)
    path = tmp_path / "m.keras"
    model.save(path)
    assert os.listdir(tmp_path) == ["m.keras"]  # no side file
    loaded = keras.saving.load_model(path, safe_mode=True)
    assert isinstance(loaded, FusionClassifier)
    assert loaded.preprocessor.get_config() == model.preprocessor.get_config()
    image = np.zeros((2, 30, 30, 3), "uint8")
    assert loaded.answer(image=image, text=TEXTS[:2]) == model.answer(image=image, text=TEXTS[:2])


def test_preprocessor_must_fit_the_task():
    head, names = HEADS["multiclass"]
    model = task_with(head, names)
    with pytest.raises(ValueError, match="image_shape"):
        model.preprocessor = Preprocessor(image_shape=(8, 8, 3))
    with pytest.raises(ValueError, match="sequence_length"):
        model.preprocessor = Preprocessor(image_shape=IMAGE_SHAPE, sequence_length=3, vocabulary=["", "[UNK]", "a"])
    with pytest.raises(ValueError, match="must hold 4 names"):
        model.preprocessor = Preprocessor(image_shape=IMAGE_SHAPE, class_names=["a", "b"])
    with pytest.raises(ValueError, match="Preprocessor"):
        model.preprocessor = {"image_shape": IMAGE_SHAPE}


def test_unknown_input_keys_are_refused():
    model = task_with(*HEADS["binary"])
    x = {"image": np.zeros((2, *IMAGE_SHAPE), "float32"), "text": np.ones((2, 6), "int32")}
    with pytest.raises(ValueError, match=r"unknown: \['label'\]"):
        model.predict({**x, "label": x["text"]}, verbose=0)


def test_a_text_model_without_vocabulary_says_so():
    model = mmkeras.get_model("s0", image_shape=IMAGE_SHAPE, sequence_length=6, vocab_size=32)
    with pytest.raises(ValueError, match="no text vocabulary"):
        model.answer(image=np.zeros((1, *IMAGE_SHAPE), "uint8"), text=["is it red?"])


def test_registered_builders_must_return_tasks():
    @mmkeras.register_model("plain_model_for_test", family="test")
    def plain(**overrides):
        inputs = {"image": keras.Input(IMAGE_SHAPE, name="image")}
        return keras.Model(inputs, keras.layers.Dense(1)(keras.layers.Flatten()(inputs["image"])))

    try:
        with pytest.raises(ValueError, match="must return an mmkeras task"):
            mmkeras.get_model("plain_model_for_test")
    finally:
        mmkeras.unregister_model("plain_model_for_test")


def test_model_task_wraps_a_users_own_model(tmp_path):
    inputs = {"image": keras.Input(IMAGE_SHAPE, name="image"), "text": keras.Input((6,), dtype="int32", name="text")}
    x = keras.layers.Concatenate()(
        [keras.layers.GlobalAveragePooling2D()(inputs["image"]), keras.layers.Flatten()(keras.layers.Embedding(32, 2)(inputs["text"]))]
    )
    mine = keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(x), name="mine")
    task = ModelTask(mine, head={"kind": "multiclass", "num_classes": 3, "name": "answer"}, preprocessor=preprocessor(["a", "b", "c"]))
    task.compile()
    assert task.output_names == ["answer"] and task.loss == "sparse_categorical_crossentropy"
    task.save(tmp_path / "t.keras")
    loaded = keras.saving.load_model(tmp_path / "t.keras", safe_mode=True)
    image = np.zeros((1, 20, 20, 3), "uint8")
    assert loaded.answer(image=image, text=["is it red?"]) == task.answer(image=image, text=["is it red?"])


def write_v0_1_run(task, folder, task_kind):
    """A run folder as mmkeras 0.1 wrote it: a plain functional model, preprocessor.json, metrics.json."""
    os.makedirs(folder)
    plain = keras.Model(task.input, task.output, name="vqa")  # the same layers, as a Functional
    assert not isinstance(plain, Task)
    plain.save(os.path.join(folder, "model.keras"))
    task.preprocessor.save(os.path.join(folder, "preprocessor.json"))
    with open(os.path.join(folder, "metrics.json"), "w", encoding="utf-8") as f:
        json.dump({"model": "vqa", "dataset": "easy_vqa", "task": task_kind, "seed": 0}, f)


def test_runs_written_by_mmkeras_0_1_still_load_and_answer_the_same(tmp_path):
    head, names = HEADS["multiclass"]
    model = task_with(head, names)
    folder = str(tmp_path / "old_run")
    write_v0_1_run(model, folder, "multiclass")
    loaded = mmkeras.load_run(folder)
    assert isinstance(loaded, ModelTask) and loaded.head.kind == "multiclass" and loaded.output_names == ["answer"]
    image = np.random.default_rng(1).integers(0, 255, (24, 24, 3), dtype=np.uint8)
    assert mmkeras.predict(folder, image, "what color is it?") == mmkeras.predict(model, image, "what color is it?")


def test_training_reaches_batch_norm_and_dropout():
    """Keras passes `training` to a task's layers: batch statistics move in `fit`, not in `predict`."""
    model = mmkeras.get_model("vqa", **mmkeras.get_entry("vqa").tiny)
    norm = model.get_layer("image_encoder").get_layer("image_block1_bn")
    x = {"image": np.random.default_rng(0).random((8, 32, 32, 3), dtype=np.float32), "text": np.ones((8, 9), "int32")}
    before = np.array(norm.moving_mean)
    model.predict(x, verbose=0)
    np.testing.assert_array_equal(np.array(norm.moving_mean), before)
    model.fit(x, np.zeros(8), epochs=1, verbose=0)
    assert not np.allclose(np.array(norm.moving_mean), before)
