"""Preprocessing shared by training, evaluation, prediction and export.

The same functions turn raw data into model inputs everywhere: `text_vectorizer` maps raw
strings to token ids (0 is padding, 1 is out-of-vocabulary), `decode_image` turns encoded
PNG/JPEG bytes into float images in [0, 1], `fit_images` resizes arrays the same way, and the
`Preprocessor` (which every task carries, and which is saved inside its `.keras` file) holds the
image shape, the vocabulary and the class names that tie them to one model.
String and image-decoding ops are TensorFlow ops: these run on the TensorFlow backend (inside
`tf.data` pipelines and exported graphs) whatever Keras backend trains the model.
"""

import json
import os

import keras
import numpy as np
import tensorflow as tf

from mmkeras.atomic import atomic_file
from mmkeras.validation import check_image_shape, check_positive_int, received

STANDARDIZE = "lower_and_strip_punctuation"


def text_vectorizer(texts=None, vocab_size=10000, sequence_length=100, standardize=STANDARDIZE, name="text_vectorizer"):
    """A `keras.layers.TextVectorization` that maps raw strings to `sequence_length` token ids.

    Args:
        texts: iterable of str, a `tf.data.Dataset` of strings, or None: the texts to learn the
            vocabulary from (the training texts). With None the layer is returned unadapted.
        vocab_size: int, the most frequent tokens kept, padding and OOV included.
            Defaults to `10000`.
        sequence_length: int, ids per text (padded with 0 or truncated). Defaults to `100`.
        standardize: the `TextVectorization` standardization. Defaults to lower-casing and
            stripping punctuation.
        name: str. Defaults to `"text_vectorizer"`.

    Example:

    >>> vectorizer = text_vectorizer(["is the circle red?", "what shape is it?"], sequence_length=6)
    >>> vectorizer(["is it red?"]).numpy().tolist()  # 'is', 'it', 'red', then padding
    [[2, 7, 6, 0, 0, 0]]
    """
    check_positive_int("vocab_size", vocab_size)
    check_positive_int("sequence_length", sequence_length)
    layer = keras.layers.TextVectorization(
        max_tokens=vocab_size,
        output_mode="int",
        output_sequence_length=sequence_length,
        standardize=standardize,
        name=name,
    )
    if texts is not None:
        if not isinstance(texts, tf.data.Dataset):
            texts = as_string_array(texts, "texts")
            if texts.size == 0:
                raise ValueError("`texts` must hold at least one text to adapt on. Received: an empty sequence")
        layer.adapt(texts)
    return layer


def as_string_array(texts, name="texts"):
    """A list / numpy `str` or object array / tuple of str -> a 1-D numpy object array of str.

    `model.fit` rejects numpy `str` (`<U..`) arrays; object arrays and tf.data work.
    """
    if isinstance(texts, str):
        raise ValueError(f"`{name}` must be a sequence of strings, not one string. Received: {name}={texts!r}")
    array = np.asarray(texts, dtype=object)
    if array.ndim == 2 and array.shape[-1] == 1:
        array = array[:, 0]
    if array.ndim != 1 or not all(isinstance(t, (str, bytes)) for t in array):
        raise ValueError(
            f"`{name}` must be a 1-D sequence of strings. Received: {name} of shape {array.shape}"
            + (f" with an item of type {type(array.flat[0]).__name__}" if array.size else "")
        )
    return array


def decode_image(image_bytes, image_shape):
    """Decode one encoded PNG/JPEG/GIF/BMP image to `image_shape` float32 in [0, 1] (TF op).

    This is what exported models run on a request's bytes.

    Args:
        image_bytes: a scalar `tf.string` tensor of encoded image bytes.
        image_shape: `(height, width, channels)`; the image is resized (bilinear) and its
            channels converted (grey <-> RGB) to match.

    Example:

    >>> png = tf.io.encode_png(tf.zeros((10, 12, 3), tf.uint8))
    >>> decode_image(png, (8, 8, 3)).shape
    TensorShape([8, 8, 3])
    """
    height, width, channels = check_image_shape("image_shape", image_shape)
    image = tf.io.decode_image(image_bytes, channels=channels, expand_animations=False)
    image = tf.image.resize(tf.cast(image, tf.float32) / 255.0, (height, width))
    image.set_shape((height, width, channels))
    return image


