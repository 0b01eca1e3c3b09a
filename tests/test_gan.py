"""The text-conditioned GAN (GAN-CLS): its losses against numpy, which loss trains which part,
generation, the sample-grid callback, evaluation functions, distribution and its export."""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

import mmkeras
from mmkeras.preprocessing import Preprocessor, text_vectorizer
from mmkeras.tasks import ConditionalGAN
from mmkeras.tasks.gan import (
    SampleGrid,
    class_diversity,
    conditional_accuracy,
    discriminator_loss,
    generator_loss,
    image_diversity,
    image_grid,
    mismatch_weights,
)
from tests.helpers import tiny_model

GANS = mmkeras.list_models(family="gan")
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}

COLOURS = ["red", "green", "blue", "yellow"]
RGB = np.array([[230, 20, 20], [20, 200, 20], [20, 20, 230], [230, 230, 20]], "uint8")
TINY = dict(text_encoder={"kind": "conv", "embedding_dim": 8, "filters": 8, "kernel_sizes": (1,)}, noise_dim=4,
            condition_dim=4, generator_filters=(8, 4), discriminator_filters=(4, 8), image_shape=(8, 8, 3))


def colour_pairs(n=32, seed=0):
    """Images of one colour (with noise), a text naming it and its class."""
    rng = np.random.default_rng(seed)
    classes = rng.integers(0, len(COLOURS), n)
    noise = rng.integers(-20, 20, (n, 8, 8, 3))
    images = np.clip(RGB[classes][:, None, None, :].astype(int) + noise, 0, 255).astype("uint8")
    texts = [f"a {COLOURS[c]} square" if i % 2 else f"{COLOURS[c]} colour" for i, c in enumerate(classes)]
    return images, texts, classes


def colour_gan(raw_text=False, **overrides):
    _, texts, _ = colour_pairs()
    vectorizer = text_vectorizer(texts, vocab_size=20, sequence_length=4)
    keras.utils.set_random_seed(0)
    model = ConditionalGAN(
        **{**TINY, **overrides}, sequence_length=4, vocab_size=len(vectorizer.get_vocabulary()),
        text_vectorizer=vectorizer if raw_text else None, learning_rate=1e-3, seed=0,
        preprocessor=Preprocessor.from_vectorizer(vectorizer, image_shape=(8, 8, 3), class_names=COLOURS),
    )
    model.compile()
    return model


def batch_of(model, n=32, seed=0):
    images, texts, classes = colour_pairs(n, seed)
    text = np.array(texts, dtype=object) if model.input_kinds["text"] == "text" else model.preprocessor.texts_to_ids(texts).numpy()
    return {"image": images.astype("float32") / 255, "text": text}, classes


@pytest.fixture(scope="module")
def trained():
    """A colour GAN after a few epochs (about 3 s)."""
    model = colour_gan()
    x, y = batch_of(model, 64)
    model.fit(x, y, batch_size=16, epochs=3, verbose=0)
    return model


# ---------------------------------------------------------------------------------------------
# Losses.


def softplus(x):
    return np.log1p(np.exp(-np.abs(x))) + np.maximum(x, 0)


