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
_TAIL = 64  # bytes at the end of an image where a complete PNG's or JPEG's end marker is looked for first


def _padded(data):
    """The first `_HEADER` bytes of `data`, with `_HEADER` zero bytes appended, so reading the
    header never runs past the end (and never copies the whole image)."""
    return tf.strings.join([tf.strings.substr(data, 0, _HEADER), tf.constant(b"\x00" * _HEADER)])


def _bytes_at(padded, start, length):
    """`length` bytes of each item of `padded` (1-D, see `_padded`) from `start`: int32 `(n, length)`."""
    raw = tf.io.decode_raw(tf.strings.substr(padded, start, length), tf.uint8)
    raw = tf.reshape(tf.cast(raw, tf.int32), [-1, length])  # (0, length) for no items
    return raw


# Where each format's header declares its size: per variant, (height, width), each a field of
# (first byte, bytes, big-endian, right shift, mask, added). WebP has three variants: VP8X gives
# the canvas size (24 bits each, minus one), VP8L 14 bits each (minus one), VP8 (lossy) 14 bits
# each after the frame tag. A BMP's height is signed (negative: stored top-down).
_SIZE_FIELDS = {
    "png": ((20, 4, True, 0, None, 0), (16, 4, True, 0, None, 0)),
    "gif": ((8, 2, False, 0, None, 0), (6, 2, False, 0, None, 0)),
    "bmp": ((22, 4, False, 0, None, 0), (18, 4, False, 0, None, 0)),
    "VP8X": ((27, 3, False, 0, None, 1), (24, 3, False, 0, None, 1)),
    "VP8L": ((21, 4, False, 14, 0x3FFF, 1), (21, 4, False, 0, 0x3FFF, 1)),
    "VP8 ": ((28, 2, False, 0, 0x3FFF, 0), (26, 2, False, 0, 0x3FFF, 0)),
}


def _size_table():
    """`_SIZE_FIELDS` as arrays: byte indices and weights `(fields, 4)`, shifts, masks, additions `(fields,)`."""
    index, weight, shift, mask, add = [], [], [], [], []
    for fields in _SIZE_FIELDS.values():
        for first, count, big_endian, right_shift, bits, plus in fields:
            index.append([first + i for i in range(count)] + [0] * (4 - count))
            weight.append([256 ** (count - 1 - i if big_endian else i) for i in range(count)] + [0] * (4 - count))
            shift.append(right_shift)
            mask.append(2**32 - 1 if bits is None else bits)
            add.append(plus)
    return [np.array(a, "int64") for a in (index, weight, shift, mask, add)]


def _declared_sizes(data, form, parse):
    """`(n, 2)` int64 heights and widths that 1-D `data` of formats `form` declare; `-1` where unknown.

    A JPEG's size is read by `tf.io.extract_jpeg_shape` only where `parse` is True (it fails on a
    truncated header); the other formats' sizes are read from fixed header bytes (`_SIZE_FIELDS`),
    all fields of all items at once.
    """
    padded = _padded(data)
    index, weight, shift, mask, add = _size_table()
    raw = tf.cast(tf.gather(_bytes_at(padded, 0, 30), index, axis=1), tf.int64)  # (n, fields, 4)
    values = tf.bitwise.bitwise_and(tf.bitwise.right_shift(tf.reduce_sum(raw * weight, -1), shift), mask) + add
    bmp_height = 2 * list(_SIZE_FIELDS).index("bmp")
    signed = tf.logical_and(tf.range(len(index)) == bmp_height, values >= 2**31)
    values = tf.reshape(tf.where(signed, 2**32 - values, values), [-1, len(_SIZE_FIELDS), 2])
    chunk = tf.strings.substr(padded, 12, 4)
    variant = tf.fill(tf.shape(data), -1)
    for i, name in enumerate(_SIZE_FIELDS):
        is_variant = tf.equal(form, name) if name.islower() else tf.logical_and(tf.equal(form, "webp"), tf.equal(chunk, name))
        variant = tf.where(is_variant, i, variant)
    variant = tf.where(tf.logical_and(tf.equal(form, "webp"), variant < 0), len(_SIZE_FIELDS) - 1, variant)  # VP8
    size = tf.where((variant >= 0)[:, None], tf.gather(values, tf.maximum(variant, 0), batch_dims=1), tf.constant(-1, tf.int64))
    jpeg = tf.logical_and(tf.equal(form, "jpeg"), parse)

    def jpeg_size(item):
        return tf.cond(item[1], lambda: tf.cast(tf.io.extract_jpeg_shape(item[0])[:2], tf.int64), lambda: item[2])

    return tf.cond(  # a batch without JPEGs runs no loop
        tf.reduce_any(jpeg),
        lambda: tf.map_fn(jpeg_size, (data, jpeg, size), fn_output_signature=tf.TensorSpec([2], tf.int64)),
        lambda: size,
    )


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
    data = tf.reshape(tf.convert_to_tensor(image_bytes, tf.string), [1])
    form = image_format(data)
    size = _declared_sizes(data, form, parse=tf.not_equal(form, ""))
    return form[0], size[0, 0], size[0, 1]


