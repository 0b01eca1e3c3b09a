"""Missing modalities: answer with the image or the text absent, and learn to by modality dropout.

A `FusionClassifier` built with `missing_modalities=True` (or any `modality_dropout`) accepts
examples that lack a modality, and says so explicitly instead of feeding zeros it never saw:

- **absent, by convention**: an image whose values are all NaN (`missing_images(n, shape)`; in the
  served graph, empty image bytes) and a text with no token (an empty string, or token ids that
  are all 0, the padding id);
- **presence mask**: `ImagePresence` and `TextPresence` compute, inside the graph, a `(batch,)`
  mask per modality from those inputs (and turn the NaN image into zeros before the encoder,
  so no NaN reaches a weight or a gradient);
- **learned placeholder**: `MissingModalities` replaces an absent modality's features by a
  learned vector of the encoder's width (the model learns what "no image" means) and hands the
  mask `(batch, modalities)` on to the fusions that use it (`deep_set` averages the present
  modalities only);
- **modality dropout**: while training, `MissingModalities` marks each modality absent with its
  own probability, per example, never all of an example's present modalities at once (after
  Neverova et al. (2015), "ModDrop: adaptive multi-modal gesture recognition").

`modality_ablation(model, examples)` measures a model with both modalities, the
image only and the text only.

Example:

>>> import numpy as np, mmkeras
>>> model = mmkeras.get_model("fusion_product", image_shape=(32, 32, 3), sequence_length=12, vocab_size=64,
...                           modality_dropout=0.3)
>>> image = missing_images(2, (32, 32, 3))                       # no image
>>> text = np.array([[3, 5, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]] * 2)   # a question
>>> tuple(model({"image": image, "text": text}).shape)
(2, 1)
"""

import keras
import numpy as np
from keras import ops

from mmkeras.validation import check_fraction

MODALITIES = ("image", "text")


def missing_images(n, image_shape):
    """`n` absent images: float32 NaN arrays `(n, *image_shape)`, what a model with
    `missing_modalities=True` reads as "no image".

    Example:

    >>> missing_images(2, (4, 4, 1)).shape
    (2, 4, 4, 1)
    """
    return np.full((int(n), *image_shape), np.nan, "float32")


def absent_images(images):
    """A `(n,)` bool numpy mask: which images (floats `(n, h, w, c)`) are absent (all NaN)."""
    images = np.asarray(images)
    return np.isnan(images.reshape(len(images), -1)).all(axis=1) if images.size else np.zeros(len(images), bool)


def check_modality_dropout(modality_dropout, modalities):
    """`modality_dropout` (a float, or a dict per modality) -> `{modality: probability}`."""
    if isinstance(modality_dropout, dict):
        unknown = sorted(set(modality_dropout) - set(modalities))
        if unknown:
            raise ValueError(
                f"`modality_dropout` keys must be among the model's modalities {list(modalities)}. "
                f"Received: modality_dropout={modality_dropout!r}"
            )
        rates = {m: modality_dropout.get(m, 0.0) for m in modalities}
    else:
        rates = {m: modality_dropout for m in modalities}
    for m, rate in rates.items():
        check_fraction(f"modality_dropout[{m!r}]" if isinstance(modality_dropout, dict) else "modality_dropout", rate)
    return {m: float(r) for m, r in rates.items()}


@keras.saving.register_keras_serializable(package="mmkeras")
class ImagePresence(keras.layers.Layer):
    """Images with absent ones (all NaN) -> `(images with NaN as 0, presence (batch,))`.

    An image counts as present unless every one of its values is NaN.
    """

    def call(self, images):
        nan = ops.isnan(images)
        flat = ops.reshape(nan, (ops.shape(images)[0], -1))
        present = ops.logical_not(ops.all(flat, axis=1))
        cleaned = ops.where(nan, ops.zeros_like(images), images)
        return cleaned, ops.cast(present, "float32")

    def compute_output_spec(self, images):
        return (
            keras.KerasTensor(images.shape, images.dtype),
            keras.KerasTensor((images.shape[0],), "float32"),
        )


@keras.saving.register_keras_serializable(package="mmkeras")
class TextPresence(keras.layers.Layer):
    """Token ids `(batch, length)` -> presence `(batch,)`: 1 unless every id is 0 (the padding)."""

    def call(self, token_ids):
        return ops.cast(ops.any(ops.not_equal(token_ids, 0), axis=1), "float32")

    def compute_output_shape(self, input_shape):
        return (input_shape[0],)


