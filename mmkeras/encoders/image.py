"""Image encoders: each builder returns a `keras.Model` from an image to a feature vector, or to a
sequence of vectors: the `patch` stem of a shared-encoder model, and the `cnn`, `residual_cnn` and
`applications` encoders with `output="sequence"` (`pooling="sequence"` for `applications`), whose
last feature map `(h, w, c)` becomes `h * w` vectors a decoder can attend to (a captioner).

Layer names are stable and prefixed (`image_block1_conv`, `image_flatten`, ...), so summaries
read well and weights can be moved between models by name.
"""

import os

import keras
from keras import ops

from mmkeras.validation import (
    check_bool,
    check_fraction,
    check_image_shape,
    check_int_tuple,
    check_one_of,
    check_positive_int,
    received,
)

PADDINGS = ("valid", "same")
POOLINGS = ("max", "avg", None)
OUTPUTS = ("flatten", "avg", "max", "sequence")
GLOBAL_POOLINGS = ("avg", "max")
SEQUENCE = "sequence"  # the feature map as a sequence of h * w vectors, for attention


def _global_output(x, output, prefix):
    if output == SEQUENCE:  # (h, w, c) -> (h * w, c), row by row
        return keras.layers.Reshape((x.shape[1] * x.shape[2], x.shape[3]), name=f"{prefix}_sequence")(x)
    if output == "flatten":
        return keras.layers.Flatten(name=f"{prefix}_flatten")(x)
    if output == "avg":
        return keras.layers.GlobalAveragePooling2D(name=f"{prefix}_global_avg_pool")(x)
    return keras.layers.GlobalMaxPooling2D(name=f"{prefix}_global_max_pool")(x)


def _pool(x, pooling, pool_size, name):
    layer = keras.layers.MaxPooling2D if pooling == "max" else keras.layers.AveragePooling2D
    return layer(pool_size, name=name)(x)


def _conv(x, width, kernel_size, padding, batch_norm, prefix, momentum=0.99):
    """Conv2D + ReLU, or Conv2D (no bias) + BatchNormalization + ReLU: `{prefix}_conv`, `_bn`, `_relu`."""
    x = keras.layers.Conv2D(
        width,
        kernel_size,
        padding=padding,
        activation=None if batch_norm else "relu",
        use_bias=not batch_norm,
        name=f"{prefix}_conv",
    )(x)
    if batch_norm:
        x = keras.layers.BatchNormalization(momentum=momentum, name=f"{prefix}_bn")(x)
        x = keras.layers.Activation("relu", name=f"{prefix}_relu")(x)
    return x


def _dense_stack(x, dense_units, dropout, prefix):
    for i, units in enumerate(dense_units, start=1):
        x = keras.layers.Dense(units, activation="relu", name=f"{prefix}_dense{i}")(x)
        if dropout:
            x = keras.layers.Dropout(dropout, name=f"{prefix}_dropout{i}")(x)
    return x


