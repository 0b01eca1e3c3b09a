"""Text encoders: each builder returns a `keras.Model` from token ids to a feature vector, or (the
`embedding` stem of a shared-encoder model) to the sequence of token embeddings.

Token id 0 is padding (as `keras.layers.TextVectorization` produces it). The recurrent and
Transformer encoders mask it: their embeddings carry a mask, and recurrent layers, attention and
pooling skip padded positions. The `embedding` stem hands its mask on with its sequence (the
`shared_transformer` fusion reads it). The convolutional encoder does not mask: padded positions are
embedded like any token and take part in its max pooling.
Raw strings become token ids through the task's preprocessor
(`mmkeras.preprocessing.Preprocessor`, learned with `text_vectorizer`), in the `tf.data`
pipeline, or inside the graph for a task built with `raw_text=True`.
"""

import keras
from keras import ops

from mmkeras.validation import (
    check_bool,
    check_fraction,
    check_int_tuple,
    check_one_of,
    check_positive_int,
)

CELLS = ("lstm", "gru")


def _token_input(sequence_length):
    check_positive_int("sequence_length", sequence_length)
    return keras.Input((sequence_length,), dtype="int32", name="text")


@keras.saving.register_keras_serializable(package="mmkeras")
class TokenAndPositionEmbedding(keras.layers.Layer):
    """Token embedding plus a learned position embedding; masks token id 0.

    Args:
        vocab_size: int, number of token ids.
        sequence_length: int, the longest sequence the position table covers.
        embedding_dim: int, the embedding width.

    Example:

    >>> import numpy as np
    >>> layer = TokenAndPositionEmbedding(vocab_size=100, sequence_length=8, embedding_dim=16)
    >>> tuple(layer(np.zeros((2, 8), "int32")).shape)
    (2, 8, 16)
    """

    def __init__(self, vocab_size, sequence_length, embedding_dim, **kwargs):
        super().__init__(**kwargs)
        self.vocab_size = vocab_size
        self.sequence_length = sequence_length
        self.embedding_dim = embedding_dim
        self.token_embedding = keras.layers.Embedding(
            vocab_size, embedding_dim, name="token_embedding"
        )
        self.position_embedding = keras.layers.Embedding(
            sequence_length, embedding_dim, name="position_embedding"
        )
        self.supports_masking = True

    def build(self, input_shape):
        self.token_embedding.build(input_shape)
        self.position_embedding.build((input_shape[-1],))
        self.built = True

    def call(self, inputs):
        positions = ops.arange(ops.shape(inputs)[-1])
        return self.token_embedding(inputs) + self.position_embedding(positions)

    def compute_mask(self, inputs, mask=None):
        return ops.not_equal(inputs, 0)

    def compute_output_shape(self, input_shape):
        return (*input_shape, self.embedding_dim)

    def get_config(self):
        config = super().get_config()
        config.update(
            vocab_size=self.vocab_size,
            sequence_length=self.sequence_length,
            embedding_dim=self.embedding_dim,
        )
        return config


