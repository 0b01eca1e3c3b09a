"""Your own data: tables of image paths, texts and labels, image folders, bounded memory, the CLI."""

import csv
import json
import os
import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf

import mmkeras
from mmkeras import data
from mmkeras.cli import main
from mmkeras.data.tables import infer_labels
from mmkeras.preprocessing import decode_image, text_vectorizer

TINY = {k: v for k, v in mmkeras.get_entry("s1").tiny.items() if k not in ("image_shape", "sequence_length", "vocab_size")}


def _write_images(folder, n, shape=(12, 20, 3), seed=0):
    """`n` PNG files, bright for odd i and dark for even i; returns their names (relative)."""
    rng = np.random.default_rng(seed)
    os.makedirs(folder / "img", exist_ok=True)
    names = []
    for i in range(n):
        image = rng.integers(0, 60, shape).astype("uint8") + (150 if i % 2 else 0)
        tf.io.write_file(str(folder / "img" / f"{i}.png"), tf.io.encode_png(image))
        names.append(f"img/{i}.png")
    return names


def _rows(names, labels=None):
    texts = ["is it bright?", "is the picture light?", "bright or dark?"]
    labels = labels if labels is not None else ["yes" if i % 2 else "no" for i in range(len(names))]
    return [{"image": name, "text": texts[i % 3], "label": label} for i, (name, label) in enumerate(zip(names, labels))]


def _write_csv(path, rows, fields=("image", "text", "label")):
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, list(fields))
        writer.writeheader()
        writer.writerows(rows)
    return str(path)


# ---------------------------------------------------------------------------------------------
# Labels -> head.


@pytest.mark.parametrize(
    "labels, task, classes, encoded",
    [
        (["no", "yes", "yes"], "binary", ["no", "yes"], [0, 1, 1]),
        (["true", "false"], "binary", ["false", "true"], [1, 0]),
        ([True, False, True], "binary", ["false", "true"], [1, 0, 1]),
        (["1", "0", "1"], "binary", ["0", "1"], [1, 0, 1]),
        ([2, 10, 2], "binary", ["2", "10"], [0, 1, 0]),  # numeric order, not string order
        (["cat", "dog", "bird"], "multiclass", ["bird", "cat", "dog"], [1, 2, 0]),
        ([3, 1, 2, 1.0], "multiclass", ["1", "2", "3"], [2, 0, 1, 0]),
    ],
)
def test_labels_give_the_head(labels, task, classes, encoded):
    kind, names, array = infer_labels(labels)
    assert (kind, names, array.tolist()) == (task, classes, encoded)


def test_numbers_lists_and_overrides():
    assert infer_labels([0.5, 1.25, 3.0])[0] == "regression"
    many = list(range(data.tables.MAX_INTEGER_CLASSES + 1))
    assert infer_labels(many)[0] == "regression"  # many distinct integers: a quantity, not classes
    assert infer_labels(many[:-1])[0] == "multiclass"
    kind, names, hot = infer_labels([["a", "b"], ["c"], []])
    assert kind == "multilabel" and names == ["a", "b", "c"] and hot.tolist() == [[1, 1, 0], [0, 0, 1], [0, 0, 0]]
    kind, names, hot = infer_labels(["a|b", "b"], label_separator="|")
    assert (kind, names, hot.tolist()) == ("multilabel", ["a", "b"], [[1, 1], [0, 1]])
    assert infer_labels([1, 2, 1], task="regression")[2].dtype == np.float32
    assert infer_labels(["yes", "no"], class_names=["yes", "no"])[2].tolist() == [0, 1]  # the order given
    with pytest.raises(ValueError, match=r"`task` must be one of \['binary', 'multiclass', 'multilabel', 'regression'\]"):
        infer_labels([1, 0], task="classify")
    with pytest.raises(ValueError, match="'binary' needs exactly two classes"):
        infer_labels(["a", "b", "c"], task="binary")
    with pytest.raises(ValueError, match="'regression' needs numeric labels.*'x'"):
        infer_labels(["1", "x"], task="regression")
    with pytest.raises(ValueError, match=r"Labels must be among the classes \['no', 'yes'\].*\['maybe'\]"):
        infer_labels(["maybe"], class_names=["no", "yes"])


