"""The one generic builder: image encoder + text encoder -> fusion -> dense layers -> head.

Every zoo recipe is a set of arguments for `build_model`; parts may be passed as names, as
`{"kind": name, **arguments}` dicts, or as ready objects (a `keras.Model` encoder, a fusion
layer, a head).
"""

import keras

from mmkeras.encoders.image import IMAGE_ENCODERS
from mmkeras.encoders.text import TEXT_ENCODERS
from mmkeras.fusion import get_fusion
from mmkeras.heads import get_head
from mmkeras.validation import (
    check_fraction,
    check_image_shape,
    check_int_tuple,
    check_kwargs,
    check_one_of,
    check_positive_int,
)


def _split_spec(name, spec):
    """`"cnn"` or `{"kind": "cnn", **kwargs}` -> ("cnn", kwargs)."""
    if isinstance(spec, str):
        return spec, {}
    if isinstance(spec, dict) and "kind" in spec:
        return spec["kind"], {k: v for k, v in spec.items() if k != "kind"}
    raise ValueError(
        f"`{name}` must be a registered name, a dict with a 'kind' key, a keras.Model or None. "
        f"Received: {name}={spec!r}"
    )


def _build_part(name, spec, table, **shared):
    kind, kwargs = _split_spec(name, spec)
    check_one_of(name, kind, table)
    check_kwargs(name, kind, [table[kind]], kwargs)
    return table[kind](**{**shared, **kwargs})


def _encoder_input(encoder, name):
    if not isinstance(encoder, keras.Model) or len(encoder.inputs) != 1:
        raise ValueError(
            f"`{name}` must be a keras.Model with one input. Received: {name}={encoder!r}"
        )
    return encoder


def build_image_encoder(spec, image_shape):
    """Build an image encoder from a name, a spec dict or a ready `keras.Model`."""
    if isinstance(spec, keras.Model):
        return _encoder_input(spec, "image_encoder")
    return _build_part("image_encoder", spec, IMAGE_ENCODERS, image_shape=image_shape)


def build_text_encoder(spec, sequence_length, vocab_size):
    """Build a text encoder from a name, a spec dict or a ready `keras.Model`."""
    if isinstance(spec, keras.Model):
        return _encoder_input(spec, "text_encoder")
    return _build_part(
        "text_encoder", spec, TEXT_ENCODERS, sequence_length=sequence_length, vocab_size=vocab_size
    )


