"""Fusion layers: combine two or more modality vectors `(batch, width_i)` into one vector.

`shared_transformer` also takes sequences `(batch, length_i, width_i)` (the `patch` image encoder's
and the `embedding` text encoder's outputs), with the text's padding mask; every fusion takes vectors.

Every layer here is a serializable Keras layer written with `keras.ops`: on the JAX backend each
gives TensorFlow's outputs (to 1e-5) from the same weights (`tests/test_backends.py`); other Keras
backends are not tested. Layers that need a common width project each modality
with its own learned matrix (and bias, and the layer's `activation`) to `units` first; where
`units` is `None` and the inputs already share a width, no projection is made, except by the
layers that always project (`gated`, `attention`, `sequence`).

Example:

>>> import numpy as np
>>> fusion = get_fusion("gated", units=32)
>>> tuple(fusion([np.ones((4, 64)), np.ones((4, 16))]).shape)
(4, 32)
"""

import math

import keras
from keras import ops

from mmkeras.fusion_kinds import FUSION_KINDS
from mmkeras.validation import check_fraction, check_kwargs, check_one_of, check_positive_int, received

# Keras' built-in activation names (`activation` also takes a callable or a registered name).
ACTIVATIONS = tuple(
    name
    for name in dir(keras.activations)
    if not name.startswith("_") and name not in ("get", "serialize", "deserialize")
    and callable(getattr(keras.activations, name))
)
SEQUENCE_CELLS = ("gru", "lstm")


class Fusion(keras.layers.Layer):
    """Base class: checks the modality list and owns the optional per-modality projections.

    Subclasses set `needs_common_width` (their inputs must share a width), `always_project`
    (they project even when widths match, e.g. gated units), `accepts_sequences` (they also take
    sequences `(batch, length, width)`; the projections then act on every position), `max_inputs`
    (the most modalities they fuse; `None`: any number) and `uses_presence` (their `call` takes
    `presence`, a `(batch, n_modalities)` tensor saying which modalities each example has: a
    model builder passes it only to such layers), and implement `fuse`.

    Args:
        units: int or None, the projection width. Defaults to `None`.
        activation: activation applied after each projection: a Keras activation name (see
            `ACTIVATIONS`), a callable or `None`. Defaults to `None`.
        **kwargs: forwarded to `keras.layers.Layer` (`name`, `dtype`, `trainable`).
    """

    needs_common_width = False
    always_project = False
    accepts_sequences = False
    max_inputs = None
    uses_presence = False

    def __init__(self, units=None, activation=None, **kwargs):
        super().__init__(**kwargs)
        check_positive_int("units", units, allow_none=True)
        self.units = units
        try:
            self.activation = keras.activations.get(activation)
        except ValueError:
            check_one_of("activation", activation, ACTIVATIONS)
            raise

    def _check_shapes(self, input_shape):
        name = type(self).__name__
        if not isinstance(input_shape, (list, tuple)) or not input_shape or not isinstance(
            input_shape[0], (list, tuple)
        ):
            raise ValueError(
                f"{name} expects a list of modality tensors. Received: input_shape={input_shape}"
            )
        if len(input_shape) < 2 or (self.max_inputs and len(input_shape) > self.max_inputs):
            most = self.max_inputs or "any number of"
            raise ValueError(
                f"{name} fuses between 2 and {most} modalities. "
                f"Received: {len(input_shape)} inputs with shapes {list(input_shape)}"
            )
        ranks = (2, 3) if self.accepts_sequences else (2,)
        for shape in input_shape:
            if len(shape) not in ranks or shape[-1] is None:
                if self.accepts_sequences:
                    expected = "modality vectors (batch, width) or sequences (batch, length, width)"
                else:
                    expected = "2-D modality vectors (batch, width) (for sequences use the 'shared_transformer' fusion)"
                raise ValueError(f"{name} expects {expected}. Received: input_shape={list(input_shape)}")
        widths = [int(s[-1]) for s in input_shape]
        project = self.always_project or self.units is not None
        if self.needs_common_width and not project and len(set(widths)) > 1:
            raise ValueError(
                f"{name} needs modalities of one width: set `units` to project them. "
                f"Received: units=None with widths {widths}"
            )
        return widths

    def build(self, input_shape):
        widths = self._check_shapes(input_shape)
        self.input_widths = widths
        project = self.always_project or self.units is not None
        self.width = self.projection_width(widths) if project else None
        self.kernels, self.biases = [], []
        if project:
            for i, width in enumerate(widths):
                self.add_projection(i, width)
        self.build_fusion(widths)

    def projection_width(self, widths):
        """The width the projections map to: `units`, or the first modality's width."""
        return self.units or widths[0]

    def add_projection(self, i, width):
        """Create modality `i`'s projection `width -> self.width` (`kernel_i`, `bias_i`)."""
        self.kernels.append(self.add_weight(shape=(width, self.width), initializer="glorot_uniform", name=f"kernel_{i}"))
        self.biases.append(self.add_weight(shape=(self.width,), initializer="zeros", name=f"bias_{i}"))

    def build_fusion(self, widths):
        """Create the weights of the fusion itself (after the projections)."""

    def project(self, inputs):
        """Project every modality to `self.width` (identity when the layer does not project)."""
        if not self.kernels:
            return list(inputs)
        return [
            self.activation(ops.matmul(x, kernel) + bias)
            for x, kernel, bias in zip(inputs, self.kernels, self.biases)
        ]

    def call(self, inputs):
        return self.fuse(self.project(inputs))

    def fuse(self, inputs):
        raise NotImplementedError

    def get_config(self):
        config = super().get_config()
        config.update(units=self.units, activation=keras.activations.serialize(self.activation))
        return config


