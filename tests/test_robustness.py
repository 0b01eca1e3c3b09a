"""`mmkeras.robustness` and `mmkeras evaluate RUN --robustness` (MultiBench's protocol).

The noises on hand-made batches (level 0 is the identity, the change grows with the level, the
same seed gives the same noise), the summary formulas on hand-made curves, the report folder
(atomic, never over a user's files), and the curves of a tiny trained run through the CLI.
"""

import json
import os
import socket
import subprocess
import sys

import keras
import numpy as np
import pytest

from mmkeras import cli, robustness
from mmkeras.data import Examples
from mmkeras.tasks import ModelTask
from mmkeras.training import evaluate, load_run
from mmkeras.training.inference import evaluation_examples
from mmkeras.training.runs import check_output, is_run_folder
from tests import test_training_cli

run_dir = test_training_cli.run_dir  # the shared tiny `mmkeras train` run (module scope)

TEXTS = [
    "what color is the shape?",
    "is there a red circle in the image?",
    "does the image not contain a triangle?",
    "what shape is present?",
] * 25


def _images(n=8, size=16, seed=0):
    return np.random.default_rng(seed).random((n, size, size, 3), dtype=np.float32)


def _change(noise, data, level, seed=0):
    """How much `noise` changes `data` at `level`: the mean absolute change (images) or the share
    of words that differ, position by position, plus the words lost (texts)."""
    modality, fn = robustness.NOISES[noise]
    out = fn(data, level, np.random.default_rng(seed))
    if modality == "image":
        return float(np.abs(out - data).mean())
    changed = total = 0
    for before, after in zip(data, out):
        a, b = before.split(), after.split()
        changed += sum(x != y for x, y in zip(a, b)) + abs(len(a) - len(b))
        total += len(a)
    return changed / total


def _data(noise):
    return _images() if robustness.NOISES[noise][0] == "image" else list(TEXTS)


# The noises.


@pytest.mark.parametrize("noise", list(robustness.NOISES))
def test_level_zero_leaves_the_data_unchanged(noise):
    modality, fn = robustness.NOISES[noise]
    data = _data(noise)
    out = fn(data, 0, np.random.default_rng(3))
    if modality == "image":
        assert out.dtype == data.dtype and np.array_equal(out, data) and out is not data
    else:
        assert out == data and out is not data
        array = np.asarray(TEXTS, dtype=object)
        assert list(fn(array, 0.0, 1)) == TEXTS and isinstance(fn(array, 0.5, 1), np.ndarray)


@pytest.mark.parametrize("noise", list(robustness.NOISES))
def test_the_change_grows_with_the_level(noise):
    data = _data(noise)
    changes = [_change(noise, data, level) for level in (0.0, 0.2, 0.5, 1.0)]
    assert changes[0] == 0
    assert all(a < b for a, b in zip(changes, changes[1:])), changes


@pytest.mark.parametrize("noise", list(robustness.IMAGE_NOISES))
def test_image_noises_stay_in_range_keep_shape_and_dtype(noise):
    fn = robustness.IMAGE_NOISES[noise]
    for dtype in ("float32", "float64"):
        images = _images(4, 12).astype(dtype)
        for level in (0.3, 1.0):
            out = fn(images, level, 0)
            assert out.shape == images.shape and out.dtype == images.dtype
            assert out.min() >= 0 and out.max() <= 1 and np.isfinite(out).all()


@pytest.mark.parametrize("noise", list(robustness.NOISES))
def test_the_same_seed_gives_the_same_noise(noise):
    fn = robustness.NOISES[noise][1]
    data = _data(noise)
    first, again = fn(data, 0.5, np.random.default_rng(7)), fn(data, 0.5, 7)
    assert np.array_equal(np.asarray(first), np.asarray(again))
    if noise not in ("blur", "contrast"):  # the deterministic ones
        assert not np.array_equal(np.asarray(first), np.asarray(fn(data, 0.5, 8)))