def test_losses_equal_their_numpy_definitions():
    rng = np.random.default_rng(0)
    real, mismatch, fake = rng.normal(size=(3, 6, 1)).astype("float32")
    labels = np.array([0, 0, 1, 2, 2, 3])
    weights = (labels != np.roll(labels, 1)).astype("float32")
    assert weights.tolist() == [1, 0, 1, 1, 0, 1] and mismatch_weights(labels).numpy().tolist() == weights.tolist()
    sigmoid = lambda x: 1 / (1 + np.exp(-x.astype("float64")))  # noqa: E731
    s_r, s_w, s_f = sigmoid(real[:, 0]), sigmoid(mismatch[:, 0]), sigmoid(fake[:, 0])
    expected = -np.mean(np.log(s_r)) - (np.sum(weights * np.log(1 - s_w)) / weights.sum() + np.mean(np.log(1 - s_f))) / 2
    np.testing.assert_allclose(float(discriminator_loss(real, mismatch, fake, weights)), expected, rtol=1e-5)
    smoothed = -np.mean(0.9 * np.log(s_r) + 0.1 * np.log(1 - s_r)) - (np.mean(np.log(1 - s_w)) + np.mean(np.log(1 - s_f))) / 2
    np.testing.assert_allclose(float(discriminator_loss(real, mismatch, fake, label_smoothing=0.1)), smoothed, rtol=1e-5)
    np.testing.assert_allclose(float(generator_loss(fake)), -np.mean(np.log(s_f)), rtol=1e-5)
    # No mismatched pair at all (one class): that term is 0, not NaN.
    none = float(discriminator_loss(real, mismatch, fake, np.zeros(6, "float32")))
    np.testing.assert_allclose(none, np.mean(softplus(-real[:, 0])) + np.mean(softplus(fake[:, 0])) / 2, rtol=1e-5)


def test_the_training_losses_pair_real_mismatched_and_generated_images_as_gan_cls_says(monkeypatch):
    """`test_step`'s d_loss equals the formula on the task's own logits: real images with their
    texts, with the texts rolled by one (same-class rolls left out), generated images with theirs."""
    model = colour_gan()
    x, labels = batch_of(model, 8)
    noise = np.random.default_rng(1).normal(size=(8, 4)).astype("float32")
    monkeypatch.setattr(model, "_draw_noise", lambda batch: tf.constant(noise))
    logs = model.test_step((x, labels))
    features = model.text_model(x["text"], training=False)
    fake = model.generator([tf.constant(noise), features], training=False)
    logits = [model.discriminate(images, f).numpy()[:, 0] for images, f in
              ((x["image"], features), (x["image"], np.roll(features.numpy(), 1, axis=0)), (fake, features))]
    s_r, s_w, s_f = (1 / (1 + np.exp(-v.astype("float64"))) for v in logits)
    weights = labels != np.roll(labels, 1)
    expected_d = -np.mean(np.log(s_r)) - (np.mean(np.log(1 - s_w[weights])) + np.mean(np.log(1 - s_f))) / 2
    np.testing.assert_allclose(float(logs["d_loss"]), expected_d, rtol=1e-5)
    np.testing.assert_allclose(float(logs["g_loss"]), -np.mean(np.log(s_f)), rtol=1e-5)
    np.testing.assert_allclose(float(logs["loss"]), expected_d - np.mean(np.log(s_f)), rtol=1e-5)


@pytest.mark.parametrize("frozen", ["generator", "discriminator"])
def test_each_loss_trains_its_own_network_and_the_text_encoder_is_the_discriminators(frozen):
    model = colour_gan()
    still = keras.optimizers.Adam(learning_rate=0.0)
    if frozen == "generator":
        model.compile(optimizer=still, discriminator_optimizer=keras.optimizers.Adam(1e-2))
    else:
        model.compile(optimizer=keras.optimizers.Adam(1e-2), discriminator_optimizer=still)
    parts = {"generator": model.generator, "text_encoder": model.text_model,
             "discriminator": [model.discriminator_trunk, model.discriminator_head]}
    before = {k: [np.array(v) for p in np.atleast_1d(part) for v in p.trainable_variables] for k, part in parts.items()}
    x, y = batch_of(model, 16)
    model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    after = {k: [np.array(v) for p in np.atleast_1d(part) for v in p.trainable_variables] for k, part in parts.items()}
    moved = {k: any(not np.array_equal(a, b) for a, b in zip(before[k], after[k])) for k in parts}
    if frozen == "generator":
        assert moved == {"generator": False, "text_encoder": True, "discriminator": True}
    else:
        assert moved == {"generator": True, "text_encoder": False, "discriminator": False}


# ---------------------------------------------------------------------------------------------
# Training, generation, answers.