@keras.saving.register_keras_serializable(package="mmkeras")
class ConcatenateFusion(Fusion):
    """Concatenation (early fusion): the source documents' default.

    Args:
        units: int or None: project each modality to `units` before concatenating.
            Defaults to `None` (concatenate as they are).
        activation: activation after each projection (a Keras activation name or a callable).
            Defaults to `None`.

    Example:

    >>> import numpy as np
    >>> tuple(ConcatenateFusion()([np.ones((2, 3)), np.ones((2, 5))]).shape)
    (2, 8)
    """

    def fuse(self, inputs):
        return ops.concatenate(inputs, axis=-1)


@keras.saving.register_keras_serializable(package="mmkeras")
class SumFusion(Fusion):
    """Element-wise sum of the (projected) modalities.

    Args:
        units: int or None: project each modality to `units` first; required when the
            modalities' widths differ. Defaults to `None` (add them as they are).
        activation: activation after each projection (a Keras activation name or a callable).
            Defaults to `None`.

    Example:

    >>> import numpy as np
    >>> tuple(SumFusion(units=4)([np.ones((2, 3)), np.ones((2, 5))]).shape)
    (2, 4)
    """

    needs_common_width = True

    def fuse(self, inputs):
        return ops.sum(ops.stack(inputs, axis=1), axis=1)


@keras.saving.register_keras_serializable(package="mmkeras")
class WeightedSumFusion(Fusion):
    """A learned convex combination: `sum_i softmax(w)_i * x_i`, one scalar weight per modality.

    The source documents' "weighted sum" fusion; the softmax keeps the weights positive and
    summing to one, so the learned weights read as each modality's share.

    Args:
        units: int or None: project each modality to `units` first; required when the
            modalities' widths differ. Defaults to `None`.
        activation: activation after each projection (a Keras activation name or a callable).
            Defaults to `None`.

    Example:

    >>> import numpy as np
    >>> tuple(WeightedSumFusion(units=4)([np.ones((2, 3)), np.ones((2, 5))]).shape)
    (2, 4)
    """

    needs_common_width = True

    def build_fusion(self, widths):
        self.modality_logits = self.add_weight(
            shape=(len(widths),), initializer="zeros", name="modality_logits"
        )

    def modality_weights(self):
        """The current weight of each modality (they sum to 1)."""
        return ops.softmax(self.modality_logits)

    def fuse(self, inputs):
        weights = ops.cast(self.modality_weights(), inputs[0].dtype)
        return ops.einsum("bnd,n->bd", ops.stack(inputs, axis=1), weights)


@keras.saving.register_keras_serializable(package="mmkeras")
class ProductFusion(Fusion):
    """Element-wise (Hadamard) product of the (projected) modalities.

    Args:
        units: int or None: project each modality to `units` first; required when the
            modalities' widths differ. Defaults to `None`.
        activation: activation after each projection (a Keras activation name or a callable).
            Defaults to `None`.

    Example:

    >>> import numpy as np
    >>> tuple(ProductFusion()([np.ones((2, 3)), np.ones((2, 3))]).shape)
    (2, 3)
    """

    needs_common_width = True

    def fuse(self, inputs):
        return ops.prod(ops.stack(inputs, axis=1), axis=1)


@keras.saving.register_keras_serializable(package="mmkeras")
class GatedFusion(Fusion):
    """Gated multimodal unit: learned gates choose, unit by unit, how much of each modality to keep.

    `h_i = activation(W_i x_i + b_i)` (tanh by default), gates
    `z = softmax_i(W_z [x_1..x_n] + b_z)` per unit, output `sum_i z_i * h_i`.

    Arevalo et al. (2017), "Gated Multimodal Units for Information Fusion". With two
    modalities the softmax gate equals the paper's sigmoid gate `z, 1 - z`.

    Args:
        units: int or None, the width of the hidden units; `None` takes the first modality's
            width. Defaults to `None`.
        activation: the activation of the hidden units `h_i` (a Keras activation name or a
            callable). Defaults to `"tanh"`.

    Example:

    >>> import numpy as np
    >>> tuple(GatedFusion(units=8)([np.ones((2, 3)), np.ones((2, 5))]).shape)
    (2, 8)
    """

    always_project = True

    def __init__(self, units=None, activation="tanh", **kwargs):
        super().__init__(units=units, activation=activation, **kwargs)

    def build_fusion(self, widths):
        self.gate_kernel = self.add_weight(
            shape=(sum(widths), len(widths) * self.width), initializer="glorot_uniform", name="gate_kernel"
        )
        self.gate_bias = self.add_weight(shape=(len(widths) * self.width,), initializer="zeros", name="gate_bias")

    def call(self, inputs):
        hidden = ops.stack(self.project(inputs), axis=1)  # (batch, n, units)
        logits = ops.matmul(ops.concatenate(inputs, axis=-1), self.gate_kernel) + self.gate_bias
        gates = ops.softmax(ops.reshape(logits, (-1, len(inputs), self.width)), axis=1)
        return ops.sum(gates * hidden, axis=1)