def image_format(image_bytes):
    """`"jpeg"`, `"png"`, `"gif"`, `"bmp"`, `"webp"` or `""`, from the first bytes (TF op, item by item)."""
    data = _padded(tf.convert_to_tensor(image_bytes, tf.string))
    conditions = [
        ("jpeg", tf.io.is_jpeg(data)),
        ("png", tf.equal(tf.strings.substr(data, 0, 8), b"\x89PNG\r\n\x1a\n")),
        ("gif", tf.equal(tf.strings.substr(data, 0, 3), b"GIF")),
        ("bmp", tf.equal(tf.strings.substr(data, 0, 2), b"BM")),
        ("webp", tf.logical_and(tf.equal(tf.strings.substr(data, 0, 4), b"RIFF"),
                                tf.equal(tf.strings.substr(data, 8, 4), b"WEBP"))),
    ]
    form = tf.fill(tf.shape(data), "")
    for name, condition in reversed(conditions):
        form = tf.where(condition, name, form)
    return form


def _looks_complete(data, form):
    """Per item of 1-D `data`: False for a PNG without its end chunk or a JPEG without an end marker."""
    # The marker is looked for after the first 2 bytes: in the last `_TAIL` bytes first (where a
    # complete file has it), in the whole file only for the items whose tail lacks it.
    length = tf.strings.length(data)
    after_2 = tf.minimum(2, length)  # (an item shorter than 2 bytes is no PNG or JPEG: nothing to look in)
    tail = tf.strings.substr(data, tf.maximum(length - _TAIL, after_2), tf.fill(tf.shape(data), _TAIL))

    def has(strings, marker):
        return tf.strings.split(strings, marker).row_lengths() > 1

    def has_after_2(marker):  # copies whole images: only for the few whose tail has no marker
        return has(tf.strings.substr(data, after_2, length - after_2), marker)

    complete = tf.ones_like(data, tf.bool)
    for name, marker in (("png", "IEND"), ("jpeg", b"\xff\xd9")):
        is_form = tf.equal(form, name)
        found = tf.cond(tf.reduce_any(is_form), lambda m=marker: has(tail, m), lambda: complete)
        look_further = tf.logical_and(is_form, tf.logical_not(found))
        found = tf.cond(tf.reduce_any(look_further), lambda m=marker: has_after_2(m), lambda: found)
        complete = tf.where(is_form, found, complete)
    return complete


def _image_checks(data, max_pixels):
    """What `check_encoded_image` checks, for each item of 1-D `data` at once (TF ops; a loop only over JPEGs, for their size).

    Returns a dict of `(n,)` tensors: `form`, `known` (a format TF decodes), `complete` (not
    truncated), `height`, `width` (declared; read only from known, complete items) and `small`
    (1 to `max_pixels` pixels), and `ok`, all three.
    """
    form = image_format(data)
    known = tf.not_equal(form, "")
    complete = _looks_complete(data, form)
    size = _declared_sizes(data, form, parse=tf.logical_and(known, complete))
    height, width = size[:, 0], size[:, 1]
    small = tf.logical_and(tf.logical_and(height > 0, width > 0), height * width <= max_pixels)
    ok = tf.logical_and(tf.logical_and(known, complete), small)
    return {"form": form, "known": known, "complete": complete, "height": height, "width": width, "small": small, "ok": ok}


def _raise_check(data, where, checks, i, max_pixels):
    """The error of item `i` of `data` (`checks` from `_image_checks`): the first check it fails, named `where`."""
    form, height, width = checks["form"][i], checks["height"][i], checks["width"][i]
    size = tf.strings.as_string(tf.strings.length(data[i]))
    item = tf.strings.join([where, " (", size, " bytes)"])
    known = tf.debugging.Assert(
        checks["known"][i],
        [tf.strings.join([item, f" is not an encoded image: it must be {IMAGE_FORMATS} bytes (TIFF and other formats are not decoded)"])],
    )
    with tf.control_dependencies([known]):
        complete = tf.debugging.Assert(
            checks["complete"][i],
            [tf.strings.join([item, " is a truncated or corrupt ", tf.strings.upper(form), " image"])],
        )
    with tf.control_dependencies([complete]):
        small = tf.debugging.Assert(
            checks["small"][i],
            [tf.strings.join([
                item, " declares ", tf.strings.as_string(height), "x", tf.strings.as_string(width), " pixels (",
                tf.strings.as_string(height * width), f"); an image may have 1 to {max_pixels} pixels "
                "(mmkeras.preprocessing.MAX_IMAGE_PIXELS)",
            ])],
        )
    return small


