"""`mmkeras train / evaluate / predict` and the Python API under them (tiny models, few steps)."""

import json
import os

import numpy as np
import pytest
import tensorflow as tf

import mmkeras
from mmkeras import cli, data
from mmkeras.training import load_run, train

TINY = ["--tiny", "--limit", "240", "--epochs", "1", "--max-steps", "3", "--batch-size", "32", "--quiet"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """One short `mmkeras train` (with the SavedModel export), shared by the tests below."""
    output = str(tmp_path_factory.mktemp("runs") / "vqa-tiny")
    assert cli.main(["train", *TINY, "--output", output]) == 0
    return output


def test_train_writes_every_artifact(run_dir):
    assert sorted(os.listdir(run_dir)) == ["history.png", "metrics.json", "model.keras", "saved_model"]
    with open(os.path.join(run_dir, "metrics.json")) as f:
        metrics = json.load(f)
    assert metrics["model"] == "vqa" and metrics["dataset"] == "easy_vqa"
    assert 0.0 <= metrics["test_accuracy"] <= 1.0 and metrics["examples"]["test"] == 240
    assert metrics["parameters"] > 0 and metrics["train_wall_time_s"] > 0
    assert metrics["steps_per_epoch"] == 3 and metrics["epochs"] == 1
    assert set(metrics["versions"]) >= {"mmkeras", "tensorflow", "keras", "numpy", "python"}
    assert metrics["precision"] in ("float32", "mixed_bfloat16")
    with open(os.path.join(run_dir, "history.png"), "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    assert metrics["head"] == {"kind": "multiclass", "name": "answer", "num_classes": 13}
    model = load_run(run_dir)  # the whole model, its preprocessor inside
    assert isinstance(model, mmkeras.tasks.FusionClassifier) and model.compiled
    assert model.output_names == ["answer"] and len(model.preprocessor.class_names) == 13
    assert os.path.isfile(os.path.join(run_dir, "saved_model", "saved_model.pb"))
    assert not [n for n in os.listdir(os.path.dirname(run_dir)) if n.endswith(".partial")]


def _first_test_example():
    splits = data.load_dataset("easy_vqa", limit=20, validation_split=0.0, verbose=False)
    return splits, splits.test.example_images([0])[0], splits.test.texts[0]


def test_predict_prints_the_models_own_answer(run_dir, tmp_path, capsys):
    splits, image, question = _first_test_example()
    path = tmp_path / "image.png"
    path.write_bytes(tf.io.encode_png(image).numpy())
    # The model's own answer, through the training pipeline (the image table, not the file).
    model = load_run(run_dir)
    dataset = splits.test.subset([0]).to_dataset(task=model, batch_size=1)
    probabilities = model.predict(dataset, verbose=0)[0]
    expected = model.preprocessor.class_names[int(np.argmax(probabilities))]
    capsys.readouterr()
    assert cli.main(["predict", run_dir, str(path), question]) == 0
    answer, rest = capsys.readouterr().out.strip().split("\t")
    assert answer == expected
    assert abs(float(rest.split()[-1].rstrip(")")) - float(probabilities.max())) < 1e-4
    result = mmkeras.predict(run_dir, image, question, top_k=13)  # an array works too
    assert result["answer"] == expected and len(result["top"]) == 13
    assert abs(sum(p for _, p in result["top"]) - 1) < 1e-4


def test_evaluate_command(run_dir, capsys):
    assert cli.main(["evaluate", run_dir, "--limit", "240", "--json"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    with open(os.path.join(run_dir, "metrics.json")) as f:
        assert abs(result["accuracy"] - json.load(f)["test_accuracy"]) < 1e-6


def test_fashion_and_float32_through_the_api(tmp_path):
    if not os.path.isdir(data.fashion_mnist.DEFAULT_DIR):
        pytest.skip("dataset-fashion-mnist is not installed")
    result = train(
        "vqa",
        "fashion_mnist_captions",
        epochs=1,
        max_steps=2,
        limit=100,
        batch_size=16,
        precision="float32",
        model_overrides={k: v for k, v in mmkeras.get_entry("vqa").tiny.items() if k != "image_shape"},
        output=False,
        verbose=0,
    )
    assert result.output is None and result.metrics["precision"] == "float32"
    assert result.model.output_names == ["match"] and result.model.input["image"].shape[1:] == (28, 28, 1)
    assert 0.0 <= result.metrics["test_ranking_accuracy"] <= 1.0


def _custom_splits(train_labels, class_names=("no", "yes")):
    images = np.zeros((4, 16, 16, 3), "uint8")
    texts = ["is it red?", "is it blue?", "is it red?", "is it green?"]
    examples = data.Examples(images, texts, train_labels)
    return data.DatasetSplits(
        name="custom", train=examples, validation=None, test=examples, class_names=list(class_names),
        task="binary", output_name="answer", image_shape=(16, 16, 3), sequence_length=4,
    )


def test_bad_inputs_fail_before_anything_is_written(tmp_path, capsys):
    output = tmp_path / "out"
    with pytest.raises(ValueError, match=r"labels for binary head 'answer' must be 0 or 1.*Received"):
        train("vqa", _custom_splits([0, 1, 2, 1]), output=str(output), epochs=1, verbose=0)
    assert not output.exists() and os.listdir(tmp_path) == []
    with pytest.raises(ValueError, match="`epochs` must be a positive integer. Received: epochs=0"):
        train(epochs=0, output=str(output))
    with pytest.raises(ValueError, match="`model` must be one of"):
        train("vqa_fats", output=str(output))
    with pytest.raises(ValueError, match="`dataset` must be one of"):
        train(dataset="easy-vqa", output=str(output))
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "notes.txt").write_text("keep me")
    with pytest.raises(ValueError, match="`output` must be a new folder"):
        train(output=str(precious), epochs=1, limit=50, verbose=0)
    assert os.listdir(precious) == ["notes.txt"]
    assert not output.exists()
    # The command prints the same errors without a traceback and exits 2.
    assert cli.main(["train", "--epochs", "0", "--output", str(output)]) == 2
    assert "`epochs` must be a positive integer" in capsys.readouterr().err
    assert cli.main(["predict", str(tmp_path), "missing.png", "what shape?"]) == 2
    assert "`model` must be a folder written by `mmkeras train`" in capsys.readouterr().err


def test_predict_rejects_a_missing_or_corrupt_image(run_dir, tmp_path, capsys):
    assert cli.main(["predict", run_dir, str(tmp_path / "missing.png"), "what shape?"]) == 2
    assert "`image` must be an existing image file" in capsys.readouterr().err
    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes(b"\x89PNG not really")
    assert cli.main(["predict", run_dir, str(corrupt), "what shape?"]) == 2
    assert "`image` must be encoded PNG" in capsys.readouterr().err


def test_help_explains_each_command(capsys):
    for command in ("train", "evaluate", "predict"):
        with pytest.raises(SystemExit) as exit_info:
            cli.main([command, "--help"])
        assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "--precision" in out and "--strategy" in out and "--backup-dir" in out and "probability" in out


# The accuracy promise of the default run (`mmkeras train`), per precision, as docs/benchmarks.md states
# it: 99.9% with bfloat16; 99.8% with float32, where one of three seeds measured here ended at 99.897%.
ACCURACY_GOAL = {"mixed_bfloat16": 0.999, "float32": 0.998}
QUESTION_ONLY = 0.670  # answering from the question alone (tests/test_docs_numbers.py computes it)


def test_a_short_run_learns_well_above_the_question_only_level():
    """One epoch in float32 (seed 0) must use the images: >= 75%, where the questions alone give 67.0%.

    Measured here: 79.1% (seed 0) and 76.0% (seed 1) after one epoch; the full run (slow set) 99.9%."""
    result = train(epochs=1, precision="float32", output=False, export=False, verbose=0)
    assert result.metrics["examples"]["test"] == 9673
    assert result.metrics["test_accuracy"] >= QUESTION_ONLY + 0.08, result.metrics["test_accuracy"]


@pytest.mark.slow
def test_default_recipe_reaches_its_accuracy_goal_on_easy_vqa():
    """The main job's promise, at full size, as README runs it (minutes on a CPU; `-m slow`).

    `precision="auto"`: bfloat16 on a CPU that has it, float32 on others (each with its goal). The
    float32 run on a bfloat16 CPU is measured by `benchmarks/accuracy.py`, not repeated here (CI's
    time budget)."""
    result = train(output=False, export=False, verbose=0)
    assert result.metrics["examples"]["test"] == 9673
    goal = ACCURACY_GOAL[result.metrics["precision"]]
    assert result.metrics["test_accuracy"] >= goal, (result.metrics["precision"], result.metrics["test_accuracy"])


def test_predict_top_k_and_json(run_dir, tmp_path, capsys):
    _, image, question = _first_test_example()
    path = tmp_path / "image.png"
    path.write_bytes(tf.io.encode_png(image).numpy())
    capsys.readouterr()
    assert cli.main(["predict", run_dir, str(path), question, "--top-k", "3"]) == 0
    lines = capsys.readouterr().out.rstrip("\n").splitlines()
    assert len(lines) == 3 and lines[1].startswith("  ")  # the answer, then the 2 runners-up
    assert cli.main(["predict", run_dir, str(path), question, "--top-k", "4", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert sorted(result) == ["answer", "probability", "top"] and len(result["top"]) == 4
    assert result["answer"] == lines[0].split("\t")[0] and result["top"][0] == [result["answer"], result["probability"]]
    probabilities = [p for _, p in result["top"]]
    assert probabilities == sorted(probabilities, reverse=True)


def test_evaluate_split_and_dataset(run_dir, capsys):
    assert cli.main(["evaluate", run_dir, "--split", "validation", "--limit", "240", "--json"]) == 0
    validation = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert 0 <= validation["accuracy"] <= 1
    # The yes/no questions name other classes than this model's 13 answers: refused, not mis-scored.
    assert cli.main(["evaluate", run_dir, "--dataset", "easy_vqa_yes_no", "--limit", "50"]) == 2
    assert "must have the classes the model answers with" in capsys.readouterr().err
    assert cli.main(["evaluate", run_dir, "--dataset", "easy_vqa", "--limit", "240", "--json"]) == 0
    with open(os.path.join(run_dir, "metrics.json")) as f:
        assert abs(json.loads(capsys.readouterr().out.strip().splitlines()[-1])["accuracy"] - json.load(f)["test_accuracy"]) < 1e-6


def test_export_without_an_output_writes_under_saved_models(run_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert cli.main(["export", run_dir]) == 0
    assert os.path.isfile(tmp_path / "saved_models" / "vqa" / "saved_model.pb")
    assert cli.main(["export", run_dir]) == 2  # kept: no overwrite without --overwrite
    assert "already holds an export" in capsys.readouterr().err


def test_train_options_reach_the_run(tmp_path):
    output = tmp_path / "run"
    assert cli.main([
        "train", "--tiny", "--limit", "120", "--epochs", "2", "--max-steps", "2", "--batch-size", "16", "--quiet",
        "--learning-rate", "0.01", "--seed", "3", "--precision", "float32", "--strategy", "one_device",
        "--backup-dir", str(tmp_path / "backup"), "--validation-split", "0.25", "--image-shape", "24,24,3",
        "--dataset", "easy_vqa_yes_no", "--no-export", "--output", str(output),
    ]) == 0
    with open(output / "metrics.json") as f:
        metrics = json.load(f)
    assert (metrics["learning_rate"], metrics["seed"], metrics["precision"]) == (0.01, 3, "float32")
    assert (metrics["strategy"], metrics["batch_size"], metrics["epochs"]) == ("one_device", 16, 2)
    assert metrics["image_shape"] == [24, 24, 3] and metrics["dataset"] == "easy_vqa_yes_no"
    assert metrics["head"] == {"kind": "binary", "name": "answer", "from_logits": False}
    assert metrics["examples"]["validation"] > 0 and "saved_model" not in os.listdir(output)
    assert not (tmp_path / "backup").exists()  # the backup is removed once training ends
    model = load_run(str(output))
    assert model.input["image"].shape[1:] == (24, 24, 3) and model.preprocessor.class_names == ["no", "yes"]