def decode_image_uint8(image_bytes, image_shape):
    """Decode one encoded image to `image_shape` as uint8 (TF op): how decoded tables keep images.

    An image that already has the model's height and width is decoded as it is, so its batches
    (divided by 255) equal `decode_image`'s exactly. Another is resized by `decode_image` and
    rounded to 8 bits: 4x less memory than floats, at most 0.5/255 from what `decode_image` gives.

    Example:

    >>> png = tf.io.encode_png(tf.fill((10, 12, 3), tf.constant(200, tf.uint8)))
    >>> image = decode_image_uint8(png, (8, 8, 3))
    >>> image.dtype.name, int(image[0, 0, 0])
    ('uint8', 200)
    """
    height, width, channels = check_image_shape("image_shape", image_shape)
    image = tf.io.decode_image(image_bytes, channels=channels, expand_animations=False)
    shape = tf.shape(image)
    image = tf.cond(
        tf.logical_and(tf.equal(shape[0], height), tf.equal(shape[1], width)),
        lambda: tf.cast(image, tf.uint8),
        lambda: _to_uint8(tf.image.resize(tf.cast(image, tf.float32) / 255.0, (height, width))),
    )
    image.set_shape((height, width, channels))
    return image


def _to_uint8(images):
    """Float images in [0, 1] rounded to uint8."""
    return tf.cast(tf.round(tf.clip_by_value(images, 0.0, 1.0) * 255.0), tf.uint8)


def images_to_float(images):
    """A batch of images as float32 in [0, 1] (TF op): uint8 is divided by 255, floats are kept.

    This is the last step of every mmkeras pipeline: decoded images are kept as uint8 (4x less
    memory than floats) and scaled batch by batch, exactly as `decode_image` scales them.

    Example:

    >>> images_to_float(tf.constant([[[[255]]]], tf.uint8)).numpy().tolist()
    [[[[1.0]]]]
    """
    images = tf.convert_to_tensor(images)
    if images.dtype == tf.uint8:
        return tf.cast(images, tf.float32) / 255.0
    return tf.cast(images, tf.float32)


def fit_images(images, image_shape, name="images", chunk_size=256, out=None):
    """Arrays of images -> `image_shape`, as `decode_image` does for encoded images.

    Images that already have `image_shape` are returned as they are (uint8 stays uint8, floats
    become float32). Others are scaled to [0, 1], resized (bilinear) and their channels converted
    (grey <-> RGB) with the same TF ops as `decode_image`, `chunk_size` images at a time into one
    output array: uint8 images come back as uint8 (rounded, as `decode_image_uint8` does), float
    images as float32. Memory: the output, plus one chunk in floats.

    Args:
        images: array `(n, height, width, channels)` or `(n, height, width)` (grey), uint8 in
            [0, 255] or floats in [0, 1].
        image_shape: `(height, width, channels)` the model takes.
        name: str, the argument's name in error messages. Defaults to `"images"`.
        chunk_size: int, images resized at a time. Defaults to `256`.
        out: None, or an array `(n, *image_shape)` of the output's dtype to fill (e.g. a table
            on disk). Defaults to `None` (a new array).

    Returns:
        A numpy array `(n, *image_shape)`, uint8 or float32 (`out` when given).

    Example:

    >>> fit_images(np.zeros((2, 28, 28), "uint8"), (32, 32, 3)).shape
    (2, 32, 32, 3)
    """
    height, width, channels = check_image_shape("image_shape", image_shape)
    images = images if isinstance(images, np.ndarray) else np.asarray(images)
    if images.ndim == 3:
        images = images[..., None]
    if images.ndim != 4 or images.shape[-1] not in (1, 3, 4):
        raise ValueError(
            f"`{name}` must be an array of shape (n, height, width, channels) with 1, 3 or 4 "
            f"channels (or (n, height, width) for grey images). Received: {name} of shape {images.shape}"
        )
    if images.dtype != np.uint8:
        if not np.issubdtype(images.dtype, np.floating):
            raise ValueError(
                f"`{name}` must be uint8 in [0, 255] or floats in [0, 1]. Received: {name} of dtype {images.dtype}"
            )
        if images.size and (not np.all(np.isfinite(images)) or images.min() < 0 or images.max() > 1):
            raise ValueError(
                f"`{name}` given as floats must lie in [0, 1] (pass uint8 for values in [0, 255]). "
                f"Received: {name} with values from {np.nanmin(images)} to {np.nanmax(images)}"
            )
        images = images.astype("float32", copy=False)
    if images.shape[1:] == (height, width, channels) and out is None:
        return images
    if channels not in (1, 3) and images.shape[-1] != channels:
        raise ValueError(
            f"`{name}` must have 1 or 3 channels to convert to {channels}. Received: {name} of shape {images.shape}"
        )
    if out is None:
        out = np.empty((len(images), height, width, channels), images.dtype)
    for start in range(0, len(images), chunk_size):
        out[start : start + chunk_size] = _fit_chunk(images[start : start + chunk_size], height, width, channels)
    return out