def cnn_encoder(
    image_shape=(64, 64, 3),
    filters=(32,),
    kernel_size=3,
    padding="valid",
    pooling="max",
    pool_size=2,
    output="flatten",
    dense_units=(),
    batch_norm=False,
    dropout=0.0,
    batch_norm_momentum=0.99,
    convs_per_block=1,
    name="image_encoder",
):
    """A plain CNN: blocks of Conv2D (+ BatchNorm) + pooling, then Flatten or global pooling.

    This is the image branch of the source documents' models: `filters=(32,)` with no pooling is
    S0, `filters=(64, 128, 256)` with max pooling is S1.

    Args:
        image_shape: tuple `(height, width, channels)`. Defaults to `(64, 64, 3)`.
        filters: int or sequence of ints, the filters of each conv block. Defaults to `(32,)`.
        kernel_size: int, the square kernel size. Defaults to `3`.
        padding: `"valid"` or `"same"`. Defaults to `"valid"`.
        pooling: `"max"`, `"avg"` or `None`: the pooling after each block. Defaults to `"max"`.
        pool_size: int, the pooling window. Defaults to `2`.
        output: `"flatten"`, `"avg"` or `"max"`: how the feature map becomes a vector, or
            `"sequence"`: the last feature map `(h, w, c)` as `h * w` vectors `(h * w, c)`, for a
            decoder to attend to. Defaults to `"flatten"`.
        dense_units: sequence of ints, Dense(relu) layers after the vector (applied to each vector
            of a sequence). Defaults to `()`.
        batch_norm: bool, BatchNormalization after each conv. Defaults to `False`.
        dropout: float, dropout after each dense layer. Defaults to `0.0`.
        batch_norm_momentum: float in (0, 1), the momentum of the batch norm's moving statistics
            (what inference uses). Keras' `0.99` needs several hundred steps to settle; a short
            training wants less (the dual encoders use `0.9`). Defaults to `0.99`.
        convs_per_block: int, the convolutions of each block before its pooling (`2`: VGG-style
            blocks, Simonyan and Zisserman 2015). Defaults to `1`.
        name: str, the model's name. Defaults to `"image_encoder"`.

    Returns:
        A `keras.Model` from `(batch, *image_shape)` floats to `(batch, features)`, or to
        `(batch, h * w, features)` with `output="sequence"`.

    Example:

    >>> encoder = cnn_encoder((64, 64, 3), filters=(32, 64), output="avg")
    >>> encoder.output_shape
    (None, 64)
    >>> cnn_encoder((64, 64, 3), filters=(32, 64), output="sequence").output_shape  # a 14x14 map
    (None, 196, 64)
    >>> len(cnn_encoder((28, 28, 1), filters=(32, 64), padding="same", convs_per_block=2).layers)  # input, 4 convs, 2 pools, flatten
    8
    """
    image_shape = check_image_shape("image_shape", image_shape)
    filters = check_int_tuple("filters", filters)
    check_positive_int("kernel_size", kernel_size)
    check_one_of("padding", padding, PADDINGS)
    check_one_of("pooling", pooling, POOLINGS)
    check_positive_int("pool_size", pool_size)
    check_one_of("output", output, OUTPUTS)
    check_bool("batch_norm", batch_norm)
    check_positive_int("convs_per_block", convs_per_block)
    dense_units = check_int_tuple("dense_units", dense_units)
    dropout = check_fraction("dropout", dropout)
    if isinstance(batch_norm_momentum, bool) or not isinstance(batch_norm_momentum, (int, float)) or not 0 < batch_norm_momentum < 1:
        raise ValueError(
            f"`batch_norm_momentum` must be a number in (0, 1). Received: batch_norm_momentum={batch_norm_momentum!r}"
        )

    inputs = keras.Input(image_shape, name="image")
    x = inputs
    def check_room(x, window, what, block):
        if min(x.shape[1], x.shape[2]) < window:
            raise ValueError(
                f"`image_shape` is too small for {len(filters)} conv blocks: block {block} "
                f"leaves a {x.shape[1]}x{x.shape[2]} map for a {window}x{window} {what}. "
                f"Received: image_shape={image_shape}"
            )

    for i, width in enumerate(filters, start=1):
        for j in range(1, convs_per_block + 1):
            if padding == "valid":
                check_room(x, kernel_size, "convolution", i)
            prefix = f"image_block{i}" if j == 1 else f"image_block{i}_{j}"
            x = _conv(x, width, kernel_size, padding, batch_norm, prefix, batch_norm_momentum)
        if pooling is not None:
            check_room(x, pool_size, "pooling", i)
            x = _pool(x, pooling, pool_size, f"image_block{i}_pool")
    x = _global_output(x, output, "image")
    x = _dense_stack(x, dense_units, dropout, "image")
    return keras.Model(inputs, x, name=name)