def check_encoded_images(image_bytes, name="image", max_pixels=None, skip=None):
    """`image_bytes` `(n,)` once every item is a complete image within the pixel limit (TF op), else an error.

    The checks of `check_encoded_image`, run on the whole batch at once (a few dozen ops, whatever
    the batch size). The first bad item is named with its index: `image[3] (1200 bytes) is a
    truncated or corrupt PNG image`.

    Args:
        image_bytes: a 1-D `tf.string` tensor of encoded images.
        name: str, the input's name in error messages. Defaults to `"image"`.
        max_pixels: int, the most pixels allowed. Defaults to `None`: `MAX_IMAGE_PIXELS`.
        skip: a `(n,)` bool tensor of items not to check (absent images), or None. Defaults to `None`.

    Example:

    >>> pngs = tf.stack([tf.io.encode_png(tf.zeros((4, 4, 1), tf.uint8)), b"not an image"])
    >>> check_encoded_images(pngs[:1]).shape
    TensorShape([1])
    >>> check_encoded_images(pngs)
    Traceback (most recent call last):
    ...
    tensorflow.python.framework.errors_impl.InvalidArgumentError: ...image[1] (12 bytes) is not an encoded image...
    """
    max_pixels = MAX_IMAGE_PIXELS if max_pixels is None else max_pixels
    check_positive_int("max_pixels", max_pixels)
    data = tf.convert_to_tensor(image_bytes, tf.string)
    checks = _image_checks(data, max_pixels)
    bad = tf.logical_not(checks["ok"])
    if skip is not None:
        bad = tf.logical_and(bad, tf.logical_not(skip))

    def fail():
        first = tf.argmax(tf.cast(bad, tf.int32), output_type=tf.int32)
        where = tf.strings.join([f"{name}[", tf.strings.as_string(first), "]"])
        with tf.control_dependencies([_raise_check(data, where, checks, first, max_pixels)]):
            return tf.constant(False)

    passed = tf.cond(tf.reduce_any(bad), fail, lambda: tf.constant(True))
    with tf.control_dependencies([passed]):
        return tf.identity(data)


def check_encoded_image(image_bytes, where="image", max_pixels=None):
    """`image_bytes` once they are a complete image within the pixel limit (TF op), else an error.

    Checked before anything is decoded, from the bytes alone: the format (JPEG, PNG, GIF, BMP or
    WebP), that a PNG or JPEG is not truncated, and that the size the header declares holds at
    most `max_pixels` pixels. A failed check raises `InvalidArgumentError` (eagerly) or fails
    the graph with a message that names `where` (e.g. `image[3]`), says what is wrong and gives
    the item's size in bytes (and its declared size). For a batch, `check_encoded_images`.

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
    checks = _image_checks(tf.reshape(data, [1]), max_pixels)
    with tf.control_dependencies([_raise_check(tf.reshape(data, [1]), where, checks, 0, max_pixels)]):
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
    check_image_shape("image_shape", image_shape)
    return _decode_checked(check_encoded_image(image_bytes, where, max_pixels), image_shape)


def _decode_checked(image_bytes, image_shape):
    """`decode_image` after its checks: decode, resize (bilinear), scale to [0, 1]."""
    height, width, channels = image_shape
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

        The batch is checked before anything is decoded (`check_encoded_images`), and the first
        bad item is named with its index: `image[3] (1200 bytes) is a truncated or corrupt PNG image`.

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
        empty = tf.equal(tf.strings.length(image_bytes), 0) if empty_as_absent else None
        # Every item checked at once, the first bad one named (`image[3]`); then decoded one by one.
        image_bytes = check_encoded_images(image_bytes, name, max_pixels, skip=empty)

        def decode(item):
            if not empty_as_absent:
                return _decode_checked(item, self.image_shape)
            return tf.cond(
                tf.equal(tf.strings.length(item), 0),
                lambda: tf.fill(self.image_shape, float("nan")),
                lambda: _decode_checked(item, self.image_shape),
            )

        return tf.map_fn(decode, image_bytes, fn_output_signature=tf.TensorSpec(self.image_shape, tf.float32))

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