def test_the_strongest_levels():
    images = _images(2, 10)
    assert np.all(robustness.occlusion(images, 1.0, 0) == 0.5)  # all covered
    flat = robustness.contrast(images, 1.0)
    assert np.allclose(flat, images.mean(axis=(1, 2, 3), keepdims=True))
    assert robustness.dropped_words(TEXTS[:4], 1.0, 0) == [""] * 4
    assert robustness.swapped_words(["a b c d e"], 1.0, 0) == ["b a d c e"]
    typed = robustness.typos(["what color is the shape?"], 1.0, 0)[0].split()
    assert all(a != b for a, b in zip(typed, "what color is the shape?".split()))
    assert robustness.typos(["? !"], 1.0, 0) == ["? !"]  # punctuation alone is not mistyped
    share = [float(np.mean(robustness.salt_and_pepper(np.full((8, 32, 32, 1), 0.5, "float32"), level, 0) != 0.5))
             for level in (0.5, 1.0)]
    assert abs(share[0] - 0.25) < 0.02 and abs(share[1] - 0.5) < 0.02


BAD_CALLS = [
    (lambda: robustness.gaussian(_images(), 1.5, 0), "`level` must be a number in [0, 1]"),
    (lambda: robustness.blur(_images(), -0.1), "`level` must be a number in [0, 1]"),
    (lambda: robustness.typos(TEXTS, True, 0), "`level` must be a number in [0, 1]"),
    (lambda: robustness.contrast((_images() * 255).astype("uint8"), 0.5), "`images` must be a float numpy array"),
    (lambda: robustness.occlusion(_images() * 2, 0.5, 0), "`images` must hold finite values in [0, 1]"),
    (lambda: robustness.salt_and_pepper(_images()[0], 0.5, 0), "`images` must be a float numpy array"),
    (lambda: robustness.dropped_words("one string", 0.5, 0), "`texts` must be a sequence of strings"),
    (lambda: robustness.swapped_words(["ok", 3], 0.5, 0), "Received: texts[1]=3"),
    (lambda: robustness.gaussian(_images(), 0.5, "seed"), "`rng` must be a numpy Generator"),
    (lambda: robustness.check_noises(["blurr"]), "`noise` must be one of ['blur', 'contrast', 'dropped_words'"),
    (lambda: robustness.check_levels([0, 0.5, 0.5]), "`levels` must be at least two increasing numbers in [0, 1]"),
    (lambda: robustness.check_levels([0, 2]), "`levels` must be at least two increasing numbers"),
    (lambda: robustness.parse_levels("0,half,1"), "`levels` must be numbers in [0, 1] separated by commas"),
]


def test_bad_arguments_are_named():
    for call, message in BAD_CALLS:
        with pytest.raises(ValueError) as error:
            call()
        assert message in str(error.value)


def test_an_unknown_noise_suggests_the_closest_and_lists_all():
    with pytest.raises(ValueError) as error:
        robustness.check_noises("salt_pepper")
    text = str(error.value)
    assert "did you mean 'salt_and_pepper'" in text and all(name in text for name in robustness.NOISES)


# The summary numbers, on hand-made curves.


def test_relative_robustness_is_the_normalised_trapezoid_area():
    assert robustness.relative_robustness([0, 1], [0.8, 0.8]) == 0.8  # flat: the clean accuracy
    assert robustness.relative_robustness([0, 0.5, 1], [1.0, 0.5, 0.0]) == 0.5
    # uneven levels: (0.2 * (1 + 0.8) / 2 + 0.8 * (0.8 + 0) / 2) / 1
    assert robustness.relative_robustness([0, 0.2, 1], [1.0, 0.8, 0.0]) == pytest.approx(0.5)
    assert robustness.relative_robustness([0.5, 1], [0.8, 0.4]) == pytest.approx(0.6)  # divided by the range
    # MultiBench's eval_scripts/robustness.py: trapezoids of width 0.1 over its 11 levels
    accuracies = np.random.default_rng(0).random(11)
    multibench = sum((accuracies[i] + accuracies[i + 1]) * 0.1 / 2 for i in range(10))
    assert robustness.relative_robustness(robustness.DEFAULT_LEVELS, accuracies) == pytest.approx(multibench)


