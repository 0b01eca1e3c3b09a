"""Your own data: a table of image paths, texts and labels (or a folder of images by class).

A table is a CSV file, a JSON-lines file, a pandas DataFrame, a list of dicts or a dict of
columns, with one row per example:

| column | holds | default name |
|---|---|---|
| image | an image file: a path relative to the table's folder, or absolute | `image` |
| text | the question, caption or sentence | `text` |
| label | the answer: see below | `label` |

The head is inferred from the training labels (`infer_labels`), and can be forced with `task`:

- two distinct values (`0`/`1`, `true`/`false`, `no`/`yes`, any two strings): `"binary"`, classes in
  sorted order, the second one positive;
- strings, or at most `MAX_INTEGER_CLASSES` distinct integers: `"multiclass"`, with class names;
- lists (JSON lines), or cells split by `label_separator` (CSV): `"multilabel"`;
- other numbers: `"regression"`.

An image folder laid out by class (`DIR/<class>/<image file>`, the layout of
`keras.utils.image_dataset_from_directory`) is a second form: the class is the label, and
every example gets the text `caption` (a fixed template; `{file}` is replaced by the file's name
without its extension).

`load_table` reads the training table (and optional validation and test tables, else a seeded
split by image) into a `DatasetSplits` that `mmkeras.train` takes. Images are decoded once,
straight to the model's image shape, in parallel, into a uint8 table in memory or on disk
(`Examples`, `image_storage`).

Example:

>>> import json, tensorflow as tf
>>> rows = []
>>> for i in range(8):
...     _ = tf.io.write_file(f"pic{i}.png", tf.io.encode_png(tf.fill((6, 10, 3), tf.constant(30 * i, tf.uint8))))
...     rows.append({"image": f"pic{i}.png", "text": "is it dark?", "label": "yes" if i < 4 else "no"})
>>> with open("table.jsonl", "w") as f:
...     _ = f.write("\\n".join(json.dumps(row) for row in rows))
>>> splits = load_table("table.jsonl", test_split=0.25, validation_split=0.0, verbose=False)
>>> splits.task, splits.class_names, len(splits.train), len(splits.test), splits.image_shape
('binary', ['no', 'yes'], 6, 2, (6, 10, 3))
"""

import csv
import json
import os

import numpy as np

from mmkeras.data.datasets import TASKS, DatasetSplits, split_by_group
from mmkeras.data.pipeline import IMAGE_STORAGES, Examples
from mmkeras.validation import check_fraction, check_one_of, check_seed, received

MAX_INTEGER_CLASSES = 20
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".gif", ".bmp")
TABLE_SUFFIXES = (".csv", ".jsonl", ".parquet")
DEFAULT_CAPTION = "a photo"


class Table:
    """The columns of a table, read and checked: absolute image paths, texts and raw labels.

    Attributes:
        images: list of str (absolute paths).
        texts: numpy str array.
        labels: list of the raw label cells (None for a table without labels).
        name: str, a name for the data (the file's name without extension, or `"data"`).
        source: str or None, the absolute path of the file read.
    """

    def __init__(self, images, texts, labels, name="data", source=None):
        self.images, self.texts, self.labels, self.name, self.source = images, texts, labels, name, source

    def __len__(self):
        return len(self.images)

    def subset(self, indices):
        labels = None if self.labels is None else [self.labels[i] for i in indices]
        return Table([self.images[i] for i in indices], self.texts[indices], labels, self.name, self.source)


def _rows_or_columns(data, name):
    """A table given in Python or as a file -> (dict of columns, folder for relative paths, source)."""
    if isinstance(data, (str, os.PathLike)):
        path = os.path.abspath(os.fspath(data))
        if not os.path.isfile(path):
            raise ValueError(f"`{name}` must be an existing table file ({', '.join(TABLE_SUFFIXES)}). "
                             f"Received: {name}={os.fspath(data)!r} (no such file)")
        return _read_file(path, name), os.path.dirname(path), path
    if hasattr(data, "columns") and hasattr(data, "to_dict"):  # a pandas DataFrame
        return {str(c): list(data[c]) for c in data.columns}, os.getcwd(), None
    if isinstance(data, dict):
        return {str(k): list(v) for k, v in data.items()}, os.getcwd(), None
    if isinstance(data, (list, tuple)) and data and all(isinstance(row, dict) for row in data):
        keys = list(dict.fromkeys(k for row in data for k in row))
        return {k: [row.get(k) for row in data] for k in keys}, os.getcwd(), None
    raise ValueError(
        f"`{name}` must be a table: a .csv, .jsonl or .parquet file, a pandas DataFrame, a list of dicts "
        f"or a dict of columns (or an image folder by class). {received(name, data)}"
    )


