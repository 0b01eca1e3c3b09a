"""The fusion layers compute what their docstrings say, for two and three modalities."""

import math

import keras
import numpy as np
import pytest
from keras import ops

from mmkeras import fusion

RNG = np.random.default_rng(0)
A = RNG.normal(size=(4, 3)).astype("float32")
B = RNG.normal(size=(4, 5)).astype("float32")
C = RNG.normal(size=(4, 2)).astype("float32")
SAME = [RNG.normal(size=(4, 3)).astype("float32") for _ in range(3)]

UNITS = {"concatenate": {}, "tensor": {"units": 2}, "low_rank_tensor": {"units": 6, "rank": 2}}


@pytest.mark.parametrize("name", sorted(fusion.FUSIONS))
@pytest.mark.parametrize("inputs", [[A, B], [A, B, C]], ids=["two", "three"])
def test_every_fusion_takes_modalities_of_different_widths(name, inputs):
    layer = fusion.get_fusion(name, **UNITS.get(name, {"units": 6}))
    out = ops.convert_to_numpy(layer(inputs))
    assert out.shape[0] == 4 and np.isfinite(out).all()


@pytest.mark.parametrize("name", sorted(fusion.FUSIONS))
def test_every_fusion_rebuilds_from_its_config(name):
    layer = fusion.get_fusion(name, **UNITS.get(name, {"units": 6}))
    expected = ops.convert_to_numpy(layer([A, B]))
    clone = type(layer).from_config(layer.get_config())
    clone([A, B])
    clone.set_weights(layer.get_weights())
    np.testing.assert_allclose(ops.convert_to_numpy(clone([A, B])), expected, atol=1e-6)
    assert clone.get_config() == layer.get_config()


def test_concatenate_without_units_is_plain_concatenation():
    np.testing.assert_allclose(fusion.ConcatenateFusion()([A, B]), np.concatenate([A, B], -1))


def test_sum_and_product_without_projection():
    np.testing.assert_allclose(fusion.SumFusion()(SAME), sum(SAME), atol=1e-6)
    np.testing.assert_allclose(fusion.ProductFusion()(SAME), SAME[0] * SAME[1] * SAME[2], atol=1e-6)


def test_weighted_sum_starts_as_the_mean_and_its_weights_sum_to_one():
    layer = fusion.WeightedSumFusion()
    np.testing.assert_allclose(layer(SAME), sum(SAME) / 3, atol=1e-6)
    layer.modality_logits.assign([2.0, 0.0, -1.0])
    weights = ops.convert_to_numpy(layer.modality_weights())
    assert weights.sum() == pytest.approx(1.0) and weights[0] > weights[1] > weights[2]
    np.testing.assert_allclose(layer(SAME), sum(w * x for w, x in zip(weights, SAME)), atol=1e-5)


def test_tensor_fusion_is_the_outer_product_with_ones():
    out = ops.convert_to_numpy(fusion.TensorFusion()([A, C]))
    a1 = np.concatenate([A, np.ones((4, 1))], -1)
    c1 = np.concatenate([C, np.ones((4, 1))], -1)
    np.testing.assert_allclose(out, np.einsum("bi,bj->bij", a1, c1).reshape(4, -1), atol=1e-6)
    assert out.shape == (4, (3 + 1) * (2 + 1))
    # The trailing 1s keep each unimodal vector inside the fused one.
    np.testing.assert_allclose(out.reshape(4, 4, 3)[:, :3, -1], A, atol=1e-6)


def test_low_rank_fusion_equals_a_dense_layer_on_tensor_fusion_with_the_rebuilt_weight():
    layer = fusion.LowRankTensorFusion(units=5, rank=3)
    out = ops.convert_to_numpy(layer([A, C]))
    fa, fc = (ops.convert_to_numpy(f) for f in layer.factors)
    w = ops.convert_to_numpy(layer.rank_weights)
    full = np.einsum("r,riu,rju->iju", w, fa, fc).reshape(-1, 5)  # the rank-3 weight tensor
    tensor = ops.convert_to_numpy(fusion.TensorFusion()([A, C]))
    np.testing.assert_allclose(out, tensor @ full + ops.convert_to_numpy(layer.bias), atol=1e-4)