def test_training_gives_finite_losses_and_test_metrics(trained):
    x, y = batch_of(trained, 16, seed=3)
    history = trained.fit(x, y, batch_size=8, epochs=2, verbose=0)
    assert sorted(history.history) == ["d_loss", "g_loss", "loss"]
    assert all(np.isfinite(v).all() for v in history.history.values())
    metrics = trained.evaluate(x, y, batch_size=8, verbose=0, return_dict=True)
    assert sorted(metrics) == ["d_loss", "g_loss", "loss"] and all(np.isfinite(list(metrics.values())))
    unlabelled = trained.evaluate(x, batch_size=8, verbose=0, return_dict=True)  # labels are optional
    assert np.isfinite(unlabelled["d_loss"])


def test_generate_is_seeded_in_range_and_of_the_image_shape(trained):
    texts = ["a red square", "blue colour", "a yellow square"]
    images = trained.generate(texts, seed=7)
    assert images.shape == (3, 8, 8, 3) and images.dtype == np.float32
    assert images.min() >= 0 and images.max() <= 1
    np.testing.assert_array_equal(trained.generate(texts, seed=7), images)
    assert np.abs(trained.generate(texts, seed=8) - images).max() > 1e-3
    np.testing.assert_array_equal(trained.generate(texts, noise=trained.noise_for(3, 7)), images)
    for seed in (0, 2**31, 2**32 - 1):  # every seed check_seed allows: the draw the export makes
        expected = tf.random.stateless_normal([3, 4], seed=tf.constant([seed, 0], tf.int64)).numpy()
        np.testing.assert_array_equal(trained.noise_for(3, seed), expected)
    ids = trained.preprocessor.texts_to_ids(texts).numpy()
    np.testing.assert_allclose(trained.generate(ids, seed=7), images, atol=1e-6)  # token ids too
    assert trained.generate([], seed=1).shape == (0, 8, 8, 3)
    # The text conditions the image: one noise, four colours, four different images.
    colours = trained.generate([f"{c} colour" for c in COLOURS], noise=np.repeat(trained.noise_for(1, 0), 4, axis=0))
    assert min(np.abs(colours[i] - colours[j]).max() for i in range(4) for j in range(i)) > 1e-3


def test_answer_draws_images_or_judges_pairs(trained):
    drawn = trained.answer(text=["red colour", "green colour"], seed=1)
    assert len(drawn) == 2 and drawn[0]["image"].shape == (8, 8, 3) and drawn[0]["image"].dtype == np.uint8
    np.testing.assert_array_equal(drawn[0]["image"], np.round(trained.generate(["red colour"], seed=1)[0] * 255))
    images, texts, _ = colour_pairs(2, seed=4)
    judged = trained.answer(image=images, text=texts)
    score = trained.predict(trained.prepare_inputs(image=images, text=texts), verbose=0)["real_score"][:, 0]
    assert [a["real_score"] for a in judged] == pytest.approx(score.tolist(), abs=1e-6)
    assert all(a["answer"] in ("real", "fake") and a["probability"] >= 0.5 for a in judged)


