"""`FusionClassifier`: image encoder + text encoder -> fusion -> dense layers -> head.

The family of today's zoo: every recipe of `mmkeras.models` (the documents' S0 to S4, one recipe
per fusion method, `vqa`) is a `FusionClassifier` with other arguments.
"""

import keras

from mmkeras.heads import get_head
from mmkeras.missing import ImagePresence, MissingModalities, TextPresence, check_modality_dropout
from mmkeras.parts import build_fusion, build_image_encoder, build_text_encoder, deserialize_part, serialize_part
from mmkeras.tasks.head_task import HeadTask
from mmkeras.tasks.task import resolve_text_input
from mmkeras.validation import (
    check_fraction,
    check_image_shape,
    check_int_tuple,
    received,
)

PARTS = ("image_encoder", "text_encoder", "fusion")


@keras.saving.register_keras_serializable(package="mmkeras")
class FusionClassifier(HeadTask):
    """A multimodal model: encoders -> fusion -> dense layers -> head, that knows what it is.

    Inputs are a dict: `"image"` `(batch, *image_shape)` floats in [0, 1] and `"text"` token ids
    `(batch, sequence_length)` (or raw strings `(batch,)` with `raw_text=True`). The output
    carries the head's name (a dict of named outputs for a multi-task head). The model carries
    its preprocessor (`model.preprocessor`), compiles with its head's defaults (`compile()`),
    answers raw inputs (`answer`) and exports (`mmkeras.export_model`).

    Every registered recipe is a set of these arguments: the overrides of
    `mmkeras.get_model(name, **overrides)` and the `model_overrides` of `mmkeras.train` are
    arguments of this constructor, put on top of the recipe's (a dict given for a part without a
    `"kind"` changes only the arguments it names: `image_encoder={"filters": (16, 32)}`).

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
        raw_text: bool, take raw strings and tokenize inside the graph with the preprocessor's
            vocabulary (TensorFlow backend). Defaults to `False` (token ids; tokenizing then runs
            in the `tf.data` pipeline).
        text_vectorizer: an adapted `keras.layers.TextVectorization` (see
            `mmkeras.preprocessing.text_vectorizer`): shorthand for `raw_text=True` with a
            preprocessor made from it; `sequence_length` and `vocab_size` come from it.
        num_classes: int or None, the head's number of outputs. Defaults to `None`.
        hidden_units: sequence of ints, Dense(relu) layers between fusion and head.
            Defaults to `(64,)`.
        dropout: float, dropout after each hidden layer. Defaults to `0.0`.
        optimizer: str, the name of the optimizer `compile()` uses (case-insensitive).
            Defaults to `"adam"`.
        learning_rate: float, for `compile()`. Defaults to `1e-3`.
        preprocessor: a `mmkeras.preprocessing.Preprocessor` (vocabulary, class names), or None
            for one that knows only the input shapes. Defaults to `None`.
        missing_modalities: bool, accept examples with the image or the text absent (an image of
            NaN, an empty text; see `mmkeras.missing`): a presence mask per modality and a
            learned placeholder for an absent one. Defaults to `None`: True when
            `modality_dropout` is set, else False.
        modality_dropout: float in [0, 1), or a dict `{"image": p, "text": q}`: while training,
            drop each modality of an example with this probability (never all of them), so the
            model learns to answer from either one. Defaults to `0.0`.
        name: str, the model's name. Defaults to `"mmkeras_model"`.

    Example:

    >>> model = FusionClassifier(
    ...     image_encoder={"kind": "cnn", "filters": (16, 32), "output": "avg"},
    ...     text_encoder={"kind": "rnn", "units": 32},
    ...     fusion={"kind": "product", "units": 32},
    ...     head="multiclass", num_classes=13,
    ...     image_shape=(64, 64, 3), sequence_length=12, vocab_size=200)
    >>> model.compile()  # the head's loss and metrics, adam 1e-3
    >>> model.output_names, model.head.kind
    (['label'], 'multiclass')
    """

    def __init__(
        self,
        image_encoder="cnn",
        text_encoder="rnn",
        fusion="concatenate",
        head="binary",
        *,
        image_shape=(64, 64, 3),
        sequence_length=100,
        vocab_size=10000,
        raw_text=False,
        text_vectorizer=None,
        num_classes=None,
        hidden_units=(64,),
        dropout=0.0,
        optimizer="adam",
        learning_rate=1e-3,
        preprocessor=None,
        missing_modalities=None,
        modality_dropout=0.0,
        name="mmkeras_model",
        **kwargs,
    ):
        # === Arguments ===
        image_shape = check_image_shape("image_shape", image_shape)
        hidden_units = check_int_tuple("hidden_units", hidden_units)
        dropout = check_fraction("dropout", dropout)
        preprocessor, raw_text, sequence_length, vocab_size = resolve_text_input(
            preprocessor, text_vectorizer, raw_text, image_shape if image_encoder is not None else None,
            sequence_length, vocab_size,
        )
        if image_encoder is None and text_encoder is None:
            raise ValueError("A model needs at least one of `image_encoder` and `text_encoder`. Received: both None")
        head = get_head(deserialize_part(head), num_classes=num_classes)

        # === Layers ===
        image_encoder, text_encoder, fusion = (deserialize_part(p) for p in (image_encoder, text_encoder, fusion))
        image_model = None if image_encoder is None else build_image_encoder(image_encoder, image_shape)
        text_model = None if text_encoder is None else build_text_encoder(text_encoder, sequence_length, vocab_size)
        if (image_model is None or text_model is None) and fusion is not None:
            raise ValueError(f"`fusion` must be None for a single-modality model. Received: fusion={fusion!r}")
        if image_model is not None and text_model is not None and fusion is None:
            raise ValueError(
                "`fusion` must be set when the model has both an image and a text encoder. Received: fusion=None"
            )
        fusion_layer = None if fusion is None else build_fusion(fusion)
        missing_modalities, dropout_rates = _check_missing(
            missing_modalities, modality_dropout, [m for m, enc in (("image", image_model), ("text", text_model)) if enc]
        )

        # === Functional model ===
        inputs, features, input_kinds, presence = {}, [], {}, []
        if image_model is not None:
            inputs["image"] = keras.Input(image_shape, name="image")
            input_kinds["image"] = "image"
            image = inputs["image"]
            if missing_modalities:
                image, image_present = ImagePresence(name="image_presence")(image)
                presence.append(image_present)
            features.append(image_model(image))
        if text_model is not None:
            if raw_text:
                inputs["text"] = keras.Input((), dtype="string", name="text")
                token_ids = preprocessor.vectorizer(inputs["text"])
            else:
                inputs["text"] = keras.Input((sequence_length,), dtype="int32", name="text")
                token_ids = inputs["text"]
            input_kinds["text"] = "text" if raw_text else "token_ids"
            if missing_modalities:
                presence.append(TextPresence(name="text_presence")(token_ids))
            features.append(text_model(token_ids))
        mask = None
        if missing_modalities:
            features, mask = MissingModalities(list(dropout_rates.values()), name="missing_modalities")(features, presence)
        if fusion_layer is None:
            x = features[0]
        elif mask is not None and getattr(fusion_layer, "uses_presence", False):
            x = fusion_layer(features, presence=mask)
        else:
            x = fusion_layer(features)
        for i, units in enumerate(hidden_units, start=1):
            x = keras.layers.Dense(units, activation="relu", name=f"hidden_dense{i}")(x)
            if dropout:
                x = keras.layers.Dropout(dropout, name=f"hidden_dropout{i}")(x)
        outputs = head(x)
        super().__init__(
            inputs,
            outputs,
            head=head,
            input_kinds=input_kinds,
            optimizer=optimizer,
            learning_rate=learning_rate,
            preprocessor=preprocessor,
            name=name,
            **kwargs,
        )

        # === Config ===
        self._parts = {
            "image_encoder": serialize_part(image_encoder),
            "text_encoder": serialize_part(text_encoder),
            "fusion": serialize_part(fusion),
        }
        self._shape_config = {
            "image_shape": list(image_shape),
            "sequence_length": sequence_length,
            "vocab_size": vocab_size,
            "raw_text": raw_text,
            "hidden_units": list(hidden_units),
            "dropout": dropout,
            "missing_modalities": missing_modalities,
            "modality_dropout": modality_dropout if isinstance(modality_dropout, dict) else float(modality_dropout),
        }

    @property
    def missing_modalities(self):
        """True when the model answers with a modality absent (see `mmkeras.missing`)."""
        config = getattr(self, "_shape_config", None)  # None while the constructor runs
        return bool(config and config["missing_modalities"])

    def token_vocab_size(self, name="text"):
        """The `vocab_size` the model was built with (token ids lie in [0, vocab_size))."""
        if self.input_kinds.get(name) != "token_ids":
            return None
        config = getattr(self, "_shape_config", None)  # None while the constructor runs
        return config["vocab_size"] if config else super().token_vocab_size(name)

    def check_preprocessor(self, preprocessor):
        super().check_preprocessor(preprocessor)
        own = self.preprocessor  # None while the constructor runs
        if own is None or self.input_kinds.get("text") != "text":
            return
        if any(getattr(preprocessor, key) != getattr(own, key) for key in ("vocabulary", "sequence_length", "standardize")):
            raise ValueError(
                "`preprocessor` of a model that tokenizes inside its graph (raw_text=True) must keep the "
                "model's vocabulary, sequence length and standardization: the graph is rebuilt from them "
                "when the model is loaded (a new preprocessor may change e.g. the class names). "
                f"{received('preprocessor', preprocessor)}"
            )

    def get_config(self):
        return {**super().get_config(), **self._parts, **self._shape_config}


def _check_missing(missing_modalities, modality_dropout, modalities):
    """The checked `missing_modalities` flag and `{modality: dropout rate}`."""
    if missing_modalities is not None and not isinstance(missing_modalities, bool):
        raise ValueError(f"`missing_modalities` must be True, False or None. {received('missing_modalities', missing_modalities)}")
    rates = check_modality_dropout(modality_dropout, modalities)
    dropping = any(rates.values())
    if missing_modalities is False and dropping:
        raise ValueError(
            "`modality_dropout` trains a model to answer with a modality absent, which needs "
            f"missing_modalities=True (or None). Received: missing_modalities=False, modality_dropout={modality_dropout!r}"
        )
    missing_modalities = dropping if missing_modalities is None else missing_modalities
    if missing_modalities and len(modalities) < 2:
        raise ValueError(
            "`missing_modalities` needs a model with both an image and a text encoder (a single-modality "
            f"model has nothing to answer from when its one input is absent). Received: modalities {modalities}"
        )
    return missing_modalities, rates