def test_effective_robustness_against_a_shifted_baseline():
    levels = [0, 0.5, 1]
    assert robustness.effective_robustness(levels, [0.9, 0.8, 0.7], [0.6, 0.5, 0.4]) == 0  # the same drop
    # the baseline loses 0.4 at level 1, the model 0.2: a gap of 0, 0.1, 0.2 -> area 0.1
    assert robustness.effective_robustness(levels, [0.9, 0.8, 0.7], [0.7, 0.5, 0.3]) == pytest.approx(0.1)
    assert robustness.effective_robustness(levels, [0.7, 0.5, 0.3], [0.9, 0.8, 0.7]) == pytest.approx(-0.1)
    # MultiBench's helper sums a - (b + a_0 - b_0) over its 11 levels: S = 10 * ER + gap_at_1 / 2
    rng = np.random.default_rng(1)
    a, b = rng.random(11), rng.random(11)
    gaps = a - (b + a[0] - b[0])
    ours = robustness.effective_robustness(robustness.DEFAULT_LEVELS, a, b)
    assert gaps.sum() == pytest.approx(10 * ours + gaps[-1] / 2)


def test_the_formulas_refuse_bad_curves():
    for args, message in [
        (([0, 1], [0.5]), "`accuracies` must be one finite number per level (2 levels)"),
        (([0], [0.5]), "`levels` must be at least two increasing numbers"),
        (([1, 0], [0.5, 0.4]), "`levels` must be at least two increasing numbers"),
        (([0, 1], [0.5, float("nan")]), "`accuracies` must be one finite number per level"),
    ]:
        with pytest.raises(ValueError) as error:
            robustness.relative_robustness(*args)
        assert message in str(error.value)
    with pytest.raises(ValueError, match="`baseline_accuracies` must be one finite number per level"):
        robustness.effective_robustness([0, 1], [0.5, 0.4], [0.5])


# The report folder.

RESULT = {
    "metric": "accuracy", "levels": [0.0, 0.5, 1.0], "examples": 10, "seed": 0, "skipped": {},
    "curves": {"image": {"blur": [0.9, 0.8, 0.6]}, "text": {"typos": [0.9, 0.7, 0.5]}},
}


def test_the_report_is_written_atomically_and_replaced(tmp_path):
    folder = str(tmp_path / "report")
    assert robustness.write_report(RESULT, folder, baseline=RESULT, info={"model": "m"}) == folder
    assert sorted(os.listdir(folder)) == sorted(robustness.REPORT_FILES)
    assert os.listdir(tmp_path) == ["report"]  # no temporary copy left
    with open(os.path.join(folder, "robustness.json")) as f:
        content = json.load(f)
    assert content["summary"]["typos"] == {
        "modality": "text", "clean": 0.9, "relative_robustness": 0.7, "effective_robustness": 0.0,
    }
    with open(os.path.join(folder, "robustness.md")) as f:
        markdown = f.read()
    assert "| text | typos | 0.9000 | 0.7000 | 0.5000 | 0.7000 | 0.7000 | 0.0000 |" in markdown
    with open(os.path.join(folder, "robustness.png"), "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    robustness.write_report({**RESULT, "seed": 5}, folder)  # an earlier report is replaced
    with open(os.path.join(folder, "robustness.json")) as f:
        assert json.load(f)["result"]["seed"] == 5


def test_a_users_folder_or_file_is_never_overwritten(tmp_path):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    with pytest.raises(ValueError, match="`output` must be a new folder or an earlier robustness report"):
        robustness.write_report(RESULT, str(mine))
    assert os.listdir(mine) == ["notes.txt"] and (mine / "notes.txt").read_text() == "keep me"
    robustness.write_report(RESULT, str(tmp_path / "report"))
    (tmp_path / "report" / "extra.csv").write_text("mine")  # a report with a user's file beside it
    with pytest.raises(ValueError, match="holds other files"):
        robustness.write_report(RESULT, str(tmp_path / "report"))
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match="`output`"):
        robustness.write_report(RESULT, str(tmp_path / "file"))
    (tmp_path / "fake").mkdir()
    (tmp_path / "fake" / "robustness.json").write_text(json.dumps({"mine": True}))
    assert not robustness.is_report(str(tmp_path / "fake"))
    assert not [n for n in os.listdir(tmp_path) if n.startswith(".")]