@keras.saving.register_keras_serializable(package="mmkeras")
class AttentionFusion(Fusion):
    """Cross-modal attention: similarity between modalities -> attention weights -> weighted sum.

    The source documents' attention-based fusion. Each modality is projected to `units`; its
    query is compared with every modality's key (scaled dot product); the softmax of those
    similarities weights the modalities' values; each modality keeps its own vector plus the
    attended context (a residual), and the modalities are averaged.
    After Vaswani et al. (2017) and the co-attention of Lu et al. (2016), "Hierarchical
    Question-Image Co-Attention for Visual Question Answering".

    Args:
        units: int or None, the common width; `None` takes the first modality's width.
            Defaults to `None`.
        activation: activation after each projection (a Keras activation name or a callable).
            Defaults to `None`.

    Example:

    >>> import numpy as np
    >>> tuple(AttentionFusion(units=8)([np.ones((2, 3)), np.ones((2, 5))]).shape)
    (2, 8)
    """

    always_project = True

    def build_fusion(self, widths):
        for part in ("query", "key", "value"):
            setattr(
                self,
                f"{part}_kernel",
                self.add_weight(shape=(self.width, self.width), initializer="glorot_uniform", name=f"{part}_kernel"),
            )

    def attention_weights(self, inputs):
        """The `(batch, n, n)` attention of each modality (row) over all modalities."""
        hidden = ops.stack(self.project(inputs), axis=1)
        return self._attend(hidden)[1]

    def _attend(self, hidden):
        query = ops.matmul(hidden, self.query_kernel)
        key = ops.matmul(hidden, self.key_kernel)
        scores = ops.einsum("bqd,bkd->bqk", query, key) / math.sqrt(self.width)
        weights = ops.softmax(scores, axis=-1)
        context = ops.einsum("bqk,bkd->bqd", weights, ops.matmul(hidden, self.value_kernel))
        return context, weights

    def fuse(self, inputs):
        hidden = ops.stack(inputs, axis=1)
        context, _ = self._attend(hidden)
        return ops.mean(hidden + context, axis=1)


@keras.saving.register_keras_serializable(package="mmkeras")
class TensorFusion(Fusion):
    """Tensor fusion: the flattened outer product of the modalities, each extended by a 1.

    Zadeh et al. (2017), "Tensor Fusion Network for Multimodal Sentiment Analysis". The 1s keep
    every unimodal term beside the bimodal (and trimodal) interactions. The output has
    `prod(width_i + 1)` features, so project wide modalities to a few `units` first.

    Args:
        units: int or None, project each modality to `units` first. Defaults to `None`.
        activation: activation after each projection (a Keras activation name or a callable).
            Defaults to `None`.

    Example:

    >>> import numpy as np
    >>> tuple(TensorFusion(units=4)([np.ones((2, 3)), np.ones((2, 5))]).shape)
    (2, 25)
    """

    max_inputs = 3

    def fuse(self, inputs):
        fused = None
        for x in inputs:
            x = ops.concatenate([x, ops.ones_like(x[:, :1])], axis=-1)
            if fused is None:
                fused = x
            else:
                fused = ops.reshape(ops.einsum("bi,bj->bij", fused, x), (-1, fused.shape[-1] * x.shape[-1]))
        return fused


