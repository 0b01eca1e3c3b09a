"""The captioner: teacher forcing with a masked loss, greedy and beam-search decoding in one graph
(checked against brute force), BLEU through `extra_metrics`, and its export (bytes -> captions)."""

import itertools
import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

import mmkeras
from mmkeras.preprocessing import Preprocessor, text_vectorizer
from mmkeras.tasks import Captioner
from mmkeras.tasks.captioner import caption_targets, standardize_caption
from tests.helpers import tiny_model

CAPTIONERS = mmkeras.list_models(family="captioning")
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}

COLOURS = ["red", "green", "blue", "yellow"]
SHAPES = ["square", "circle"]
RGB = np.array([[230, 20, 20], [20, 200, 20], [20, 20, 230], [230, 230, 20]], "uint8")


def colour_scenes(n=96, seed=0):
    """8x8 images of one colour, brighter or darker, captioned `"a <colour> square"` (bright) or
    `"one <colour> circle on white"` (dark): captions of 3 and 4 words a captioner learns in seconds."""
    rng = np.random.default_rng(seed)
    colours, shapes = rng.integers(0, len(COLOURS), n), rng.integers(0, 2, n)
    noise = rng.integers(-15, 15, (n, 8, 8, 3))
    base = RGB[colours][:, None, None, :].astype(int) // np.where(shapes == 1, 3, 1)[:, None, None, None]
    images = np.clip(base + noise, 0, 255).astype("uint8")
    texts = [f"a {COLOURS[c]} square" if s == 0 else f"one {COLOURS[c]} circle on white" for c, s in zip(colours, shapes)]
    return images, texts


def small_captioner(decoder="transformer", texts=None, **overrides):
    texts = colour_scenes()[1] if texts is None else texts
    vectorizer = text_vectorizer(texts, vocab_size=20, sequence_length=5)
    settings = dict(image_encoder={"kind": "cnn", "filters": (16,), "padding": "same", "output": "sequence"},
                    decoder=decoder, units=32, num_layers=1, num_heads=2, dropout=0.0, image_shape=(8, 8, 3),
                    sequence_length=5, vocab_size=20, beam_width=3, learning_rate=3e-3,
                    preprocessor=Preprocessor.from_vectorizer(vectorizer, image_shape=(8, 8, 3)))
    return Captioner(**{**settings, **overrides})


def inputs_of(model, images, texts):
    return {"image": images.astype("float32") / 255.0, "text": model.preprocessor.texts_to_ids(texts).numpy()}


@pytest.fixture(scope="module")
def trained():
    keras.utils.set_random_seed(0)
    images, texts = colour_scenes()
    model = small_captioner()
    model.compile()
    model.fit(inputs_of(model, images, texts), epochs=60, batch_size=32, verbose=0)
    return model


def test_targets_end_each_caption_and_the_loss_masks_padding():
    ids = np.array([[4, 5, 0, 0], [6, 7, 8, 9]], "int32")
    np.testing.assert_array_equal(caption_targets(ids, end_id=12), [[4, 5, 12, 0, 0], [6, 7, 8, 9, 12]])
    model = small_captioner()
    model.compile()
    images, texts = colour_scenes(n=6, seed=3)
    x = inputs_of(model, images, texts)
    logits = model.predict(x, verbose=0)["caption"]
    targets = caption_targets(x["text"], model.end_id).numpy()
    log_probs = logits - np.log(np.exp(logits - logits.max(-1, keepdims=True)).sum(-1, keepdims=True)) - logits.max(-1, keepdims=True)
    picked = np.take_along_axis(log_probs, targets[..., None], axis=-1)[..., 0]
    mask = targets != 0
    expected_loss = -(picked * mask).sum() / mask.sum()
    expected_accuracy = ((logits.argmax(-1) == targets) * mask).sum() / mask.sum()
    result = model.evaluate(x, verbose=0, return_dict=True, batch_size=6)
    assert result["loss"] == pytest.approx(expected_loss, rel=1e-5)
    assert result["token_accuracy"] == pytest.approx(expected_accuracy, abs=1e-6)
    # The padding's logits do not count: changing them leaves the loss alone.
    assert mask.sum() < mask.size