def _read_file(path, name):
    suffix = os.path.splitext(path)[1].lower()
    check_one_of(f"{name}'s file type", suffix, TABLE_SUFFIXES)
    if suffix == ".parquet":
        try:
            import pandas
        except ImportError:
            raise ValueError(
                f"`{name}` is a Parquet file, which needs pandas and pyarrow (not dependencies of mmkeras): "
                f"pip install pandas pyarrow, or write the table as CSV or JSON lines. Received: {name}={path!r}"
            ) from None
        frame = pandas.read_parquet(path)
        return {str(c): list(frame[c]) for c in frame.columns}
    columns = {}
    with open(path, newline="", encoding="utf-8") as f:
        if suffix == ".csv":
            reader = csv.DictReader(f)
            columns = {k: [] for k in reader.fieldnames or []}
            for row in reader:
                for k in columns:
                    columns[k].append(row.get(k))
        else:
            rows = []
            for number, line in enumerate(f, 1):
                if line.strip():
                    try:
                        rows.append(json.loads(line))
                    except json.JSONDecodeError as error:
                        raise ValueError(f"`{name}` must hold one JSON object per line. Received: line {number} "
                                         f"of {path!r}, which is not JSON ({error.msg})") from None
                    if not isinstance(rows[-1], dict):
                        raise ValueError(f"`{name}` must hold one JSON object per line. Received: line {number} "
                                         f"of {path!r} holding a {type(rows[-1]).__name__}")
            columns = {k: [row.get(k) for row in rows] for k in dict.fromkeys(k for row in rows for k in row)}
    return columns


def _column(columns, key, argument, name, required=True):
    if key in columns:
        return columns[key]
    if not required:
        return None
    raise ValueError(f"`{argument}` must name a column of `{name}` (it has {sorted(columns)}). "
                     f"Received: {argument}={key!r}")


def read_table(data, *, image_column="image", text_column="text", label_column="label",
               require_labels=True, name="data"):
    """Read a table (see the module doc) into a checked `Table`; images are not decoded yet.

    Raises:
        ValueError: naming the argument for a missing file or column, an empty table, an empty
            cell, or a missing image file (with its row).
    """
    columns, folder, source = _rows_or_columns(data, name)
    images = _column(columns, image_column, "image_column", name)
    texts = _column(columns, text_column, "text_column", name)
    labels = _column(columns, label_column, "label_column", name, required=require_labels)
    if not images:
        raise ValueError(f"`{name}` must hold at least one row. Received: an empty table")
    for column, values in ((image_column, images), (text_column, texts), (label_column, labels or ())):
        for row, value in enumerate(values):
            if value is None or (isinstance(value, float) and np.isnan(value)) or (isinstance(value, str) and not value.strip()):
                raise ValueError(f"`{name}` must have a value in every cell of column {column!r}. "
                                 f"Received: an empty cell in row {row + 1}")
    paths = []
    for row, value in enumerate(images):
        path = os.path.join(folder, os.path.expanduser(str(value)))
        if not os.path.isfile(path):
            raise ValueError(f"`{name}` must name existing image files in column {image_column!r} (relative to "
                             f"the table's folder). Received: row {row + 1}: {str(value)!r} (no such file: {path})")
        paths.append(os.path.abspath(path))
    table_name = os.path.splitext(os.path.basename(source))[0] if source else "data"
    return Table(paths, np.asarray([str(t) for t in texts], dtype=str), labels, table_name, source)


