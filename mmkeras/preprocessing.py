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

import keras
import numpy as np
import tensorflow as tf

from mmkeras.atomic import atomic_file
from mmkeras.validation import check_image_shape, check_positive_int, received

STANDARDIZE = "lower_and_strip_punctuation"

# The most pixels (height x width, as the image's header declares them) an encoded image may have.
# Every decode path checks it before decoding: a small file that declares a huge image would
# otherwise cost gigabytes of memory. Set it to change the limit for this process (an export
# records the limit in force when it was written; see `export_model(max_image_pixels=...)`).
MAX_IMAGE_PIXELS = 50_000_000

IMAGE_FORMATS = "JPEG, PNG, GIF, BMP or WebP"


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
    if array.ndim != 1:
        raise ValueError(f"`{name}` must be a 1-D sequence of strings. Received: {name} of shape {array.shape}")
    bad = next((i for i, t in enumerate(array) if not isinstance(t, (str, bytes))), None)
    if bad is not None:
        raise ValueError(
            f"`{name}` must be a 1-D sequence of strings. {received(f'{name}[{bad}]', array[bad])} "
            f"of type {type(array[bad]).__name__}"
        )
    return array


_HEADER = 32  # bytes read from the start of an image: every header field used lies in them


def _padded(data):
    """`data` with `_HEADER` zero bytes appended, so reading the header never runs past the end."""
    return tf.strings.join([data, tf.constant(b"\x00" * _HEADER)])


def _bytes_at(padded, start, length):
    """`length` bytes of `padded` (see `_padded`) from `start`, as int32."""
    return tf.reshape(tf.cast(tf.io.decode_raw(tf.strings.substr(padded, start, length), tf.uint8), tf.int32), [length])


def _uint(raw, little_endian=True):
    """An unsigned int from its bytes (int64)."""
    raw = tf.cast(raw, tf.int64)
    order = range(raw.shape[0]) if little_endian else reversed(range(raw.shape[0]))
    return sum(raw[i] * (256**k) for k, i in enumerate(order))


def image_header(image_bytes):
    """`(format, height, width)` that encoded image bytes declare in their header (TF op).

    Nothing is decoded: the size is read from the first bytes (JPEG: `tf.io.extract_jpeg_shape`),
    so it costs microseconds whatever the image's size. `format` is one of `"jpeg"`, `"png"`,
    `"gif"`, `"bmp"`, `"webp"` or `""` (not an image TensorFlow decodes); the size is `(-1, -1)`
    when the format is unknown.

    Example:

    >>> png = tf.io.encode_png(tf.zeros((10, 12, 3), tf.uint8))
    >>> form, height, width = image_header(png)
    >>> form.numpy(), int(height), int(width)
    (b'png', 10, 12)
    """
    data = tf.convert_to_tensor(image_bytes, tf.string)
    head = _bytes_at(_padded(data), 0, 30)
    form = image_format(data)
    is_jpeg, is_png, is_gif, is_bmp, is_webp = (tf.equal(form, f) for f in ("jpeg", "png", "gif", "bmp", "webp"))
    chunk = tf.strings.substr(_padded(data), 12, 4)
    # WebP: VP8X gives the canvas size (24 bits each, minus one), VP8L 14 bits each (minus one),
    # VP8 (lossy) 14 bits each after the frame tag.
    vp8x = (_uint(head[24:27]) + 1, _uint(head[27:30]) + 1)
    vp8l_bits = _uint(head[21:25])
    vp8l = (tf.bitwise.bitwise_and(tf.bitwise.right_shift(vp8l_bits, 14), 0x3FFF) + 1,
            tf.bitwise.bitwise_and(vp8l_bits, 0x3FFF) + 1)
    vp8 = (tf.bitwise.bitwise_and(_uint(head[28:30]), 0x3FFF), tf.bitwise.bitwise_and(_uint(head[26:28]), 0x3FFF))
    webp = tf.where(tf.equal(chunk, b"VP8X"), tf.stack(vp8x),
                    tf.where(tf.equal(chunk, b"VP8L"), tf.stack(vp8l), tf.stack(vp8)))
    height_bmp = _uint(head[22:26])
    height_bmp = tf.abs(tf.where(height_bmp >= 2**31, height_bmp - 2**32, height_bmp))  # negative: top-down
    sizes = [
        (is_png, tf.stack([_uint(head[20:24], False), _uint(head[16:20], False)])),
        (is_gif, tf.stack([_uint(head[8:10]), _uint(head[6:8])])),
        (is_bmp, tf.stack([height_bmp, _uint(head[18:22])])),
        (is_webp, webp),
    ]
    size = tf.constant([-1, -1], tf.int64)
    for condition, value in reversed(sizes):
        size = tf.where(condition, value, size)
    size = tf.cond(
        is_jpeg,
        lambda: tf.cast(tf.io.extract_jpeg_shape(data)[:2], tf.int64),
        lambda: size,
    )
    return form, size[0], size[1]