def test_gated_fusion_is_a_convex_mix_of_the_tanh_units():
    layer = fusion.GatedFusion(units=4)
    out = ops.convert_to_numpy(layer([A, B]))
    hidden = np.stack([np.tanh(x @ ops.convert_to_numpy(k) + ops.convert_to_numpy(b))
                       for x, k, b in zip([A, B], layer.kernels, layer.biases)], 1)
    assert np.all(out <= hidden.max(1) + 1e-6) and np.all(out >= hidden.min(1) - 1e-6)


def test_attention_weights_are_a_distribution_over_modalities():
    layer = fusion.AttentionFusion(units=4)
    layer([A, B, C])
    weights = ops.convert_to_numpy(layer.attention_weights([A, B, C]))
    assert weights.shape == (4, 3, 3)
    np.testing.assert_allclose(weights.sum(-1), 1.0, atol=1e-6)


def test_sequence_fusion_depends_on_the_order_of_the_modalities():
    layer = fusion.SequenceFusion(units=4)
    forward = ops.convert_to_numpy(layer([A, B]))
    assert forward.shape == (4, 4)
    kernels = layer.get_weights()
    swapped = fusion.SequenceFusion(units=4)
    swapped([B, A])
    # Same projections (swapped with the inputs) and the same GRU: only the order differs.
    swapped.set_weights([kernels[2], kernels[3], kernels[0], kernels[1], *kernels[4:]])
    assert not np.allclose(ops.convert_to_numpy(swapped([B, A])), forward)


def test_layers_that_need_one_width_say_so():
    with pytest.raises(ValueError, match="set `units`"):
        fusion.ProductFusion()([A, B])
    with pytest.raises(ValueError, match="between 2 and 3"):
        fusion.TensorFusion()([A, B, C, A])


# --- Every formula, projections included, against a float64 numpy reference -----------------------
#
# The reference reads the layer's own weights by name (`kernels`, `gate_kernel`, `rnn.cell`, ...)
# after they are all set to random values (biases and logits included, so a reference or a layer
# that drops a bias cannot pass), and writes each formula out again in numpy.

NUMPY_ACTIVATIONS = {
    "linear": lambda x: x,
    "tanh": np.tanh,
    "relu": lambda x: np.maximum(x, 0.0),
    "sigmoid": lambda x: 1.0 / (1.0 + np.exp(-x)),
}


def _np(variable):
    return ops.convert_to_numpy(variable).astype("float64")


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def _softmax(x, axis):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def reference_projection(layer, inputs):
    """`P_i x_i = activation(x_i W_i + b_i)` for every modality; the inputs as they are otherwise."""
    xs = [np.asarray(x, "float64") for x in inputs]
    project = layer.always_project or layer.units is not None
    if isinstance(layer, fusion.LowRankTensorFusion) or not project:
        assert not layer.kernels  # no projection weights either
        return xs
    width = layer.units or xs[0].shape[-1]
    activation = NUMPY_ACTIVATIONS[layer.get_config()["activation"]]
    projected = []
    for x, kernel, bias in zip(xs, layer.kernels, layer.biases):
        kernel, bias = _np(kernel), _np(bias)
        assert kernel.shape == (x.shape[-1], width) and bias.shape == (width,)
        projected.append(activation(x @ kernel + bias))
    return projected