def _sequence_log_prob(model, image, words):
    """Log-probability of caption `words` (ids) then [end], from one teacher-forced pass."""
    ids = np.zeros((1, model.get_config()["sequence_length"]), "int32")
    ids[0, : len(words)] = words
    logits = model.predict({"image": image[None], "text": ids}, verbose=0)["caption"][0].astype("float64")
    log_probs = logits - np.log(np.exp(logits - logits.max(-1, keepdims=True)).sum(-1, keepdims=True)) - logits.max(-1, keepdims=True)
    sequence = [*words, model.end_id]
    return sum(log_probs[t, token] for t, token in enumerate(sequence))


def test_beam_search_finds_the_most_likely_caption_and_greedy_follows_the_argmax():
    keras.utils.set_random_seed(1)
    model = Captioner(image_encoder={"kind": "cnn", "filters": (4,), "output": "sequence"}, units=8,
                      num_layers=1, num_heads=2, image_shape=(4, 4, 3), sequence_length=2, vocab_size=5, dropout=0.0)
    # Larger logits than at initialisation, so the likely captions differ between images.
    out = model.get_layer("caption")
    out.kernel.assign(out.kernel * 40.0)
    images = np.random.default_rng(0).random((3, 4, 4, 3)).astype("float32")
    words = range(1, 5)  # [UNK] and the three words; padding and [start] are never produced
    candidates = [list(c) for k in range(3) for c in itertools.product(words, repeat=k)]
    for image, beam, greedy in zip(images, model.generate(images, beam_width=25), model.generate(images, beam_width=1)):
        scores = {tuple(c): _sequence_log_prob(model, image, c) for c in candidates}
        best = max(scores, key=scores.get)
        assert beam["caption"] == " ".join(model._words()[i] for i in best)
        assert beam["score"] == pytest.approx(scores[best], abs=1e-4)  # 21 captions: width 25 is exhaustive
        # Never below greedy (to float32 rounding: the two search in batches of different sizes, and a
        # log-probability of -43 differed by 2.3e-5 between them in a CI run).
        assert beam["score"] >= greedy["score"] - 1e-4
        # Greedy: the argmax at each position, given its own previous tokens.
        chosen = []
        for t in range(3):
            ids = np.zeros((1, 2), "int32")
            ids[0, : len(chosen)] = chosen
            logits = model.predict({"image": image[None], "text": ids}, verbose=0)["caption"][0, t]
            logits[[0, model.start_id]] = -np.inf
            if t == 2:
                logits[:] = -np.inf
                logits[model.end_id] = 0
            token = int(np.argmax(logits))
            if token == model.end_id:
                break
            chosen.append(token)
        assert greedy["caption"] == " ".join(model._words()[i] for i in chosen)
        assert greedy["score"] == pytest.approx(_sequence_log_prob(model, image, chosen), abs=1e-4)


@pytest.mark.parametrize("decoder", ["transformer", "lstm"])
def test_a_captioner_learns_to_caption_with_model_fit(decoder, trained):
    images, texts = colour_scenes(n=40, seed=9)
    if decoder == "transformer":
        model = trained
    else:
        keras.utils.set_random_seed(0)
        model = small_captioner("lstm", units=64)
        model.compile()
        train_images, train_texts = colour_scenes()
        model.fit(inputs_of(model, train_images, train_texts), epochs=60, batch_size=32, verbose=0)
    metrics = model.caption_metrics(mmkeras.data.Examples(images, texts, verbose=False), beam_width=3)
    assert metrics["exact_match"] >= 0.9 and metrics["bleu4"] >= 0.9, metrics
    greedy = model.caption_metrics(mmkeras.data.Examples(images, texts, verbose=False), beam_width=1)
    assert greedy["exact_match"] >= 0.9, greedy


def test_extra_metrics_report_bleu_and_exact_match_for_greedy_and_beam(trained):
    images, texts = colour_scenes(n=20, seed=4)
    metrics = trained.extra_metrics(mmkeras.data.Examples(images, texts, verbose=False))
    assert sorted(metrics) == sorted(f"{d}_{m}" for d in ("greedy", "beam")
                                     for m in ("bleu1", "bleu2", "bleu3", "bleu4", "exact_match"))
    assert all(0 <= v <= 1 for v in metrics.values())
    # A wrong reference set lowers BLEU: the metric reads the references.
    wrong = trained.caption_metrics(mmkeras.data.Examples(images, ["a blue circle"] * 20, verbose=False))
    assert wrong["exact_match"] < metrics["beam_exact_match"]