def image_format(image_bytes):
    """`"jpeg"`, `"png"`, `"gif"`, `"bmp"`, `"webp"` or `""`, from the first bytes (TF op)."""
    data = _padded(tf.convert_to_tensor(image_bytes, tf.string))
    conditions = [
        ("jpeg", tf.io.is_jpeg(data)),
        ("png", tf.equal(tf.strings.substr(data, 0, 8), b"\x89PNG\r\n\x1a\n")),
        ("gif", tf.equal(tf.strings.substr(data, 0, 3), b"GIF")),
        ("bmp", tf.equal(tf.strings.substr(data, 0, 2), b"BM")),
        ("webp", tf.logical_and(tf.equal(tf.strings.substr(data, 0, 4), b"RIFF"),
                                tf.equal(tf.strings.substr(data, 8, 4), b"WEBP"))),
    ]
    form = tf.constant("")
    for name, condition in reversed(conditions):
        form = tf.where(condition, tf.constant(name), form)
    return form


def _looks_complete(data, form):
    """False for a PNG without its end chunk or a JPEG without an end marker: a truncated file."""
    def has(marker):
        return tf.size(tf.strings.split(tf.strings.substr(_padded(data), 2, -1), marker)) > 1

    return tf.case(
        [(tf.equal(form, "png"), lambda: has("IEND")), (tf.equal(form, "jpeg"), lambda: has(b"\xff\xd9"))],
        default=lambda: tf.constant(True),
    )


def check_encoded_image(image_bytes, where="image", max_pixels=None):
    """`image_bytes` once they are a complete image within the pixel limit (TF op), else an error.

    Checked before anything is decoded, from the bytes alone: the format (JPEG, PNG, GIF, BMP or
    WebP), that a PNG or JPEG is not truncated, and that the size the header declares holds at
    most `max_pixels` pixels. A failed check raises `InvalidArgumentError` (eagerly) or fails
    the graph with a message that names `where` (e.g. `image[3]`), says what is wrong and gives
    the item's size in bytes (and its declared size).

    Args:
        image_bytes: a scalar `tf.string` tensor of encoded image bytes.
        where: str or scalar string tensor, how to name the item in the message. Defaults to
            `"image"`.
        max_pixels: int, the most pixels allowed. Defaults to `None`: `MAX_IMAGE_PIXELS` when
            the op is built.

    Example:

    >>> png = tf.io.encode_png(tf.zeros((10, 12, 3), tf.uint8))
    >>> int(tf.strings.length(check_encoded_image(png, "image[0]")))  > 0
    True
    >>> check_encoded_image(png, "image[0]", max_pixels=100)
    Traceback (most recent call last):
    ...
    tensorflow.python.framework.errors_impl.InvalidArgumentError: ...image[0] (... bytes) declares 10x12 pixels (120); an image may have 1 to 100 pixels (mmkeras.preprocessing.MAX_IMAGE_PIXELS)...
    """
    max_pixels = MAX_IMAGE_PIXELS if max_pixels is None else max_pixels
    check_positive_int("max_pixels", max_pixels)
    data = tf.convert_to_tensor(image_bytes, tf.string)
    form = image_format(data)
    size = tf.strings.as_string(tf.strings.length(data))
    item = tf.strings.join([where, " (", size, " bytes)"])
    known = tf.not_equal(form, "")
    known_check = tf.debugging.Assert(
        known,
        [tf.strings.join([item, f" is not an encoded image: it must be {IMAGE_FORMATS} bytes (TIFF and other formats are not decoded)"])],
    )
    with tf.control_dependencies([known_check]):
        complete = tf.debugging.Assert(
            _looks_complete(data, form),
            [tf.strings.join([item, " is a truncated or corrupt ", tf.strings.upper(form), " image"])],
        )
    with tf.control_dependencies([complete]):  # a truncated JPEG header would fail to parse
        _, height, width = image_header(data)
        pixels = height * width
        small = tf.debugging.Assert(
            tf.logical_and(tf.logical_and(height > 0, width > 0), pixels <= max_pixels),
            [tf.strings.join([
                item, " declares ", tf.strings.as_string(height), "x", tf.strings.as_string(width), " pixels (",
                tf.strings.as_string(pixels), f"); an image may have 1 to {max_pixels} pixels "
                "(mmkeras.preprocessing.MAX_IMAGE_PIXELS)",
            ])],
        )
    with tf.control_dependencies([small]):
        return tf.identity(data)


def error_reason(error):
    """The message of a failed `check_encoded_image` (or any TF error), without TF's wrapping."""
    text = str(getattr(error, "message", error)).strip()
    for start in ("Summarized data: b'", "Summarized data: b\"", "assertion failed: ["):
        if start in text:
            text = text.split(start, 1)[1]
            text = text.split("\n")[0].rstrip("]'\" ")
            return text
    return text.splitlines()[-1] if text else text