def residual_cnn_encoder(
    image_shape=(64, 64, 3),
    filters=(32, 64, 128),
    output="avg",
    dense_units=(),
    dropout=0.0,
    name="image_encoder",
):
    """A small residual CNN: a conv stem, one residual block per width, global average pooling.

    Each block after the first halves the resolution with a strided convolution; its shortcut is a
    strided 1x1 convolution (He et al., 2016, "Deep Residual Learning for Image Recognition").

    Args:
        image_shape: tuple `(height, width, channels)`. Defaults to `(64, 64, 3)`.
        filters: sequence of ints, the width of each residual block. Defaults to `(32, 64, 128)`.
        output: `"avg"` or `"max"` (global pooling to a vector), or `"sequence"`: the last
            feature map `(h, w, c)` as `h * w` vectors, for a decoder to attend to. Defaults to `"avg"`.
        dense_units: sequence of ints, Dense(relu) layers after pooling. Defaults to `()`.
        dropout: float, dropout after each dense layer. Defaults to `0.0`.
        name: str. Defaults to `"image_encoder"`.

    Example:

    >>> residual_cnn_encoder((32, 32, 3), filters=(16, 32)).output_shape
    (None, 32)
    >>> residual_cnn_encoder((32, 32, 3), filters=(16, 32), output="sequence").output_shape
    (None, 256, 32)
    """
    image_shape = check_image_shape("image_shape", image_shape)
    filters = check_int_tuple("filters", filters, allow_empty=False)
    check_one_of("output", output, (*GLOBAL_POOLINGS, SEQUENCE))
    dense_units = check_int_tuple("dense_units", dense_units)
    dropout = check_fraction("dropout", dropout)

    def conv_bn(x, width, strides, kernel, prefix, relu=True):
        x = keras.layers.Conv2D(
            width, kernel, strides=strides, padding="same", use_bias=False, name=f"{prefix}_conv"
        )(x)
        x = keras.layers.BatchNormalization(name=f"{prefix}_bn")(x)
        if relu:
            x = keras.layers.Activation("relu", name=f"{prefix}_relu")(x)
        return x

    inputs = keras.Input(image_shape, name="image")
    x = conv_bn(inputs, filters[0], 1, 3, "image_stem")
    for i, width in enumerate(filters, start=1):
        prefix = f"image_block{i}"
        strides = 1 if i == 1 else 2
        shortcut = x
        if strides != 1 or shortcut.shape[-1] != width:
            shortcut = conv_bn(x, width, strides, 1, f"{prefix}_shortcut", relu=False)
        y = conv_bn(x, width, strides, 3, f"{prefix}_1")
        y = conv_bn(y, width, 1, 3, f"{prefix}_2", relu=False)
        x = keras.layers.Add(name=f"{prefix}_add")([shortcut, y])
        x = keras.layers.Activation("relu", name=f"{prefix}_out")(x)
    x = _global_output(x, output, "image")
    x = _dense_stack(x, dense_units, dropout, "image")
    return keras.Model(inputs, x, name=name)


def _application_names():
    return sorted(
        n for n in dir(keras.applications) if n[0].isupper() and callable(getattr(keras.applications, n))
    )


# LayerNormalization is scale invariant but for its epsilon: it must sit far below the variance of
# the pooled features of a random backbone in inference mode (about 1e-21 for MobileNetV3Small,
# down to about 1e-23 for MobileNetV3Large), and float32 represents variances down to about 1e-38.
FEATURE_NORM_EPSILON = 1e-30


def _preprocesses_inside(base):
    """True when a `keras.applications` model begins with its own input preprocessing.

    Such backbones (`include_preprocessing`, or always for EfficientNet) start with a `Rescaling`
    or `Normalization` layer made for pixel values in [0, 255]: in Keras 3, MobileNetV3
    (`Rescaling(1/127.5, offset=-1)`), EfficientNet (`Rescaling(1/255)`, `Normalization`),
    EfficientNetV2 (`Rescaling(1/255)` and the ImageNet mean and variance, or
    `Rescaling(1/128, offset=-1)`) and ConvNeXt (`Normalization` by the ImageNet mean and standard
    deviation times 255). The others (ResNet, VGG, DenseNet, Inception, Xception, NASNet,
    MobileNet, MobileNetV2) begin with a convolution or padding and leave preprocessing outside.
    """
    first = next(layer for layer in base.layers if not isinstance(layer, keras.layers.InputLayer))
    return isinstance(first, (keras.layers.Rescaling, keras.layers.Normalization))