def read_image_folder(folder, *, caption=DEFAULT_CAPTION, name="data"):
    """An image folder by class (`folder/<class>/<image>`) as a `Table`: labels are class names.

    Example:

    >>> import tensorflow as tf
    >>> for label in ("cat", "dog"):
    ...     _ = tf.io.write_file(f"pets/{label}/1.png", tf.io.encode_png(tf.zeros((4, 4, 3), tf.uint8)))
    >>> table = read_image_folder("pets", caption="a picture named {file}")
    >>> table.labels, table.texts.tolist()
    (['cat', 'dog'], ['a picture named 1', 'a picture named 1'])
    """
    if not isinstance(caption, str) or not caption.strip():
        raise ValueError(f"`caption` must be a non-empty text template. Received: caption={caption!r}")
    root = os.path.abspath(os.fspath(folder))
    classes = sorted(d for d in os.listdir(root) if os.path.isdir(os.path.join(root, d)) and not d.startswith("."))
    images, labels = [], []
    for label in classes:
        for file in sorted(os.listdir(os.path.join(root, label))):
            if os.path.splitext(file)[1].lower() in IMAGE_SUFFIXES:
                images.append(os.path.join(root, label, file))
                labels.append(label)
    if not images:
        raise ValueError(f"`{name}` must be a folder of class folders holding images ({', '.join(IMAGE_SUFFIXES)}). "
                         f"Received: {name}={os.fspath(folder)!r} with no such images")
    try:
        texts = [caption.format(file=os.path.splitext(os.path.basename(p))[0]) for p in images]
    except (KeyError, IndexError, ValueError) as error:
        raise ValueError(f"`caption` may only use the field {{file}}. Received: caption={caption!r} ({error})") from None
    return Table(images, np.asarray(texts, dtype=str), labels, os.path.basename(root.rstrip(os.sep)) or "data", root)


def _as_number(value):
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float, np.integer, np.floating)):
        return float(value)
    try:
        return float(str(value).strip())
    except ValueError:
        return None


def _split_cell(value, separator):
    if isinstance(value, (list, tuple, np.ndarray)):
        return [str(v) for v in value]
    if separator is not None:
        return [v.strip() for v in str(value).split(separator) if v.strip()]
    return None


def infer_labels(labels, *, task=None, class_names=None, label_separator=None):
    """The head kind, class names and label array for raw label cells.

    Args:
        labels: the label cells (strings, numbers, booleans, or lists for multilabel).
        task: None (infer, see the module doc) or one of `TASKS`.
        class_names: None, or the classes in order (binary: negative first).
        label_separator: str or None: a cell holds several labels split by it (multilabel).

    Returns:
        `(task, class_names, labels)`: class names are None for regression; labels are class
        indices (binary, multiclass), multi-hot rows (multilabel) or floats (regression).

    Example:

    >>> infer_labels(["no", "yes", "yes"])
    ('binary', ['no', 'yes'], array([0, 1, 1], dtype=int32))
    >>> infer_labels([3, 1, 2, 1])[:2]
    ('multiclass', ['1', '2', '3'])
    >>> infer_labels([0.5, 2.25])[0], infer_labels([["a", "b"], ["b"]])[1]
    ('regression', ['a', 'b'])
    """
    if task is not None:
        check_one_of("task", task, TASKS)
    lists = [_split_cell(v, label_separator) for v in labels]
    if task == "multilabel" or (task is None and all(v is not None for v in lists)):
        if any(v is None for v in lists):
            raise ValueError("`task` 'multilabel' needs list labels (JSON lines) or `label_separator`. "
                             f"Received: a label cell {labels[lists.index(None)]!r}")
        names = list(class_names) if class_names is not None else sorted({c for cell in lists for c in cell})
        _check_known(names, [c for cell in lists for c in cell])
        hot = np.zeros((len(lists), len(names)), "float32")
        position = {c: i for i, c in enumerate(names)}
        for row, cell in enumerate(lists):
            hot[row, [position[c] for c in cell]] = 1.0
        return "multilabel", names, hot
    numbers = [_as_number(v) for v in labels]
    numeric = all(n is not None for n in numbers)
    if numeric and any(not np.isfinite(n) for n in numbers):
        raise ValueError("`labels` must be finite numbers. Received: a label NaN or inf")
    if task == "regression" or (task is None and class_names is None and numeric and _regression_like(numbers)):
        if not numeric:
            raise ValueError("`task` 'regression' needs numeric labels. "
                             f"Received: {next(v for v, n in zip(labels, numbers) if n is None)!r}")
        return "regression", None, np.asarray(numbers, "float32")
    keys = [_class_key(v, n) for v, n in zip(labels, numbers)]
    if class_names is not None:
        names = [str(c) for c in class_names]
    else:
        distinct = sorted(set(keys), key=lambda k: (float(k) if numeric else 0, k))
        names = distinct
    _check_known(names, keys)
    kind = task or ("binary" if len(names) == 2 else "multiclass")
    if kind == "binary" and len(names) != 2:
        raise ValueError(f"`task` 'binary' needs exactly two classes. Received: {len(names)} classes {names[:10]}")
    position = {c: i for i, c in enumerate(names)}
    return kind, names, np.asarray([position[k] for k in keys], "int32")