def rnn_encoder(
    sequence_length=100,
    vocab_size=10000,
    embedding_dim=64,
    units=64,
    cell="lstm",
    bidirectional=False,
    num_layers=1,
    mask_zero=True,
    dropout=0.0,
    name="text_encoder",
):
    """Embedding followed by LSTM or GRU layers: the text branch of the source documents.

    Args:
        sequence_length: int, tokens per text. Defaults to `100`.
        vocab_size: int, number of token ids. Defaults to `10000`.
        embedding_dim: int, the embedding width. Defaults to `64`.
        units: int, units of each recurrent layer. Defaults to `64`.
        cell: `"lstm"` or `"gru"`. Defaults to `"lstm"`.
        bidirectional: bool, run each layer both ways and concatenate. Defaults to `False`.
        num_layers: int, stacked recurrent layers. Defaults to `1`.
        mask_zero: bool, treat token id 0 as padding. Defaults to `True`.
        dropout: float, dropout on the recurrent layers' inputs. Defaults to `0.0`.
        name: str. Defaults to `"text_encoder"`.

    Example:

    >>> rnn_encoder(sequence_length=20, vocab_size=500, units=32).output_shape
    (None, 32)
    """
    inputs = _token_input(sequence_length)
    check_positive_int("vocab_size", vocab_size)
    check_positive_int("embedding_dim", embedding_dim)
    check_positive_int("units", units)
    check_one_of("cell", cell, CELLS)
    check_bool("bidirectional", bidirectional)
    check_positive_int("num_layers", num_layers)
    check_bool("mask_zero", mask_zero)
    dropout = check_fraction("dropout", dropout)

    x = keras.layers.Embedding(vocab_size, embedding_dim, mask_zero=mask_zero, name="text_embedding")(
        inputs
    )
    rnn = keras.layers.LSTM if cell == "lstm" else keras.layers.GRU
    for i in range(1, num_layers + 1):
        last = i == num_layers
        layer = rnn(units, return_sequences=not last, dropout=dropout, name=f"text_{cell}{i}")
        if bidirectional:
            layer = keras.layers.Bidirectional(layer, name=f"text_bi{cell}{i}")
        x = layer(x)
    return keras.Model(inputs, x, name=name)


def conv_text_encoder(
    sequence_length=100,
    vocab_size=10000,
    embedding_dim=64,
    filters=64,
    kernel_sizes=(3, 4, 5),
    dropout=0.0,
    name="text_encoder",
):
    """Parallel 1-D convolutions over word embeddings, each max-pooled over time, concatenated.

    After Kim (2014), "Convolutional Neural Networks for Sentence Classification".

    Args:
        sequence_length: int, tokens per text. Defaults to `100`.
        vocab_size: int, number of token ids. Defaults to `10000`.
        embedding_dim: int, the embedding width. Defaults to `64`.
        filters: int, filters per kernel size. Defaults to `64`.
        kernel_sizes: sequence of ints, one convolution per size. Defaults to `(3, 4, 5)`.
        dropout: float, dropout on the concatenated features. Defaults to `0.0`.
        name: str. Defaults to `"text_encoder"`.

    Example:

    >>> conv_text_encoder(sequence_length=20, vocab_size=500, filters=8).output_shape
    (None, 24)
    """
    inputs = _token_input(sequence_length)
    check_positive_int("vocab_size", vocab_size)
    check_positive_int("embedding_dim", embedding_dim)
    check_positive_int("filters", filters)
    kernel_sizes = check_int_tuple("kernel_sizes", kernel_sizes, allow_empty=False)
    dropout = check_fraction("dropout", dropout)

    x = keras.layers.Embedding(vocab_size, embedding_dim, name="text_embedding")(inputs)
    branches = []
    for size in kernel_sizes:
        y = keras.layers.Conv1D(
            filters, size, padding="same", activation="relu", name=f"text_conv{size}"
        )(x)
        branches.append(keras.layers.GlobalMaxPooling1D(name=f"text_conv{size}_pool")(y))
    x = branches[0] if len(branches) == 1 else keras.layers.Concatenate(name="text_concat")(branches)
    if dropout:
        x = keras.layers.Dropout(dropout, name="text_dropout")(x)
    return keras.Model(inputs, x, name=name)


