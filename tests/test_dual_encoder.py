"""The dual encoder (CLIP / SigLIP): its losses, negatives from every replica, encoding, search,
zero-shot classification, retrieval metrics and its export."""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

import mmkeras
from mmkeras.preprocessing import Preprocessor, text_vectorizer
from mmkeras.retrieval import EmbeddingIndex, ranks, retrieval_metrics, top_k
from mmkeras.tasks import DualEncoder
from mmkeras.tasks.dual_encoder import LogitScale, contrastive_loss, sigmoid_loss
from tests.helpers import tiny_model

DUAL_ENCODERS = mmkeras.list_models(family="retrieval")
HERE = os.path.dirname(os.path.abspath(__file__))
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}

COLOURS = ["red", "green", "blue", "yellow"]
RGB = np.array([[230, 20, 20], [20, 200, 20], [20, 20, 230], [230, 230, 20]], "uint8")


def colour_pairs(n=64, seed=0):
    """Images of one colour (with noise) and a text naming it: a task a dual encoder learns in seconds."""
    rng = np.random.default_rng(seed)
    classes = rng.integers(0, len(COLOURS), n)
    noise = rng.integers(-20, 20, (n, 8, 8, 3))
    images = np.clip(RGB[classes][:, None, None, :].astype(int) + noise, 0, 255).astype("uint8")
    texts = [f"a {COLOURS[c]} square" if i % 2 else f"{COLOURS[c]} colour" for i, c in enumerate(classes)]
    return images, texts, classes


def colour_model(loss="contrastive", **overrides):
    images, texts, _ = colour_pairs()
    vectorizer = text_vectorizer(texts + [f"a photo of a {c}" for c in COLOURS], vocab_size=50, sequence_length=4)
    keras.utils.set_random_seed(0)
    model = DualEncoder(
        image_encoder={"kind": "cnn", "filters": (8,), "output": "avg"},
        text_encoder={"kind": "conv", "embedding_dim": 16, "filters": 16, "kernel_sizes": (1,)},
        embedding_dim=16, image_shape=(8, 8, 3), loss=loss, learning_rate=1e-2,
        text_vectorizer=vectorizer if overrides.pop("raw_text", False) else None,
        preprocessor=Preprocessor.from_vectorizer(vectorizer, image_shape=(8, 8, 3), class_names=COLOURS),
        sequence_length=4, vocab_size=len(vectorizer.get_vocabulary()), **overrides,
    )
    model.compile()
    return model


@pytest.fixture(scope="module")
def trained():
    """A dual encoder trained on colour pairs (about 2 s)."""
    model = colour_model()
    images, texts, classes = colour_pairs()
    inputs = {"image": images.astype("float32") / 255, "text": model.preprocessor.texts_to_ids(texts).numpy()}
    model.fit(inputs, classes, batch_size=32, epochs=30, verbose=0, shuffle=True)
    return model


# ---------------------------------------------------------------------------------------------
# Losses.


def numpy_losses(images, texts, scale, bias):
    logits = scale * images @ texts.T

    def cross_entropy(rows):
        rows = rows - rows.max(axis=1, keepdims=True)
        return -np.mean(np.diag(rows) - np.log(np.exp(rows).sum(axis=1)))

    contrastive = (cross_entropy(logits) + cross_entropy(logits.T)) / 2
    signs = 2 * np.eye(len(images)) - 1
    sigmoid = np.sum(np.log1p(np.exp(-signs * (logits + bias)))) / len(images)
    return contrastive, sigmoid


def test_losses_equal_their_numpy_definitions():
    rng = np.random.default_rng(0)
    images, texts = (v / np.linalg.norm(v, axis=1, keepdims=True) for v in rng.normal(size=(2, 6, 5)))
    expected = numpy_losses(images, texts, scale=5.0, bias=-2.0)
    got_contrastive = contrastive_loss(images.astype("float32"), texts.astype("float32"), LogitScale(5.0))
    got_sigmoid = sigmoid_loss(images.astype("float32"), texts.astype("float32"), LogitScale(5.0, initial_bias=-2.0))
    np.testing.assert_allclose([float(got_contrastive), float(got_sigmoid)], expected, rtol=1e-5)


def test_logit_scale_is_clamped_at_its_maximum():
    scale = LogitScale(initial_scale=10.0, max_scale=100.0)
    scale.log_scale.assign(np.log(1000.0))
    assert float(scale.scale()) == pytest.approx(100.0)
    with pytest.raises(ValueError, match="`max_scale` must be at least `initial_scale`"):
        LogitScale(initial_scale=200.0, max_scale=100.0)