def test_summaries_need_the_same_levels():
    with pytest.raises(ValueError, match="`baseline` must be measured at the same levels"):
        robustness.summarize(RESULT, {**RESULT, "levels": [0.0, 1.0]})
    with pytest.raises(ValueError, match="`curves` must be what `robustness_curves` returns"):
        robustness.plot_robustness({"levels": [0, 1]}, "x.png")


def test_plot_draws_legends_outside_the_axes_and_copes_with_no_curves(tmp_path, monkeypatch):
    legends = []

    def savefig(figure, path):  # laid out and measured instead of written
        figure.canvas.draw()
        legends.extend((a.get_window_extent(), a.get_legend().get_window_extent()) for a in figure.axes if a.get_legend())

    monkeypatch.setattr("matplotlib.figure.Figure.savefig", savefig)
    robustness.plot_robustness(RESULT, str(tmp_path / "r.png"), baseline=RESULT)
    assert legends and all(legend.y1 <= box.y0 for box, legend in legends)  # each legend below its panel
    robustness.plot_robustness({"levels": [0, 1], "curves": {}}, str(tmp_path / "empty.png"))


# A tiny trained run.


@pytest.fixture(scope="module")
def loaded(run_dir):
    """The run's task and the first test examples, read as `mmkeras evaluate` reads them."""
    net, examples, _, _ = evaluation_examples(run_dir, limit=48, verbose=0)
    return net, examples


def test_level_zero_is_what_evaluate_measures(run_dir, loaded):
    net, examples = loaded
    result = robustness.robustness_curves(net, examples, ["gaussian", "typos"], [0, 1], batch_size=20)
    expected = evaluate(run_dir, limit=48, verbose=0)["accuracy"]
    assert result["curves"]["image"]["gaussian"][0] == pytest.approx(expected, abs=1e-6)
    assert result["curves"]["text"]["typos"][0] == result["curves"]["image"]["gaussian"][0]
    assert result["examples"] == 48 and result["levels"] == [0.0, 1.0] and result["skipped"] == {}
    again = robustness.robustness_curves(net, examples, ["gaussian", "typos"], [0, 1], batch_size=20)
    assert again == result  # seeded


def test_text_noise_is_applied_before_tokenizing(loaded):
    net, examples = loaded
    result = robustness.robustness_curves(net, examples, ["dropped_words"], [0, 1])
    # the same examples with every question empty, through evaluate's pipeline
    empty = Examples(examples.example_images(), [""] * len(examples), examples.labels, verbose=False)
    net.compile()
    expected = net.evaluate(empty.to_dataset(task=net, batch_size=16), verbose=0, return_dict=True)["accuracy"]
    assert result["curves"]["text"]["dropped_words"][1] == pytest.approx(expected, abs=1e-6)