def test_raw_text_model_trains_generates_and_saves(tmp_path):
    model = colour_gan(raw_text=True)
    assert model.input_kinds["text"] == "text"
    x, y = batch_of(model, 16)
    history = model.fit(x, y, batch_size=8, epochs=2, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    model.save(tmp_path / "gan.keras")
    loaded = keras.saving.load_model(tmp_path / "gan.keras", safe_mode=True)
    np.testing.assert_allclose(loaded.generate(["red colour"], seed=3), model.generate(["red colour"], seed=3), atol=1e-6)


def test_saving_keeps_both_optimizers_and_the_generator(trained, tmp_path):
    trained.save(tmp_path / "gan.keras")
    loaded = keras.saving.load_model(tmp_path / "gan.keras", safe_mode=True)
    for name in ("optimizer", "discriminator_optimizer"):
        ours, theirs = getattr(trained, name), getattr(loaded, name)
        assert int(theirs.iterations.numpy()) == int(ours.iterations.numpy()) > 0, name
        assert len(theirs.variables) == len(ours.variables)
        for a, b in zip(ours.variables, theirs.variables):
            np.testing.assert_array_equal(np.array(a), np.array(b))
    assert loaded.optimizer.get_config()["beta_1"] == 0.5
    np.testing.assert_array_equal(loaded.generate(["blue colour"], seed=2), trained.generate(["blue colour"], seed=2))


def test_mixed_precision_trains_and_generates_float32():
    with mmkeras.precision.precision_scope("mixed_bfloat16"):
        model = colour_gan()
    x, y = batch_of(model, 16)
    history = model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    assert model.generate(["red colour"], seed=0).dtype == np.float32
    assert model.predict(x, verbose=0)["real_score"].dtype == np.float32


# ---------------------------------------------------------------------------------------------
# Sample grids.


def test_sample_grid_callback_writes_pngs(tmp_path):
    model = colour_gan()
    grid = SampleGrid(["red colour", "blue colour"], columns=3, folder=str(tmp_path / "grids"))
    x, y = batch_of(model, 16)
    model.fit(x, y, batch_size=8, epochs=2, verbose=0, callbacks=[grid])
    assert sorted(os.listdir(tmp_path / "grids")) == ["epoch_001.png", "epoch_002.png"]
    png = tf.io.decode_png((tmp_path / "grids" / "epoch_002.png").read_bytes()).numpy()
    assert png.shape == (2 * 8 + 1, 3 * 8 + 2, 3)
    assert grid.images["epoch_002.png"] == (tmp_path / "grids" / "epoch_002.png").read_bytes()
    # The grid is the samples of fixed noise: row i holds texts[i], column j noise j.
    expected = model.generate(["red colour"] * 3 + ["blue colour"] * 3, noise=np.tile(model.noise_for(3, 0), (2, 1)))
    np.testing.assert_array_equal(png, image_grid(expected, rows=2))


def test_training_callbacks_and_run_files_give_one_grid_per_epoch():
    model = colour_gan()
    callbacks = model.training_callbacks()
    assert model.sample_texts() == [f"a photo of a {c}" for c in COLOURS]
    x, y = batch_of(model, 16)
    model.fit(x, y, batch_size=8, epochs=2, verbose=0, callbacks=callbacks)
    files = model.run_files()
    assert sorted(files) == ["samples/epoch_001.png", "samples/epoch_002.png"]
    assert tf.io.decode_png(files["samples/epoch_001.png"]).shape == (4 * 9 - 1, 8 * 9 - 1, 3)
    bare = ConditionalGAN(**TINY, sequence_length=4, vocab_size=20)  # no class names: nothing to draw
    assert bare.training_callbacks() == [] and bare.run_files() == {}


def test_mmkeras_train_writes_the_sample_grids_into_the_run_folder(tmp_path):
    images, texts, classes = colour_pairs(48, seed=5)
    pairs = lambda rows: mmkeras.data.Examples(images[rows], [texts[i] for i in rows], labels=classes[rows],  # noqa: E731
                                               class_names=COLOURS, verbose=False)
    splits = mmkeras.data.DatasetSplits(
        name="colours", train=pairs(range(32)), validation=None, test=pairs(range(32, 48)), class_names=COLOURS,
        task="retrieval", output_name="real_score", image_shape=(8, 8, 3), sequence_length=4,
    )
    overrides = {k: v for k, v in TINY.items() if k != "image_shape"}
    result = mmkeras.train("text_gan", splits, epochs=2, batch_size=16, output=str(tmp_path / "run"), verbose=0,
                           export=False, model_overrides=overrides)
    assert sorted(os.listdir(tmp_path / "run" / "samples")) == ["epoch_001.png", "epoch_002.png"]
    assert result.metrics["task_class"] == "ConditionalGAN" and np.isfinite(result.metrics["test_loss"])
    assert result.metrics["test_generated_diversity"] >= 0 and result.metrics["test_real_diversity"] > 0
    # A second run replaces the first run's folder, its samples included; a user's file there is kept.
    mmkeras.train("text_gan", splits, epochs=1, batch_size=16, output=str(tmp_path / "run"), verbose=0,
                  export=False, model_overrides=overrides)
    assert sorted(os.listdir(tmp_path / "run" / "samples")) == ["epoch_001.png"]
    (tmp_path / "run" / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match=r"also holds files a run does not write: \['notes.txt'\]"):
        mmkeras.train("text_gan", splits, epochs=1, batch_size=16, output=str(tmp_path / "run"), verbose=0,
                      export=False, model_overrides=overrides)


# ---------------------------------------------------------------------------------------------
# Evaluation functions.


class ConstantClassifier:
    """Says class `label` for every image."""

    def __init__(self, label, classes=4):
        self.label, self.classes = label, classes

    def predict(self, images, batch_size=None, verbose=0):
        return np.eye(self.classes)[np.full(len(images), self.label)]


def test_conditional_accuracy_and_diversity(trained):
    texts, labels = [f"{COLOURS[i % 4]} colour" for i in range(12)], np.arange(12) % 4
    assert conditional_accuracy(trained, ConstantClassifier(1), texts, labels) == pytest.approx(0.25)
    rng = np.random.default_rng(0)
    images, classes = rng.random((9, 4, 4, 1)), np.array([0, 1, 0, 1, 0, 1, 2, 2, 2])
    brute = {c: np.mean([np.linalg.norm(a - b) for i, a in enumerate(images[classes == c])
                         for b in images[classes == c][i + 1:]]) for c in (0, 1, 2)}
    assert image_diversity(images, classes) == pytest.approx(brute)
    assert image_diversity(np.repeat(images[:1], 3, axis=0), np.zeros(3, int)) == pytest.approx({0: 0.0}, abs=1e-6)
    generated = class_diversity(trained, texts, labels, seed=0)
    assert sorted(generated) == [0, 1, 2, 3] and all(v > 0 for v in generated.values())


# ---------------------------------------------------------------------------------------------
# Bad arguments.


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"noise_dim": 0}, r"`noise_dim` must be a positive integer. Received: noise_dim=0"),
        ({"condition_dim": 2.5}, r"`condition_dim` must be a positive integer"),
        ({"generator_filters": (8, 4, 2, 2)}, r"`image_shape`'s height and width must be divisible by 2\*\*len\(generator_filters\) = 16"),
        ({"discriminator_filters": ()}, r"`discriminator_filters` must be a positive integer or a sequence"),
        ({"conditioning": "concatenate"}, r"`conditioning` must be one of \['concat', 'projection'\] \(did you mean 'concat'\?\)"),
        ({"dropout": 1.5}, r"`dropout` must be a number in \[0, 1\)"),
        ({"label_smoothing": -0.1}, r"`label_smoothing` must be a number in \[0, 1\)"),
        ({"learning_rate": 0}, r"`learning_rate` must be a number > 0"),
        ({"beta_1": 1.0}, r"`beta_1` must be a number >= 0.0 and < 1.0"),
        ({"seed": -1}, r"`seed` must be an integer from 0"),
        ({"text_encoder": None}, r"needs a text encoder"),
        ({"text_encoder": {"kind": "embedding"}}, r"must give one vector per text"),
    ],
)
def test_bad_arguments_are_refused(overrides, message):
    with pytest.raises(ValueError, match=message):
        ConditionalGAN(**{**TINY, **overrides}, sequence_length=4, vocab_size=20)