def reference_gru(cell, xs):
    """Keras' GRU (reset_after=True, gates z, r, h), final state, from zeros."""
    assert cell.reset_after and cell.use_bias
    kernel, recurrent, bias = _np(cell.kernel), _np(cell.recurrent_kernel), _np(cell.bias)
    u = cell.units
    h = np.zeros((xs[0].shape[0], u))
    for x in xs:
        gx = x @ kernel + bias[0]
        gh = h @ recurrent + bias[1]
        z = _sigmoid(gx[:, :u] + gh[:, :u])
        r = _sigmoid(gx[:, u : 2 * u] + gh[:, u : 2 * u])
        candidate = np.tanh(gx[:, 2 * u :] + r * gh[:, 2 * u :])
        h = z * h + (1 - z) * candidate
    return h


def reference_lstm(cell, xs):
    """Keras' LSTM (gates i, f, c, o), final hidden state, from zeros."""
    kernel, recurrent, bias = _np(cell.kernel), _np(cell.recurrent_kernel), _np(cell.bias)
    u = cell.units
    h = c = np.zeros((xs[0].shape[0], u))
    for x in xs:
        g = x @ kernel + h @ recurrent + bias
        i, f, o = _sigmoid(g[:, :u]), _sigmoid(g[:, u : 2 * u]), _sigmoid(g[:, 3 * u :])
        c = f * c + i * np.tanh(g[:, 2 * u : 3 * u])
        h = o * np.tanh(c)
    return h


def reference_layer_norm(norm, x):
    mean, variance = x.mean(-1, keepdims=True), x.var(-1, keepdims=True)
    return (x - mean) / np.sqrt(variance + norm.epsilon) * _np(norm.gamma) + _np(norm.beta)


def _gelu(x):
    return 0.5 * x * (1.0 + np.vectorize(math.erf)(x / math.sqrt(2.0)))


def reference_transformer_block(block, x, keep):
    """A pre-norm encoder block: `x + MHA(LN(x))`, then `x + W_2 gelu(W_1 LN(x) + b_1) + b_2`;
    `keep` (batch, tokens) says which tokens may be attended to."""
    w = {"/".join(v.path.split("/")[-2:]): _np(v) for v in block.weights}
    h = reference_layer_norm(block.attention_norm, x)
    q, k, v = (np.einsum("btd,dnh->btnh", h, w[f"{p}/kernel"]) + w[f"{p}/bias"] for p in ("query", "key", "value"))
    scores = np.einsum("btnh,bsnh->bnts", q, k) / np.sqrt(q.shape[-1])
    weights = _softmax(np.where(keep[:, None, None, :], scores, -np.inf), axis=-1)
    context = np.einsum("bnts,bsnh->btnh", weights, v)
    x = x + np.einsum("btnh,nhd->btd", context, w["attention_output/kernel"]) + w["attention_output/bias"]
    h = reference_layer_norm(block.ffn_norm, x)
    return x + _gelu(h @ w["ffn_in/kernel"] + w["ffn_in/bias"]) @ w["ffn_out/kernel"] + w["ffn_out/bias"]


def reference_shared_transformer(layer, xs, keeps):
    """`[CLS, P_1 x_1 + t_1, ..., P_n x_n + t_n]` through every block; the normalised CLS state.
    `xs` are projected sequences (batch, length_i, width); `keeps` their (batch, length_i) masks."""
    batch, width = xs[0].shape[0], xs[0].shape[-1]
    types = _np(layer.type_embeddings)
    tokens = np.concatenate([np.tile(_np(layer.cls_token), (batch, 1, 1))] + [x + types[i] for i, x in enumerate(xs)], axis=1)
    keep = np.concatenate([np.ones((batch, 1), bool)] + list(keeps), axis=1)
    assert tokens.shape == (batch, keep.shape[1], width) and len(layer.blocks) == layer.num_layers
    for block in layer.blocks:
        tokens = reference_transformer_block(block, tokens, keep)
    return reference_layer_norm(layer.final_norm, tokens[:, 0])