@keras.saving.register_keras_serializable(package="mmkeras")
class MissingModalities(keras.layers.Layer):
    """Learned placeholders for absent modalities, and modality dropout while training.

    Called on `[features_1, ..., features_n]` (each `(batch, width_i)`) and `[presence_1, ...,
    presence_n]` (each `(batch,)`, 1 = present); returns the features with every absent
    modality's vector replaced by that modality's learned placeholder (initialised at zeros),
    and the presence mask `(batch, n)` after dropout.

    While training, each modality present in an example is dropped with its probability in
    `dropout`; where that would drop every present modality of an example, the example keeps
    them all (the share of fully kept examples is then slightly higher than the rates say).

    Args:
        dropout: sequence of floats in [0, 1), one per modality. Defaults to all 0.
        seed: int or None, the dropout's seed. Defaults to `None`.
    """

    def __init__(self, dropout=None, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.dropout = None if dropout is None else [float(check_fraction("dropout", d)) for d in dropout]
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def build(self, features_shape, presence_shape=None):
        widths = [int(shape[-1]) for shape in features_shape]
        if self.dropout is not None and len(self.dropout) != len(widths):
            raise ValueError(
                f"`dropout` must hold one rate per modality ({len(widths)}). Received: dropout={self.dropout}"
            )
        self.placeholders = [
            self.add_weight(shape=(width,), initializer="zeros", name=f"placeholder_{i}")
            for i, width in enumerate(widths)
        ]

    def call(self, features, presence, training=None):
        mask = ops.stack([ops.cast(p, "float32") for p in presence], axis=1)  # (batch, n)
        if training and self.dropout and any(self.dropout):
            rates = ops.convert_to_tensor(self.dropout, "float32")
            keep = ops.cast(keras.random.uniform(ops.shape(mask), seed=self.seed_generator) >= rates, "float32")
            dropped = mask * keep
            none_left = ops.expand_dims(ops.cast(ops.sum(dropped, axis=1) == 0, "float32"), 1)
            mask = none_left * mask + (1.0 - none_left) * dropped
        out = []
        for i, (x, placeholder) in enumerate(zip(features, self.placeholders)):
            present = ops.cast(mask[:, i : i + 1], x.dtype)
            out.append(present * x + (1 - present) * ops.cast(placeholder, x.dtype))
        return out, mask

    def compute_output_spec(self, features, presence, training=None):
        specs = [keras.KerasTensor(f.shape, f.dtype) for f in features]
        return specs, keras.KerasTensor((features[0].shape[0], len(features)), "float32")

    def get_config(self):
        return {**super().get_config(), "dropout": self.dropout, "seed": self.seed}


def modality_ablation(model, examples, *, batch_size=256):
    """Accuracy with both modalities, the image only and the text only.

    The absent modality is marked absent as a served model receives it (a NaN image, an empty
    text); a model built without `missing_modalities` gets what users otherwise feed (a black
    image, an empty text), so the two compare. Examples are read batch by batch (no copy of the
    dataset).

    Args:
        model: a task with an `"image"` and a `"text"` input (token ids or raw strings) and one
            binary or multiclass head.
        examples: `mmkeras.data.Examples` with images, texts (raw strings or token ids) and
            class labels.
        batch_size: int. Defaults to `256`.

    Returns:
        `{"both": accuracy, "image_only": accuracy, "text_only": accuracy}`.

    Example:

    >>> import mmkeras
    >>> from mmkeras.data import Examples
    >>> model = mmkeras.get_model("fusion_product", image_shape=(32, 32, 3), sequence_length=4, vocab_size=9,
    ...                           modality_dropout=0.2)
    >>> examples = Examples(np.zeros((4, 32, 32, 3), "uint8"), np.ones((4, 4), "int32"), labels=[0, 1, 0, 1])
    >>> sorted(modality_ablation(model, examples))
    ['both', 'image_only', 'text_only']
    """
    head = getattr(model, "head", None)
    if sorted(model.input_kinds) != ["image", "text"] or getattr(head, "kind", None) not in ("binary", "multiclass"):
        raise ValueError(
            "`model` must take an image and a text and end in one binary or multiclass head. Received: a "
            f"model with inputs {model.input_kinds} and head {head!r}"
        )
    if examples.labels is None:
        raise ValueError("`examples` must have labels to measure accuracy. Received: examples without labels")
    texts = examples.texts if examples.token_ids is None else examples.token_ids
    correct = {"both": 0, "image_only": 0, "text_only": 0}
    for start in range(0, len(examples), batch_size):
        rows = np.arange(start, min(start + batch_size, len(examples)))
        x = model.prepare_inputs(image=examples.example_images(rows), text=texts[rows])
        labels = np.asarray(examples.labels[rows]).reshape(len(rows), -1)[:, 0]
        for case, inputs in (
            ("both", x),
            ("image_only", {**x, "text": np.zeros_like(x["text"]) if x["text"].dtype.kind in "iu" else np.full(len(rows), "", object)}),
            ("text_only", {**x, "image": missing_images(len(rows), x["image"].shape[1:]) if model.missing_modalities else np.zeros_like(x["image"])}),
        ):
            out = np.asarray(keras.ops.convert_to_numpy(model(inputs, training=False)), "float32")
            if out.shape[1] == 1:
                predicted = out[:, 0] > (0.0 if getattr(head, "from_logits", False) else 0.5)
            else:
                predicted = out.argmax(axis=1)
            correct[case] += int((predicted.astype(int) == labels).sum())
    return {case: count / len(examples) for case, count in correct.items()}