@keras.saving.register_keras_serializable(package="mmkeras")
class LowRankTensorFusion(Fusion):
    """Low-rank multimodal fusion: tensor fusion computed through rank-`r` modality factors.

    Liu et al. (2018), "Efficient Low-rank Multimodal Fusion with Modality-Specific Factors":
    `h = sum_r w_r * prod_i ([x_i, 1] @ W_i[r]) + b`, which equals a tensor fusion followed by a
    dense layer whose weight tensor has rank `r`, without ever forming the outer product.

    Args:
        units: int, the output width. Defaults to `64`.
        rank: int, the rank of the factorisation. Defaults to `4`.
        activation: not used: the modality factors take the place of the projections (accepted
            so every fusion takes the same keywords). Defaults to `None`.

    Example:

    >>> import numpy as np
    >>> tuple(LowRankTensorFusion(units=8, rank=2)([np.ones((2, 3)), np.ones((2, 5))]).shape)
    (2, 8)
    """

    def __init__(self, units=64, rank=4, **kwargs):
        check_positive_int("units", units)
        check_positive_int("rank", rank)
        super().__init__(units=units, **kwargs)
        self.rank = rank

    def build(self, input_shape):
        widths = self._check_shapes(input_shape)
        self.input_widths = widths
        self.width = self.units
        self.kernels, self.biases = [], []
        self.factors = [
            self.add_weight(
                shape=(self.rank, width + 1, self.units), initializer="glorot_uniform", name=f"factor_{i}"
            )
            for i, width in enumerate(widths)
        ]
        self.rank_weights = self.add_weight(shape=(self.rank,), initializer="glorot_uniform", name="rank_weights")
        self.bias = self.add_weight(shape=(self.units,), initializer="zeros", name="bias")

    def fuse(self, inputs):
        product = None
        for x, factor in zip(inputs, self.factors):
            x = ops.concatenate([x, ops.ones_like(x[:, :1])], axis=-1)
            term = ops.einsum("bd,rdu->bru", x, factor)
            product = term if product is None else product * term
        return ops.einsum("bru,r->bu", product, self.rank_weights) + self.bias

    def get_config(self):
        config = super().get_config()
        config.update(rank=self.rank)
        return config


@keras.saving.register_keras_serializable(package="mmkeras")
class SequenceFusion(Fusion):
    """Sequence fusion: the (projected) modalities read in order by a recurrent layer.

    The source documents' "sequence fusion with an RNN over the modalities": each modality
    becomes one time step of a sequence, and the recurrent layer's final state is the fused
    vector, so the order of the modalities matters.

    Args:
        units: int or None, the common width and the recurrent layer's units; `None` takes the
            first modality's width. Defaults to `None`.
        cell: `"gru"` or `"lstm"`, the recurrent layer. Defaults to `"gru"`.
        activation: activation after each projection (a Keras activation name or a callable).
            Defaults to `None`.

    Example:

    >>> import numpy as np
    >>> tuple(SequenceFusion(units=8)([np.ones((2, 3)), np.ones((2, 5))]).shape)
    (2, 8)
    """

    always_project = True

    def __init__(self, units=None, cell="gru", **kwargs):
        super().__init__(units=units, **kwargs)
        self.cell = check_one_of("cell", cell, SEQUENCE_CELLS)

    def build_fusion(self, widths):
        layer = keras.layers.GRU if self.cell == "gru" else keras.layers.LSTM
        self.rnn = layer(self.width, name=self.cell)
        self.rnn.build((None, len(widths), self.width))

    def fuse(self, inputs):
        return self.rnn(ops.stack(inputs, axis=1))

    def get_config(self):
        config = super().get_config()
        config.update(cell=self.cell)
        return config


@keras.saving.register_keras_serializable(package="mmkeras")
class TransformerEncoderBlock(keras.layers.Layer):
    """A pre-norm Transformer encoder block: self-attention, then a feed-forward network.

    `x + Attention(LN(x))`, then `x + W_2 gelu(W_1 LN(x) + b_1) + b_2`, each branch followed by
    dropout (Vaswani et al. 2017, with the layer normalisation before each branch as in ViT,
    Dosovitskiy et al. 2021). The shared Transformer of `SharedTransformerFusion`.

    Args:
        num_heads: int, attention heads; they must divide the input width.
        intermediate_dim: int, the feed-forward width.
        dropout: float, dropout on the attention weights and on each branch's output.
            Defaults to `0.0`.
        layer_norm_epsilon: float, the epsilon of both layer normalisations. Defaults to `1e-6`.
        **kwargs: forwarded to `keras.layers.Layer` (`name`, `dtype`, `trainable`).

    Call arguments:
        inputs: `(batch, length, width)`.
        attention_mask: bool `(batch, length, length)` or None: which positions (last axis) each
            position may attend to.

    Example:

    >>> import numpy as np
    >>> block = TransformerEncoderBlock(num_heads=2, intermediate_dim=16)
    >>> tuple(block(np.ones((2, 5, 8), "float32")).shape)
    (2, 5, 8)
    """

    def __init__(self, num_heads, intermediate_dim, dropout=0.0, layer_norm_epsilon=1e-6, **kwargs):
        super().__init__(**kwargs)
        self.num_heads = check_positive_int("num_heads", num_heads)
        self.intermediate_dim = check_positive_int("intermediate_dim", intermediate_dim)
        self.dropout = check_fraction("dropout", dropout)
        self.layer_norm_epsilon = layer_norm_epsilon

    def build(self, input_shape):
        width = input_shape[-1]
        if width % self.num_heads:
            raise ValueError(
                f"`num_heads` must divide the width of the block's input ({width}). "
                f"{received('num_heads', self.num_heads)}"
            )
        sub = {"dtype": self.dtype_policy}
        self.attention_norm = keras.layers.LayerNormalization(
            epsilon=self.layer_norm_epsilon, name="attention_norm", **sub
        )
        self.attention = keras.layers.MultiHeadAttention(
            self.num_heads, width // self.num_heads, dropout=self.dropout, name="attention", **sub
        )
        self.ffn_norm = keras.layers.LayerNormalization(epsilon=self.layer_norm_epsilon, name="ffn_norm", **sub)
        self.ffn_in = keras.layers.Dense(self.intermediate_dim, activation="gelu", name="ffn_in", **sub)
        self.ffn_out = keras.layers.Dense(width, name="ffn_out", **sub)
        self.branch_dropout = keras.layers.Dropout(self.dropout, name="dropout", **sub)
        self.attention_norm.build(input_shape)
        self.attention.build(input_shape, input_shape)
        self.ffn_norm.build(input_shape)
        self.ffn_in.build(input_shape)
        self.ffn_out.build((*input_shape[:-1], self.intermediate_dim))

    def call(self, inputs, attention_mask=None, training=None):
        y = self.attention_norm(inputs)
        y = self.attention(y, y, attention_mask=attention_mask, training=training)
        x = inputs + self.branch_dropout(y, training=training)
        y = self.ffn_out(self.ffn_in(self.ffn_norm(x)))
        return x + self.branch_dropout(y, training=training)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(
            num_heads=self.num_heads,
            intermediate_dim=self.intermediate_dim,
            dropout=self.dropout,
            layer_norm_epsilon=self.layer_norm_epsilon,
        )
        return config