def test_a_model_that_ignores_the_image_has_flat_image_curves(run_dir, loaded):
    _, examples = loaded
    pre = load_run(run_dir).preprocessor
    inputs = {
        "image": keras.Input(pre.image_shape, name="image"),
        "text": keras.Input((pre.sequence_length,), dtype="int32", name="text"),
    }
    text = keras.layers.GlobalAveragePooling1D()(keras.layers.Embedding(pre.vocab_size, 8)(inputs["text"]))
    image = keras.layers.GlobalAveragePooling2D()(inputs["image"])
    image = keras.layers.Dense(8, kernel_initializer="zeros", use_bias=False, trainable=False)(image)  # always 0
    outputs = keras.layers.Dense(13, activation="softmax")(keras.layers.Add()([text, image]))
    net = ModelTask(keras.Model(inputs, outputs), head={"kind": "multiclass", "num_classes": 13, "name": "answer"}, preprocessor=pre)
    levels = [0, 0.5, 1]
    result = robustness.robustness_curves(net, examples, list(robustness.IMAGE_NOISES), levels)
    for noise, values in result["curves"]["image"].items():
        assert values == [values[0]] * 3, noise
        assert robustness.relative_robustness(levels, values) == pytest.approx(values[0])


def test_a_model_without_an_input_skips_its_noises(capsys):
    image = keras.Input((8, 8, 3), name="image")
    model = keras.Model({"image": image}, keras.layers.Dense(2, activation="softmax")(keras.layers.Flatten()(image)))
    net = ModelTask(model, head={"kind": "multiclass", "num_classes": 2, "name": "label"})
    examples = Examples(_images(6, 8), TEXTS[:6], labels=[0, 1, 0, 1, 0, 1], verbose=False)
    result = robustness.robustness_curves(net, examples, ["contrast", "typos"], [0, 1], verbose=1)
    assert list(result["curves"]) == ["image"] and result["skipped"] == {"text": "the model takes no text input"}
    assert "Skipping the text noises (typos): the model takes no text input." in capsys.readouterr().out
    with pytest.raises(ValueError, match="`noises` must include a noise the model and the examples allow"):
        robustness.robustness_curves(net, examples, ["typos"], [0, 1])
    with pytest.raises(ValueError, match="`examples` must have labels"):
        robustness.robustness_curves(net, Examples(_images(2, 8), None, verbose=False), ["blur"], [0, 1])


def test_the_cli_writes_the_report_and_prints_the_table(run_dir, capsys):
    argv = ["evaluate", run_dir, "--robustness", "--limit", "32", "--levels", "0,1", "--noise", "blur", "--noise", "typos"]
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    assert "| image | blur |" in out and "| text | typos |" in out
    folder = os.path.join(run_dir, "robustness")
    assert sorted(os.listdir(folder)) == sorted(robustness.REPORT_FILES)
    assert is_run_folder(run_dir)  # a later `mmkeras train --output RUN` may still replace the run
    # again, with the run itself as the baseline: the same noisy data, so no effective gain or loss
    assert cli.main([*argv, "--baseline", run_dir, "--json"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert {v["effective_robustness"] for v in result["summary"].values()} == {0.0}
    with open(os.path.join(folder, "robustness.json")) as f:
        assert json.load(f)["baseline"] == run_dir


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--robustness", "--noise", "blurry"], "`noise` must be one of ['blur', 'contrast'"),
        (["--robustness", "--levels", "0,1.5"], "`levels` must be at least two increasing numbers in [0, 1]"),
        (["--noise", "blur"], "--noise goes with --robustness"),
        (["--robustness", "--batch-size", "0"], "--batch-size must be a positive integer"),
    ],
)
def test_the_cli_refuses_bad_input_in_one_line(run_dir, tmp_path, capsys, extra, message):
    output = str(tmp_path / "report")
    assert cli.main(["evaluate", run_dir, "--limit", "8", "--output", output, *extra]) == 2
    err = capsys.readouterr().err
    assert err.startswith("mmkeras evaluate: error: ") and message in err and len(err.strip().splitlines()) == 1
    assert not os.path.exists(output)


def test_the_cli_never_writes_over_a_users_folder(run_dir, tmp_path, capsys):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "robustness.md").write_text("my notes")
    argv = ["evaluate", run_dir, "--robustness", "--limit", "8", "--levels", "0,1", "--noise", "blur", "--output", str(mine)]
    assert cli.main(argv) == 2
    assert "`output` must be a new folder or an earlier robustness report" in capsys.readouterr().err
    assert os.listdir(mine) == ["robustness.md"] and (mine / "robustness.md").read_text() == "my notes"


