"""Exports stay loadable as the library evolves: the committed fixture still answers as recorded.

`saved_models/fixtures/make_fixture.py` trained a tiny VQA-style model with mmkeras 0.1, exported
it (a SavedModel, format version 1, with `preprocessor.json` beside `saved_model.pb`; and a plain
Functional `model.keras` + `preprocessor.json`) and recorded its answers to a few PNG images and
questions. Here the current code loads those files and must reproduce the answers to 1e-5: the
SavedModel through its signatures, the `.keras` model through today's layers and today's
`Preprocessor`, and, wrapped as a `ModelTask`, through today's `export_model`, `answer` and
`mmkeras export`.
"""

import json
import os
import shutil

import numpy as np
import pytest
import tensorflow as tf

import mmkeras
from mmkeras.export import FORMAT_VERSION, METADATA_FILE, PREPROCESSOR_FILE, SERVING_SIGNATURE, TENSORS_SIGNATURE
from mmkeras.tasks import ModelTask

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURES = os.path.join(ROOT, "saved_models", "fixtures")
SAVED_MODEL = os.path.join(FIXTURES, "tiny_vqa")
KERAS_DIR = os.path.join(FIXTURES, "tiny_vqa_keras")
CASES_DIR = os.path.join(FIXTURES, "tiny_vqa_cases")
HEAD = {"kind": "multiclass", "num_classes": 7, "name": "answer"}  # what mmkeras 0.1 did not store


@pytest.fixture(scope="module")
def recorded():
    with open(os.path.join(CASES_DIR, "cases.json"), encoding="utf-8") as f:
        record = json.load(f)
    images = []
    for case in record["cases"]:
        with open(os.path.join(CASES_DIR, case["image"]), "rb") as f:
            images.append(f.read())
    return {
        "paths": [os.path.join(CASES_DIR, c["image"]) for c in record["cases"]],
        "image": tf.constant(images),
        "text": tf.constant([c["text"] for c in record["cases"]]),
        "texts": [c["text"] for c in record["cases"]],
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
    assert metadata["format_version"] == 1 < FORMAT_VERSION, "the fixture is an mmkeras 0.1 export"
    assert "preprocessor" not in metadata and os.path.isfile(os.path.join(SAVED_MODEL, PREPROCESSOR_FILE))
    assert metadata["class_names"]["answer"][:3] == ["red", "green", "blue"]


def test_saved_model_fixture_reproduces_recorded_answers(recorded):
    served, preprocessor = mmkeras.load(SAVED_MODEL, return_preprocessor=True)  # from preprocessor.json
    check_answers(served.signatures[SERVING_SIGNATURE](image=recorded["image"], text=recorded["text"]), recorded)
    # Today's Preprocessor, from the stored JSON, makes the tensors the other signature takes.
    tensors = {"image": preprocessor.decode_images(recorded["image"]), "text": preprocessor.texts_to_ids(recorded["text"])}
    check_answers(served.signatures[TENSORS_SIGNATURE](**tensors), recorded)
    assert mmkeras.export.load_preprocessor(SAVED_MODEL).get_config() == preprocessor.get_config()


@pytest.fixture(scope="module")
def keras_fixture():
    return mmkeras.load(KERAS_DIR, return_preprocessor=True)  # safe_mode=True


def test_keras_fixture_loads_safely_and_answers_as_recorded(keras_fixture, recorded):
    model, preprocessor = keras_fixture
    assert not isinstance(model, mmkeras.tasks.Task), "a 0.1 file holds a plain Functional model"
    assert preprocessor.class_names[:3] == ["red", "green", "blue"]  # the preprocessor.json beside it
    tensors = {"image": preprocessor.decode_images(recorded["image"]), "text": preprocessor.texts_to_ids(recorded["text"])}
    np.testing.assert_allclose(model(tensors, training=False), recorded["answer"], atol=recorded["tolerance"])


def test_keras_fixture_wrapped_as_a_task_reexports(keras_fixture, recorded, tmp_path):
    model, preprocessor = keras_fixture
    task = ModelTask(model, head=HEAD, preprocessor=preprocessor)
    path = mmkeras.export_model(task, tmp_path / "tiny_vqa")
    check_answers(mmkeras.load(path).signatures[SERVING_SIGNATURE](image=recorded["image"], text=recorded["text"]), recorded)
    # Saved whole as a task, it answers raw PNG files itself.
    reloaded = mmkeras.load(mmkeras.export_model(task, tmp_path / "tiny_vqa.keras", format="keras"))
    answers = reloaded.answer(image=recorded["paths"], text=recorded["texts"], top_k=7)
    names = reloaded.class_names()
    probabilities = [[dict(a["top"])[n] for n in names] for a in answers]
    np.testing.assert_allclose(probabilities, recorded["answer"], atol=recorded["tolerance"])
    assert [a["answer"] for a in answers] == recorded["answer_class"]


def test_cli_exports_a_v0_1_run_folder_with_the_head_of_its_metrics(recorded, tmp_path, capsys):
    """A 0.1 run folder (plain model.keras, preprocessor.json, metrics.json): `mmkeras export`
    wraps it with the head `metrics.json` records (`ModelTask.from_v0_1_run`)."""
    from mmkeras.cli import main

    run_dir = tmp_path / "run"
    shutil.copytree(KERAS_DIR, run_dir)
    assert main(["export", str(run_dir), str(tmp_path / "x")]) == 2  # the fixture has no metrics.json
    err = capsys.readouterr().err
    assert err.startswith("mmkeras export: error: ") and "metrics.json" in err and "Traceback" not in err
    (run_dir / "metrics.json").write_text(json.dumps({"task": "bogus"}))
    assert main(["export", str(run_dir), str(tmp_path / "x")]) == 2
    assert "must record the head the run trained" in capsys.readouterr().err
    (run_dir / "metrics.json").write_text(json.dumps({"model": "tiny_vqa", "task": "multiclass"}))
    task = ModelTask.from_v0_1_run(run_dir)
    assert task.head.get_config() == {**HEAD, "kind": "multiclass"} and task.class_names()[:3] == ["red", "green", "blue"]
    out = str(tmp_path / "served")
    assert main(["export", str(run_dir), out]) == 0
    check_answers(mmkeras.load(out).signatures[SERVING_SIGNATURE](image=recorded["image"], text=recorded["text"]), recorded)