def transformer_text_encoder(
    sequence_length=100,
    vocab_size=10000,
    embedding_dim=64,
    num_heads=2,
    intermediate_dim=128,
    num_layers=1,
    dropout=0.1,
    name="text_encoder",
):
    """A small Transformer encoder (post-norm blocks) with masked mean pooling.

    After Vaswani et al. (2017), "Attention Is All You Need": token + learned position
    embeddings, then `num_layers` blocks of self-attention and a feed-forward network, each with
    a residual connection and layer normalisation. Padding (id 0) is masked throughout.

    Args:
        sequence_length: int, tokens per text. Defaults to `100`.
        vocab_size: int, number of token ids. Defaults to `10000`.
        embedding_dim: int, the model width. Defaults to `64`.
        num_heads: int, attention heads. Defaults to `2`.
        intermediate_dim: int, the feed-forward width. Defaults to `128`.
        num_layers: int, encoder blocks. Defaults to `1`.
        dropout: float. Defaults to `0.1`.
        name: str. Defaults to `"text_encoder"`.

    Example:

    >>> transformer_text_encoder(sequence_length=20, vocab_size=500, embedding_dim=32).output_shape
    (None, 32)
    """
    inputs = _token_input(sequence_length)
    check_positive_int("vocab_size", vocab_size)
    check_positive_int("embedding_dim", embedding_dim)
    check_positive_int("num_heads", num_heads)
    check_positive_int("intermediate_dim", intermediate_dim)
    check_positive_int("num_layers", num_layers)
    dropout = check_fraction("dropout", dropout)
    if embedding_dim % num_heads:
        raise ValueError(
            "`embedding_dim` must be divisible by `num_heads`. "
            f"Received: embedding_dim={embedding_dim}, num_heads={num_heads}"
        )

    x = TokenAndPositionEmbedding(vocab_size, sequence_length, embedding_dim, name="text_embedding")(
        inputs
    )
    for i in range(1, num_layers + 1):
        prefix = f"text_block{i}"
        attention = keras.layers.MultiHeadAttention(
            num_heads, embedding_dim // num_heads, dropout=dropout, name=f"{prefix}_attention"
        )(x, x)
        x = keras.layers.LayerNormalization(name=f"{prefix}_attention_norm")(
            keras.layers.Add(name=f"{prefix}_attention_add")([x, attention])
        )
        y = keras.layers.Dense(intermediate_dim, activation="gelu", name=f"{prefix}_ffn_in")(x)
        y = keras.layers.Dense(embedding_dim, name=f"{prefix}_ffn_out")(y)
        if dropout:
            y = keras.layers.Dropout(dropout, name=f"{prefix}_ffn_dropout")(y)
        x = keras.layers.LayerNormalization(name=f"{prefix}_ffn_norm")(
            keras.layers.Add(name=f"{prefix}_ffn_add")([x, y])
        )
    x = keras.layers.GlobalAveragePooling1D(name="text_pool")(x)
    return keras.Model(inputs, x, name=name)


def embedding_encoder(sequence_length=100, vocab_size=10000, embedding_dim=64, name="text_encoder"):
    """The text stem of a shared-encoder model: token plus position embeddings, as a sequence.

    A `TokenAndPositionEmbedding` (`text_embedding`) and nothing after it: the tokens go to a
    fusion that reads sequences (`shared_transformer`), which does the encoding. The output
    carries a Keras mask, False at padding (token id 0).

    Args:
        sequence_length: int, tokens per text. Defaults to `100`.
        vocab_size: int, number of token ids. Defaults to `10000`.
        embedding_dim: int, the features per token. Defaults to `64`.
        name: str. Defaults to `"text_encoder"`.

    Returns:
        A `keras.Model` from `(batch, sequence_length)` token ids to
        `(batch, sequence_length, embedding_dim)`.

    Example:

    >>> import numpy as np
    >>> encoder = embedding_encoder(sequence_length=6, vocab_size=50, embedding_dim=16)
    >>> encoder.output_shape
    (None, 6, 16)
    >>> keras.ops.convert_to_numpy(encoder(np.array([[4, 9, 0, 0, 0, 0]]))._keras_mask)
    array([[ True,  True, False, False, False, False]])
    """
    inputs = _token_input(sequence_length)
    check_positive_int("vocab_size", vocab_size)
    check_positive_int("embedding_dim", embedding_dim)
    x = TokenAndPositionEmbedding(vocab_size, sequence_length, embedding_dim, name="text_embedding")(inputs)
    return keras.Model(inputs, x, name=name)


TEXT_ENCODERS = {
    "rnn": rnn_encoder,
    "conv": conv_text_encoder,
    "transformer": transformer_text_encoder,
    "embedding": embedding_encoder,
}