def applications_encoder(
    image_shape=(224, 224, 3),
    backbone="MobileNetV3Small",
    weights=None,
    pooling="avg",
    trainable=True,
    normalize=True,
    dense_units=(),
    dropout=0.0,
    name="image_encoder",
):
    """Adapt a `keras.applications` backbone (without its top) as an image encoder.

    mmkeras never downloads anything: `weights` is `None` (random initialisation) or the path of
    a weights file you already have on disk (for example one saved by `model.save_weights`).

    Args:
        image_shape: tuple `(height, width, channels)`. Defaults to `(224, 224, 3)`.
        backbone: str, the name of a `keras.applications` model, e.g. `"ResNet50"`.
            Defaults to `"MobileNetV3Small"`.
        weights: `None` or the path of a local weights file. Defaults to `None`.
        pooling: `"avg"` or `"max"`, the global pooling on the feature map, or `"sequence"`:
            no pooling, the feature map `(h, w, c)` as `h * w` vectors for a decoder to attend to.
            Defaults to `"avg"`.
        trainable: bool, whether the backbone's weights train. Defaults to `True`.
        normalize: bool, a `LayerNormalization` (`image_feature_norm`) on the pooled backbone
            features, so their scale does not depend on the backbone's batch-norm statistics (see
            the note). Defaults to `True`.
        dense_units: sequence of ints, Dense(relu) layers after pooling. Defaults to `()`.
        dropout: float, dropout after each dense layer. Defaults to `0.0`.
        name: str. Defaults to `"image_encoder"`.

    Note: mmkeras' images are floats in [0, 1]. Backbones whose graph begins with their own
    preprocessing expect pixel values in [0, 255] (in Keras 3: MobileNetV3, EfficientNet,
    EfficientNetV2 and ConvNeXt); for them the encoder multiplies the image by 255 first (layer
    `image_to_pixel_range`), so they see the range their weights are made for (MobileNetV3, for
    one, maps [0, 255] to [-1, 1]: fed [0, 1] its input would be nearly constant). The other
    backbones see [0, 1]: with pretrained weights apply their `preprocess_input` convention
    yourself (e.g. a custom `keras.Model` as `image_encoder`). With random weights a backbone's
    batch-norm layers hold untrained statistics (mean 0, variance 1) and run with them in
    inference mode, and the activations of a deep backbone then shrink or grow layer by layer (the
    pooled features of a random MobileNetV3Small are about 1e-10, of a random ResNet50 about 10),
    until training has moved those statistics. `normalize=True` standardizes the pooled features,
    with an epsilon (1e-30) far below their variance, so their scale (next to the text features')
    does not depend on those statistics. It cannot undo stale statistics: once training has
    learned batch-norm offsets, and until the moving statistics have caught up (MobileNetV3's
    momentum is 0.999: thousands of steps), a random backbone in inference mode gives nearly the
    same features for every image. Load trained weights, or train long enough.

    Example:

    >>> encoder = applications_encoder((32, 32, 3), backbone="MobileNetV3Small")
    >>> encoder.output_shape
    (None, 576)
    >>> [layer.name for layer in encoder.layers[1:]]
    ['image_to_pixel_range', 'MobileNetV3Small', 'image_feature_norm']
    """
    image_shape = check_image_shape("image_shape", image_shape)
    check_one_of("backbone", backbone, _application_names())
    check_one_of("pooling", pooling, (*GLOBAL_POOLINGS, SEQUENCE))
    check_bool("trainable", trainable)
    check_bool("normalize", normalize)
    dense_units = check_int_tuple("dense_units", dense_units)
    dropout = check_fraction("dropout", dropout)
    if weights is not None and not (isinstance(weights, (str, os.PathLike)) and os.path.isfile(weights)):
        raise ValueError(
            "`weights` must be None or the path of an existing local weights file; mmkeras "
            f"never downloads weights. Received: weights={weights!r}"
        )
    base = getattr(keras.applications, backbone)(
        include_top=False, weights=None, input_shape=image_shape, pooling=None if pooling == SEQUENCE else pooling
    )
    if weights is not None:
        base.load_weights(os.fspath(weights))
    base.trainable = trainable
    inputs = keras.Input(image_shape, name="image")
    x = inputs
    if _preprocesses_inside(base):
        x = keras.layers.Rescaling(255.0, name="image_to_pixel_range")(x)
    x = base(x)
    if pooling == SEQUENCE:
        x = _global_output(x, SEQUENCE, "image")
    if normalize:
        x = keras.layers.LayerNormalization(epsilon=FEATURE_NORM_EPSILON, name="image_feature_norm")(x)
    x = _dense_stack(x, dense_units, dropout, "image")
    return keras.Model(inputs, x, name=name)


@keras.saving.register_keras_serializable(package="mmkeras")
class PositionEmbedding(keras.layers.Layer):
    """Adds a learned embedding per position to a sequence `(batch, length, width)`.

    The table has one row per position of the sequence it is built for (its length must be known);
    a Keras mask on the input passes through.

    Args:
        **kwargs: forwarded to `keras.layers.Layer` (`name`, `dtype`, `trainable`).

    Example:

    >>> import numpy as np
    >>> layer = PositionEmbedding()
    >>> tuple(layer(np.zeros((2, 16, 8), "float32")).shape), tuple(layer.positions.shape)
    ((2, 16, 8), (16, 8))
    """

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.supports_masking = True

    def build(self, input_shape):
        if len(input_shape) != 3 or input_shape[1] is None or input_shape[2] is None:
            raise ValueError(
                "PositionEmbedding expects sequences (batch, length, width) of known length and width. "
                f"Received: input_shape={tuple(input_shape)}"
            )
        self.positions = self.add_weight(
            shape=tuple(input_shape[1:]),
            initializer=keras.initializers.TruncatedNormal(stddev=0.02),
            name="positions",
        )

    def call(self, inputs):
        return inputs + ops.cast(self.positions, inputs.dtype)

    def compute_output_shape(self, input_shape):
        return input_shape