@keras.saving.register_keras_serializable(package="mmkeras")
class SharedTransformerFusion(Fusion):
    """Shared-encoder fusion: every modality's tokens, tagged by modality, read by one Transformer.

    The single-stream model of the source documents (document 004, algorithm 1), after
    VisualBERT (Li et al. 2019) and ViLT (Kim et al. 2021): modality-specific stems (the `patch`
    image encoder, the `embedding` text encoder) give token sequences `(batch, length_i,
    width_i)`; each is projected to the common width by its own matrix (`P_i`, on every token),
    a learned modality-type embedding `t_i` is added to each of its tokens, and all tokens,
    after a learned `[CLS]` token, are read together by `num_layers` shared pre-norm Transformer
    encoder blocks (`TransformerEncoderBlock`). The output is the layer-normalised `[CLS]` state,
    `(batch, units)`. A vector `(batch, width_i)` is read as a sequence of one token, so the
    layer also fuses the pooled encoders' outputs. Padding is masked out of attention: a
    sequence that carries a Keras mask (the `embedding` text encoder masks token id 0) offers
    only its unmasked tokens as keys.

    Args:
        units: int or None, the width of the shared encoder; `None` takes the first modality's
            width. `num_heads` must divide it. Defaults to `None`.
        num_heads: int, attention heads. Defaults to `2`.
        intermediate_dim: int or None, the feed-forward width of each block; `None` is twice
            the width. Defaults to `None`.
        num_layers: int, shared Transformer blocks. Defaults to `1`.
        dropout: float, dropout on the attention weights and each block's branches.
            Defaults to `0.0`.
        activation: activation after each projection (a Keras activation name or a callable).
            Defaults to `None`.

    Example:

    >>> import numpy as np
    >>> fusion = SharedTransformerFusion(units=8, num_layers=2)
    >>> patches, words = np.ones((2, 16, 12)), np.ones((2, 5, 6))
    >>> tuple(fusion([patches, words]).shape)
    (2, 8)
    >>> tuple(fusion([np.ones((2, 12)), np.ones((2, 6))]).shape)  # vectors: one token each
    (2, 8)
    """

    always_project = True
    accepts_sequences = True

    def __init__(self, units=None, num_heads=2, intermediate_dim=None, num_layers=1, dropout=0.0, **kwargs):
        super().__init__(units=units, **kwargs)
        self.num_heads = check_positive_int("num_heads", num_heads)
        self.intermediate_dim = check_positive_int("intermediate_dim", intermediate_dim, allow_none=True)
        self.num_layers = check_positive_int("num_layers", num_layers)
        self.dropout = check_fraction("dropout", dropout)
        if units is not None and units % num_heads:
            raise ValueError(
                f"`units` must be divisible by `num_heads` ({num_heads}). {received('units', units)}"
            )
        self.supports_masking = True

    def build_fusion(self, widths):
        if self.width % self.num_heads:
            raise ValueError(
                f"`num_heads` must divide the shared width, here the first modality's width ({self.width}) "
                f"since `units` is None: set `units`. {received('num_heads', self.num_heads)}"
            )
        tokens = keras.initializers.TruncatedNormal(stddev=0.02)
        self.cls_token = self.add_weight(shape=(self.width,), initializer=tokens, name="cls_token")
        self.type_embeddings = self.add_weight(
            shape=(len(widths), self.width), initializer=tokens, name="type_embeddings"
        )
        sequence = (None, None, self.width)
        self.blocks = []
        for i in range(1, self.num_layers + 1):
            block = TransformerEncoderBlock(
                self.num_heads,
                self.intermediate_dim or 2 * self.width,
                dropout=self.dropout,
                name=f"block{i}",
                dtype=self.dtype_policy,
            )
            block.build(sequence)
            self.blocks.append(block)
        self.final_norm = keras.layers.LayerNormalization(epsilon=1e-6, name="final_norm", dtype=self.dtype_policy)
        self.final_norm.build(sequence)

    def call(self, inputs, mask=None, training=None):
        masks = list(mask) if isinstance(mask, (list, tuple)) else [None] * len(inputs)
        projected = self.project(inputs)
        dtype = projected[0].dtype
        first = projected[0] if len(projected[0].shape) == 3 else ops.expand_dims(projected[0], 1)
        tokens = [ops.zeros_like(first[:, :1, :]) + ops.cast(self.cls_token, dtype)]
        keep = [ops.ones_like(first[:, :1, 0], dtype="bool")]
        for i, (x, x_mask) in enumerate(zip(projected, masks)):
            if len(x.shape) == 2:
                x, x_mask = ops.expand_dims(x, 1), None
            tokens.append(x + ops.cast(self.type_embeddings[i], dtype))
            keep.append(ops.ones_like(x[:, :, 0], dtype="bool") if x_mask is None else ops.cast(x_mask, "bool"))
        x = ops.concatenate(tokens, axis=1)
        keys = ops.concatenate(keep, axis=1)  # (batch, tokens): which tokens may be attended to
        attention_mask = ops.logical_and(ops.expand_dims(keys, 1), ops.expand_dims(ops.ones_like(keys), 2))
        for block in self.blocks:
            x = block(x, attention_mask=attention_mask, training=training)
        return self.final_norm(x[:, 0, :])

    def compute_mask(self, inputs, mask=None):
        return None  # one pooled vector: the padding is consumed here

    def compute_output_shape(self, input_shape):
        return (input_shape[0][0], self.units or input_shape[0][-1])

    def get_config(self):
        config = super().get_config()
        config.update(
            num_heads=self.num_heads,
            intermediate_dim=self.intermediate_dim,
            num_layers=self.num_layers,
            dropout=self.dropout,
        )
        return config


