"""Input pipelines: raw images and texts -> `tf.data` batches of `{"image", "text"}` and labels.

Images come in one of three forms, recognised from what is passed:

- **arrays**: a numpy array `(n, height, width, channels)` (or `(n, height, width)` for grey),
  uint8 in [0, 255] or floats in [0, 1];
- **file paths**: a sequence of `str` / `os.PathLike` naming PNG, JPEG, GIF or BMP files;
- **encoded bytes**: a sequence of `bytes`, each one encoded image.

Texts are raw strings (a list of `str`, a numpy `str` or object array) or token ids (an int array
`(n, sequence_length)`). Raw strings become token ids through the `Preprocessor`'s vocabulary.

Everything is checked before a single batch is made: `Examples` raises a `ValueError` naming the
argument for a missing file, undecodable bytes, different lengths, an empty dataset or a label
out of range. By default images are decoded once, resized to the model's shape and kept in
memory as uint8 (`in_memory=True`); batches then gather from that table, scale to [0, 1] and
prefetch. `in_memory=False` streams instead: files are read and decoded inside the `tf.data`
pipeline, batch by batch in parallel, as the first epoch reaches them, and kept in a table (in
memory, or on disk) that later epochs gather from.

The decoding and resizing are `mmkeras.preprocessing.decode_image_uint8` (the ops of
`decode_image`, which exported models run on raw bytes, with resized images rounded to 8 bits to
keep the table 4x smaller) and `images_to_float` scales each batch.

Example:

>>> from mmkeras.preprocessing import Preprocessor, text_vectorizer
>>> texts = ["is there a circle?", "what color is the shape?"]
>>> pre = Preprocessor.from_vectorizer(text_vectorizer(texts, sequence_length=8), image_shape=(32, 32, 3))
>>> images = np.zeros((2, 32, 32, 3), "uint8")
>>> dataset = make_dataset(images, texts, labels=[1, 0], preprocessor=pre, batch_size=2)
>>> inputs, labels = next(iter(dataset))
>>> inputs["image"].shape, inputs["text"].shape
(TensorShape([2, 32, 32, 3]), TensorShape([2, 8]))
"""

import copy
import os
import tempfile

import keras
import numpy as np
import tensorflow as tf

from mmkeras.defaults import IMAGE_STORAGES
from mmkeras.preprocessing import (
    as_string_array,
    decode_image,
    decode_image_uint8,
    error_reason,
    fit_images,
    images_to_float,
)
from mmkeras.validation import check_image_shape, check_one_of, check_positive_int, received

IMAGE_FORMS = ("arrays", "paths", "bytes")


# Batches kept ready ahead of the model (`prefetch=True`).
PREFETCH_BATCHES = 2


def without_autotune(dataset):
    """`dataset` with tf.data's autotuning off: parallel maps keep their starting parallelism.

    Autotuning runs a thread beside each iterator that re-tunes the pipeline on a timer whose
    period doubles (10 ms, 20 ms, ... up to 60 s). When the iterator is destroyed (at the end of a
    `fit` call or epoch, of `evaluate`, of `predict`), TensorFlow 2.21 often waits for that timer
    to run out: the call then ends at the next of 1.27 s, 2.55 s, 5.1 s, 10.2 s, 20.5 s, ... after
    the iterator started, up to twice its time, at random (`benchmarks/stall.py` measures it).
    Without autotuning, parallel maps keep `tf.data.AUTOTUNE`'s starting parallelism and the
    pipelines here prefetch a fixed `PREFETCH_BATCHES`.

    Example:

    >>> without_autotune(tf.data.Dataset.range(3)).options().autotune.enabled
    False
    """
    options = tf.data.Options()
    options.autotune.enabled = False
    return dataset.with_options(options)


def image_form(images, name="images"):
    """Which form `images` are in: `"arrays"`, `"paths"` or `"bytes"` (see the module doc).

    Example:

    >>> image_form(["a.png", "b.jpg"]), image_form([b"\\x89PNG..."]), image_form(np.zeros((1, 8, 8, 3)))
    ('paths', 'bytes', 'arrays')
    """
    if isinstance(images, (str, bytes, os.PathLike)):
        raise ValueError(
            f"`{name}` must be a sequence of images (an array, file paths or encoded bytes), not one "
            f"item: wrap a single image in a list. {received(name, images)}"
        )
    if isinstance(images, tf.Tensor):
        images = images.numpy()
    if isinstance(images, np.ndarray) and images.dtype != object and images.dtype.kind not in "SU":
        if images.dtype.kind in "uif" and images.ndim in (3, 4):
            return "arrays"
        raise ValueError(
            f"`{name}` given as an array must be numeric with shape (n, height, width, channels). "
            f"Received: {name} of dtype {images.dtype} and shape {images.shape}"
        )
    try:
        items = list(images)
    except TypeError:
        raise ValueError(
            f"`{name}` must be an image array, a sequence of file paths or a sequence of encoded bytes. "
            f"{received(name, images)}"
        ) from None
    if items and all(isinstance(i, (bytes, np.bytes_)) for i in items):
        return "bytes"
    if items and all(isinstance(i, (str, np.str_, os.PathLike)) for i in items):
        return "paths"
    if items and all(isinstance(i, np.ndarray) and i.ndim in (2, 3) for i in items):
        return "arrays"
    if not items:
        return "arrays"
    kinds = sorted({type(i).__name__ for i in items})
    raise ValueError(
        f"`{name}` must be all file paths (str), all encoded images (bytes) or an image array. "
        f"Received: {name} holding items of type {kinds}"
    )


