"""`Captioner`: an image in, a caption out (the documents' image captioning).

An image encoder that returns a **sequence** (the last feature map's `h * w` vectors: `cnn`,
`residual` or `applications` with `output="sequence"`) feeds a decoder that predicts the caption
one token at a time:

- `decoder="lstm"`: Show and Tell (Vinyals et al. 2015): the mean image vector sets the LSTM's
  initial state, and the LSTM reads the caption's previous tokens;
- `decoder="transformer"`: Transformer decoder blocks (Vaswani et al. 2017): causal
  self-attention over the previous tokens, cross-attention over the image's vectors, a
  feed-forward network.

Training is teacher forcing: the model reads `[start] w1 ... wn` and is scored on `w1 ... wn
[end]`, with the padding masked out of the loss and of the token accuracy (the task computes its
own loss, as the dual encoder does). Captions are the dataset's texts, tokenized by the
preprocessor as any text is; `[start]` and `[end]` are two ids past the vocabulary
(`vocab_size` and `vocab_size + 1`), so no text can produce them.

Decoding (`generate`, `answer`, the exported `serving_default`) is one compiled TensorFlow graph:
a `tf.while_loop` over positions, greedy (`beam_width=1`) or beam search, which stops when every
beam has ended. The exported model takes encoded image bytes and returns caption strings and
their log-probabilities. Decoding and export need the TensorFlow backend.
"""

import math
import re

import keras
import numpy as np
from keras import ops

from mmkeras.encoders.image import PositionEmbedding
from mmkeras.parts import build_image_encoder, deserialize_part, serialize_part
from mmkeras.tasks import serving
from mmkeras.tasks.head_task import OPTIMIZERS
from mmkeras.tasks.task import OwnLossTask
from mmkeras.validation import check_fraction, check_image_shape, check_one_of, check_positive_int, received

DECODERS = ("lstm", "transformer")
OUTPUT = "caption"
START_TOKEN, END_TOKEN = "[start]", "[end]"
# TextVectorization's "lower_and_strip_punctuation", applied to reference captions for BLEU.
_PUNCTUATION = re.compile(r'[!"#$%&()\*\+,-\./:;<=>?@\[\\\]^_`{|}~\']')


def standardize_caption(text):
    """A caption as the preprocessor reads it: lower-cased, punctuation stripped, single spaces.

    Example:

    >>> standardize_caption("A Red  circle, on the left.")
    'a red circle on the left'
    """
    return " ".join(_PUNCTUATION.sub("", str(text).lower()).split())


@keras.saving.register_keras_serializable(package="mmkeras")
class ShiftRight(keras.layers.Layer):
    """Token ids `(batch, length)` -> `(batch, length + 1)` beginning with `start_id` (teacher forcing).

    Example:

    >>> ShiftRight(start_id=9)(np.array([[4, 5, 0]])).numpy().tolist()
    [[9, 4, 5, 0]]
    """

    def __init__(self, start_id, **kwargs):
        super().__init__(**kwargs)
        self.start_id = int(start_id)

    def call(self, ids):
        ids = ops.cast(ids, "int32")
        start = ops.full((ops.shape(ids)[0], 1), self.start_id, dtype="int32")
        return ops.concatenate([start, ids], axis=1)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], None if input_shape[1] is None else input_shape[1] + 1)

    def get_config(self):
        return {**super().get_config(), "start_id": self.start_id}


def caption_targets(ids, end_id):
    """Token ids `(batch, length)` (0-padded) -> targets `(batch, length + 1)`: the ids, then `end_id`.

    Example:

    >>> caption_targets(np.array([[4, 5, 0], [6, 7, 8]]), end_id=10).numpy().tolist()
    [[4, 5, 10, 0], [6, 7, 8, 10]]
    """
    ids = ops.cast(ids, "int32")
    lengths = ops.sum(ops.cast(ids != 0, "int32"), axis=1)
    end = ops.one_hot(lengths, ops.shape(ids)[1] + 1, dtype="int32") * end_id
    return ops.pad(ids, [[0, 0], [0, 1]]) + end


