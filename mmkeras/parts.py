"""Parts of a model from names, `{"kind": name, **arguments}` dicts or ready objects.

`build_image_encoder`, `build_text_encoder` and `build_fusion` turn what a user or a recipe
wrote into the encoder models and the fusion layer a task wires together; `serialize_part` and
`deserialize_part` keep a part given as an object in a task's config.

The task passes its own input sizes to the encoders (`image_shape` to the image encoder,
`sequence_length` and `vocab_size` to the text encoder): a spec may leave them out, and one that
sets them to other values than the task's is refused, since the encoder would not fit the
model's inputs.

Example:

>>> encoder = build_text_encoder({"kind": "conv", "filters": 4}, sequence_length=8, vocab_size=50)
>>> encoder.input_shape, encoder.output_shape
((None, 8), (None, 12))
"""

import keras

from mmkeras.encoders.image import IMAGE_ENCODERS
from mmkeras.encoders.text import TEXT_ENCODERS
from mmkeras.fusion import FUSIONS, get_fusion
from mmkeras.validation import check_kwargs, check_one_of


def _split_spec(name, spec, table, objects="a keras.Model"):
    """`"cnn"` or `{"kind": "cnn", **kwargs}` -> ("cnn", kwargs)."""
    if isinstance(spec, str):
        return spec, {}
    if isinstance(spec, dict) and "kind" in spec:
        return spec["kind"], {k: v for k, v in spec.items() if k != "kind"}
    raise ValueError(
        f"`{name}` must be a registered name (one of {sorted(table)}), a dict with a 'kind' key, "
        f"{objects} or None. Received: {name}={spec!r}"
    )


def _same(a, b):
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return tuple(a) == tuple(b)
    return a == b


def _build_part(name, spec, table, **shared):
    kind, kwargs = _split_spec(name, spec, table)
    check_one_of(name, kind, table)
    check_kwargs(name, kind, [table[kind]], kwargs)
    for key, value in shared.items():
        if key in kwargs and not _same(kwargs[key], value):
            raise ValueError(
                f"`{name}` sets `{key}` to {kwargs[key]!r}, but the model's `{key}` is {value!r}: leave "
                f"`{key}` out of the spec (the task passes its own) or set the model's. "
                f"Received: {name}={spec!r}"
            )
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


def build_fusion(spec):
    """A fusion layer from a name, a spec dict or a ready layer."""
    if isinstance(spec, keras.layers.Layer):
        return spec
    kind, kwargs = _split_spec("fusion", spec, FUSIONS, objects="a fusion layer")
    return get_fusion(kind, **kwargs)


def serialize_part(part):
    """A part for a task's config: names and spec dicts as they are, objects serialized."""
    if isinstance(part, keras.layers.Layer):
        return keras.saving.serialize_keras_object(part)
    return part


def deserialize_part(part):
    """The inverse of `serialize_part` (a serialized Keras object has a `class_name`)."""
    if isinstance(part, dict) and "class_name" in part and "kind" not in part:
        return keras.saving.deserialize_keras_object(part)
    return part