@keras.saving.register_keras_serializable(package="mmkeras")
class FiLMFusion(Fusion):
    """Feature-wise linear modulation (FiLM): the other modalities scale and shift the first, unit by unit.

    Perez et al. (2018), "FiLM: Visual Reasoning with a General Conditioning Layer". The first
    modality (the image features) is modulated by the others (the question, the text): a linear
    FiLM generator reads the concatenated other modalities `c = [x_2, ..., x_n]` and gives
    `gamma, beta = split(c W_c + b_c)`, each of the first modality's width, and the output is
    `(1 + gamma) * h + beta` with `h = P_1 x_1`. The generator predicts `gamma` as an offset from 1
    (our choice, for a stable start): with small generator weights the layer begins close to the
    identity on `h` rather than close to zero. Only the first modality is projected (to `units`,
    with `activation`; `None`: it is modulated as it is); the others feed the generator as they
    are, since the generator is itself a linear map of them. The output has `h`'s width.
    `W_c` is `(sum of the other widths, 2 * width)`: its first `width` columns give `gamma`.

    Args:
        units: int or None: project the first modality to `units` before modulating it.
            Defaults to `None` (modulate it as it is).
        activation: activation after the first modality's projection (a Keras activation name
            or a callable). Defaults to `None`.

    Example:

    >>> import numpy as np
    >>> tuple(FiLMFusion(units=8)([np.ones((2, 3)), np.ones((2, 5)), np.ones((2, 4))]).shape)
    (2, 8)
    """

    def build(self, input_shape):
        widths = self._check_shapes(input_shape)
        self.input_widths = widths
        self.width = self.projection_width(widths)
        self.kernels, self.biases = [], []
        if self.units is not None:  # only the modulated modality is projected
            self.add_projection(0, widths[0])
        self.condition_kernel = self.add_weight(
            shape=(sum(widths[1:]), 2 * self.width), initializer="glorot_uniform", name="condition_kernel"
        )
        self.condition_bias = self.add_weight(shape=(2 * self.width,), initializer="zeros", name="condition_bias")

    def modulation(self, inputs):
        """`(gamma, beta)`, each `(batch, width)`, from the modalities after the first."""
        condition = ops.concatenate(list(inputs[1:]), axis=-1)
        params = ops.matmul(condition, self.condition_kernel) + self.condition_bias
        return params[:, : self.width], params[:, self.width :]

    def call(self, inputs):
        hidden = self.project(inputs[:1])[0]
        gamma, beta = self.modulation(inputs)
        return (1.0 + gamma) * hidden + beta


MFB_SQRT_EPSILON = 1e-8  # sign(z) sqrt(|z| + eps): a finite gradient where a pooled value is 0
MFB_NORM_EPSILON = 1e-12  # z / sqrt(max(sum z^2, eps)), as tf.math.l2_normalize