def decode_image(image_bytes, image_shape, where="image", max_pixels=None):
    """Decode one encoded PNG/JPEG/GIF/BMP image to `image_shape` float32 in [0, 1] (TF op).

    This is what exported models run on a request's bytes. The bytes are checked first
    (`check_encoded_image`: the format, truncation, and at most `MAX_IMAGE_PIXELS` pixels).

    Args:
        image_bytes: a scalar `tf.string` tensor of encoded image bytes.
        image_shape: `(height, width, channels)`; the image is resized (bilinear) and its
            channels converted (grey <-> RGB) to match.
        where: str or string tensor, the item's name in error messages. Defaults to `"image"`.
        max_pixels: int or None, the pixel limit. Defaults to `MAX_IMAGE_PIXELS`.

    Example:

    >>> png = tf.io.encode_png(tf.zeros((10, 12, 3), tf.uint8))
    >>> decode_image(png, (8, 8, 3)).shape
    TensorShape([8, 8, 3])
    """
    height, width, channels = check_image_shape("image_shape", image_shape)
    image_bytes = check_encoded_image(image_bytes, where, max_pixels)
    image = tf.io.decode_image(image_bytes, channels=channels, expand_animations=False)
    image = tf.image.resize(tf.cast(image, tf.float32) / 255.0, (height, width))
    image.set_shape((height, width, channels))
    return image


def decode_image_uint8(image_bytes, image_shape, where="image", max_pixels=None):
    """Decode one encoded image to `image_shape` as uint8 (TF op): how decoded tables keep images.

    An image that already has the model's height and width is decoded as it is, so its batches
    (divided by 255) equal `decode_image`'s exactly. Another is resized by `decode_image` and
    rounded to 8 bits: 4x less memory than floats, at most 0.5/255 from what `decode_image` gives.
    The bytes are checked as `decode_image` checks them (`where`, `max_pixels`: the same).

    Example:

    >>> png = tf.io.encode_png(tf.fill((10, 12, 3), tf.constant(200, tf.uint8)))
    >>> image = decode_image_uint8(png, (8, 8, 3))
    >>> image.dtype.name, int(image[0, 0, 0])
    ('uint8', 200)
    """
    height, width, channels = check_image_shape("image_shape", image_shape)
    image_bytes = check_encoded_image(image_bytes, where, max_pixels)
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
        if images.size and not np.all(np.isfinite(images)):
            bad = int(np.flatnonzero(~np.isfinite(images).reshape(len(images), -1).all(axis=1))[0])
            raise ValueError(
                f"`{name}` must hold finite values in [0, 1]. Received: {name}[{bad}] containing NaN or inf"
            )
        if images.size and (images.min() < 0 or images.max() > 1):
            raise ValueError(
                f"`{name}` given as floats must lie in [0, 1] (pass uint8 for values in [0, 255]). "
                f"Received: {name} with values from {images.min()} to {images.max()}"
            )
        images = images.astype("float32", copy=False)
    if images.shape[1:] == (height, width, channels) and out is None:
        return images
    if channels not in (1, 3) and images.shape[-1] != channels:
        raise ValueError(
            f"`image_shape` must have 1 (grey) or 3 (RGB) channels to convert `{name}` of shape "
            f"{images.shape} to it. Received: image_shape={(height, width, channels)}"
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

    def decode_images(self, image_bytes, name="image", max_pixels=None, empty_as_absent=False):
        """Encoded image bytes `(batch,)` -> float32 images `(batch, *image_shape)` (TF op).

        Each item is checked before it is decoded (`check_encoded_image`), and a bad one is named
        with its index: `image[3] (1200 bytes) is a truncated or corrupt PNG image`.

        Args:
            image_bytes: a `tf.string` tensor `(batch,)`.
            name: str, the input's name in error messages. Defaults to `"image"`.
            max_pixels: int or None, the pixel limit. Defaults to `MAX_IMAGE_PIXELS`.
            empty_as_absent: bool, turn empty bytes into an absent image (all NaN, see
                `mmkeras.missing`) instead of an error. Defaults to `False`.
        """
        if self.image_shape is None:
            raise ValueError("This model's preprocessor has no image shape (a text-only model).")
        image_bytes = tf.convert_to_tensor(image_bytes, tf.string)
        positions = tf.range(tf.shape(image_bytes, out_type=tf.int64)[0])

        def decode(item):
            where = tf.strings.join([f"{name}[", tf.strings.as_string(item[1]), "]"])
            if not empty_as_absent:
                return decode_image(item[0], self.image_shape, where, max_pixels)
            return tf.cond(
                tf.equal(tf.strings.length(item[0]), 0),
                lambda: tf.fill(self.image_shape, float("nan")),
                lambda: decode_image(item[0], self.image_shape, where, max_pixels),
            )

        return tf.map_fn(  # one by one, each checked with its index (`image[3]`) for the errors
            decode,
            (image_bytes, positions),
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
        if len(images) == 0:  # empty in, empty out
            return np.zeros((0, *self.image_shape), "float32")
        if form == "arrays":  # checked and resized in floats, as an exported model resizes
            if isinstance(images, np.ndarray) and images.dtype == np.uint8:
                images = images.astype("float32") / np.float32(255.0)
            elif not isinstance(images, np.ndarray):
                images = [im.astype("float32") / np.float32(255.0) if im.dtype == np.uint8 else im
                          for im in (np.asarray(i) for i in images)]
            if isinstance(images, np.ndarray):
                table = fit_images(images, self.image_shape, name)
            else:  # a list of arrays, maybe of several sizes
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