def patch_encoder(image_shape=(64, 64, 3), patch_size=8, embedding_dim=64, stem_filters=(), name="image_encoder"):
    """The image stem of a shared-encoder model: square patches, each embedded, plus positions.

    The image is cut into non-overlapping `patch_size` x `patch_size` patches, each patch is
    mapped to `embedding_dim` features (a strided `Conv2D`, `image_patch_embedding`), and a
    learned position embedding (`image_position_embedding`) is added, as in ViT (Dosovitskiy et
    al. 2021, "An Image is Worth 16x16 Words"). With `stem_filters`, a convolutional stem comes
    first, as in ViT's hybrid model: per entry a 3x3 convolution + batch normalisation + ReLU
    and a 2x2 max pooling (`image_stem{i}_conv`, ..., `image_stem{i}_pool`, the `cnn` encoder's
    blocks), each halving the resolution; the patches are then cut from its feature map, each
    token still covering `patch_size` x `patch_size` pixels. The output is the sequence of patch
    tokens, row by row, for a fusion that reads sequences (`shared_transformer`), not a vector.

    Args:
        image_shape: tuple `(height, width, channels)`; `patch_size` must divide the height and
            the width. Defaults to `(64, 64, 3)`.
        patch_size: int, the side of each square patch, in pixels; a multiple of
            `2 ** len(stem_filters)`. Defaults to `8`.
        embedding_dim: int, the features per patch token. Defaults to `64`.
        stem_filters: sequence of ints, the filters of each block of the convolutional stem;
            empty for linear patch embeddings. Defaults to `()`.
        name: str. Defaults to `"image_encoder"`.

    Returns:
        A `keras.Model` from `(batch, *image_shape)` floats to
        `(batch, (height // patch_size) * (width // patch_size), embedding_dim)`.

    Example:

    >>> encoder = patch_encoder((32, 32, 3), patch_size=8, embedding_dim=16)
    >>> encoder.output_shape
    (None, 16, 16)
    >>> patch_encoder((32, 32, 3), patch_size=8, embedding_dim=16, stem_filters=(8, 16)).output_shape
    (None, 16, 16)
    """
    image_shape = check_image_shape("image_shape", image_shape)
    check_positive_int("patch_size", patch_size)
    check_positive_int("embedding_dim", embedding_dim)
    stem_filters = check_int_tuple("stem_filters", stem_filters)
    height, width = image_shape[:2]
    if height % patch_size or width % patch_size:
        raise ValueError(
            f"`patch_size` must divide the image's height and width ({height}x{width}) into whole "
            f"patches. {received('patch_size', patch_size)}"
        )
    reduction = 2 ** len(stem_filters)
    if patch_size % reduction:
        raise ValueError(
            f"`patch_size` must be a multiple of {reduction}: the {len(stem_filters)} blocks of "
            f"`stem_filters={stem_filters}` each halve the resolution. {received('patch_size', patch_size)}"
        )

    inputs = keras.Input(image_shape, name="image")
    x = inputs
    for i, filters in enumerate(stem_filters, start=1):
        x = _conv(x, filters, 3, "same", True, f"image_stem{i}")
        x = _pool(x, "max", 2, f"image_stem{i}_pool")
    cell = patch_size // reduction
    x = keras.layers.Conv2D(embedding_dim, cell, strides=cell, name="image_patch_embedding")(x)
    x = keras.layers.Reshape(((height // patch_size) * (width // patch_size), embedding_dim), name="image_patches")(x)
    x = PositionEmbedding(name="image_position_embedding")(x)
    return keras.Model(inputs, x, name=name)


IMAGE_ENCODERS = {
    "cnn": cnn_encoder,
    "residual_cnn": residual_cnn_encoder,
    "applications": applications_encoder,
    "patch": patch_encoder,
}
