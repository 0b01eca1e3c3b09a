"""Exports stay loadable as the library evolves: the committed fixture still answers as recorded.

`saved_models/fixtures/make_fixture.py` trained a tiny VQA-style model, exported it (SavedModel and
`.keras` + `preprocessor.json`) and recorded its answers to a few PNG images and questions. Here
the current code loads those files and must reproduce the answers to 1e-5: the SavedModel through
its signature, the `.keras` model through today's layers and today's `Preprocessor`, and a fresh
export of it through today's `export_model`.
"""

import json
import os

import numpy as np
import pytest
import tensorflow as tf

import mmkeras
from mmkeras.export import FORMAT_VERSION, METADATA_FILE, SERVING_SIGNATURE, TENSORS_SIGNATURE

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURES = os.path.join(ROOT, "saved_models", "fixtures")
SAVED_MODEL = os.path.join(FIXTURES, "tiny_vqa")
KERAS_DIR = os.path.join(FIXTURES, "tiny_vqa_keras")
CASES_DIR = os.path.join(FIXTURES, "tiny_vqa_cases")


@pytest.fixture(scope="module")
def recorded():
    with open(os.path.join(CASES_DIR, "cases.json"), encoding="utf-8") as f:
        record = json.load(f)
    images = []
    for case in record["cases"]:
        with open(os.path.join(CASES_DIR, case["image"]), "rb") as f:
            images.append(f.read())
    return {
        "image": tf.constant(images),
        "text": tf.constant([c["text"] for c in record["cases"]]),
        "answer": np.array([c["answer"] for c in record["cases"]], dtype="float32"),
        "answer_class": [c["answer_class"] for c in record["cases"]],
        "tolerance": record["tolerance"],
    }


def check_answers(outputs, recorded):
    np.testing.assert_allclose(outputs["answer"], recorded["answer"], atol=recorded["tolerance"])
    assert [s.decode() for s in np.asarray(outputs["answer_class"])] == recorded["answer_class"]


def test_fixture_is_small_and_complete():
    size = sum(os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(FIXTURES) for f in files)
    assert size < 2 * 1024 * 1024, f"fixtures take {size} bytes"
    with open(os.path.join(SAVED_MODEL, METADATA_FILE), encoding="utf-8") as f:
        metadata = json.load(f)
    assert metadata["format_version"] <= FORMAT_VERSION
    assert metadata["class_names"]["answer"][:3] == ["red", "green", "blue"]


def test_saved_model_fixture_reproduces_recorded_answers(recorded):
    served, preprocessor = mmkeras.load(SAVED_MODEL, return_preprocessor=True)
    check_answers(served.signatures[SERVING_SIGNATURE](image=recorded["image"], text=recorded["text"]), recorded)
    # Today's Preprocessor, from the stored JSON, makes the tensors the other signature takes.
    tensors = {"image": preprocessor.decode_images(recorded["image"]), "text": preprocessor.texts_to_ids(recorded["text"])}
    check_answers(served.signatures[TENSORS_SIGNATURE](**tensors), recorded)


def test_keras_fixture_loads_safely_and_reexports(recorded, tmp_path):
    model, preprocessor = mmkeras.load(KERAS_DIR, return_preprocessor=True)  # safe_mode=True
    tensors = {"image": preprocessor.decode_images(recorded["image"]), "text": preprocessor.texts_to_ids(recorded["text"])}
    np.testing.assert_allclose(model(tensors, training=False), recorded["answer"], atol=recorded["tolerance"])
    path = mmkeras.export_model(model, tmp_path / "tiny_vqa", preprocessor=preprocessor)
    check_answers(mmkeras.load(path).signatures[SERVING_SIGNATURE](image=recorded["image"], text=recorded["text"]), recorded)