def test_generate_takes_raw_images_and_answer_refuses_a_text(trained, tmp_path):
    import tensorflow as tf

    images, texts = colour_scenes(n=3, seed=7)
    path = str(tmp_path / "scene.png")
    tf.io.write_file(path, tf.io.encode_png(images[0]))
    from_path = trained.answer(image=[path])[0]
    from_array = trained.generate(images)[0]
    assert from_path["caption"] == from_array["caption"] == standardize_caption(texts[0])
    assert trained.generate(images[:0]) == []
    with pytest.raises(ValueError, match="A captioner writes the text itself"):
        trained.answer(image=[path], text=["a red square"])
    with pytest.raises(ValueError, match="`beam_width` must be a positive int"):
        trained.generate(images, beam_width=0)


def test_bad_arguments_are_refused_by_name():
    with pytest.raises(ValueError, match="`decoder` must be one of"):
        small_captioner("gru")
    with pytest.raises(ValueError, match="`num_heads` must divide `units`"):
        small_captioner(units=30, num_heads=4)
    with pytest.raises(ValueError, match="`vocab_size` must cover the preprocessor's vocabulary"):
        small_captioner(vocab_size=5)
    with pytest.raises(ValueError, match="`loss` of a Captioner is its own"):
        small_captioner().compile(loss="mse")
    with pytest.raises(ValueError, match="takes no labels"):
        small_captioner().check_labels(np.zeros(3))


def test_image_encoders_can_return_a_sequence():
    from mmkeras.parts import build_image_encoder

    assert build_image_encoder({"kind": "cnn", "filters": (4, 8), "output": "sequence"}, (16, 16, 3)).output_shape == (None, 4, 8)
    assert build_image_encoder({"kind": "residual_cnn", "filters": (4, 8), "output": "sequence"}, (16, 16, 3)).output_shape == (None, 64, 8)
    applications = build_image_encoder({"kind": "applications", "backbone": "MobileNetV3Small", "pooling": "sequence"}, (64, 64, 3))
    assert applications.output_shape == (None, 4, 576)
    with pytest.raises(ValueError, match="`output` must be one of"):
        build_image_encoder({"kind": "residual_cnn", "output": "flatten"}, (16, 16, 3))


FRESH_PROCESS = r"""
import json, sys
import tensorflow as tf
loaded = tf.saved_model.load(sys.argv[1])
images = [open(p, "rb").read() for p in sys.argv[2:]]
out = loaded.signatures["serving_default"](image=tf.constant(images))
empty = loaded.signatures["serving_default"](image=tf.constant([], tf.string))
print(json.dumps({"caption": [c.decode() for c in out["caption"].numpy()], "score": out["score"].numpy().tolist(),
                  "empty": list(empty["caption"].shape), "mmkeras_imported": "mmkeras" in sys.modules}))
"""