def _fit_chunk(images, height, width, channels):
    """One chunk of `fit_images`: channels converted, resized, in the input's dtype."""
    x = images_to_float(images)
    if x.shape[-1] == 4:
        x = x[..., :3]
    if channels == 1 and x.shape[-1] == 3:
        x = tf.image.rgb_to_grayscale(x)
    elif channels == 3 and x.shape[-1] == 1:
        x = tf.image.grayscale_to_rgb(x)
    if x.shape[1:3] != (height, width):
        x = tf.image.resize(x, (height, width))
    return (_to_uint8(x) if images.dtype == np.uint8 else x).numpy()


@keras.saving.register_keras_serializable(package="mmkeras")
class Preprocessor:
    """Raw data -> model inputs, in one object that training, prediction and export share.

    It holds the image shape, the text vocabulary and the class names. Every task carries one
    (`task.preprocessor`) and saves it inside its `.keras` file (it is part of the task's
    config), so a loaded model decodes, tokenizes and names its answers exactly as training did.
    Tokenizing and decoding run in the `tf.data` pipeline (`mmkeras.data`) and inside exported
    graphs, never in the training step.

    Args:
        image_shape: `(height, width, channels)` of the model's image input, or None for a
            text-only model.
        sequence_length: int, token ids per text, or None for an image-only model (or a model
            that takes raw strings and tokenizes inside its graph).
        vocabulary: list of str, the vectorizer's vocabulary (as
            `TextVectorization.get_vocabulary()` returns it, padding "" and "[UNK]" first), or
            None when no texts are known yet.
        class_names: the names of the output classes: a list of str for a model with one
            classification output (binary: negative first), or `{output_name: [names]}`.
            Defaults to `None` (answers name classes by their index).
        standardize: the text standardization. Defaults to lower-casing and stripping punctuation.

    Example:

    >>> vectorizer = text_vectorizer(["is it red?", "what shape?"], sequence_length=4)
    >>> pre = Preprocessor.from_vectorizer(vectorizer, image_shape=(8, 8, 3), class_names=["no", "yes"])
    >>> pre.vocabulary  # padding, OOV, then the most frequent first (ties in reverse order)
    ['', '[UNK]', 'what', 'shape', 'red', 'it', 'is']
    >>> pre.texts_to_ids(["is it blue?"]).numpy().tolist()  # 'blue' is out of vocabulary (1)
    [[6, 5, 1, 0]]
    >>> Preprocessor.from_config(pre.get_config()).class_names
    ['no', 'yes']
    """

    def __init__(self, image_shape=None, sequence_length=None, vocabulary=None, class_names=None, standardize=STANDARDIZE):
        self.image_shape = None if image_shape is None else check_image_shape("image_shape", image_shape)
        self.sequence_length = check_positive_int("sequence_length", sequence_length, allow_none=True)
        if vocabulary is not None and (isinstance(vocabulary, str) or not hasattr(vocabulary, "__len__")):
            raise ValueError(f"`vocabulary` must be a list of strings or None. {received('vocabulary', vocabulary)}")
        self.vocabulary = None if vocabulary is None else [str(v) for v in vocabulary]
        if self.vocabulary is not None and self.sequence_length is None:
            raise ValueError(
                "`sequence_length` must be given with a `vocabulary` (the number of token ids per text). "
                f"Received: sequence_length=None, vocabulary of {len(self.vocabulary)} tokens"
            )
        if isinstance(class_names, dict):
            self.class_names = {str(k): [str(c) for c in v] for k, v in class_names.items()}
        elif class_names is not None:
            if isinstance(class_names, str):
                raise ValueError(f"`class_names` must be a list of strings or a dict of them. {received('class_names', class_names)}")
            self.class_names = [str(c) for c in class_names]
        else:
            self.class_names = None
        self.standardize = standardize
        self._vectorizer = None

    @classmethod
    def from_vectorizer(cls, vectorizer, image_shape=None, class_names=None):
        """A Preprocessor from an adapted `TextVectorization` (e.g. `text_vectorizer(texts)`)."""
        if not isinstance(vectorizer, keras.layers.TextVectorization):
            raise ValueError(
                f"`vectorizer` must be a keras.layers.TextVectorization. {received('vectorizer', vectorizer)}"
            )
        config = vectorizer.get_config()
        return cls(
            image_shape=image_shape,
            sequence_length=config["output_sequence_length"],
            vocabulary=vectorizer.get_vocabulary(),
            class_names=class_names,
            standardize=config["standardize"],
        )

    def __repr__(self):
        vocab = None if self.vocabulary is None else f"<{len(self.vocabulary)} tokens>"
        return (
            f"Preprocessor(image_shape={self.image_shape}, sequence_length={self.sequence_length}, "
            f"vocabulary={vocab}, class_names={self.class_names!r})"
        )

    @property
    def vectorizer(self):
        """The `TextVectorization` layer rebuilt from the stored vocabulary (built once)."""
        if self._vectorizer is None and self.vocabulary is not None:
            self._vectorizer = keras.layers.TextVectorization(
                output_mode="int",
                output_sequence_length=self.sequence_length,
                standardize=self.standardize,
                vocabulary=self.vocabulary[2:],  # "" (padding) and "[UNK]" are added back
                name="text_vectorizer",
            )
        return self._vectorizer

    @property
    def vocab_size(self):
        return None if self.vocabulary is None else len(self.vocabulary)

    def class_names_for(self, output_name, single_output=True):
        """The class names of one output (a list), or None when none are known."""
        if isinstance(self.class_names, dict):
            return self.class_names.get(output_name)
        return self.class_names if single_output else None

    def texts_to_ids(self, texts):
        """Raw strings `(batch,)` -> int token ids `(batch, sequence_length)` (TF op)."""
        if self.vectorizer is None:
            raise ValueError(
                "This model's preprocessor has no text vocabulary, so it cannot tokenize raw strings: "
                "build it with `preprocessor=Preprocessor.from_vectorizer(text_vectorizer(train_texts), ...)` "
                "or pass token ids."
            )
        return tf.cast(self.vectorizer(texts), tf.int32)

    def decode_images(self, image_bytes):
        """Encoded image bytes `(batch,)` -> float32 images `(batch, *image_shape)` (TF op)."""
        if self.image_shape is None:
            raise ValueError("This model's preprocessor has no image shape (a text-only model).")
        return tf.map_fn(
            lambda b: decode_image(b, self.image_shape),
            image_bytes,
            fn_output_signature=tf.TensorSpec(self.image_shape, tf.float32),
        )

    def images(self, images, name="image"):
        """Raw images -> float32 `(n, *image_shape)` in [0, 1] (numpy), decoded as training did.

        Args:
            images: a sequence of image file paths, a sequence of encoded bytes, or an image
                array `(n, h, w, c)` (uint8, or floats in [0, 1]); resized to `image_shape`.
            name: the argument's name in error messages. Defaults to `"image"`.
        """
        from mmkeras.data.pipeline import Examples, decode_all, image_form

        if self.image_shape is None:
            raise ValueError("This model's preprocessor has no image shape (a text-only model).")
        form = image_form(images, name)
        if form == "arrays":  # checked and resized in floats, as an exported model resizes
            if isinstance(images, np.ndarray) and images.dtype == np.uint8:
                images = images.astype("float32") / np.float32(255.0)
            elif not isinstance(images, np.ndarray):
                images = [im.astype("float32") / np.float32(255.0) if im.dtype == np.uint8 else im
                          for im in (np.asarray(i) for i in images)]
            table = Examples(images, None, image_shape=self.image_shape, verbose=False).images
        else:
            table = decode_all(list(images), self.image_shape, name, form == "paths", verbose=False, as_float=True)
        return images_to_float(table).numpy()

    def get_config(self):
        return {
            "image_shape": None if self.image_shape is None else list(self.image_shape),
            "sequence_length": self.sequence_length,
            "vocabulary": self.vocabulary,
            "class_names": self.class_names,
            "standardize": self.standardize,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def save(self, path):
        """Write the config as JSON to `path` (atomically)."""
        with atomic_file(path) as tmp:
            with open(tmp, "w", encoding="utf-8") as f:
                json.dump(self.get_config(), f)

    @classmethod
    def load(cls, path):
        """A Preprocessor from a JSON file written by `save` (or by mmkeras 0.1 beside a model)."""
        with open(path, encoding="utf-8") as f:
            return cls.from_config(json.load(f))