def test_bad_calls_are_refused(trained):
    with pytest.raises(ValueError, match="leave it out of compile"):
        colour_gan().compile(loss="mse")
    with pytest.raises(ValueError, match=r"Give `seed` or `noise`, not both"):
        trained.generate(["red colour"], seed=1, noise=np.zeros((1, 4)))
    with pytest.raises(ValueError, match=r"`noise` must be finite floats of shape \(1, 4\)"):
        trained.generate(["red colour"], noise=np.zeros((1, 5)))
    with pytest.raises(ValueError, match=r"`seed` must be an integer from 0"):
        trained.generate(["red colour"], seed=1.5)
    with pytest.raises(ValueError, match="must be a sequence of strings, not one string"):
        trained.generate("red colour")
    with pytest.raises(ValueError, match="one int class index per pair"):
        trained.check_labels(np.ones((3, 2)))
    with pytest.raises(ValueError, match="MultiWorkerMirroredStrategy loop"):
        trained.compute_loss()
    with pytest.raises(ValueError, match="`text` must be the descriptions to draw"):
        trained.answer(image=np.zeros((1, 8, 8, 3), "uint8"))
    with pytest.raises(ValueError, match="`labels` must be one int class index per text"):
        conditional_accuracy(trained, ConstantClassifier(0), ["red colour"], [0.5])
    with pytest.raises(ValueError, match="`classifier` must be a Keras model"):
        conditional_accuracy(trained, "classifier", ["red colour"], [0])