@pytest.mark.slow  # processes that start TensorFlow (about 30 s)
def test_export_captions_image_bytes_in_a_fresh_process(trained, tmp_path):
    import tensorflow as tf

    images, _ = colour_scenes(n=3, seed=11)
    paths = []
    for i, image in enumerate(images):
        paths.append(str(tmp_path / f"{i}.png"))
        tf.io.write_file(paths[-1], tf.io.encode_png(image))
    folder = str(tmp_path / "export")
    mmkeras.export_model(trained, folder)
    done = subprocess.run([sys.executable, "-c", FRESH_PROCESS, folder, *paths], capture_output=True, text=True, env=ENV, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    served = json.loads(done.stdout.strip().splitlines()[-1])
    expected = trained.generate(paths)
    assert served["caption"] == [e["caption"] for e in expected]
    np.testing.assert_allclose(served["score"], [e["score"] for e in expected], atol=1e-4)
    assert served["empty"] == [0] and served["mmkeras_imported"] is False
    cli = os.path.join(os.path.dirname(sys.executable), "saved_model_cli")
    request = str(tmp_path / "request.npz")
    np.savez(request, image=np.array([open(p, "rb").read() for p in paths], dtype=object))
    outdir = tmp_path / "cli_out"
    ran = subprocess.run([cli, "run", "--dir", folder, "--tag_set", "serve", "--signature_def", "serving_default",
                          "--inputs", f"image={request}[image]", "--outdir", str(outdir)],
                         capture_output=True, text=True, env=ENV, timeout=300)
    assert ran.returncode == 0, ran.stderr[-2000:]
    captions = np.load(outdir / "caption.npy", allow_pickle=True)
    assert [c.decode() for c in captions] == [e["caption"] for e in expected]


@pytest.mark.parametrize("name", CAPTIONERS)
def test_every_captioner_recipe_exports(name, tmp_path):
    import tensorflow as tf

    vectorizer = text_vectorizer(["a red square", "one blue circle on white"], vocab_size=40, sequence_length=6)
    model = tiny_model(name, preprocessor=Preprocessor.from_vectorizer(vectorizer, image_shape=(16, 16, 3)))
    mmkeras.export_model(model, str(tmp_path / "export"))
    loaded = tf.saved_model.load(str(tmp_path / "export"))
    image = tf.io.encode_png(np.full((16, 16, 3), 90, "uint8"))
    served = loaded.signatures["serving_default"](image=tf.stack([image, image]))
    expected = model.generate(np.full((2, 16, 16, 3), 90, "uint8"))
    assert [c.decode() for c in served["caption"].numpy()] == [e["caption"] for e in expected]


@pytest.mark.slow  # four processes that start TensorFlow (about 60 s)
def test_cli_trains_evaluates_and_predicts_a_captioner(tmp_path):
    run = str(tmp_path / "run")
    common = [sys.executable, "-m", "mmkeras.cli"]
    trained = subprocess.run(
        [*common, "train", "--model", "caption_lstm", "--dataset", "easy_vqa_captions", "--limit", "200",
         "--epochs", "1", "--max-steps", "2", "--tiny", "--output", run],
        capture_output=True, text=True, env=ENV, timeout=600,
    )
    assert trained.returncode == 0, trained.stderr[-3000:]
    assert "Test BLEU-4: " in trained.stdout and "exact match: " in trained.stdout
    with open(os.path.join(run, "metrics.json")) as f:
        recorded = json.load(f)
    assert recorded["task_class"] == "Captioner" and 0 <= recorded["test_beam_bleu4"] <= 1
    evaluated = subprocess.run([*common, "evaluate", run, "--limit", "50", "--json"], capture_output=True, text=True, env=ENV, timeout=600)
    assert evaluated.returncode == 0, evaluated.stderr[-3000:]
    metrics = json.loads(evaluated.stdout.strip().splitlines()[-1])
    assert {"loss", "token_accuracy", "greedy_bleu4", "beam_exact_match"} <= set(metrics)
    image = str(tmp_path / "shape.png")
    import tensorflow as tf

    tf.io.write_file(image, tf.io.encode_png(np.full((64, 64, 3), 200, "uint8")))
    predicted = subprocess.run([*common, "predict", run, image, "--json"], capture_output=True, text=True, env=ENV, timeout=600)
    assert predicted.returncode == 0, predicted.stderr[-3000:]
    answer = json.loads(predicted.stdout.strip().splitlines()[-1])
    assert sorted(answer) == ["caption", "score"] and answer["score"] <= 0
    refused = subprocess.run([*common, "predict", run, image, "a question"], capture_output=True, text=True, env=ENV, timeout=600)
    assert refused.returncode != 0 and "A captioner writes the text itself" in refused.stderr
    assert "Traceback" not in refused.stderr


def test_train_pairs_captioners_with_caption_datasets_or_says_why(monkeypatch):
    def never(*args, **kwargs):
        raise AssertionError("a built-in dataset was loaded before the model was refused")

    monkeypatch.setattr(mmkeras.data, "load_dataset", never)
    with pytest.raises(ValueError, match=r"'caption_lstm' \(Captioner\) trains on captioning datasets, and `dataset` 'easy_vqa' is a multiclass dataset"):
        mmkeras.train("caption_lstm", "easy_vqa", limit=50, output=False, verbose=0)
    with pytest.raises(ValueError, match=r"'easy_vqa_captions' is a captioning dataset: train 'caption_lstm', 'caption_transformer' on it"):
        mmkeras.train("vqa", "easy_vqa_captions", limit=50, output=False, verbose=0)


def test_an_image_with_several_captions_is_captioned_once_against_all_of_them(trained):
    images, texts = colour_scenes(n=4, seed=12)
    shared = mmkeras.data.Examples(images, [texts[0], "a wrong caption", *texts[1:]], image_index=[0, 0, 1, 2, 3],
                                   verbose=False)
    alone = mmkeras.data.Examples(images, texts, verbose=False)
    generated = [r["caption"] for r in trained.generate(images)]
    with_both = trained.caption_metrics(shared)
    # Image 0's caption matches one of its two references: exact match as for the single references.
    assert with_both["exact_match"] == trained.caption_metrics(alone)["exact_match"] == np.mean(
        [g == standardize_caption(t) for g, t in zip(generated, texts)])
    assert 0.5 < with_both["bleu1"] <= 1
