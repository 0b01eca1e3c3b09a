"""Missing modalities: presence masks, learned placeholders, modality dropout, and an absent image
or text from Python, the CLI and the served SavedModel."""

import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

import mmkeras
from mmkeras import cli
from mmkeras.data import Examples
from mmkeras.export import METADATA_FILE
from mmkeras.missing import (
    ImagePresence,
    MissingModalities,
    TextPresence,
    absent_images,
    missing_images,
    modality_ablation,
)
from mmkeras.preprocessing import Preprocessor
from tests.helpers import tiny_model, toy_inputs

RNG = np.random.default_rng(0)


def _model(name="fusion_product", **overrides):
    model = tiny_model(name, **{"modality_dropout": 0.3, **overrides})
    model.preprocessor = Preprocessor(
        image_shape=(32, 32, 3), sequence_length=12, vocabulary=["what", "shape", "red", "blue"], class_names=["no", "yes"]
    )
    return model


def _set_placeholders(model, seed=1):
    layer = model.get_layer("missing_modalities")
    layer.set_weights([np.random.default_rng(seed).normal(size=w.shape).astype("float32") for w in layer.get_weights()])


def test_presence_layers_read_nan_images_and_empty_texts():
    images = RNG.random((3, 4, 4, 1)).astype("float32")
    images[1] = np.nan
    images[2, 0, 0, 0] = np.nan  # one NaN pixel: present (the input checks refuse it, see below)
    cleaned, present = ImagePresence()(images)
    np.testing.assert_array_equal(np.asarray(present), [1, 0, 1])
    assert np.isfinite(np.asarray(cleaned)).all() and (np.asarray(cleaned)[1] == 0).all()
    np.testing.assert_array_equal(absent_images(images), [False, True, False])
    ids = np.array([[3, 0, 0], [0, 0, 0], [0, 0, 7]])
    np.testing.assert_array_equal(np.asarray(TextPresence()(ids)), [1, 0, 1])


def test_an_absent_modality_reads_its_learned_placeholder_and_nothing_of_the_input():
    model = _model()
    _set_placeholders(model)
    x = toy_inputs(model, n=4)
    absent = {"image": missing_images(4, (32, 32, 3)), "text": x["text"]}
    before = np.asarray(model(absent))
    # Whatever the image would have been, an absent one gives the same answers...
    np.testing.assert_allclose(np.asarray(model(absent)), before)
    # ...which come from the placeholder: a new placeholder moves them, but not a present image's.
    present = np.asarray(model(x))
    _set_placeholders(model, seed=2)
    assert np.abs(np.asarray(model(absent)) - before).max() > 1e-4
    np.testing.assert_allclose(np.asarray(model(x)), present, atol=1e-6)
    no_text = np.asarray(model({"image": x["image"], "text": np.zeros_like(x["text"])}))
    assert np.abs(no_text - present).max() > 1e-4