# ---------------------------------------------------------------------------------------------
# Distribution.

MIRRORED = r"""
import json
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
import keras, numpy as np
import mmkeras
strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
with strategy.scope():
    model = mmkeras.get_model("text_gan", **mmkeras.get_entry("text_gan").tiny)
rng = np.random.default_rng(0)
x = {"image": rng.random((16, 8, 8, 1), dtype=np.float32), "text": rng.integers(2, 50, (16, 8)).astype("int32")}
before = [np.array(v) for v in model.trainable_variables]
history = model.fit(x, rng.integers(0, 4, 16), batch_size=8, epochs=2, verbose=0)
moved = all(not np.array_equal(a, np.array(b)) for a, b in zip(before, model.trainable_variables))
noise = strategy.run(tf.function(lambda: model._draw_noise(2)))
local = [t.numpy() for t in strategy.experimental_local_results(noise)]
print(json.dumps({"replicas": strategy.num_replicas_in_sync, "history": history.history, "moved": moved,
                  "noise_differs": bool(np.abs(local[0] - local[1]).max() > 0.1),
                  "evaluate": model.evaluate(x, batch_size=8, verbose=0, return_dict=True)}))
"""


def test_mirrored_strategy_trains_with_plain_fit():
    """Two logical CPU devices: fit trains every variable, each replica draws its own noise."""
    done = subprocess.run([sys.executable, "-c", MIRRORED], capture_output=True, text=True, env=ENV, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["replicas"] == 2 and result["moved"] and result["noise_differs"], result
    assert all(np.isfinite(v).all() for v in result["history"].values())
    assert all(np.isfinite(v) for v in result["evaluate"].values())


# ---------------------------------------------------------------------------------------------
# Export.


def check_served(model, loaded, texts):
    """The exported signatures answer as the live model."""
    served = loaded.signatures["serving_default"](text=tf.constant(texts), seed=tf.constant(5, tf.int64))
    np.testing.assert_allclose(served["image"].numpy(), model.generate(texts, seed=5), atol=1e-5)
    pngs = [tf.io.decode_png(png).numpy() for png in served["png"].numpy()]
    np.testing.assert_array_equal(np.stack(pngs), np.round(np.clip(served["image"].numpy(), 0, 1) * 255).astype("uint8"))
    noise = np.random.default_rng(2).normal(size=(len(texts), model.noise_dim)).astype("float32")
    from_noise = loaded.signatures["generate_from_noise"](text=tf.constant(texts), noise=tf.constant(noise))
    np.testing.assert_allclose(from_noise["image"].numpy(), model.generate(texts, noise=noise), atol=1e-5)
    empty = loaded.signatures["serving_default"](text=tf.constant([], tf.string), seed=tf.constant(0, tf.int64))
    assert empty["image"].shape[0] == 0 and empty["png"].shape == (0,)


@pytest.mark.parametrize("name", GANS)
def test_every_gan_recipe_exports(name, tmp_path):
    vectorizer = text_vectorizer(["a red square", "blue colour"], vocab_size=64, sequence_length=8)
    model = tiny_model(name, preprocessor=Preprocessor.from_vectorizer(vectorizer, image_shape=(8, 8, 1)))
    mmkeras.export_model(model, str(tmp_path / "export"))
    loaded = tf.saved_model.load(str(tmp_path / "export"))
    assert sorted(loaded.signatures) == ["discriminate", "generate_from_noise", "serving_default"]
    check_served(model, loaded, ["a red square", "blue colour", "unknown words"])
    with pytest.raises(tf.errors.InvalidArgumentError, match="`seed` must be one int64 scalar"):
        loaded.signatures["serving_default"](text=tf.constant(["a"]), seed=tf.constant([1, 2], tf.int64))
    with pytest.raises(tf.errors.InvalidArgumentError, match="`noise` must be standard normal noise"):
        loaded.signatures["generate_from_noise"](text=tf.constant(["a"]), noise=tf.zeros([1, 3]))
    with open(tmp_path / "export" / "mmkeras_export.json") as f:
        described = json.load(f)
    assert described["task"] == "ConditionalGAN" and sorted(described["signatures"]) == sorted(loaded.signatures)


FRESH_PROCESS = r"""
import json, sys
import numpy as np
import tensorflow as tf
loaded = tf.saved_model.load(sys.argv[1])
texts = tf.constant(["a red square", "green colour"])
first = loaded.signatures["serving_default"](text=texts, seed=tf.constant(11, tf.int64))
again = loaded.signatures["serving_default"](text=texts, seed=tf.constant(11, tf.int64))
other = loaded.signatures["serving_default"](text=texts, seed=tf.constant(12, tf.int64))
score = loaded.signatures["discriminate"](image=tf.constant([open(sys.argv[2], "rb").read()] * 2), text=texts)
print(json.dumps({
    "image": first["image"].numpy().tolist(), "same": bool(np.array_equal(first["image"], again["image"])),
    "other": float(np.abs(first["image"].numpy() - other["image"].numpy()).max()),
    "png": len(first["png"].numpy()), "score": score["real_score"].numpy().tolist(),
    "mmkeras_imported": "mmkeras" in sys.modules,
}))
"""


@pytest.mark.slow  # a process that starts TensorFlow (about 15 s)
def test_export_answers_in_a_fresh_process_without_mmkeras(trained, tmp_path):
    folder = str(tmp_path / "export")
    mmkeras.export_model(trained, folder)
    images, _, _ = colour_pairs(1, seed=6)
    path = str(tmp_path / "image.png")
    tf.io.write_file(path, tf.io.encode_png(images[0]))
    done = subprocess.run([sys.executable, "-c", FRESH_PROCESS, folder, path], capture_output=True, text=True, env=ENV, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    served = json.loads(done.stdout.strip().splitlines()[-1])
    assert served["mmkeras_imported"] is False and served["same"] and served["other"] > 1e-3 and served["png"] == 2
    texts = ["a red square", "green colour"]
    np.testing.assert_allclose(served["image"], trained.generate(texts, seed=11), atol=1e-5)
    expected = [a["real_score"] for a in trained.answer(image=[path, path], text=texts)]
    np.testing.assert_allclose(np.array(served["score"])[:, 0], expected, atol=1e-5)


def test_docs_state_the_measured_numbers_and_the_parameter_count():
    """docs/gan.md shows the table benchmarks/gan.py wrote, and the recipe's parameter count."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    with open(os.path.join(root, "docs", "gan.md"), encoding="utf-8") as f:
        doc = f.read()
    for name in ("gan.json", "gan_concat.json"):
        with open(os.path.join(root, "benchmarks", "results", name), encoding="utf-8") as f:
            results = json.load(f)
        assert f"{results['conditional_accuracy']['generated']:.4f}" in doc, name
    assert results["settings"]["overrides"] == {"conditioning": "concat"}
    with open(os.path.join(root, "benchmarks", "results", "gan.json"), encoding="utf-8") as f:
        assert json.load(f)["table"] in doc
    assert f"{mmkeras.get_model('text_gan', compile=False).count_params():,} parameters in all" in doc