def test_a_run_folder_with_a_report_may_still_be_replaced(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    metrics = {"model": "vqa", "dataset": "easy_vqa", "versions": {"mmkeras": "0.1.0"}, "files": ["metrics.json", "model.keras"]}
    (run / "metrics.json").write_text(json.dumps(metrics))
    (run / "model.keras").write_text("")
    robustness.write_report(RESULT, str(run / robustness.REPORT_DIR))
    assert is_run_folder(str(run))  # `mmkeras train --output RUN` replaces it, report included
    (run / robustness.REPORT_DIR / "mine.txt").write_text("keep")
    assert not is_run_folder(str(run))  # a file of the user's inside: the run is kept


def test_what_a_killed_report_left_does_not_block_a_new_run(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    metrics = {"model": "vqa", "dataset": "easy_vqa", "versions": {"mmkeras": "0.1.0"}, "files": ["metrics.json"]}
    (run / "metrics.json").write_text(json.dumps(metrics))
    ended = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    leftover = run / f".{robustness.REPORT_DIR}.tmp-abc123"
    leftover.mkdir()
    (leftover / "robustness.json").write_text("{")
    owner = {"pid": int(ended.stdout), "host": socket.gethostname(), "target": robustness.REPORT_DIR}
    (run / f"{leftover.name}.owner").write_text(json.dumps(owner))
    assert not is_run_folder(str(run))
    assert check_output(str(run)) == str(run)  # the writer has ended: its leftovers are removed
    assert sorted(os.listdir(run)) == ["metrics.json"]
    leftover.mkdir()  # a live writer's (this process's) staging folder is kept, and the run refused
    (run / f"{leftover.name}.owner").write_text(json.dumps({**owner, "pid": os.getpid()}))
    with pytest.raises(ValueError, match="files a run does not write"):
        check_output(str(run))
    assert leftover.is_dir()


@pytest.mark.parametrize(
    "head, labels",
    [
        ({"kind": "binary", "name": "match"}, [0, 1, 1, 0, 1, 0, 0, 1]),
        ({"kind": "binary", "name": "match", "from_logits": True}, [0, 1, 1, 0, 1, 0, 0, 1]),
        ({"kind": "multilabel", "num_labels": 3, "name": "labels"}, np.eye(3, dtype="float32")[[0, 1, 2, 0, 1, 2, 0, 1]]),
    ],
    ids=["binary", "binary_logits", "multilabel"],
)
def test_the_accuracy_is_the_heads_own(head, labels):
    image = keras.Input((8, 8, 3), name="image")
    units = head.get("num_labels", 1)
    activation = None if head.get("from_logits") else "sigmoid"
    model = keras.Model({"image": image}, keras.layers.Dense(units, activation=activation)(keras.layers.Flatten()(image)))
    net = ModelTask(model, head=head)
    examples = Examples(_images(8, 8, seed=4), None, labels=labels, verbose=False)
    result = robustness.robustness_curves(net, examples, ["occlusion"], [0, 1], batch_size=3)
    net.compile()
    expected = net.evaluate(examples.to_dataset(task=net, batch_size=8), verbose=0, return_dict=True)["accuracy"]
    assert result["curves"]["image"]["occlusion"][0] == pytest.approx(expected, abs=1e-6)


def test_the_help_lists_every_noise():
    evaluate_parser = cli.build_parser()._subparsers._group_actions[0].choices["evaluate"]
    help_text = " ".join(evaluate_parser.format_help().split())
    assert all(name in help_text for name in robustness.NOISES)