DECODE_CHUNK = 256


def default_memory_budget():
    """Bytes a decoded image table may take in memory: a quarter of the machine's memory."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 4
    except (ValueError, OSError, AttributeError):  # pragma: no cover - not on Linux
        return 2 * 1024**3


def image_table(n, image_shape, dtype="uint8", *, storage="auto", memory_budget=None, cache_dir=None):
    """An empty table `(n, *image_shape)` for decoded images: in memory, or on disk.

    Args:
        n: int, the number of images.
        image_shape: `(height, width, channels)`.
        dtype: the table's dtype. Defaults to `"uint8"`.
        storage: `"memory"` (a numpy array), `"disk"` (a `np.memmap` on a file that is deleted
            at once: the data lives as long as the table, and nothing is left behind, even after
            a crash) or `"auto"`: disk when the table would take more than `memory_budget` bytes.
            Defaults to `"auto"`.
        memory_budget: int or None, bytes; None is a quarter of the machine's memory
            (`default_memory_budget()`).
        cache_dir: str or None, the folder of the disk table. Defaults to `None`, the temporary
            folder (`TMPDIR`).

    Example:

    >>> table = image_table(10, (32, 32, 3), memory_budget=1000)
    >>> type(table).__name__, table.shape
    ('memmap', (10, 32, 32, 3))
    """
    check_one_of("storage", storage, IMAGE_STORAGES)
    check_positive_int("memory_budget", memory_budget, allow_none=True)
    shape = (int(n), *check_image_shape("image_shape", image_shape))
    if storage == "auto":
        nbytes = int(np.prod(shape)) * np.dtype(dtype).itemsize
        storage = "disk" if nbytes > (memory_budget or default_memory_budget()) else "memory"
    if storage == "memory":
        return np.empty(shape, dtype)
    if cache_dir is not None and not os.path.isdir(cache_dir):
        raise ValueError(f"`cache_dir` must be an existing folder. Received: cache_dir={os.fspath(cache_dir)!r}")
    fd, path = tempfile.mkstemp(prefix="mmkeras-images-", suffix=".u8", dir=cache_dir)
    try:
        os.close(fd)
        return np.memmap(path, dtype, "w+", shape=shape)
    finally:
        os.unlink(path)  # the mapping keeps the data; the space is freed with the table


def _read(item, i, name, read_files):
    """The encoded bytes of `items[i]` and how to name it in an error."""
    if not read_files:
        return bytes(item), f"{name}[{i}]"
    path = os.fspath(item)
    try:
        with open(path, "rb") as f:
            return f.read(), f"{name}[{i}]={path!r}"
    except OSError as error:
        raise ValueError(
            f"`{name}` must name readable image files. Received: {name}[{i}]={path!r} ({error.strerror})"
        ) from None


def _raise_first_bad(items, start, image_shape, name, read_files):
    """Decode `items[start:]` one by one and raise a `ValueError` naming the first that fails."""
    for i in range(start, len(items)):
        data, where = _read(items[i], i, name, read_files)
        try:
            decode_image_uint8(data, image_shape, where)
        except (tf.errors.InvalidArgumentError, ValueError) as error:
            reason = error_reason(error)
            if reason.startswith(where):  # the check before decoding names the item itself
                raise ValueError(f"`{name}` must be encoded PNG, JPEG, GIF, BMP or WebP images. Received: {reason}") from None
            raise ValueError(
                f"`{name}` must be encoded PNG, JPEG, GIF, BMP or WebP images. Received: {where} ({len(data)} "
                f"bytes), which cannot be decoded ({reason})"
            ) from None


def decode_all(items, image_shape, name, read_files, verbose, *, storage="memory", memory_budget=None, cache_dir=None,
               as_float=False):
    """Decode encoded images (or files) once, straight to `image_shape`, into a uint8 table.

    Images are read and decoded in parallel (`tf.data`), `DECODE_CHUNK` at a time, with
    `decode_image_uint8` (an image of the model's size exactly as `decode_image` gives it, a
    resized one rounded to 8 bits),
    and written into one table (`image_table`: in memory or on disk, see `storage`). Memory:
    the table plus a few chunks; a progress bar on 1,000 images or more. Every path is checked
    first, and an image that cannot be decoded is named in the error. `as_float=True` gives
    `decode_image`'s float32 instead (what an exported model computes: for predictions).
    """
    if read_files:  # every path first: a missing file is reported before minutes of decoding
        for i, item in enumerate(items):
            if not os.path.isfile(os.fspath(item)):
                raise ValueError(
                    f"`{name}` must name existing image files. Received: {name}[{i}]={os.fspath(item)!r} "
                    "(no such file)"
                )
    decode = decode_image if as_float else decode_image_uint8
    table = image_table(
        len(items), image_shape, "float32" if as_float else "uint8", storage=storage, memory_budget=memory_budget,
        cache_dir=cache_dir,
    )
    source = tf.data.Dataset.from_tensor_slices([os.fspath(i) if read_files else bytes(i) for i in items])
    if read_files:
        source = source.map(tf.io.read_file, num_parallel_calls=tf.data.AUTOTUNE)
    chunks = without_autotune(
        source.map(lambda data: decode(data, image_shape), num_parallel_calls=tf.data.AUTOTUNE)
        .batch(DECODE_CHUNK).prefetch(1)
    )
    progress = None
    if verbose and len(items) >= 1000:
        print(f"Decoding {len(items):,} images to {'x'.join(map(str, image_shape))}:")
        progress = keras.utils.Progbar(len(items), unit_name="image", verbose=2 if verbose == 2 else 1)
    done, iterator = 0, iter(chunks)
    while done < len(items):
        try:
            chunk = next(iterator).numpy()
        except tf.errors.OpError:
            _raise_first_bad(items, done, image_shape, name, read_files)
            raise
        table[done : done + len(chunk)] = chunk
        done += len(chunk)
        if progress is not None:
            progress.update(done, finalize=done == len(items))
    return table


def check_token_ids(ids, vocab_size, name="texts"):
    """`ids` as int32 once every id lies in [0, `vocab_size`) (or is >= 0 when it is None).

    A negative id would silently read the last row of the embedding, and an id past the
    vocabulary fails deep inside the model: both are refused here, with the first bad one named.

    Example:

    >>> check_token_ids(np.array([[2, 5, 0]]), 6).tolist()
    [[2, 5, 0]]
    >>> check_token_ids(np.array([[2, -1, 0]]), 6)
    Traceback (most recent call last):
    ...
    ValueError: `texts` given as token ids must lie in [0, 6) (the vocabulary size). Received: texts[0, 1]=-1
    """
    ids = np.asarray(ids)
    bad = ids < 0
    if vocab_size is not None:
        bad |= ids >= vocab_size
    if bad.any():
        where = tuple(int(i) for i in np.argwhere(bad)[0])
        expected = f"lie in [0, {vocab_size}) (the vocabulary size)" if vocab_size is not None else "be >= 0"
        raise ValueError(
            f"`{name}` given as token ids must {expected}. Received: {name}[{', '.join(map(str, where))}]={ids[where]}"
        )
    return ids.astype("int32")


def _check_labels(labels, n, class_names, head):
    if labels is None:
        return None
    if head is not None:
        labels = head.check_labels(labels)
    labels = np.asarray(labels)
    if labels.ndim == 0 or labels.dtype.kind not in "uifb":
        raise ValueError(
            "`labels` must be a numeric array with one label per example. "
            f"Received: labels of dtype {labels.dtype} and shape {labels.shape}"
        )
    if len(labels) != n:
        raise ValueError(f"`labels` must have one label per example ({n}). Received: {len(labels)} labels")
    if labels.dtype.kind == "f" and not np.all(np.isfinite(labels)):
        raise ValueError("`labels` must be finite. Received: labels containing NaN or inf")
    if class_names is not None and labels.ndim == 1:
        k = len(class_names)
        if labels.size and (np.any(labels != np.round(labels)) or labels.min() < 0 or labels.max() >= k):
            raise ValueError(
                f"`labels` must be class indices in [0, {k}) for the {k} `class_names`. "
                f"Received: labels from {labels.min()} to {labels.max()}"
            )
    if labels.dtype.kind in "uib":
        return labels.astype("int32")
    return labels.astype("float32")


class Examples:
    """Checked, decoded examples held in memory: the source of every mmkeras pipeline.

    Images are kept once in a table; `image_index` says which image each example shows, so a
    dataset with many questions per image (easy-VQA has about 10) decodes and stores each image
    once.

    Args:
        images: an image array, a sequence of file paths or a sequence of encoded bytes (see the
            module doc); one per example, or one per distinct image with `image_index`. `None`
            for a text-only dataset.
        texts: raw strings (list of str, numpy `str` or object array) or int token ids
            `(n, sequence_length)`; `None` for an image-only dataset.
        labels: numeric array `(n,)` or `(n, k)`, or `None` (prediction).
        image_shape: `(height, width, channels)` the model takes; images are decoded to it.
            Defaults to the shape of array images (required for paths and bytes).
        image_index: int array `(n,)` of positions in `images`, or `None` (example i shows
            image i). Defaults to `None`.
        class_names: list of str or None: with it, labels must be class indices below
            `len(class_names)`.
        head: a `mmkeras.heads` head or None: with it, labels are checked by `head.check_labels`.
        verbose: bool, a progress bar while decoding many images. Defaults to `True`.
        image_storage: where images decoded from files or bytes are kept: `"memory"`, `"disk"`
            (a table file, deleted when the examples are) or `"auto"` (disk when the uint8 table
            would take more than `memory_budget` bytes). Defaults to `"auto"`.
        memory_budget: int or None, bytes for `image_storage="auto"`; None is a quarter of the
            machine's memory. Defaults to `None`.
        cache_dir: str or None, the folder of a disk table. Defaults to `None` (`TMPDIR`).

    Raises:
        ValueError: for a missing file, undecodable bytes, mismatched lengths, an empty dataset,
            or labels the head cannot train on, before anything is built.

    Example:

    >>> examples = Examples(np.zeros((2, 8, 8, 3), "uint8"), ["is it red?", "is it blue?", "what shape?"],
    ...                     labels=[1, 0, 2], image_index=[0, 0, 1], class_names=["no", "yes", "circle"])
    >>> len(examples), examples.image_shape
    (3, (8, 8, 3))
    """

    def __init__(
        self,
        images,
        texts,
        labels=None,
        *,
        image_shape=None,
        image_index=None,
        class_names=None,
        head=None,
        verbose=True,
        image_storage="auto",
        memory_budget=None,
        cache_dir=None,
    ):
        check_one_of("image_storage", image_storage, IMAGE_STORAGES)
        if images is None and texts is None:
            raise ValueError("Examples need `images`, `texts` or both. Received: images=None, texts=None")
        self.class_names = None if class_names is None else [str(c) for c in class_names]

        # Texts.
        self.texts = self.token_ids = None
        if texts is not None:
            if isinstance(texts, tf.Tensor):
                texts = texts.numpy()
            array = texts if isinstance(texts, np.ndarray) else None
            if array is not None and array.dtype.kind in "iu":
                if array.ndim != 2:
                    raise ValueError(
                        "`texts` given as token ids must be an int array (n, sequence_length). "
                        f"Received: texts of shape {array.shape}"
                    )
                self.token_ids = check_token_ids(array, None, "texts")
            else:
                self.texts = as_string_array(texts, "texts")
        n_texts = None if texts is None else len(self.texts if self.texts is not None else self.token_ids)

        # Images.
        self.images = None
        self.image_index = None
        if images is not None:
            if isinstance(images, tf.Tensor):
                images = images.numpy()
            form = image_form(images)
            if image_shape is None:
                if form != "arrays":
                    raise ValueError(
                        f"`image_shape` must be given to decode images from {form}. Received: image_shape=None"
                    )
                if len(images) == 0:
                    raise ValueError("`images` must hold at least one example. Received: an empty dataset")
                if isinstance(images, np.ndarray):
                    shape = tuple(images.shape[1:])
                else:
                    shape = tuple(np.asarray(images[0]).shape)
                image_shape = shape if len(shape) == 3 else (*shape, 1)
            image_shape = check_image_shape("image_shape", image_shape)
            n_images = len(images)
            n = n_texts if n_texts is not None else n_images
            if image_index is not None:
                image_index = np.asarray(image_index)
                if image_index.ndim != 1 or image_index.dtype.kind not in "iu":
                    raise ValueError(
                        "`image_index` must be a 1-D int array, one image position per example. "
                        f"Received: image_index of dtype {image_index.dtype} and shape {image_index.shape}"
                    )
                if image_index.size and (image_index.min() < 0 or image_index.max() >= n_images):
                    raise ValueError(
                        f"`image_index` must hold positions in [0, {n_images}) of `images`. "
                        f"Received: image_index from {image_index.min()} to {image_index.max()}"
                    )
                if n_texts is not None and len(image_index) != n_texts:
                    raise ValueError(
                        "`image_index` and `texts` must have the same length (one per example). "
                        f"Received: {len(image_index)} image positions and {n_texts} texts"
                    )
                n = len(image_index)
            elif n_texts is not None and n_images != n_texts:
                raise ValueError(
                    "`images` and `texts` must have the same length (one image per text), or pass "
                    f"`image_index`. Received: {n_images} images and {n_texts} texts"
                )
            if n == 0 or n_images == 0:
                raise ValueError("`images` must hold at least one example. Received: an empty dataset")
            if form == "arrays" and not isinstance(images, np.ndarray):  # a list of arrays, maybe of several sizes
                fitted = [fit_images(np.asarray(im)[None], image_shape)[0] for im in images]
                if any(f.dtype != np.uint8 for f in fitted):  # some were resized: all float32 in [0, 1]
                    fitted = [f.astype("float32") / np.float32(255.0) if f.dtype == np.uint8 else f for f in fitted]
                table = np.stack(fitted)
            elif form == "arrays":
                table = fit_images(images, image_shape)
            else:
                table = decode_all(
                    list(images), image_shape, "images", form == "paths", verbose,
                    storage=image_storage, memory_budget=memory_budget, cache_dir=cache_dir,
                )
            self.images = table
            self.image_index = None if image_index is None else image_index.astype("int32")
            self.image_shape = image_shape
        else:
            self.image_shape = None
            n = n_texts
        if n == 0:
            raise ValueError("`texts` must hold at least one example. Received: an empty dataset")
        self._length = n
        self.labels = _check_labels(labels, n, self.class_names, head)

    def __len__(self):
        return self._length

    def __repr__(self):
        parts = [f"{len(self)} examples"]
        if self.images is not None:
            parts.append(f"{len(self.images)} images {self.image_shape} {self.images.dtype}")
        if self.class_names:
            parts.append(f"{len(self.class_names)} classes")
        return f"<Examples: {', '.join(parts)}>"

    def example_images(self, indices=None):
        """The (uint8 or float) image of each example in `indices` (all by default)."""
        if self.images is None:
            return None
        positions = np.arange(len(self)) if indices is None else np.asarray(indices)
        if self.image_index is not None:
            positions = self.image_index[positions]
        return self.images[positions]

    def subset(self, indices):
        """The examples at `indices` (sharing this object's image table)."""
        indices = np.asarray(indices, dtype="int64")
        if indices.size == 0:
            raise ValueError("`indices` must select at least one example. Received: an empty selection")
        new = copy.copy(self)  # shares the image table
        new._length = len(indices)
        if self.texts is not None:
            new.texts = self.texts[indices]
        if self.token_ids is not None:
            new.token_ids = self.token_ids[indices]
        if self.labels is not None:
            new.labels = self.labels[indices]
        if self.images is not None:
            new.image_index = (self.image_index[indices] if self.image_index is not None else indices).astype("int32")
        return new

    def resized(self, image_shape):
        """These examples with their image table resized to `image_shape` (once, with `fit_images`).

        Returns `self` when the images already have that shape. `to_dataset` calls this when the
        preprocessor's image shape differs from the table's, so images are resized once, not
        every epoch. The new table is resized in chunks, and kept where this one is (memory or
        disk).
        """
        image_shape = check_image_shape("image_shape", image_shape)
        if self.images is None or tuple(self.image_shape) == image_shape:
            return self
        new = copy.copy(self)
        storage = "disk" if isinstance(self.images, np.memmap) else "memory"
        out = image_table(len(self.images), image_shape, self.images.dtype, storage=storage)
        new.images = fit_images(self.images, image_shape, out=out)
        new.image_shape = image_shape
        return new

    def check_labels(self, head):
        """Check the labels against a head (`head.check_labels`); raise `ValueError` if unfit."""
        if self.labels is not None:
            head.check_labels(self.labels)
        return self

    def token_ids_for(self, preprocessor, vocab_size=None):
        """Token ids `(n, sequence_length)`: raw texts through `preprocessor.texts_to_ids`.

        Token ids given as such are checked against `vocab_size` (the model's) or, without it,
        the preprocessor's vocabulary: every id must lie in [0, vocab_size).
        """
        if self.token_ids is not None:
            if preprocessor is not None and preprocessor.sequence_length not in (None, self.token_ids.shape[1]):
                raise ValueError(
                    f"`texts` given as token ids must have {preprocessor.sequence_length} ids per text "
                    f"for this model. Received: texts of shape {self.token_ids.shape}"
                )
            if vocab_size is None and preprocessor is not None:
                vocab_size = preprocessor.vocab_size
            return check_token_ids(self.token_ids, vocab_size, "texts")
        if self.texts is None:
            return None
        if preprocessor is None or preprocessor.vocabulary is None:
            raise ValueError(
                "`preprocessor` must have a text vocabulary to turn raw texts into token ids (or give "
                "the model itself, `task=model`, for a model that takes raw strings). "
                f"Received: preprocessor={preprocessor!r}"
            )
        ids = [preprocessor.texts_to_ids(self.texts[i : i + 65536]).numpy() for i in range(0, len(self), 65536)]
        return np.concatenate(ids).astype("int32")

    def to_dataset(
        self,
        preprocessor=None,
        *,
        task=None,
        batch_size=64,
        shuffle=False,
        seed=None,
        inputs=("image", "text"),
        raw_text=False,
        drop_remainder=False,
        prefetch=True,
        with_labels=True,
    ):
        """A `tf.data.Dataset` of `({"image", "text"}, labels)` batches.

        Args:
            preprocessor: a `mmkeras.preprocessing.Preprocessor` (its vocabulary tokenizes raw
                texts); may be None when texts are token ids or absent.
            task: an `mmkeras.tasks.Task`, instead of `preprocessor`, `inputs` and `raw_text`:
                the batches then fit that model (its preprocessor, its inputs, raw strings if it
                tokenizes inside its graph). Defaults to `None`.
            batch_size: int, the (global) batch size. Defaults to `64`.
            shuffle: bool, shuffle the examples each epoch. Defaults to `False`.
            seed: int or None, the shuffle seed (same seed, same order). Defaults to `None`.
            inputs: the input names the model takes: a subset of `("image", "text")`.
            raw_text: bool, give the model raw strings instead of token ids (for a model with a
                `TextVectorization` layer inside). Defaults to `False`.
            drop_remainder: bool, drop the last incomplete batch. Defaults to `False`.
            prefetch: bool, prefetch `PREFETCH_BATCHES` batches. Defaults to `True`.
            with_labels: bool, yield `(inputs, labels)`; `False` yields inputs only.
        """
        check_positive_int("batch_size", batch_size)
        vocab_size = None
        if task is not None:
            preprocessor, inputs = task.preprocessor, tuple(task.input_kinds)
            raw_text = task.input_kinds.get("text") == "text"
            vocab_size = task.token_vocab_size("text") if "text" in task.input_kinds else None
        inputs = tuple(inputs)
        if "image" in inputs and getattr(preprocessor, "image_shape", None) and self.images is not None:
            source = self.resized(preprocessor.image_shape)
            if source is not self:
                return source.to_dataset(
                    preprocessor, task=task, batch_size=batch_size, shuffle=shuffle, seed=seed, inputs=inputs,
                    raw_text=raw_text, drop_remainder=drop_remainder, prefetch=prefetch, with_labels=with_labels,
                )
        columns = {"position": np.arange(len(self), dtype="int32")}
        if "text" in inputs:
            if self.texts is None and self.token_ids is None:
                raise ValueError("The model takes a `text` input but these examples have no texts.")
            if raw_text and self.texts is None:
                raise ValueError(
                    "`texts` must be raw strings for a model that tokenizes inside its graph. "
                    f"Received: token ids of shape {self.token_ids.shape}"
                )
            columns["text"] = self.texts.astype(str) if raw_text else self.token_ids_for(preprocessor, vocab_size)
        if "image" in inputs and self.images is None:
            raise ValueError("The model takes an `image` input but these examples have no images.")
        if with_labels:
            if self.labels is None:
                raise ValueError("These examples have no `labels` to train or evaluate on.")
            columns["label"] = self.labels
        dataset = tf.data.Dataset.from_tensor_slices(columns)
        if shuffle:
            dataset = dataset.shuffle(len(self), seed=seed, reshuffle_each_iteration=True)
        dataset = dataset.batch(batch_size, drop_remainder=drop_remainder)
        gather = _gatherer(self.images) if "image" in inputs else None
        index = None if self.image_index is None else tf.constant(self.image_index)

        def assemble(batch):
            features = {}
            if "image" in inputs:
                positions = batch["position"] if index is None else tf.gather(index, batch["position"])
                features["image"] = images_to_float(gather(positions))
            if "text" in inputs:
                features["text"] = batch["text"]
            return (features, batch["label"]) if with_labels else features

        dataset = dataset.map(assemble, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        if prefetch:
            dataset = dataset.prefetch(PREFETCH_BATCHES)
        return without_autotune(dataset)


def _read_rows(table, positions):
    """`table[positions]`, read in position order (a disk table is read front to back)."""
    order = np.argsort(positions)
    rows = np.empty((len(positions), *table.shape[1:]), table.dtype)
    rows[order] = table[positions[order]]
    return rows


def _gatherer(table):
    """`positions -> images`, read from the table (in memory or on disk) batch by batch.

    The table is read through `tf.numpy_function` rather than captured as a TF constant:
    `tf.constant` would copy it (twice over, while converting), and the point of the table is
    to hold the decoded images once.
    """

    def gather(positions):
        images = tf.numpy_function(lambda p: _read_rows(table, p), [positions], tf.as_dtype(table.dtype), stateful=False)
        images.set_shape((None, *table.shape[1:]))
        return images

    return gather


def _streaming_loader(items, form, image_shape, table):
    """`positions -> uint8 images` for the streaming path: decode, or read what was decoded before.

    With a `table`, each batch reads the rows already decoded, decodes only the others (its first
    epoch: all of them) and writes them into the table; without one, it decodes every image every
    time. So only int32 positions are shuffled, never decoded images: the data is held once, in the
    table, and from the second epoch a batch is a gather, as on the in-memory path.
    """
    sources = tf.constant(items)
    wheres = tf.constant([f"images[{i}]" + (f"={item!r}" if form == "paths" else "") for i, item in enumerate(items)])
    spec = tf.TensorSpec(image_shape, tf.uint8)

    def decode_one(item):
        data, where = item
        if form == "paths":
            data = tf.io.read_file(data)
        # Each image carries its name (`images[3]='cat.png'`): a bad one is named when it is read.
        return decode_image_uint8(data, image_shape, where)

    def decode(positions):
        return tf.map_fn(decode_one, (tf.gather(sources, positions), tf.gather(wheres, positions)), fn_output_signature=spec)

    if table is None:
        return decode
    filled = np.zeros(len(items), bool)

    def read(positions):
        return _read_rows(table, positions), ~filled[positions]

    def write(positions, images):
        table[positions] = images
        filled[positions] = True
        return images

    def fill(positions, rows, missing):
        where = tf.where(missing)
        new = tf.gather(positions, where[:, 0])
        decoded = tf.numpy_function(write, [new, decode(new)], tf.uint8, stateful=True)
        return tf.tensor_scatter_nd_update(rows, where, decoded)

    def load(positions):
        rows, missing = tf.numpy_function(read, [positions], [tf.uint8, tf.bool], stateful=True)
        rows.set_shape((None, *image_shape))
        # From the second epoch nothing is missing: the batch is the rows read, nothing more.
        return tf.cond(tf.reduce_any(missing), lambda: fill(positions, rows, missing), lambda: rows)

    return load


def make_dataset(
    images,
    texts,
    labels=None,
    *,
    task=None,
    preprocessor=None,
    image_index=None,
    batch_size=64,
    shuffle=False,
    seed=None,
    in_memory=True,
    cache=True,
    prefetch=True,
    drop_remainder=False,
    head=None,
    verbose=True,
    image_storage="auto",
    memory_budget=None,
):
    """Raw images and texts (with labels) -> a batched `tf.data.Dataset` for `fit` / `evaluate`.

    Args:
        images: an image array `(n, h, w, c)`, a sequence of image file paths, or a sequence of
            encoded image bytes (or `None` for a text-only model).
        texts: raw strings (list of str, numpy `str` or object array) or int token ids
            `(n, sequence_length)` (or `None` for an image-only model).
        labels: numeric array `(n,)` or None (inputs only, for `predict`).
        task: the `mmkeras.tasks.Task` the batches are for (instead of `preprocessor`): its
            preprocessor decodes and tokenizes, its head checks the labels, and its inputs decide
            the text form: raw strings for a model that tokenizes inside its graph (built with a
            `text_vectorizer`), token ids for the others. Defaults to `None`.
        preprocessor: a `mmkeras.preprocessing.Preprocessor`: its `image_shape` is the shape
            images are decoded and resized to, its vocabulary tokenizes raw texts.
        image_index: int array `(n,)` of positions in `images` when several examples share an
            image, or None. Defaults to `None`.
        batch_size: int. Defaults to `64`.
        shuffle: bool, reshuffle each epoch. Defaults to `False`.
        seed: int or None, the shuffle seed. Defaults to `None`.
        in_memory: bool. `True` decodes and checks every image up front and keeps them in memory
            (fastest, and every error is raised before training). `False` streams: files and
            bytes are decoded inside the pipeline, in parallel; missing files are still caught
            up front, but a corrupt file only fails when it is read. Defaults to `True`.
        cache: bool or str, for `in_memory=False`: keep each image once decoded, in a table read
            from the second epoch on: `True` (where `image_storage` says: in memory, or on disk
            beyond `memory_budget`), the name of an existing folder (a disk table there, deleted
            with the dataset) or `False` (decode every epoch). Defaults to `True`.
        prefetch: bool. Defaults to `True`.
        drop_remainder: bool. Defaults to `False`.
        head: a `mmkeras.heads` head to check the labels with, or None.
        verbose: bool, a progress bar while decoding many images. Defaults to `True`.
        image_storage: `"auto"`, `"memory"` or `"disk"`: where the decoded images are kept (see
            `Examples`; with `in_memory=False`, the `cache=True` table). Defaults to `"auto"` (disk
            beyond `memory_budget`).
        memory_budget: int or None, bytes; None is a quarter of the machine's memory.

    Returns:
        A `tf.data.Dataset` of `({"image": float32 (b, h, w, c), "text": int32 (b, L)}, labels)`.

    Example:

    >>> from mmkeras.preprocessing import Preprocessor, text_vectorizer
    >>> photo = np.zeros((48, 40, 3), "uint8")
    >>> tf.io.write_file("cat.png", tf.io.encode_png(photo))
    >>> tf.io.write_file("dog.jpg", tf.io.encode_jpeg(photo))
    >>> pre = Preprocessor.from_vectorizer(text_vectorizer(["a cat", "a dog"], sequence_length=4),
    ...                                    image_shape=(32, 32, 3))
    >>> dataset = make_dataset(["cat.png", "dog.jpg"], ["a cat", "a dog"], [1, 0], preprocessor=pre, batch_size=2)
    >>> inputs, labels = next(iter(dataset))  # images decoded and resized, texts tokenized
    >>> tuple(inputs["image"].shape), inputs["text"].numpy().tolist(), labels.numpy().tolist()
    ((2, 32, 32, 3), [[2, 4, 0, 0], [2, 3, 0, 0]], [1, 0])
    """
    wanted = tuple(k for k, v in (("image", images), ("text", texts)) if v is not None)
    raw_text = False
    if task is not None:
        if preprocessor is not None:
            raise ValueError("Pass `task` or `preprocessor`, not both (a task carries its preprocessor).")
        preprocessor, head = task.preprocessor, head if head is not None else getattr(task, "head", None)
        wanted, raw_text = tuple(task.input_kinds), task.input_kinds.get("text") == "text"
        missing = [k for k in wanted if {"image": images, "text": texts}.get(k) is None]
        if missing:
            raise ValueError(f"The model takes inputs {list(wanted)}: pass `{missing[0]}`. Received: {missing[0]}=None")
    image_shape = getattr(preprocessor, "image_shape", None)
    if in_memory or images is None or image_form(images) == "arrays":
        examples = Examples(
            images, texts, labels, image_shape=image_shape, image_index=image_index, head=head, verbose=verbose,
            image_storage=image_storage, memory_budget=memory_budget,
        )
        return examples.to_dataset(
            preprocessor,
            task=task,
            batch_size=batch_size,
            shuffle=shuffle,
            seed=seed,
            inputs=wanted,
            raw_text=raw_text,
            drop_remainder=drop_remainder,
            prefetch=prefetch,
            with_labels=labels is not None,
        )
    return _streaming_dataset(
        images, texts, labels, preprocessor=preprocessor, image_index=image_index, batch_size=batch_size,
        shuffle=shuffle, seed=seed, cache=cache, prefetch=prefetch, drop_remainder=drop_remainder, head=head,
        raw_text=raw_text, vocab_size=None if task is None or "text" not in task.input_kinds else task.token_vocab_size("text"),
        image_storage=image_storage, memory_budget=memory_budget,
    )


def _streaming_dataset(
    images, texts, labels, *, preprocessor, image_index, batch_size, shuffle, seed, cache, prefetch, drop_remainder, head,
    raw_text=False, vocab_size=None, image_storage="auto", memory_budget=None,
):
    """`make_dataset(in_memory=False)`: shuffle positions, batch, decode (or read the table)."""
    check_positive_int("batch_size", batch_size)
    if not isinstance(cache, (bool, str, os.PathLike)) or (not isinstance(cache, bool) and not os.path.isdir(cache)):
        raise ValueError(
            "`cache` must be True (decoded images kept in memory, or on disk beyond `memory_budget`), "
            "False (decode every epoch) or an existing folder for a disk table. "
            f"Received: cache={cache!r}"
        )
    if not isinstance(cache, bool):
        cache = os.fspath(cache)
    check_one_of("image_storage", image_storage, IMAGE_STORAGES)
    if image_index is not None:
        raise ValueError(
            "`image_index` needs `in_memory=True` (examples sharing images gather from the decoded "
            "table). Received: image_index with in_memory=False"
        )
    if preprocessor is None or preprocessor.image_shape is None:
        raise ValueError(
            "`preprocessor` must have an `image_shape` to decode images. "
            f"Received: preprocessor={preprocessor!r}"
        )
    form = image_form(images)
    items = [os.fspath(i) for i in images] if form == "paths" else [bytes(i) for i in images]
    if not items:
        raise ValueError("`images` must hold at least one example. Received: an empty dataset")
    if form == "paths":
        for i, path in enumerate(items):
            if not os.path.isfile(path):
                raise ValueError(
                    f"`images` must name existing image files. Received: images[{i}]={path!r} (no such file)"
                )
    # Texts and labels are checked as for in-memory examples (lengths against the images).
    if texts is not None:
        text_examples = Examples(None, texts, labels, head=head, verbose=False)
        if len(text_examples) != len(items):
            raise ValueError(
                "`images` and `texts` must have the same length (one image per text). "
                f"Received: {len(items)} images and {len(text_examples)} texts"
            )
        token_ids = text_examples.texts.astype(str) if raw_text else text_examples.token_ids_for(preprocessor, vocab_size)
        labels = text_examples.labels
    else:
        labels = _check_labels(labels, len(items), None, head)

    image_shape = preprocessor.image_shape
    # A table filled as batches first read each image; only positions are shuffled (see the docstring).
    table = None if cache is False else image_table(
        len(items), image_shape, storage="disk" if isinstance(cache, str) else image_storage,
        memory_budget=memory_budget, cache_dir=cache if isinstance(cache, str) else None,
    )
    load = _streaming_loader(items, form, image_shape, table)
    columns = {"position": np.arange(len(items), dtype="int32")}
    if texts is not None:
        columns["text"] = token_ids
    if labels is not None:
        columns["label"] = labels
    dataset = tf.data.Dataset.from_tensor_slices(columns)
    if shuffle:
        dataset = dataset.shuffle(len(items), seed=seed, reshuffle_each_iteration=True)

    def assemble(row):
        features = {"image": images_to_float(load(row["position"]))}
        if "text" in row:
            features["text"] = row["text"]
        return (features, row["label"]) if "label" in row else features

    dataset = dataset.batch(batch_size, drop_remainder=drop_remainder).map(
        assemble, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True
    )
    if prefetch:
        dataset = dataset.prefetch(PREFETCH_BATCHES)
    return without_autotune(dataset)