def test_modality_dropout_drops_each_modality_at_its_rate_and_never_all():
    layer = MissingModalities([0.3, 0.5], seed=0)
    n = 20000
    features = [np.ones((n, 2), "float32"), np.ones((n, 3), "float32")]
    presence = [np.ones(n, "float32"), np.r_[np.ones(n // 2), np.zeros(n // 2)].astype("float32")]
    _, mask = layer(features, presence, training=True)
    mask = np.asarray(mask)
    assert mask.sum(axis=1).min() >= 1  # never every modality of an example
    assert (mask[n // 2 :, 1] == 0).all()  # an absent text stays absent
    assert (mask[n // 2 :, 0] == 1).all()  # and then the image is never dropped
    both = mask[: n // 2]  # both present: image dropped with 0.3, text with 0.5, not both
    image_dropped, text_dropped = (both[:, 0] == 0).mean(), (both[:, 1] == 0).mean()
    # A drop counts only where it leaves the other modality: (both dropped) -> both kept.
    assert abs(image_dropped - 0.3 * (1 - 0.5)) < 0.015, image_dropped
    assert abs(text_dropped - 0.5 * (1 - 0.3)) < 0.015, text_dropped
    _, mask = layer(features, presence, training=False)
    np.testing.assert_array_equal(np.asarray(mask), np.stack(presence, 1))


def test_arguments_are_checked():
    with pytest.raises(ValueError, match="missing_modalities=False, modality_dropout=0.2"):
        tiny_model("fusion_product", missing_modalities=False, modality_dropout=0.2)
    with pytest.raises(ValueError, match=r"modality_dropout` must be a number in \[0, 1\)"):
        tiny_model("fusion_product", modality_dropout=1.0)
    with pytest.raises(ValueError, match="modality_dropout"):
        tiny_model("fusion_product", modality_dropout=-0.1)
    with pytest.raises(ValueError, match=r"keys must be among .*'image', 'text'"):
        tiny_model("fusion_product", modality_dropout={"audio": 0.2})
    with pytest.raises(ValueError, match="needs a model with both"):
        tiny_model("s3", missing_modalities=True)
    with pytest.raises(ValueError, match="missing_modalities` must be True, False or None"):
        tiny_model("fusion_product", missing_modalities="yes")
    with pytest.raises(ValueError, match=r"does not take: \['modality_droput'\]"):
        tiny_model("fusion_product", modality_droput=0.2)  # a typo is refused, not ignored
    model = tiny_model("fusion_product", modality_dropout={"text": 0.4})
    assert model.missing_modalities and model.get_layer("missing_modalities").dropout == [0.0, 0.4]
    assert not tiny_model("fusion_product").missing_modalities
    assert tiny_model("fusion_product", missing_modalities=True).missing_modalities


def test_input_checks_take_an_absent_image_only_where_the_model_does():
    model, plain = _model(), tiny_model("fusion_product")
    x = toy_inputs(model, n=3)
    x["image"][1] = np.nan
    assert model.predict(x, verbose=0).shape == (3, 1)
    with pytest.raises(ValueError, match=r"image\[1\] containing NaN"):
        plain.predict(x, verbose=0)
    x["image"][1] = 0.5
    x["image"][1, 0, 0, 0] = np.nan  # one NaN pixel is not an absent image
    with pytest.raises(ValueError, match=r"image\[1\] containing NaN"):
        model.predict(x, verbose=0)


def test_answer_with_an_input_left_out_or_absent_items():
    model = _model()
    _set_placeholders(model)
    images = (RNG.random((2, 40, 40, 3)) * 255).astype("uint8")
    texts = ["what shape", "red"]
    text_only = model.answer(text=texts)
    assert text_only == model.answer(image=[None, b""], text=texts)
    x = model.prepare_inputs(image=images, text=texts)
    p = float(model.predict({"image": missing_images(2, (32, 32, 3)), "text": x["text"]}, verbose=0)[0, 0])
    assert text_only[0]["probability"] == pytest.approx(max(p, 1 - p), abs=1e-5)
    mixed = model.answer(image=[images[0], None], text=texts)
    assert mixed == [model.answer(image=images[:1], text=texts[:1])[0], text_only[1]]
    image_only = model.answer(image=images)
    assert image_only == model.answer(image=images, text=["", None])
    with pytest.raises(ValueError, match=r"missing \['image', 'text'\]"):
        model.answer()
    with pytest.raises(ValueError, match="answers with a modality absent"):
        tiny_model("fusion_product").answer(text=texts)


@pytest.mark.slow  # an export and two SavedModel loads (about 40 s on a loaded machine)
def test_served_model_reads_empty_bytes_and_empty_strings_as_absent(tmp_path):
    model = _model()
    _set_placeholders(model)
    path = str(tmp_path / "served")
    mmkeras.export_model(model, path)
    serve = tf.saved_model.load(path).signatures["serving_default"]
    png = tf.io.encode_png((RNG.random((32, 32, 3)) * 255).astype("uint8")).numpy()
    request = {"image": tf.constant([png, b"", png]), "text": tf.constant(["what shape", "red", ""])}
    served = serve(**request)["label"].numpy()
    x = model.prepare_inputs(image=[png, None, png], text=["what shape", "red", ""])
    assert np.isnan(x["image"][1]).all() and not x["text"][2].any()
    np.testing.assert_allclose(served, model.predict(x, verbose=0), atol=1e-5)
    tensors = tf.saved_model.load(path).signatures["serve_tensors"]
    np.testing.assert_allclose(tensors(image=tf.constant(x["image"]), text=tf.constant(x["text"]))["label"].numpy(), served, atol=1e-5)
    with open(os.path.join(path, METADATA_FILE)) as f:
        description = json.dumps(json.load(f))
    assert "empty bytes: no image" in description and "all NaN: no image" in description


@pytest.mark.slow
def test_modality_dropout_teaches_the_model_to_answer_from_either_modality():
    # The label is told twice, by the image (bright or dark) and by the text (token 2 or 3): with
    # modality dropout the model answers from either one alone.
    keras.utils.set_random_seed(0)
    n = 512
    labels = RNG.integers(0, 2, n)
    images = (0.25 + 0.5 * labels[:, None, None, None] + RNG.normal(0, 0.1, (n, 32, 32, 3))).clip(0, 1).astype("float32")
    texts = np.zeros((n, 12), "int32")
    texts[:, 0] = 2 + labels
    texts[:, 1:4] = RNG.integers(4, 60, (n, 3))
    model = tiny_model("fusion_product", modality_dropout=0.4)
    model.compile()
    model.fit({"image": images, "text": texts}, labels, epochs=12, batch_size=32, verbose=0)
    scores = modality_ablation(model, Examples(images, texts, labels=labels))
    assert min(scores.values()) > 0.9, scores


@pytest.mark.slow
def test_train_and_predict_from_the_cli_with_either_input_left_out(tmp_path, capsys):
    output = str(tmp_path / "run")
    args = ["--tiny", "--limit", "120", "--epochs", "1", "--max-steps", "2", "--batch-size", "16", "--quiet"]
    assert cli.main(["train", *args, "--modality-dropout", "0.3", "--no-export", "--output", output]) == 0
    model = mmkeras.load_run(output)
    assert model.missing_modalities
    from mmkeras import data

    image = data.load_dataset("easy_vqa", limit=5, validation_split=0.0, verbose=False).test.example_images([0])[0]
    path = tmp_path / "shape.png"
    path.write_bytes(tf.io.encode_png(image).numpy())
    capsys.readouterr()
    for argv, raw in (
        (["--text", "what shape is in the image?"], {"text": ["what shape is in the image?"]}),
        ([str(path)], {"image": [str(path)]}),
        (["", "what color is the shape?"], {"text": ["what color is the shape?"]}),
    ):
        assert cli.main(["predict", output, *argv, "--json"]) == 0
        result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
        assert result["answer"] == model.answer(**raw)[0]["answer"]
    assert cli.main(["predict", output]) == 2
    assert "needs an IMAGE, a TEXT" in capsys.readouterr().err


def test_deep_set_fusion_averages_the_present_modalities_only():
    # Its placeholders never reach the output: the mask leaves the absent modality out of the mean.
    model = _model("fusion_deep_set")
    x = toy_inputs(model, n=4)
    absent = {"image": missing_images(4, (32, 32, 3)), "text": x["text"]}
    before = np.asarray(model(absent))
    _set_placeholders(model, seed=3)
    np.testing.assert_allclose(np.asarray(model(absent)), before, atol=1e-6)
    fusion = model.get_layer("fusion")
    assert fusion.uses_presence
    features = keras.Model(model.input, model.get_layer("missing_modalities").output)(absent)
    np.testing.assert_array_equal(np.asarray(features[-1]), np.tile([[0.0, 1.0]], (4, 1)))  # the mask