def _regression_like(numbers):
    integers = all(float(n).is_integer() for n in numbers)
    return not integers or len(set(numbers)) > MAX_INTEGER_CLASSES


def _class_key(value, number):
    """The class name of a label cell: `1.0` and `"1"` are both `"1"`; `True` is `"true"`."""
    if isinstance(value, (bool, np.bool_)):
        return "true" if value else "false"
    if number is not None and float(number).is_integer():
        return str(int(number))
    return str(value).strip()


def _check_known(names, keys):
    unknown = sorted(set(keys) - set(names))
    if unknown:
        raise ValueError(f"Labels must be among the classes {names[:20]}. Received: labels {unknown[:10]}")


def encode_labels(table_labels, task, class_names, label_separator=None, name="data"):
    """Labels of a validation or test table, encoded with the training table's classes."""
    try:
        return infer_labels(table_labels, task=task, class_names=class_names, label_separator=label_separator)[2]
    except ValueError as error:
        raise ValueError(f"`{name}` must use the training table's labels: {error}") from None


def _sequence_length(texts):
    """Words in the longest text (at least 1)."""
    return max(1, max(len(str(t).split()) for t in texts))


def _first_image_shape(path):
    """`(height, width, 3)` of an image file (decoded once)."""
    import tensorflow as tf

    with open(path, "rb") as f:
        try:
            image = tf.io.decode_image(f.read(), channels=3, expand_animations=False)
        except tf.errors.InvalidArgumentError:
            raise ValueError(
                f"`data` must name encoded PNG, JPEG, GIF or BMP images. Received: {path!r}, which cannot be decoded"
            ) from None
    return (int(image.shape[0]), int(image.shape[1]), 3)


def _read(data, name, caption, columns, require_labels=True):
    if isinstance(data, (str, os.PathLike)) and os.path.isdir(data):
        return read_image_folder(data, caption=caption, name=name)
    return read_table(data, **columns, require_labels=require_labels, name=name)