def build_model(
    image_encoder="cnn",
    text_encoder="rnn",
    fusion="concatenate",
    head="binary",
    *,
    image_shape=(64, 64, 3),
    sequence_length=100,
    vocab_size=10000,
    text_vectorizer=None,
    num_classes=None,
    hidden_units=(64,),
    dropout=0.0,
    compile=True,
    optimizer="adam",
    learning_rate=1e-3,
    name="mmkeras_model",
):
    """Assemble a multimodal functional model: encoders -> fusion -> dense layers -> head.

    Inputs are a dict: `"image"` `(batch, *image_shape)` floats and `"text"` token ids
    `(batch, sequence_length)`, or raw strings `(batch,)` when a `text_vectorizer` is given.
    The output carries the head's name (a dict of named outputs for a multi-task head).

    Args:
        image_encoder: name in `mmkeras.encoders.IMAGE_ENCODERS`, a dict `{"kind": name, **args}`,
            a `keras.Model`, or `None` for a text-only model. Defaults to `"cnn"`.
        text_encoder: name in `mmkeras.encoders.TEXT_ENCODERS`, a dict, a `keras.Model`, or `None`
            for an image-only model. Defaults to `"rnn"` (Embedding + LSTM).
        fusion: name in `mmkeras.fusion.FUSIONS`, a dict, a fusion layer, or `None` (only for a
            single-modality model). Defaults to `"concatenate"`.
        head: name in `mmkeras.heads.HEADS`, a dict, or a head object. Defaults to `"binary"`.
        image_shape: tuple `(height, width, channels)`. Defaults to `(64, 64, 3)`.
        sequence_length: int, tokens per text. Defaults to `100`.
        vocab_size: int, size of the token vocabulary. Defaults to `10000`.
        text_vectorizer: an adapted `keras.layers.TextVectorization` (see
            `mmkeras.preprocessing.text_vectorizer`): the model then takes raw strings, and
            `sequence_length` / `vocab_size` come from it. TensorFlow backend only.
        num_classes: int or None, the head's number of outputs. Defaults to `None`.
        hidden_units: sequence of ints, Dense(relu) layers between fusion and head.
            Defaults to `(64,)`.
        dropout: float, dropout after each hidden layer. Defaults to `0.0`.
        compile: bool, compile with the head's loss and metrics. Defaults to `True`.
        optimizer: str, optimizer name for `compile`. Defaults to `"adam"`.
        learning_rate: float, for `compile`. Defaults to `1e-3`.
        name: str, the model's name. Defaults to `"mmkeras_model"`.

    Returns:
        A (compiled) functional `keras.Model`.

    Example:

    >>> model = build_model(
    ...     image_encoder={"kind": "cnn", "filters": (16, 32), "output": "avg"},
    ...     text_encoder={"kind": "rnn", "units": 32},
    ...     fusion={"kind": "product", "units": 32},
    ...     head="multiclass", num_classes=13,
    ...     image_shape=(64, 64, 3), sequence_length=12, vocab_size=200)
    >>> model.output_names
    ['label']
    """
    image_shape = check_image_shape("image_shape", image_shape)
    hidden_units = check_int_tuple("hidden_units", hidden_units)
    dropout = check_fraction("dropout", dropout)
    if not isinstance(learning_rate, (int, float)) or learning_rate <= 0:
        raise ValueError(f"`learning_rate` must be a positive number. Received: learning_rate={learning_rate!r}")
    if text_vectorizer is not None:
        if not isinstance(text_vectorizer, keras.layers.TextVectorization):
            raise ValueError(
                "`text_vectorizer` must be a keras.layers.TextVectorization (see "
                f"mmkeras.preprocessing.text_vectorizer). Received: text_vectorizer={text_vectorizer!r}"
            )
        sequence_length = text_vectorizer.get_config()["output_sequence_length"]
        vocab_size = text_vectorizer.vocabulary_size()
    check_positive_int("sequence_length", sequence_length)
    check_positive_int("vocab_size", vocab_size)
    if image_encoder is None and text_encoder is None:
        raise ValueError("A model needs at least one of `image_encoder` and `text_encoder`. Received: both None")
    head = get_head(head, num_classes=num_classes)

    # Parts.
    inputs, features = {}, []
    if image_encoder is not None:
        image_model = build_image_encoder(image_encoder, image_shape)
        inputs["image"] = keras.Input(image_shape, name="image")
        features.append(image_model(inputs["image"]))
    if text_encoder is not None:
        text_model = build_text_encoder(text_encoder, sequence_length, vocab_size)
        if text_vectorizer is not None:
            inputs["text"] = keras.Input((), dtype="string", name="text")
            token_ids = text_vectorizer(inputs["text"])
        else:
            inputs["text"] = keras.Input((sequence_length,), dtype="int32", name="text")
            token_ids = inputs["text"]
        features.append(text_model(token_ids))

    # Wiring.
    if len(features) == 1:
        if fusion is not None:
            raise ValueError(
                f"`fusion` must be None for a single-modality model. Received: fusion={fusion!r}"
            )
        x = features[0]
    else:
        if fusion is None:
            raise ValueError("`fusion` must be set when the model has both an image and a text encoder. Received: fusion=None")
        if isinstance(fusion, keras.layers.Layer):
            fusion_layer = fusion
        else:
            kind, kwargs = _split_spec("fusion", fusion)
            fusion_layer = get_fusion(kind, **kwargs)
        x = fusion_layer(features)
    for i, units in enumerate(hidden_units, start=1):
        x = keras.layers.Dense(units, activation="relu", name=f"hidden_dense{i}")(x)
        if dropout:
            x = keras.layers.Dropout(dropout, name=f"hidden_dropout{i}")(x)
    outputs = head(x)
    model = keras.Model(inputs, outputs, name=name)

    if compile:
        model.compile(
            optimizer=keras.optimizers.get({"class_name": optimizer, "config": {"learning_rate": learning_rate}}),
            **head.compile_args(),
        )
    return model