def reference_fusion(layer, inputs):
    """What each fusion layer's docstring says it computes, in float64 numpy."""
    raw = [np.asarray(x, "float64") for x in inputs]
    xs = reference_projection(layer, inputs)
    n = len(xs)
    if isinstance(layer, fusion.ConcatenateFusion):
        return np.concatenate(xs, axis=-1)
    if isinstance(layer, fusion.SumFusion):
        return sum(xs)
    if isinstance(layer, fusion.WeightedSumFusion):
        w = _softmax(_np(layer.modality_logits), axis=0)
        return sum(w_i * x for w_i, x in zip(w, xs))
    if isinstance(layer, fusion.ProductFusion):
        return np.prod(np.stack(xs), axis=0)
    if isinstance(layer, fusion.GatedFusion):
        # h_i = tanh(x_i W_i + b_i); gates from the raw modalities, one softmax over modalities per unit.
        width = xs[0].shape[-1]
        logits = np.concatenate(raw, axis=-1) @ _np(layer.gate_kernel) + _np(layer.gate_bias)
        gates = _softmax(logits.reshape(-1, n, width), axis=1)  # logit i * width + u gates modality i, unit u
        return sum(gates[:, i] * xs[i] for i in range(n))
    if isinstance(layer, fusion.AttentionFusion):
        width = xs[0].shape[-1]
        q = [x @ _np(layer.query_kernel) for x in xs]
        k = [x @ _np(layer.key_kernel) for x in xs]
        v = [x @ _np(layer.value_kernel) for x in xs]
        out = 0.0
        for i in range(n):  # modality i attends over every modality j
            scores = np.stack([(q[i] * k[j]).sum(-1) for j in range(n)], axis=-1) / np.sqrt(width)
            weights = _softmax(scores, axis=-1)
            context = sum(weights[:, j : j + 1] * v[j] for j in range(n))
            out = out + xs[i] + context
        return out / n
    if isinstance(layer, fusion.TensorFusion):
        fused = np.ones((xs[0].shape[0], 1))
        for x in xs:
            x1 = np.concatenate([x, np.ones((x.shape[0], 1))], axis=-1)
            fused = np.einsum("bi,bj->bij", fused, x1).reshape(x.shape[0], -1)
        return fused
    if isinstance(layer, fusion.LowRankTensorFusion):
        product = 1.0
        for x, factor in zip(xs, layer.factors):
            x1 = np.concatenate([x, np.ones((x.shape[0], 1))], axis=-1)
            product = product * np.einsum("bd,rdu->bru", x1, _np(factor))
        return np.einsum("bru,r->bu", product, _np(layer.rank_weights)) + _np(layer.bias)
    if isinstance(layer, fusion.SequenceFusion):
        cell = layer.rnn.cell
        assert type(cell) is {"gru": keras.layers.GRUCell, "lstm": keras.layers.LSTMCell}[layer.cell]
        return (reference_gru if layer.cell == "gru" else reference_lstm)(cell, xs)
    if isinstance(layer, fusion.SharedTransformerFusion):  # each vector is one token
        return reference_shared_transformer(layer, [x[:, None, :] for x in xs], [np.ones((x.shape[0], 1), bool) for x in xs])
    raise AssertionError(f"no numpy reference for {type(layer).__name__}")