@keras.saving.register_keras_serializable(package="mmkeras")
class TransformerDecoderBlock(keras.layers.Layer):
    """A pre-norm Transformer decoder block: causal self-attention, cross-attention, feed-forward.

    `x + SelfAttention(LN(x))` (each position sees itself and the positions before it), then
    `x + CrossAttention(LN(x), context)`, then `x + W_2 gelu(W_1 LN(x))`, each branch followed by
    dropout (Vaswani et al. 2017, with the normalisation before each branch).

    Args:
        num_heads: int, attention heads; they must divide the input width.
        intermediate_dim: int, the feed-forward width.
        dropout: float, dropout on each branch's output. Defaults to `0.0`.
        **kwargs: forwarded to `keras.layers.Layer`.

    Call arguments:
        inputs: the token states `(batch, length, width)`.
        context: the image's vectors `(batch, positions, width)`.

    Example:

    >>> block = TransformerDecoderBlock(num_heads=2, intermediate_dim=16)
    >>> tuple(block(np.ones((2, 5, 8), "float32"), np.ones((2, 3, 8), "float32")).shape)
    (2, 5, 8)
    """

    def __init__(self, num_heads, intermediate_dim, dropout=0.0, **kwargs):
        super().__init__(**kwargs)
        self.num_heads = check_positive_int("num_heads", num_heads)
        self.intermediate_dim = check_positive_int("intermediate_dim", intermediate_dim)
        self.dropout = check_fraction("dropout", dropout)

    def build(self, inputs_shape, context_shape):
        input_shape = inputs_shape
        width = input_shape[-1]
        if width % self.num_heads:
            raise ValueError(
                f"`num_heads` must divide the decoder's width ({width}). {received('num_heads', self.num_heads)}"
            )
        sub = {"dtype": self.dtype_policy}
        self.self_norm = keras.layers.LayerNormalization(epsilon=1e-6, name="self_norm", **sub)
        self.self_attention = keras.layers.MultiHeadAttention(self.num_heads, width // self.num_heads, name="self_attention", **sub)
        self.cross_norm = keras.layers.LayerNormalization(epsilon=1e-6, name="cross_norm", **sub)
        self.cross_attention = keras.layers.MultiHeadAttention(self.num_heads, width // self.num_heads, name="cross_attention", **sub)
        self.ffn_norm = keras.layers.LayerNormalization(epsilon=1e-6, name="ffn_norm", **sub)
        self.ffn_in = keras.layers.Dense(self.intermediate_dim, activation="gelu", name="ffn_in", **sub)
        self.ffn_out = keras.layers.Dense(width, name="ffn_out", **sub)
        self.branch_dropout = keras.layers.Dropout(self.dropout, name="dropout", **sub)
        for norm in (self.self_norm, self.cross_norm, self.ffn_norm):
            norm.build(input_shape)
        self.self_attention.build(input_shape, input_shape)
        self.cross_attention.build(input_shape, context_shape)
        self.ffn_in.build(input_shape)
        self.ffn_out.build((*input_shape[:-1], self.intermediate_dim))

    def call(self, inputs, context, training=None):
        y = self.self_norm(inputs)
        x = inputs + self.branch_dropout(self.self_attention(y, y, use_causal_mask=True, training=training), training=training)
        y = self.cross_attention(self.cross_norm(x), context, training=training)
        x = x + self.branch_dropout(y, training=training)
        y = self.ffn_out(self.ffn_in(self.ffn_norm(x)))
        return x + self.branch_dropout(y, training=training)

    def compute_output_shape(self, inputs_shape, context_shape=None):
        return inputs_shape

    def get_config(self):
        return {**super().get_config(), "num_heads": self.num_heads, "intermediate_dim": self.intermediate_dim,
                "dropout": self.dropout}


def _decoder(kind, context_shape, length, classes, units, num_layers, num_heads, dropout):
    """The decoder alone, `{"context": (positions, units), "tokens": (length,)}` -> its states
    `(length, units)` (the task's `caption` layer maps them to logits); training and decoding call
    the same layers."""
    context = keras.Input(context_shape, name="context")
    tokens = keras.Input((length,), dtype="int32", name="tokens")
    x = keras.layers.Embedding(classes, units, name="token_embedding")(tokens)
    if kind == "lstm":
        image = keras.layers.GlobalAveragePooling1D(name="image_mean")(context)
        state_h = keras.layers.Dense(units, activation="tanh", name="initial_h")(image)
        state_c = keras.layers.Dense(units, name="initial_c")(image)
        x = keras.layers.LSTM(units, return_sequences=True, name="lstm")(x, initial_state=[state_h, state_c])
        if dropout:
            x = keras.layers.Dropout(dropout, name="lstm_dropout")(x)
    else:
        x = PositionEmbedding(name="token_positions")(x)
        for i in range(1, num_layers + 1):
            x = TransformerDecoderBlock(num_heads, 4 * units, dropout, name=f"decoder_block{i}")(x, context)
        x = keras.layers.LayerNormalization(epsilon=1e-6, name="decoder_norm")(x)
    return keras.Model({"context": context, "tokens": tokens}, x, name="decoder")


@keras.saving.register_keras_serializable(package="mmkeras")
class Captioner(OwnLossTask):
    """Image captioning: an image encoder's sequence of vectors, read by an LSTM or a Transformer decoder.

    Args:
        image_encoder: a registered image encoder spec returning a sequence, e.g.
            `{"kind": "cnn", "output": "sequence"}` (a pooled encoder is read as a sequence of
            one vector). Defaults to a `cnn` 32/64/128 with `output="sequence"`.
        decoder: `"lstm"` (Show and Tell) or `"transformer"`. Defaults to `"transformer"`.
        units: int, the decoder's width (the image vectors are projected to it). Defaults to `128`.
        num_layers: int, Transformer decoder blocks (unused by the LSTM). Defaults to `2`.
        num_heads: int, attention heads (they must divide `units`). Defaults to `4`.
        dropout: float, dropout in the decoder. Defaults to `0.1`.
        image_shape: `(height, width, channels)`. Defaults to `(64, 64, 3)`.
        sequence_length: int, the most caption tokens (the caption input's length; decoding
            produces at most this many words, then `[end]`). Defaults to `16`.
        vocab_size: int, the caption vocabulary (padding and `[UNK]` included); the decoder
            predicts `vocab_size + 2` classes (with `[start]` and `[end]`). Defaults to `1000`.
        beam_width: int, the beam of `generate`/`answer`/the export when none is given
            (1 = greedy). Defaults to `3`.
        label_smoothing: float in [0, 1), of the token loss. Defaults to `0.0`.
        optimizer: str, the optimizer of `compile()`. Defaults to `"adam"`.
        learning_rate: float. Defaults to `1e-3`.
        preprocessor: a `Preprocessor` holding the caption vocabulary (captions decode to words
            through it; without one they decode to `token<id>`). Defaults to `None`.
        name: str. Defaults to `"captioner"`.

    Inputs: `{"image": (batch, *image_shape) floats in [0, 1], "text": (batch, sequence_length)
    caption token ids}`; output `{"caption": (batch, sequence_length + 1, vocab_size + 2)}`, the
    next-token logits under teacher forcing.

    Example:

    >>> model = Captioner(image_encoder={"kind": "cnn", "filters": (8,), "output": "sequence"},
    ...                   units=16, num_layers=1, num_heads=2, image_shape=(8, 8, 3),
    ...                   sequence_length=4, vocab_size=12)
    >>> model.compile()
    >>> batch = {"image": np.random.rand(2, 8, 8, 3).astype("float32"),
    ...          "text": np.array([[3, 4, 5, 0], [6, 7, 0, 0]], "int32")}
    >>> history = model.fit(batch, epochs=1, verbose=0)
    >>> model.predict(batch, verbose=0)["caption"].shape
    (2, 5, 14)
    >>> sorted(model.generate(batch["image"], beam_width=2)[0])
    ['caption', 'score']
    """

    trains_on = ("captioning",)
    own_loss = "masked next-token cross-entropy"

    def __init__(
        self,
        image_encoder=None,
        decoder="transformer",
        *,
        units=128,
        num_layers=2,
        num_heads=4,
        dropout=0.1,
        image_shape=(64, 64, 3),
        sequence_length=16,
        vocab_size=1000,
        beam_width=3,
        label_smoothing=0.0,
        optimizer="adam",
        learning_rate=1e-3,
        preprocessor=None,
        name="captioner",
        **kwargs,
    ):
        # === Arguments ===
        if image_encoder is None:
            image_encoder = {"kind": "cnn", "filters": (32, 64, 128), "padding": "same", "output": "sequence"}
        check_one_of("decoder", decoder, DECODERS)
        image_shape = check_image_shape("image_shape", image_shape)
        for arg, value in (("units", units), ("num_layers", num_layers), ("num_heads", num_heads),
                           ("sequence_length", sequence_length), ("vocab_size", vocab_size), ("beam_width", beam_width)):
            check_positive_int(arg, value)
        check_fraction("dropout", dropout)
        if isinstance(label_smoothing, bool) or not isinstance(label_smoothing, (int, float)) or not 0 <= label_smoothing < 1:
            raise ValueError(f"`label_smoothing` must be a number in [0, 1). {received('label_smoothing', label_smoothing)}")
        if decoder == "transformer" and units % num_heads:
            raise ValueError(f"`num_heads` must divide `units` ({units}). {received('num_heads', num_heads)}")
        if not isinstance(optimizer, str) or optimizer.lower() not in OPTIMIZERS:
            check_one_of("optimizer", optimizer, OPTIMIZERS)
        if isinstance(learning_rate, bool) or not isinstance(learning_rate, (int, float)) or not 0 < learning_rate < math.inf:
            raise ValueError(f"`learning_rate` must be a positive number. {received('learning_rate', learning_rate)}")
        if preprocessor is not None and preprocessor.vocabulary is not None:
            if preprocessor.vocab_size > vocab_size:
                raise ValueError(
                    f"`vocab_size` must cover the preprocessor's vocabulary ({preprocessor.vocab_size} tokens). "
                    f"Received: vocab_size={vocab_size}"
                )
        classes = vocab_size + 2

        # === Layers ===
        image_encoder = deserialize_part(image_encoder)
        image_model = build_image_encoder(image_encoder, image_shape)
        if len(image_model.output_shape) not in (2, 3):
            raise ValueError(
                "`image_encoder` of a captioner must give a sequence of vectors (e.g. output='sequence') or "
                f"one vector. Received: an encoder with output shape {image_model.output_shape}"
            )
        image_input = keras.Input(image_shape, name="image")
        text_input = keras.Input((sequence_length,), dtype="int32", name="text")
        features = image_model(image_input)
        if len(image_model.output_shape) == 2:  # one vector: a sequence of one
            features = keras.layers.Reshape((1, image_model.output_shape[-1]), name="image_as_sequence")(features)
        context = keras.layers.Dense(units, name="image_projection")(features)
        if decoder == "transformer":
            context = PositionEmbedding(name="image_positions")(context)
        decoder_model = _decoder(decoder, tuple(context.shape[1:]), sequence_length + 1, classes, units,
                                 num_layers, num_heads, dropout)
        tokens = ShiftRight(vocab_size, name="shift_right")(text_input)
        next_token = keras.layers.Dense(classes, dtype="float32", name=OUTPUT)  # logits stay float32
        logits = next_token(decoder_model({"context": context, "tokens": tokens}))
        self.token_accuracy_tracker = keras.metrics.Mean(name="token_accuracy")
        super().__init__(
            {"image": image_input, "text": text_input},
            {OUTPUT: logits},
            input_kinds={"image": "image", "text": "token_ids"},
            preprocessor=preprocessor,
            name=name,
            **kwargs,
        )
        # The image side and the decoder alone (the same layers), for decoding; not tracked twice.
        object.__setattr__(self, "_parts", {
            "context": keras.Model(image_input, context, name="image_context"),
            "decoder": decoder_model,
            "next_token": next_token,
        })
        object.__setattr__(self, "_generators", {})

        # === Config ===
        self._config = {
            "image_encoder": serialize_part(image_encoder),
            "decoder": decoder,
            "units": units,
            "num_layers": num_layers,
            "num_heads": num_heads,
            "dropout": float(dropout),
            "image_shape": list(image_shape),
            "sequence_length": sequence_length,
            "vocab_size": vocab_size,
            "beam_width": beam_width,
            "label_smoothing": float(label_smoothing),
            "optimizer": optimizer,
            "learning_rate": float(learning_rate),
        }

    @property
    def start_id(self):
        """The id of `[start]` (`vocab_size`): the first token the decoder reads."""
        return self._config["vocab_size"]

    @property
    def end_id(self):
        """The id of `[end]` (`vocab_size + 1`): the last token of every caption."""
        return self._config["vocab_size"] + 1

    # Training.

    def _targets_and_mask(self, x):
        targets = caption_targets(x["text"], self.end_id)
        return targets, ops.cast(targets != 0, "float32")

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        """The next-token cross-entropy over the caption's tokens and `[end]` (padding masked out),
        averaged over the replica's tokens and divided by the number of replicas (Keras' convention);
        `y` and `sample_weight` are unused."""
        from mmkeras.tasks.dual_encoder import _replicas

        targets, mask = self._targets_and_mask(x)
        logits = y_pred[OUTPUT] if isinstance(y_pred, dict) else y_pred
        classes = self._config["vocab_size"] + 2
        smoothing = self._config["label_smoothing"]
        if smoothing:
            labels = ops.one_hot(targets, classes) * (1 - smoothing) + smoothing / classes
            losses = keras.losses.categorical_crossentropy(labels, logits, from_logits=True)
        else:
            losses = keras.losses.sparse_categorical_crossentropy(targets, logits, from_logits=True)
        loss = ops.sum(losses * mask) / (ops.maximum(ops.sum(mask), 1.0) * float(_replicas()))
        for extra in self.losses:
            loss = loss + ops.cast(ops.sum(extra), loss.dtype)
        return loss

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        """The loss and the masked token accuracy (the share of caption tokens predicted right)."""
        targets, mask = self._targets_and_mask(x)
        logits = y_pred[OUTPUT] if isinstance(y_pred, dict) else y_pred
        correct = ops.cast(ops.argmax(logits, axis=-1) == targets, "float32")
        self.token_accuracy_tracker.update_state(correct, sample_weight=mask)
        return self.get_metrics_result()

    def check_labels(self, labels):
        """A captioner has no labels: its targets are the captions (`text`)."""
        if labels is not None:
            raise ValueError(
                "A captioner trains on images and their captions (the `text` input); it takes no labels. "
                f"Received: labels of length {len(labels)}"
            )
        return None

    # Decoding.

    def _words(self):
        """The word of every id: the vocabulary (padded to `vocab_size`), then `[start]`, `[end]`."""
        size = self._config["vocab_size"]
        vocabulary = list(self.preprocessor.vocabulary or [])[:size]
        vocabulary += [f"token{i}" for i in range(len(vocabulary), size)]
        return vocabulary + [START_TOKEN, END_TOKEN]

    def decode_graph(self, images, beam_width):
        """The decoding loop as TensorFlow ops: images `(batch, *image_shape)` -> `(token ids
        (batch, sequence_length + 1), log-probabilities (batch,))` of the best beam.

        Beam search keeps `beam_width` partial captions per image; at each position every beam
        is extended by every token, and the `beam_width` best totals (sums of log-probabilities)
        are kept. A beam that has produced `[end]` is finished and keeps its total. Padding and
        `[start]` are never produced, and the last position can only be `[end]`. `beam_width=1`
        is greedy decoding. A caption's score is its log-probability under the model (the sum of
        its tokens' log-softmax, `[end]` included). The loop stops when every beam has finished.
        """
        import tensorflow as tf

        length = self._config["sequence_length"] + 1
        classes = self._config["vocab_size"] + 2
        beams = int(beam_width)
        context = tf.cast(self._parts["context"](images, training=False), tf.float32)
        batch = tf.shape(context)[0]
        context = tf.repeat(context, beams, axis=0)  # (batch * beams, positions, units)
        context = tf.cast(context, self._parts["decoder"].input["context"].dtype)
        negative = tf.constant(-1e9, tf.float32)
        never = tf.one_hot([0, self.start_id], classes, on_value=negative, off_value=0.0)
        never = tf.reduce_sum(never, axis=0)  # padding and [start] are never produced
        only_end = tf.where(tf.range(classes) == self.end_id, 0.0, negative)  # at the last position
        only_padding = tf.where(tf.range(classes) == 0, 0.0, negative)  # a finished beam stays put

        def step(t, tokens, scores, finished):
            flat = tf.reshape(tokens, [batch * beams, length])
            inputs = tf.concat([tf.fill([batch * beams, 1], self.start_id), flat[:, : length - 1]], axis=1)
            states = self._parts["decoder"]({"context": context, "tokens": inputs}, training=False)
            log_probs = tf.nn.log_softmax(tf.cast(self._parts["next_token"](states[:, t, :]), tf.float32))
            log_probs = tf.reshape(log_probs, [batch, beams, classes])
            log_probs = log_probs + tf.where(t == length - 1, only_end, never)
            log_probs = tf.where(finished[..., None], only_padding, log_probs)
            totals = tf.reshape(scores[..., None] + log_probs, [batch, beams * classes])
            scores, best = tf.math.top_k(totals, k=beams)
            origin, token = best // classes, tf.cast(best % classes, tf.int32)
            tokens = tf.gather(tokens, origin, batch_dims=1)
            tokens = tokens + tf.one_hot(t, length, dtype=tf.int32)[None, None, :] * token[..., None]
            finished = tf.gather(finished, origin, batch_dims=1) | (token == self.end_id)
            return t + 1, tokens, scores, finished

        first = tf.concat([tf.zeros([1]), tf.fill([beams - 1], negative)], axis=0)  # one live beam at first
        _, tokens, scores, _ = tf.while_loop(
            lambda t, tokens, scores, finished: (t < length) & ~tf.reduce_all(finished),
            step,
            (tf.constant(0), tf.zeros([batch, beams, length], tf.int32), tf.tile(first[None], [batch, 1]),
             tf.zeros([batch, beams], tf.bool)),
        )
        return tokens[:, 0], scores[:, 0]  # top_k sorts: beam 0 is the best

    def captions_graph(self, tokens):
        """Token ids -> caption strings (TensorFlow ops): the words before `[end]`, space-separated."""
        import tensorflow as tf

        words = tf.gather(tf.constant(self._words()), tokens)
        keep = (tokens != 0) & (tokens < self.start_id)
        return tf.strings.reduce_join(tf.ragged.boolean_mask(words, keep), axis=-1, separator=" ")

    def _generator(self, beam_width):
        """The compiled decoding function of `beam_width` (built once per width)."""
        import tensorflow as tf

        if beam_width not in self._generators:
            shape = (None, *self._config["image_shape"])

            @tf.function(input_signature=[tf.TensorSpec(shape, tf.float32)], reduce_retracing=True)
            def generate(images):
                tokens, scores = self.decode_graph(tf.cast(images, self.input["image"].dtype), beam_width)
                return self.captions_graph(tokens), scores

            self._generators[beam_width] = generate
        return self._generators[beam_width]

    def generate(self, images, beam_width=None, batch_size=256):
        """Caption images: `[{"caption": str, "score": log-probability}, ...]`, one per image.

        Args:
            images: image file paths, encoded bytes, or an array `(n, h, w, c)` (uint8, or floats
                in [0, 1]); decoded and resized as in training.
            beam_width: int, the beam (1 = greedy). Defaults to the task's `beam_width`.
            batch_size: int, images decoded per run of the graph. Defaults to `256` (under mixed
                precision a different batch may round a close call differently).
        """
        beam_width = self._config["beam_width"] if beam_width is None else beam_width
        check_positive_int("beam_width", beam_width)
        check_positive_int("batch_size", batch_size)
        pixels = images if isinstance(images, np.ndarray) and images.dtype.kind == "f" and images.shape[1:] == tuple(
            self._config["image_shape"]) else self.preprocessor.images(images, "images")
        self.check_inputs({"image": pixels})
        generate = self._generator(int(beam_width))
        results = []
        for start in range(0, len(pixels), batch_size):
            captions, scores = generate(pixels[start : start + batch_size])
            results += [{"caption": c.decode("utf-8"), "score": float(s)} for c, s in zip(captions.numpy(), scores.numpy())]
        return results

    def caption_metrics(self, examples, beam_width=None, batch_size=256):
        """BLEU-1..4 and exact match of the generated captions against the examples' texts (both
        standardized as the preprocessor reads text; see `mmkeras.bleu`).

        Each image is captioned once; an image that several examples share (`image_index`, e.g.
        five captions per photo) has all their texts as its references.
        """
        from mmkeras.bleu import corpus_bleu, exact_match

        texts = [standardize_caption(t) for t in examples.texts]
        if examples.image_index is None:
            images, references = examples.images, [[t] for t in texts]
        else:
            rows = np.unique(examples.image_index)
            by_image = {int(row): [] for row in rows}
            for row, text in zip(examples.image_index, texts):
                by_image[int(row)].append(text)
            images, references = examples.images[rows], [by_image[int(row)] for row in rows]
        generated = [r["caption"] for r in self.generate(images, beam_width, batch_size)]
        return {**corpus_bleu(references, generated), "exact_match": exact_match(references, generated)}

    def extra_metrics(self, examples, batch_size=256):
        """What `mmkeras.train` and `evaluate` report beyond the loss and token accuracy: BLEU-1..4
        and exact match, greedy (`greedy_*`) and with the task's beam (`beam_*`)."""
        metrics = {}
        for prefix, width in (("greedy", 1), ("beam", self._config["beam_width"])):
            for key, value in self.caption_metrics(examples, width, min(batch_size, 256)).items():
                metrics[f"{prefix}_{key}"] = value
        return metrics

    # Answers.

    def postprocess(self, outputs, top_k=3):
        """Teacher-forced logits -> the most likely next token at each position, as words (the
        captions themselves come from `generate`)."""
        words = self._words()
        logits = outputs[OUTPUT] if isinstance(outputs, dict) else outputs
        answers = []
        for row in np.argmax(logits, axis=-1):
            ends = np.flatnonzero(row == self.end_id)
            answers.append({"next_tokens": [words[i] for i in row[: ends[0] + 1 if len(ends) else len(row)]]})
        return answers

    def answer(self, image=None, text=None, *, top_k=3, beam_width=None, batch_size=256):
        """Caption raw images: `[{"caption": ..., "score": ...}, ...]` (`text` must be None)."""
        if text is not None:
            raise ValueError(f"A captioner writes the text itself: pass only `image`. Received: text={text!r}")
        if image is None:
            raise ValueError("`image` must be given: the images to caption. Received: image=None")
        return self.generate(image, beam_width, batch_size)

    # Serving.

    def serving_endpoints(self):
        """`serving_default`: encoded image bytes -> `caption` strings and their `score`
        (log-probability), decoded with the task's beam inside the graph."""
        import tensorflow as tf

        beam_width = self._config["beam_width"]

        def caption(request):
            images = serving.check_image_bytes(
                serving.check_tensor(request["image"], "image", (), "a batch of encoded images (tf.string)"), "image")

            def run(features):
                pixels = tf.cast(self.preprocessor.decode_images(features["image"], "image"), self.input["image"].dtype)
                tokens, scores = self.decode_graph(pixels, beam_width)
                return {"caption": self.captions_graph(tokens), "score": scores}

            return serving.empty_or({"image": images}, run,
                                    lambda: {"caption": tf.zeros([0], tf.string), "score": tf.zeros([0], tf.float32)})

        return {serving.SERVING_SIGNATURE: (caption, [{"image": tf.TensorSpec(None, tf.string, name="image")}])}

    def serving_resources(self):
        """None: the signature takes images only, and the captions' words are constants of the graph."""
        return []

    def serving_description(self):
        return {
            serving.SERVING_SIGNATURE: {
                "inputs": {"image": {"dtype": "string", "shape": [None],
                                     "content": "encoded image bytes (JPEG, PNG, GIF, BMP or WebP)"}},
                "outputs": {
                    "caption": {"dtype": "string", "shape": [None], "content": "the generated caption"},
                    "score": {"dtype": "float32", "shape": [None],
                              "content": f"its log-probability (beam search, width {self._config['beam_width']})"},
                },
            }
        }

    # Config.

    def get_config(self):
        return {**super().get_config(), **self._config}