def test_negatives_come_from_every_replica():
    """On 2 logical CPU devices the loss and gradients equal one device's on the same global batch;
    with negatives from the own replica only (the control) they do not."""
    script = os.path.join(HERE, "scripts", "dual_encoder_replicas.py")
    done = subprocess.run([sys.executable, script], capture_output=True, text=True, env=ENV, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads(done.stdout.strip().splitlines()[-1])
    for case, result in results.items():
        assert result["replicas"] == 2
        if "_local" in case:  # the control: the test can tell the difference
            assert result["loss_difference"] > 0.1, (case, result)
            continue
        assert result["loss_difference"] <= 1e-5 * max(1.0, result["loss"]), (case, result)
        assert result["gradient_difference"] <= 1e-5 * max(1.0, result["gradient_scale"]), (case, result)
    assert {"contrastive_8_4", "sigmoid_8_4", "contrastive_6_6", "sigmoid_6_6"} <= set(results)


# ---------------------------------------------------------------------------------------------
# Training, encoding, search, zero-shot.


def test_training_pulls_pairs_together(trained):
    images, texts, classes = colour_pairs(n=40, seed=1)  # new examples
    metrics = retrieval_metrics(trained.encode_images(images), trained.encode_texts(texts), classes)
    assert metrics["class_t2i_recall@1"] == 1.0 and metrics["class_i2t_recall@1"] == 1.0, metrics
    untrained = colour_model()
    before = retrieval_metrics(untrained.encode_images(images), untrained.encode_texts(texts), classes)
    assert before["class_t2i_recall@1"] < 0.9, before


def test_zero_shot_classifies_from_class_names(trained):
    images, _, classes = colour_pairs(n=40, seed=2)
    answers = trained.zero_shot_classify(images, COLOURS, templates=["a photo of a {}", "{} colour"])
    assert [COLOURS.index(a["answer"]) for a in answers] == classes.tolist()
    probabilities = trained.zero_shot_probabilities(images, COLOURS, ["a photo of a {}", "{} colour"])
    np.testing.assert_allclose(probabilities.sum(axis=1), 1, rtol=1e-5)
    assert [a["probability"] for a in answers] == pytest.approx(probabilities.max(axis=1).tolist(), rel=1e-6)
    # The prompt ensemble: each class's embedding is the normalised mean of its prompts' embeddings.
    prompts = trained.encode_texts(["a photo of a red", "red colour"]).mean(axis=0)
    np.testing.assert_allclose(
        trained.class_embeddings(COLOURS, ["a photo of a {}", "{} colour"])[0], prompts / np.linalg.norm(prompts), atol=1e-6
    )


def test_search_by_text_and_by_image(trained):
    images, texts, classes = colour_pairs(n=20, seed=3)
    index = trained.index_images(images, keys=[f"img{i}.png" for i in range(20)])
    hits = trained.search(index, texts=["a blue square"], k=3)[0]
    assert len(hits) == 3 and all(classes[int(key[3:-4])] == COLOURS.index("blue") for key, _ in hits)
    assert [s for _, s in hits] == sorted((s for _, s in hits), reverse=True)
    captions = trained.index_texts(["red colour", "green colour", "blue colour", "yellow colour"])
    best = [hits[0][0] for hits in trained.search(captions, images=images, k=1)]
    assert best == [f"{COLOURS[c]} colour" for c in classes]


def test_encodings_are_normalised_and_match_the_model(trained):
    images, texts, _ = colour_pairs(n=5, seed=4)
    embeddings = trained.encode_images(images, batch_size=2)
    np.testing.assert_allclose(np.linalg.norm(embeddings, axis=1), 1, rtol=1e-5)
    outputs = trained.predict(trained.prepare_inputs(image=images, text=texts), verbose=0)
    np.testing.assert_allclose(embeddings, outputs["image_embedding"], atol=1e-6)
    np.testing.assert_allclose(trained.encode_texts(texts), outputs["text_embedding"], atol=1e-6)
    assert trained.encode_texts([]).shape == (0, 16) and trained.encode_images(np.zeros((0, 8, 8, 3), "uint8")).shape == (0, 16)
    answers = trained.answer(image=images, text=texts)
    np.testing.assert_allclose([a["similarity"] for a in answers], np.sum(embeddings * trained.encode_texts(texts), axis=1), atol=1e-5)


@pytest.mark.parametrize("loss", ["contrastive", "sigmoid"])
def test_raw_text_model_saves_loads_and_trains(loss, tmp_path):
    model = colour_model(loss, raw_text=True)
    images, texts, classes = colour_pairs(n=32)
    history = model.fit({"image": images.astype("float32") / 255, "text": np.array(texts, dtype=object)}, classes, batch_size=16, epochs=4, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    assert isinstance(loaded, DualEncoder) and loaded.loss_kind == loss
    assert float(loaded.logit_scale.scale()) == pytest.approx(float(model.logit_scale.scale()))
    np.testing.assert_allclose(loaded.encode_texts(texts[:4]), model.encode_texts(texts[:4]), atol=1e-6)


def test_mixed_precision_keeps_float32_logits():
    with mmkeras.precision.precision_scope("mixed_bfloat16"):
        model = tiny_model("clip_small")
    assert model.logit_scale.compute_dtype == "float32"
    x = {"image": np.random.rand(4, 16, 16, 3).astype("float32"), "text": np.ones((4, 8), "int32")}
    outputs = model.predict(x, verbose=0)
    assert all(v.dtype == np.float32 for v in outputs.values())


# ---------------------------------------------------------------------------------------------
# Metrics and search on embeddings.


def brute_force_ranks(queries, items, relevant):
    """1 + the number of non-relevant items scored above the best relevant one, by full sorting."""
    similarity = queries @ items.T
    result = []
    for row, mask in zip(similarity, relevant):
        best = row[mask].max()
        result.append(1 + int(np.sum(row[~mask] > best)))
    return np.array(result)


def test_ranks_and_metrics_equal_a_brute_force_count():
    rng = np.random.default_rng(0)
    images, texts = rng.normal(size=(2, 50, 6)).astype("float32")
    labels = rng.integers(0, 5, 50)
    pair = np.eye(50, dtype=bool)
    same_class = labels[:, None] == labels[None, :]
    np.testing.assert_array_equal(ranks(texts, images, relevant=np.arange(50), batch_size=7), brute_force_ranks(texts, images, pair))
    np.testing.assert_array_equal(
        ranks(images, texts, query_labels=labels, item_labels=labels, batch_size=7), brute_force_ranks(images, texts, same_class)
    )
    metrics = retrieval_metrics(images, texts, labels, batch_size=7)
    found = brute_force_ranks(texts, images, same_class)
    assert metrics["class_t2i_recall@5"] == np.mean(found <= 5)
    assert metrics["class_t2i_mrr"] == pytest.approx(np.mean(1 / found))
    assert metrics["class_t2i_median_rank"] == np.median(found)
    assert metrics == retrieval_metrics(images, texts, labels, batch_size=1000)


def test_top_k_is_exact_and_independent_of_the_batch_size():
    rng = np.random.default_rng(1)
    queries, index = rng.normal(size=(37, 8)).astype("float32"), rng.normal(size=(101, 8)).astype("float32")
    scores, indices = top_k(queries, index, k=5, batch_size=4)
    expected = np.argsort(-(queries @ index.T), axis=1, kind="stable")[:, :5]
    np.testing.assert_array_equal(indices, expected)
    np.testing.assert_allclose(scores, np.take_along_axis(queries @ index.T, expected, axis=1), rtol=1e-6)
    assert np.array_equal(top_k(queries, index, k=5, batch_size=1000)[1], indices)
    assert EmbeddingIndex(index).search(queries[:1], k=500)[0][0][0] == expected[0, 0]  # k past the index: all of it


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: top_k(np.ones((2, 3), "float32"), np.ones((4, 2), "float32")), "must have the same width"),
        (lambda: top_k(np.ones((2, 3), "float32"), np.ones((4, 3), "float32"), k=0), r"`k` must be an integer from 1 to the 4"),
        (lambda: top_k(np.ones(3, "float32"), np.ones((4, 3), "float32")), r"`queries` must be float embeddings of shape \(n, dim\)"),
        (lambda: top_k(np.full((1, 2), np.nan, "float32"), np.ones((4, 2), "float32")), "must hold finite values"),
        (lambda: EmbeddingIndex(np.ones((3, 2), "float32"), keys=["a"]), "`keys` must name each of the 3"),
        (lambda: retrieval_metrics(np.ones((3, 2), "float32"), np.ones((4, 2), "float32")), "must be pairs of the same shape"),
        (lambda: retrieval_metrics(np.ones((3, 2), "float32"), np.ones((3, 2), "float32"), labels=[0.5, 1, 2]), "`labels` must be one int class"),
    ],
)
def test_bad_embeddings_are_refused(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_bad_arguments_are_refused(trained):
    config = dict(image_encoder={"kind": "cnn", "filters": (4,), "output": "avg"}, text_encoder="conv",
                  image_shape=(8, 8, 3), sequence_length=4, vocab_size=20)
    with pytest.raises(ValueError, match=r"`loss` must be one of \['contrastive', 'sigmoid'\]"):
        DualEncoder(loss="triplet", **config)
    with pytest.raises(ValueError, match="`temperature` must be a positive number"):
        DualEncoder(temperature=0, **config)
    with pytest.raises(ValueError, match="needs both towers"):
        DualEncoder(**{**config, "text_encoder": None})
    with pytest.raises(ValueError, match="leave it out of compile"):
        DualEncoder(**config).compile(loss="mse")
    with pytest.raises(ValueError, match="Give the queries as `texts` or as `images`"):
        trained.search(EmbeddingIndex(np.ones((2, 16), "float32")))
    with pytest.raises(ValueError, match="`index` must be a mmkeras.retrieval.EmbeddingIndex"):
        trained.search(np.ones((2, 16)), texts=["red"])
    with pytest.raises(ValueError, match="each with one '{}'"):
        trained.zero_shot_classify(np.zeros((1, 8, 8, 3), "uint8"), COLOURS, templates=["no slot"])
    with pytest.raises(ValueError, match="`class_names` must be a list of at least 2"):
        trained.zero_shot_classify(np.zeros((1, 8, 8, 3), "uint8"), ["red"])
    with pytest.raises(ValueError, match="one int class index per pair"):
        trained.check_labels(np.ones((3, 2)))


# ---------------------------------------------------------------------------------------------
# Export.

FRESH_PROCESS = r"""
import json, sys
import numpy as np
import tensorflow as tf
loaded = tf.saved_model.load(sys.argv[1])
images = [open(p, "rb").read() for p in sys.argv[2:]]
texts = ["a red square", "green colour"]
out = {
    "image": loaded.signatures["embed_image"](image=tf.constant(images))["image_embedding"].numpy().tolist(),
    "text": loaded.signatures["embed_text"](text=tf.constant(texts))["text_embedding"].numpy().tolist(),
    "similarity": loaded.signatures["serving_default"](image=tf.constant(images), text=tf.constant(texts))["similarity"].numpy().tolist(),
    "empty": list(loaded.signatures["embed_text"](text=tf.constant([], tf.string))["text_embedding"].shape),
    "mmkeras_imported": "mmkeras" in sys.modules,
}
print(json.dumps(out))
"""


@pytest.mark.slow  # two processes that start TensorFlow (about 30 s)
def test_export_answers_in_a_fresh_process_without_mmkeras(trained, tmp_path):
    import tensorflow as tf

    images, _, _ = colour_pairs(n=2, seed=5)
    paths = []
    for i, image in enumerate(images):
        paths.append(str(tmp_path / f"{i}.png"))
        tf.io.write_file(paths[-1], tf.io.encode_png(image))
    folder = str(tmp_path / "export")
    mmkeras.export_model(trained, folder)
    done = subprocess.run([sys.executable, "-c", FRESH_PROCESS, folder, *paths], capture_output=True, text=True, env=ENV, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    served = json.loads(done.stdout.strip().splitlines()[-1])
    assert served["mmkeras_imported"] is False and served["empty"] == [0, 16]
    expected_images, expected_texts = trained.encode_images(paths), trained.encode_texts(["a red square", "green colour"])
    np.testing.assert_allclose(served["image"], expected_images, atol=1e-5)
    np.testing.assert_allclose(served["text"], expected_texts, atol=1e-5)
    np.testing.assert_allclose(served["similarity"], expected_images @ expected_texts.T, atol=1e-5)
    cli = os.path.join(os.path.dirname(sys.executable), "saved_model_cli")
    shown = subprocess.run([cli, "show", "--dir", folder, "--all"], capture_output=True, text=True, env=ENV, timeout=300)
    assert shown.returncode == 0, shown.stderr[-2000:]
    for name in ("embed_image", "embed_text", "serving_default", "image_embedding", "text_embedding", "similarity"):
        assert name in shown.stdout, name
    with open(os.path.join(folder, "mmkeras_export.json")) as f:
        described = json.load(f)["signatures"]
    assert sorted(described) == ["embed_image", "embed_text", "serving_default"]


@pytest.mark.parametrize("name", DUAL_ENCODERS)
def test_every_dual_encoder_recipe_exports(name, tmp_path):
    vectorizer = text_vectorizer(["a red square", "blue colour"], vocab_size=64, sequence_length=8)
    model = tiny_model(name, preprocessor=Preprocessor.from_vectorizer(vectorizer, image_shape=(16, 16, 3)))
    mmkeras.export_model(model, str(tmp_path / "export"))
    import tensorflow as tf

    loaded = tf.saved_model.load(str(tmp_path / "export"))
    texts = ["a red square", "blue colour"]
    served = loaded.signatures["embed_text"](text=tf.constant(texts))["text_embedding"].numpy()
    np.testing.assert_allclose(served, model.encode_texts(texts), atol=1e-5)
    bad = tf.constant([b"not an image"])
    with pytest.raises(tf.errors.InvalidArgumentError, match="image\\[0\\]"):
        loaded.signatures["embed_image"](image=bad)


# ---------------------------------------------------------------------------------------------
# mmkeras.train, evaluate and the CLI.


def test_train_on_your_own_pairs_without_classes():
    images, texts, _ = colour_pairs(n=96, seed=6)
    pairs = lambda rows: mmkeras.data.Examples(images[rows], [texts[i] for i in rows], verbose=False)  # noqa: E731
    splits = mmkeras.data.DatasetSplits(
        name="colours", train=pairs(range(64)), validation=None, test=pairs(range(64, 96)), class_names=None,
        task="retrieval", output_name="similarity", image_shape=(8, 8, 3), sequence_length=4,
    )
    result = mmkeras.train("clip_small", splits, epochs=2, batch_size=16, output=False, verbose=0,
                           model_overrides={"image_encoder": {"filters": (8,)}, "embedding_dim": 16})
    metrics = result.metrics
    assert metrics["task_class"] == "DualEncoder" and metrics["head"] is None
    assert 0 <= metrics["test_t2i_recall@1"] <= 1 and metrics["test_t2i_median_rank"] >= 1
    assert not any(key.startswith("test_class_") or key == "test_zero_shot_accuracy" for key in metrics)
    from mmkeras.training.train import headline

    assert headline(metrics).startswith("Test text->image Recall@1: ")


def test_train_pairs_models_and_datasets_or_says_why(monkeypatch):
    def never(*args, **kwargs):
        raise AssertionError("a built-in dataset was loaded before the model was refused")

    monkeypatch.setattr(mmkeras.data, "load_dataset", never)  # refused from the registered task alone
    with pytest.raises(ValueError, match=r"'clip_small' \(DualEncoder\) trains on retrieval datasets, and `dataset` 'easy_vqa' is a multiclass dataset"):
        mmkeras.train("clip_small", "easy_vqa", limit=50, output=False, verbose=0)
    with pytest.raises(ValueError, match=r"'easy_vqa_descriptions' is a retrieval dataset: train 'clip_small', 'siglip_small', 'text_gan' on it"):
        mmkeras.train("vqa", "easy_vqa_descriptions", limit=50, output=False, verbose=0)


@pytest.mark.slow  # three processes that start TensorFlow (about 40 s)
def test_cli_trains_evaluates_and_predicts_a_dual_encoder(tmp_path):
    run = str(tmp_path / "run")
    common = [sys.executable, "-m", "mmkeras.cli"]
    trained = subprocess.run(
        [*common, "train", "--model", "siglip_small", "--dataset", "easy_vqa_descriptions", "--limit", "300",
         "--epochs", "1", "--max-steps", "2", "--tiny", "--output", run, "--log"],
        capture_output=True, text=True, env=ENV, timeout=600,
    )
    assert trained.returncode == 0, trained.stderr[-3000:]
    assert "Test text->image Recall@1: " in trained.stdout and "class-level: " in trained.stdout
    with open(os.path.join(run, "metrics.json")) as f:
        recorded = json.load(f)
    assert recorded["task_class"] == "DualEncoder" and 0 <= recorded["test_zero_shot_accuracy"] <= 1
    evaluated = subprocess.run([*common, "evaluate", run, "--limit", "100", "--json"], capture_output=True, text=True, env=ENV, timeout=600)
    assert evaluated.returncode == 0, evaluated.stderr[-3000:]
    metrics = json.loads(evaluated.stdout.strip().splitlines()[-1])
    assert {"loss", "t2i_recall@1", "class_i2t_mrr", "zero_shot_accuracy"} <= set(metrics)
    image = str(tmp_path / "shape.png")
    import tensorflow as tf

    tf.io.write_file(image, tf.io.encode_png(np.full((64, 64, 3), 200, "uint8")))
    predicted = subprocess.run([*common, "predict", run, image, "a red circle"], capture_output=True, text=True, env=ENV, timeout=600)
    assert predicted.returncode == 0, predicted.stderr[-3000:]
    assert predicted.stdout.startswith("similarity ")