def test_dataset_splits_check_the_task():
    examples = data.Examples(np.zeros((2, 8, 8, 3), "uint8"), ["a", "b"], [0, 1])
    with pytest.raises(ValueError, match=r"`task` must be one of \['binary', 'captioning', 'multiclass', 'multilabel', 'regression', 'retrieval'\]"):
        data.DatasetSplits("mine", examples, None, examples, ["no", "yes"], "classification", "label", (8, 8, 3), 2)
    with pytest.raises(ValueError, match=r"`class_names` must be \[negative, positive\]"):
        data.DatasetSplits("mine", examples, None, examples, ["a", "b", "c"], "binary", "label", (8, 8, 3), 2)


# ---------------------------------------------------------------------------------------------
# Tables.


def test_every_table_form_reads_the_same(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    rows = _rows(_write_images(tmp_path, 6))
    csv_path = _write_csv(tmp_path / "t.csv", rows)
    with open(tmp_path / "t.jsonl", "w") as f:
        f.write("\n".join(json.dumps(r) for r in rows) + "\n\n")
    columns = {k: [r[k] for r in rows] for k in rows[0]}

    class Frame:  # what the reader uses of a pandas DataFrame
        def __init__(self, columns):
            self.columns, self._columns = list(columns), columns

        def __getitem__(self, key):
            return self._columns[key]

        def to_dict(self):  # pragma: no cover - only its presence matters
            return self._columns

    tables = [data.read_table(source) for source in (csv_path, str(tmp_path / "t.jsonl"), rows, columns, Frame(columns))]
    for table in tables:
        assert table.images == [str(tmp_path / r["image"]) for r in rows]
        assert table.texts.tolist() == [r["text"] for r in rows] and list(table.labels) == [r["label"] for r in rows]
    # Paths in a file are relative to the file's folder, wherever the command runs.
    monkeypatch.chdir(tmp_path / "img")
    assert data.read_table(csv_path).images == tables[0].images


def test_table_errors_name_what_is_wrong(tmp_path):
    rows = _rows(_write_images(tmp_path, 3))
    with pytest.raises(ValueError, match=r"`label_column` must name a column of `data` \(it has \['image', 'label', 'text'\]\)"):
        data.read_table(_write_csv(tmp_path / "t.csv", rows), label_column="answer")
    rows[1]["image"] = "img/missing.png"
    with pytest.raises(ValueError, match="row 2: 'img/missing.png' \\(no such file"):
        data.read_table(_write_csv(tmp_path / "t.csv", rows))
    rows[1]["image"], rows[2]["text"] = "img/1.png", " "
    with pytest.raises(ValueError, match="empty cell in row 3"):
        data.read_table(_write_csv(tmp_path / "t.csv", rows))
    with pytest.raises(ValueError, match="no such file"):
        data.read_table(str(tmp_path / "nope.csv"))
    (tmp_path / "t.txt").write_text("x")
    with pytest.raises(ValueError, match=r"must be one of \['.csv', '.jsonl', '.parquet'\]"):
        data.read_table(str(tmp_path / "t.txt"))
    (tmp_path / "bad.jsonl").write_text('{"image": "img/0.png"}\nnot json\n')
    with pytest.raises(ValueError, match="line 2 .* not JSON"):
        data.read_table(str(tmp_path / "bad.jsonl"))
    with pytest.raises(ValueError, match="must be a table"):
        data.read_table(42)
    (tmp_path / "img" / "1.png").write_bytes(b"not an image")
    with pytest.raises(ValueError, match=r"1.png'?, which cannot be decoded"):
        data.load_table(_write_csv(tmp_path / "t.csv", _rows([f"img/{i}.png" for i in range(3)])), verbose=False)


def test_load_table_splits_by_image_and_decodes_to_the_model_shape(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # paths in Python rows are relative to the working folder
    names = _write_images(tmp_path, 20)
    rows = _rows(names) + _rows(names)  # two questions per image
    path = _write_csv(tmp_path / "t.csv", rows)
    splits = data.load_table(path, image_shape=(8, 10, 3), validation_split=0.2, test_split=0.2, verbose=False)
    assert (splits.name, splits.task, splits.class_names) == ("t", "binary", ["no", "yes"])
    assert len(splits.train) + len(splits.validation) + len(splits.test) == 40
    assert splits.train.images.shape[1:] == (8, 10, 3) and splits.train.images.dtype == np.uint8

    def shown(examples):  # the images the examples show (each image file's pixels differ)
        return {examples.images[i].tobytes() for i in np.unique(examples.image_index)}

    # No image is on two sides; the same seed gives the same split.
    train, test = shown(splits.train), shown(splits.test)
    assert train and test and not train & test
    again = data.load_table(path, image_shape=(8, 10, 3), validation_split=0.2, test_split=0.2, verbose=False)
    np.testing.assert_array_equal(again.test.labels, splits.test.labels)
    # Decoded straight to the model's shape, exactly as the exported model decodes a request.
    one = data.load_table(path, image_shape=(8, 10, 3), validation_split=0.0, test_data=[rows[3]], verbose=False)
    expected = decode_image(tf.io.read_file(str(tmp_path / rows[3]["image"])), (8, 10, 3)).numpy()
    np.testing.assert_array_equal(one.test.images[0] / np.float32(255.0), np.round(expected * 255) / np.float32(255.0))


def test_image_folder_by_class(tmp_path):
    for label, value in (("cat", 20), ("dog", 200), ("eel", 90)):
        for i in range(2):
            tf.io.write_file(str(tmp_path / "pets" / label / f"{label}{i}.png"), tf.io.encode_png(tf.fill((6, 6, 3), tf.constant(value, tf.uint8))))
    (tmp_path / "pets" / "cat" / "notes.txt").write_text("not an image")
    splits = data.load_table(str(tmp_path / "pets"), test_data=str(tmp_path / "pets"), validation_split=0.0,
                             caption="a pet called {file}", verbose=False)
    assert splits.task == "multiclass" and splits.class_names == ["cat", "dog", "eel"] and len(splits.train) == 6
    assert sorted(splits.train.texts)[:2] == ["a pet called cat0", "a pet called cat1"]
    with pytest.raises(ValueError, match="may only use the field"):
        data.read_image_folder(str(tmp_path / "pets"), caption="a {kind}")
    with pytest.raises(ValueError, match="no such images"):
        data.read_image_folder(str(tmp_path / "pets" / "cat"))


# ---------------------------------------------------------------------------------------------
# Memory.


def test_a_table_over_the_memory_budget_goes_to_disk(tmp_path):
    names = _write_images(tmp_path, 12)
    paths = [str(tmp_path / n) for n in names]
    labels = [i % 2 for i in range(12)]
    in_memory = data.Examples(paths, ["a"] * 12, labels, image_shape=(8, 8, 3), verbose=False)
    budget = 12 * 8 * 8 * 3 - 1  # one byte short of the uint8 table
    on_disk = data.Examples(paths, ["a"] * 12, labels, image_shape=(8, 8, 3), verbose=False, memory_budget=budget)
    assert type(in_memory.images) is np.ndarray and isinstance(on_disk.images, np.memmap)
    assert not os.path.exists(on_disk.images.filename)  # unlinked at once: nothing is left behind
    np.testing.assert_array_equal(np.asarray(on_disk.images), in_memory.images)
    pre = mmkeras.preprocessing.Preprocessor.from_vectorizer(text_vectorizer(["a"], sequence_length=2), image_shape=(8, 8, 3))
    for a, b in zip(in_memory.to_dataset(pre, batch_size=5, shuffle=True, seed=1),
                    on_disk.subset(np.arange(12)).to_dataset(pre, batch_size=5, shuffle=True, seed=1)):
        np.testing.assert_array_equal(a[0]["image"], b[0]["image"])
    forced = data.Examples(paths, ["a"] * 12, labels, image_shape=(8, 8, 3), verbose=False, image_storage="disk")
    assert isinstance(forced.images, np.memmap)
    with pytest.raises(ValueError, match=r"`image_storage` must be one of .*'disk'.*Received: image_storage='ram'"):
        data.Examples(paths, ["a"] * 12, labels, image_shape=(8, 8, 3), image_storage="ram")


def test_resizing_goes_chunk_by_chunk_and_keeps_uint8():
    images = np.random.default_rng(0).integers(0, 256, (600, 20, 30, 3)).astype("uint8")
    examples = data.Examples(images, None, image_shape=(20, 30, 3))
    small = examples.resized((10, 15, 3))
    assert small.images.dtype == np.uint8 and small.images.shape == (600, 10, 15, 3)
    expected = decode_image(tf.io.encode_png(images[599]), (10, 15, 3)).numpy()
    np.testing.assert_array_equal(small.images[599] / np.float32(255.0), np.round(expected * 255) / np.float32(255.0))


# ---------------------------------------------------------------------------------------------
# Pipelines for models that take raw strings.


def test_make_dataset_feeds_a_raw_string_model_and_a_token_id_model():
    texts = ["a red circle", "a blue square"] * 4
    images = np.random.default_rng(0).integers(0, 256, (8, 32, 32, 3)).astype("uint8")
    vectorizer = text_vectorizer(texts, vocab_size=50, sequence_length=4)
    tiny = {k: v for k, v in mmkeras.get_entry("fusion_gated").tiny.items() if k not in ("sequence_length", "vocab_size")}
    raw = mmkeras.get_model("fusion_gated", text_vectorizer=vectorizer, **{**tiny, "image_shape": (32, 32, 3)})
    batch = next(iter(data.make_dataset(images, texts, [0, 1] * 4, task=raw, batch_size=4)))
    assert batch[0]["text"].dtype == tf.string
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        raw.fit(data.make_dataset(images, texts, [0, 1] * 4, task=raw, batch_size=4), epochs=1, verbose=0)
    assert not [w for w in caught if "shuffle" in str(w.message)]  # no "shuffle=True ... ignored" on every fit
    ids = mmkeras.get_model("s1", image_shape=(32, 32, 3), sequence_length=4, vocab_size=50, **TINY,
                            preprocessor=raw.preprocessor.__class__.from_vectorizer(vectorizer, image_shape=(32, 32, 3)))
    batch = next(iter(data.make_dataset(images, texts, [0, 1] * 4, task=ids, batch_size=4)))
    assert batch[0]["text"].dtype == tf.int32 and tuple(batch[0]["text"].shape) == (4, 4)
    with pytest.raises(ValueError, match="`task` or `preprocessor`, not both"):
        data.make_dataset(images, texts, task=ids, preprocessor=ids.preprocessor)
    with pytest.raises(ValueError, match="raw strings for a model that tokenizes"):
        data.make_dataset(images, np.ones((8, 4), "int32"), task=raw)
    with pytest.raises(ValueError, match="pass `text`"):
        data.make_dataset(images, None, task=raw)


# ---------------------------------------------------------------------------------------------
# Training on a table, from Python and from the command line.


def test_train_from_python_on_lists_of_dicts(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    names = _write_images(tmp_path, 24)
    values = [float(i % 2) * 2.5 + 0.25 * (i % 3) for i in range(24)]
    result = mmkeras.train("s1", data=_rows(names, values), image_shape=(32, 32, 3), epochs=2, output=False,
                           model_overrides=TINY, verbose=2)
    assert result.model.head.kind == "regression" and "mae" in result.metrics["test_metrics"]
    assert result.metrics["examples"]["validation"] > 0 and result.metrics["data"]["data"] is None
    out = capsys.readouterr().out
    assert "\r" not in out and "\x08" not in out and out.count("Epoch 2/2") == 1  # one line per epoch
    assert "Test mae:" in out
    with pytest.raises(ValueError, match="goes with `data`"):
        mmkeras.train("s1", test_data="x.csv", output=False)
    with pytest.raises(ValueError, match="not both"):
        mmkeras.train("s1", "easy_vqa", data=_rows(names), output=False)
    with pytest.raises(ValueError, match=r"`verbose` must be one of"):
        mmkeras.train("s1", data=_rows(names), verbose=3, output=False)


def test_own_dataset_splits_get_a_validation_split():
    images = np.random.default_rng(0).integers(0, 256, (40, 32, 32, 3)).astype("uint8")
    examples = data.Examples(images, ["is it red?", "is it blue?"] * 20, [0, 1] * 20, class_names=["no", "yes"])
    splits = data.DatasetSplits("mine", examples, None, examples.subset(range(8)), ["no", "yes"], "binary", "label", (32, 32, 3), 3)
    result = mmkeras.train("s1", splits, epochs=1, max_steps=1, output=False, model_overrides=TINY, verbose=0)
    assert result.metrics["examples"] == {"train": 36, "validation": 4, "test": 8}
    assert "val_loss" in result.history


def test_cli_trains_evaluates_predicts_and_exports_a_table(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    names = _write_images(tmp_path, 40, shape=(20, 40, 3))
    rows = _rows(names)
    train_csv, test_csv = _write_csv(tmp_path / "train.csv", rows[:32]), _write_csv(tmp_path / "test.csv", rows[32:])
    run = str(tmp_path / "run")
    code = main(["train", "--model", "s1", "--tiny", "--data", train_csv, "--test-data", test_csv, "--image-shape",
                 "32,32,3", "--epochs", "2", "--output", run, "--log"])
    assert code == 0
    metrics = json.loads(open(os.path.join(run, "metrics.json")).read())
    assert metrics["task"] == "binary" and metrics["data"]["test_data"] == test_csv
    assert metrics["examples"]["test"] == 8 and sorted(os.listdir(run)) == ["history.png", "metrics.json", "model.keras", "saved_model"]
    capsys.readouterr()
    # evaluate reads the recorded test table again, and another table when told.
    assert main(["evaluate", run, "--json"]) == 0
    evaluated = json.loads(capsys.readouterr().out)
    assert evaluated["accuracy"] == pytest.approx(metrics["test_accuracy"], abs=1e-6)
    with open(tmp_path / "more.jsonl", "w") as f:  # another table, other column names
        f.write("\n".join(json.dumps({"picture": r["image"], "question": r["text"], "label": r["label"]}) for r in rows[32:]))
    assert main(["evaluate", run, "--data", str(tmp_path / "more.jsonl"), "--image-column", "picture",
                 "--text-column", "question", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["accuracy"] == pytest.approx(metrics["test_accuracy"], abs=1e-6)
    assert main(["evaluate", run, "--image-column", "picture"]) == 2
    assert "--image-column goes with --data" in capsys.readouterr().err
    # predict and export work on the folder.
    assert main(["predict", run, str(tmp_path / names[1]), "is it bright?", "--json"]) == 0
    answer = json.loads(capsys.readouterr().out)
    assert answer["answer"] in ("no", "yes")
    assert main(["export", run, str(tmp_path / "export")]) == 0
    served = tf.saved_model.load(str(tmp_path / "export")).signatures["serving_default"](
        image=tf.constant([open(tmp_path / names[1], "rb").read()]), text=tf.constant(["is it bright?"]))
    served = {k: v.numpy() for k, v in served.items()}
    assert any(np.isclose(v, answer["probability"], atol=2e-2).any() or np.isclose(v, 1 - answer["probability"], atol=2e-2).any()
               for v in served.values() if v.dtype.kind == "f")
    # Errors are one line, exit code 2.
    assert main(["train", "--data", str(tmp_path / "nope.csv"), "--output", str(tmp_path / "r2")]) == 2
    assert "no such file" in capsys.readouterr().err and not os.path.exists(tmp_path / "r2")
    assert main(["train", "--test-data", test_csv]) == 2
    assert "--test-data goes with --data" in capsys.readouterr().err


def test_evaluate_a_run_on_a_held_out_share(tmp_path):
    names = _write_images(tmp_path, 30)
    path = _write_csv(tmp_path / "t.csv", _rows(names))
    run = str(tmp_path / "run")
    result = mmkeras.train("s1", data=path, image_shape=(32, 32, 3), epochs=1, max_steps=1, output=run,
                           model_overrides=TINY, export=False, verbose=0, data_options={"test_split": 0.2})
    again = mmkeras.evaluate(run, verbose=0)  # the same held-out images, drawn again from the table
    assert again["accuracy"] == pytest.approx(result.metrics["test_accuracy"], abs=1e-6)
    assert result.metrics["examples"]["test"] == 6
    keras.backend.clear_session()


def test_train_refuses_what_it_sets_itself():
    with pytest.raises(ValueError, match=r"cannot set \['head', 'image_shape'\]: train sets them from the data"):
        mmkeras.train("s1", model_overrides={"image_shape": (8, 8, 3), "head": "binary"}, output=False)
    with pytest.raises(ValueError, match=r"`task` must be one of \['multiclass', 'binary'\]|`task` must be one of \['binary', 'multiclass'\]"):
        data.easy_vqa.load_easy_vqa("yes_no", limit=10)