def load_table(
    data,
    *,
    test_data=None,
    validation_data=None,
    image_column="image",
    text_column="text",
    label_column="label",
    task=None,
    class_names=None,
    label_separator=None,
    caption=DEFAULT_CAPTION,
    image_shape=None,
    validation_split=0.1,
    test_split=0.1,
    seed=0,
    image_storage="auto",
    memory_budget=None,
    verbose=True,
    decode=("train", "validation", "test"),
):
    """Read your own table(s) into a `DatasetSplits` for `mmkeras.train` (see the module doc).

    Args:
        data: the training table: a .csv / .jsonl / .parquet path, a DataFrame, a list of dicts,
            a dict of columns, or an image folder by class.
        test_data, validation_data: tables of the same form, or None: a seeded share of `data`'s
            images (`test_split`, `validation_split`) is held out instead. Defaults to `None`.
        image_column, text_column, label_column: str, column names. Default `"image"`, `"text"`,
            `"label"`.
        task: None (inferred from the training labels) or one of `TASKS`. Defaults to `None`.
        class_names: None (sorted distinct labels) or the classes in order (binary: negative
            first). Defaults to `None`.
        label_separator: str or None, splits a CSV label cell into several labels (multilabel).
        caption: str, the text of every example of an image folder (`{file}`: the file's name).
        image_shape: `(height, width, channels)` the images are decoded to, or None for the
            first training image's size. Defaults to `None`.
        validation_split, test_split: floats in [0, 1), the shares of `data`'s distinct images
            held out when no validation / test table is given. Default `0.1` each.
        seed: int, the seed of the held-out draw. Defaults to `0`.
        image_storage: `"auto"`, `"memory"` or `"disk"` (see `Examples`). Defaults to `"auto"`.
        memory_budget: int or None, bytes for `image_storage="auto"`.
        verbose: bool, progress bars while decoding. Defaults to `True`.
        decode: the splits whose images are decoded (`Examples`); the others are None (e.g.
            only `("test",)` to evaluate a trained model). Defaults to all three.

    Returns:
        A `DatasetSplits` named after the training table's file.
    """
    check_fraction("validation_split", validation_split)
    check_fraction("test_split", test_split)
    check_one_of("image_storage", image_storage, IMAGE_STORAGES)
    if task is not None:
        check_one_of("task", task, TASKS)
    check_seed("seed", seed)
    if test_data is None and not test_split:
        raise ValueError("Give a `test_data` table or a `test_split` above 0. Received: test_data=None, test_split=0")
    columns = {"image_column": image_column, "text_column": text_column, "label_column": label_column}
    train = _read(data, "data", caption, columns)
    kind, names, labels = infer_labels(train.labels, task=task, class_names=class_names, label_separator=label_separator)
    held = {}
    for split, given, share in (("test", test_data, test_split), ("validation", validation_data, validation_split)):
        if given is not None:
            table = _read(given, f"{split}_data", caption, columns)
            held[split] = (table, encode_labels(table.labels, kind, names, label_separator, f"{split}_data"))
        elif share:
            keep, out = split_by_group(np.asarray(train.images), share, int(seed) + (split == "validation"))
            if len(keep) == 0 or len(out) == 0:
                raise ValueError(f"`data` must hold at least two distinct images to hold out a {split} split. "
                                 f"Received: {len(set(train.images))} distinct image(s)")
            held[split] = (train.subset(out), labels[out])
            train, labels = train.subset(keep), labels[keep]
    image_shape = tuple(image_shape) if image_shape is not None else _first_image_shape(train.images[0])
    options = {"image_shape": image_shape, "image_storage": image_storage, "memory_budget": memory_budget, "verbose": verbose}

    def examples(split, table, table_labels):
        if split not in decode:
            return None
        classes = names if kind in ("binary", "multiclass") else None
        return Examples(table.images, table.texts, table_labels, class_names=classes, **options)

    splits = DatasetSplits(
        name=train.name,
        train=examples("train", train, labels),
        validation=examples("validation", *held["validation"]) if "validation" in held else None,
        test=examples("test", *held["test"]),
        class_names=names,
        task=kind,
        output_name="label",
        image_shape=image_shape,
        sequence_length=_sequence_length(train.texts),
        description=f"your own data, read from {train.source or 'Python'}",
        source={
        "data": train.source, "test_data": _source(test_data), "validation_data": _source(validation_data),
        **columns, "label_separator": label_separator, "caption": caption, "validation_split": validation_split,
        "test_split": test_split, "seed": int(seed), "task": kind, "class_names": names,
        },
    )
    return splits


def load_examples(data, *, task, class_names, image_shape, image_column="image", text_column="text",
                  label_column="label", label_separator=None, caption=DEFAULT_CAPTION, require_labels=True,
                  image_storage="auto", memory_budget=None, verbose=True, name="data"):
    """One table (or image folder) as `Examples` for a trained model: its head kind, classes, shape.

    Labels are encoded with the model's `class_names` (a label the model does not know raises);
    with `require_labels=False` a table without a label column gives examples without labels.

    Example:

    >>> import tensorflow as tf
    >>> _ = tf.io.write_file("a.png", tf.io.encode_png(tf.zeros((5, 5, 3), tf.uint8)))
    >>> examples = load_examples([{"image": "a.png", "text": "hi", "label": "yes"}], task="binary",
    ...                          class_names=["no", "yes"], image_shape=(4, 4, 3), verbose=False)
    >>> examples.labels.tolist(), examples.image_shape
    ([1], (4, 4, 3))
    """
    check_one_of("task", task, TASKS)
    columns = {"image_column": image_column, "text_column": text_column, "label_column": label_column}
    table = _read(data, name, caption, columns, require_labels=require_labels)
    labels = None if table.labels is None else encode_labels(table.labels, task, class_names, label_separator, name)
    return Examples(
        table.images, table.texts, labels, image_shape=image_shape,
        class_names=class_names if task in ("binary", "multiclass") else None,
        image_storage=image_storage, memory_budget=memory_budget, verbose=verbose,
    )


def data_name(data):
    """The name runs give to your data: the table file's or image folder's name, else `"data"`.

    Example:

    >>> data_name("tables/reviews.csv"), data_name([{"image": "a.png"}])
    ('reviews', 'data')
    """
    if isinstance(data, (str, os.PathLike)):
        path = os.path.abspath(os.fspath(data)).rstrip(os.sep)
        return os.path.splitext(os.path.basename(path))[0] if os.path.splitext(path)[1] else os.path.basename(path)
    return "data"


def _source(data):
    return os.path.abspath(os.fspath(data)) if isinstance(data, (str, os.PathLike)) else None