@keras.saving.register_keras_serializable(package="mmkeras")
class MFBFusion(Fusion):
    """Multi-modal factorized bilinear pooling (MFB): projected product, sum-pooled, power- and L2-normalised.

    Yu et al. (2017), "Multi-modal Factorized Bilinear Pooling with Co-Attention Learning for
    Visual Question Answering" (ICCV). Each modality is projected by its own matrix (and bias,
    and `activation`) to `units * factors`; the projections are multiplied element-wise (with
    more than two modalities, the product of all of them), optionally dropped out (`dropout`,
    the paper's dropout after the product; training only), sum-pooled over non-overlapping
    groups of `factors` consecutive values (`z_j = sum_f p[j * factors + f]`), then power
    normalised, `z <- sign(z) sqrt(|z| + 1e-8)` (the 1e-8 keeps the gradient finite at 0), and
    L2 normalised, `z <- z / sqrt(max(||z||^2, 1e-12))`. Each output unit is a rank-`factors`
    bilinear form of the modalities; the output, of width `units`, has unit L2 norm. The
    normalisations run in float32 under mixed precision.

    Args:
        units: int, the output width `o`. Defaults to `64`.
        factors: int, the number `k` of factors per output unit (the rank of each bilinear
            form). Defaults to `5`, the paper's.
        dropout: float in [0, 1), dropout on the element-wise product during training.
            Defaults to `0.0`.
        activation: activation after each projection (a Keras activation name or a callable).
            Defaults to `None`.

    Example:

    >>> import numpy as np
    >>> fused = MFBFusion(units=8, factors=5)([np.ones((2, 3)), np.ones((2, 5))])
    >>> tuple(fused.shape), np.round(np.linalg.norm(fused, axis=-1), 5).tolist()
    ((2, 8), [1.0, 1.0])
    """

    always_project = True

    def __init__(self, units=64, factors=5, dropout=0.0, **kwargs):
        check_positive_int("units", units)
        super().__init__(units=units, **kwargs)
        self.factors = check_positive_int("factors", factors)
        self.dropout = check_fraction("dropout", dropout)

    def projection_width(self, widths):
        return self.units * self.factors

    def build_fusion(self, widths):
        self.product_dropout = keras.layers.Dropout(self.dropout, name="dropout", dtype=self.dtype_policy)

    def call(self, inputs, training=None):
        product = ops.prod(ops.stack(self.project(inputs), axis=1), axis=1)  # (batch, units * factors)
        product = self.product_dropout(product, training=training)
        pooled = ops.sum(ops.reshape(product, (-1, self.units, self.factors)), axis=-1)
        pooled = ops.cast(pooled, "float32")
        pooled = ops.sign(pooled) * ops.sqrt(ops.abs(pooled) + MFB_SQRT_EPSILON)
        norm = ops.sqrt(ops.maximum(ops.sum(ops.square(pooled), axis=-1, keepdims=True), MFB_NORM_EPSILON))
        return ops.cast(pooled / norm, self.compute_dtype)

    def get_config(self):
        config = super().get_config()
        config.update(factors=self.factors, dropout=self.dropout)
        return config


@keras.saving.register_keras_serializable(package="mmkeras")
class MultiplicativeFusion(Fusion):
    """Multiplicative interaction of two modalities: `z^T W x + z^T U + V x + b`, with a 3-D tensor `W`.

    Jayakumar et al. (2020), "Multiplicative Interactions and Where to Find Them" (ICLR). `x` is
    the first modality (the input, e.g. the image) and `z` the second (the context, e.g. the
    text), each first projected by its own matrix (and bias, and `activation`) to `units`;
    then `f_k = sum_ij z_i W[i, j, k] x_j + sum_i z_i U[i, k] + sum_j V[j, k] x_j + b_k`, i.e.
    `z` generates the weight `z^T W + V` and the bias `z^T U + b` of a linear layer applied to
    `x` (the paper's hypernetwork view). Projecting first keeps `W` at `units^3` weights
    (with no activation, `W` on the raw modalities is then Tucker-factorised); the layer has
    `(d_x + 1 + d_z + 1) * units + units^3 + 2 * units^2 + units` parameters, projections included:
    282,816 for `units=64` on widths 128 and 64. Two modalities only.

    Args:
        units: int or None, the projection width and the output width; `None` takes the first
            modality's width. Defaults to `None`.
        activation: activation after each projection (a Keras activation name or a callable).
            Defaults to `None`.

    Example:

    >>> import numpy as np
    >>> tuple(MultiplicativeFusion(units=8)([np.ones((2, 3)), np.ones((2, 5))]).shape)
    (2, 8)
    """

    always_project = True
    max_inputs = 2

    def build_fusion(self, widths):
        units = self.width
        self.interaction_kernel = self.add_weight(  # W[i, j, k]: z_i x_j -> output k
            shape=(units, units, units), initializer="glorot_uniform", name="interaction_kernel"
        )
        self.context_kernel = self.add_weight(shape=(units, units), initializer="glorot_uniform", name="context_kernel")
        self.input_kernel = self.add_weight(shape=(units, units), initializer="glorot_uniform", name="input_kernel")
        self.bias = self.add_weight(shape=(units,), initializer="zeros", name="bias")

    def fuse(self, inputs):
        x, z = inputs
        weight = ops.einsum("bi,ijk->bjk", z, self.interaction_kernel) + self.input_kernel  # z^T W + V
        bias = ops.matmul(z, self.context_kernel) + self.bias  # z^T U + b
        return ops.einsum("bj,bjk->bk", x, weight) + bias