MIXED = {"two": [A, B], "three": [A, B, C]}  # different widths
COMMON = {"two": SAME[:2], "three": SAME}  # one width
REFERENCE_CASES = [
    ("concatenate", {}, MIXED),
    ("concatenate", {"units": 4}, MIXED),
    ("concatenate", {"units": 4, "activation": "relu"}, MIXED),
    ("sum", {}, COMMON),
    ("sum", {"units": 4}, MIXED),
    ("sum", {"units": 4, "activation": "tanh"}, MIXED),
    ("weighted_sum", {}, COMMON),
    ("weighted_sum", {"units": 4}, MIXED),
    ("product", {}, COMMON),
    ("product", {"units": 4}, MIXED),
    ("gated", {}, MIXED),  # units=None: the first modality's width
    ("gated", {"units": 4}, MIXED),
    ("attention", {}, MIXED),
    ("attention", {"units": 4}, MIXED),
    ("attention", {}, COMMON),  # projects even when the widths already match
    ("tensor", {}, MIXED),
    ("tensor", {"units": 2}, MIXED),
    ("low_rank_tensor", {"units": 5, "rank": 3}, MIXED),
    ("sequence", {}, MIXED),
    ("sequence", {"units": 4}, MIXED),
    ("sequence", {"units": 4, "cell": "lstm"}, MIXED),
    ("shared_transformer", {"num_heads": 1}, MIXED),  # units=None: the first modality's width (3)
    ("shared_transformer", {"units": 4, "num_layers": 2}, MIXED),
    ("shared_transformer", {"units": 4, "intermediate_dim": 6, "activation": "tanh"}, MIXED),
]


def randomize_weights(layer, seed=0):
    """Every weight of the layer (zero-initialised biases and logits too) to random values."""
    rng = np.random.default_rng(seed)
    layer.set_weights([rng.normal(scale=0.5, size=w.shape).astype(w.dtype) for w in layer.get_weights()])


def test_reference_cases_cover_every_fusion():
    assert {name for name, _, _ in REFERENCE_CASES} == set(fusion.FUSIONS)


@pytest.mark.parametrize("count", ["two", "three"])
@pytest.mark.parametrize(
    "name, kwargs, inputs",
    REFERENCE_CASES,
    ids=[
        "-".join([n, *(f"{k}={v}" for k, v in kw.items()), "same_width" if inputs is COMMON else "mixed_widths"])
        for n, kw, inputs in REFERENCE_CASES
    ],
)
def test_fusion_matches_its_numpy_reference(name, kwargs, inputs, count):
    inputs = inputs[count]
    layer = fusion.get_fusion(name, **kwargs)
    layer(inputs)
    randomize_weights(layer)
    out = ops.convert_to_numpy(layer(inputs))
    expected = reference_fusion(layer, inputs)
    assert out.shape == expected.shape
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)


def test_attention_weights_match_the_reference_softmax():
    layer = fusion.AttentionFusion(units=4)
    layer([A, B, C])
    randomize_weights(layer)
    hidden = np.stack(reference_projection(layer, [A, B, C]), axis=1)
    q, k = hidden @ _np(layer.query_kernel), hidden @ _np(layer.key_kernel)
    expected = _softmax(np.einsum("bqd,bkd->bqk", q, k) / 2.0, axis=-1)  # sqrt(units=4)
    np.testing.assert_allclose(ops.convert_to_numpy(layer.attention_weights([A, B, C])), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("count", ["two", "three"])
def test_shared_transformer_matches_its_numpy_reference_on_masked_sequences(count):
    """Sequences of different lengths and widths, one with padding masked (rows keep 2, all, 1, 4 tokens)."""
    patches = RNG.normal(size=(4, 5, 3)).astype("float32")
    words = RNG.normal(size=(4, 6, 5)).astype("float32")
    keep = np.arange(6)[None, :] < np.array([[2], [6], [1], [4]])
    inputs, masks = [patches, words, C][: {"two": 2, "three": 3}[count]], [None, keep, None]
    layer = fusion.get_fusion("shared_transformer", units=4, num_layers=2)
    layer(inputs, mask=masks[: len(inputs)])
    randomize_weights(layer)
    out = ops.convert_to_numpy(layer(inputs, mask=masks[: len(inputs)]))
    projected = reference_projection(layer, inputs)
    sequences = [x if x.ndim == 3 else x[:, None, :] for x in projected]
    keeps = [np.ones(x.shape[:2], bool) if m is None else m for x, m in zip(sequences, masks)]
    expected = reference_shared_transformer(layer, sequences, keeps)
    assert out.shape == expected.shape == (4, 4)
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)