@keras.saving.register_keras_serializable(package="mmkeras")
class DeepSetFusion(Fusion):
    """Deep Sets: a shared network on every modality, then a mean over the modalities present.

    Zaheer et al. (2017), "Deep Sets". Each modality is projected by its own matrix (and bias, and
    `activation`) to `units`, `h_i = P_i x_i`; one shared `phi(h) = relu(h W_phi + b_phi)` (same
    width) reads every modality; the output is the masked mean
    `sum_i m_i phi(h_i) / max(sum_i m_i, 1)`, where `m` is the call's `presence`. The result does
    not depend on the order of the modalities (with their projections), and an absent modality's
    values, even NaN, never reach the output; an example with no modality present gives zeros.

    Args:
        units: int or None, the common width of the projections and of `phi`; `None` takes the
            first modality's width. Defaults to `None`.
        activation: activation after each projection (a Keras activation name or a callable).
            Defaults to `None`.

    Call arguments:
        inputs: a list of `n` modality tensors `(batch, width_i)`.
        presence: `(batch, n)` bool or float tensor, 1 where the example has the modality (a float
            in between weighs it), or `None`: every modality present. Defaults to `None`.

    Example:

    >>> import numpy as np
    >>> layer = DeepSetFusion(units=8)
    >>> image, text = np.ones((2, 3)), np.ones((2, 5))
    >>> tuple(layer([image, text], presence=np.array([[True, True], [True, False]])).shape)
    (2, 8)
    """

    always_project = True
    uses_presence = True

    def build_fusion(self, widths):
        self.phi_kernel = self.add_weight(shape=(self.width, self.width), initializer="glorot_uniform", name="phi_kernel")
        self.phi_bias = self.add_weight(shape=(self.width,), initializer="zeros", name="phi_bias")

    def call(self, inputs, presence=None):
        hidden = ops.stack(self.project(inputs), axis=1)  # (batch, n, units)
        phi = ops.relu(ops.matmul(hidden, self.phi_kernel) + self.phi_bias)
        if presence is None:
            return ops.mean(phi, axis=1)
        presence = ops.convert_to_tensor(presence)
        if len(presence.shape) != 2 or presence.shape[-1] not in (None, len(inputs)):
            raise ValueError(
                f"`presence` must have shape (batch, {len(inputs)}): one column per modality. "
                f"Received: presence with shape {tuple(presence.shape)}"
            )
        weights = ops.cast(presence, phi.dtype)
        phi = ops.where(ops.expand_dims(weights, -1) > 0, phi, ops.zeros_like(phi))  # absent: not even NaN
        total = ops.sum(phi * ops.expand_dims(weights, -1), axis=1)
        return total / ops.maximum(ops.sum(weights, axis=1, keepdims=True), 1.0)


FUSIONS = {
    "concatenate": ConcatenateFusion,
    "sum": SumFusion,
    "weighted_sum": WeightedSumFusion,
    "product": ProductFusion,
    "gated": GatedFusion,
    "attention": AttentionFusion,
    "tensor": TensorFusion,
    "low_rank_tensor": LowRankTensorFusion,
    "sequence": SequenceFusion,
    "shared_transformer": SharedTransformerFusion,
    "film": FiLMFusion,
    "mfb": MFBFusion,
    "multiplicative": MultiplicativeFusion,
    "deep_set": DeepSetFusion,
}
if list(FUSIONS) != list(FUSION_KINDS):  # one list of names: `mmkeras list` reads it without Keras
    raise ImportError(f"mmkeras.fusion.FUSIONS must name mmkeras.fusion_kinds.FUSION_KINDS, in order. Received: {list(FUSIONS)}")


def get_fusion(fusion, **kwargs):
    """Return a fusion layer from a name in `FUSIONS` (with keyword arguments) or a layer.

    Example:

    >>> get_fusion("low_rank_tensor", units=16, rank=2)
    <LowRankTensorFusion name=fusion, built=False>
    """
    if isinstance(fusion, keras.layers.Layer):
        return fusion
    check_one_of("fusion", fusion, FUSIONS)
    cls = FUSIONS[fusion]
    inits = [klass.__init__ for klass in cls.__mro__[: cls.__mro__.index(Fusion) + 1]]
    check_kwargs("fusion", fusion, inits, kwargs, extra=("name", "dtype", "trainable"))
    kwargs.setdefault("name", "fusion")
    return cls(**kwargs)
