"""The fusion layers compute what their docstrings say, for two and three modalities."""

import math
import re

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
    if layer.max_inputs and len(inputs) > layer.max_inputs:
        with pytest.raises(ValueError, match=f"between 2 and {layer.max_inputs} modalities"):
            layer(inputs)
        return
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
    width = layer.units * layer.factors if isinstance(layer, fusion.MFBFusion) else layer.units or xs[0].shape[-1]
    if isinstance(layer, fusion.FiLMFusion):  # only the modulated (first) modality is projected
        assert len(layer.kernels) == 1
        xs = xs[:1]
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


def reference_fusion(layer, inputs, presence=None):
    """What each fusion layer's docstring says it computes, in float64 numpy (`presence`: DeepSets')."""
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
    if isinstance(layer, fusion.FiLMFusion):
        # gamma, beta = [x_2, ..., x_n] W_c + b_c (gamma: the first `width` columns); (1 + gamma) * h + beta.
        h = xs[0]  # P_1 x_1, or x_1 itself when units is None
        width = h.shape[-1]
        params = np.concatenate(raw[1:], axis=-1) @ _np(layer.condition_kernel) + _np(layer.condition_bias)
        assert params.shape[-1] == 2 * width
        return (1 + params[:, :width]) * h + params[:, width:]
    if isinstance(layer, fusion.MFBFusion):
        # Product of the projections, sum over consecutive groups of `factors`, signed sqrt, L2 norm.
        z = np.prod(np.stack(xs), axis=0)
        z = np.stack([z[:, j * layer.factors : (j + 1) * layer.factors].sum(-1) for j in range(layer.units)], -1)
        z = np.sign(z) * np.sqrt(np.abs(z) + 1e-8)
        return z / np.sqrt(np.maximum((z**2).sum(-1, keepdims=True), 1e-12))
    if isinstance(layer, fusion.MultiplicativeFusion):
        # f_k = sum_ij z_i W[i, j, k] x_j + sum_i z_i U[i, k] + sum_j V[j, k] x_j + b_k, written out as loops over i.
        x, z = xs
        w, u, v = _np(layer.interaction_kernel), _np(layer.context_kernel), _np(layer.input_kernel)
        bilinear = sum(z[:, i : i + 1] * (x @ w[i]) for i in range(z.shape[-1]))
        return bilinear + z @ u + x @ v + _np(layer.bias)
    if isinstance(layer, fusion.DeepSetFusion):
        m = np.ones((xs[0].shape[0], n)) if presence is None else np.asarray(presence, "float64")
        phi = [np.maximum(x @ _np(layer.phi_kernel) + _np(layer.phi_bias), 0.0) for x in xs]
        total = sum(np.where(m[:, i : i + 1] > 0, m[:, i : i + 1] * phi[i], 0.0) for i in range(n))  # absent: even NaN
        return total / np.maximum(m.sum(-1, keepdims=True), 1.0)
    raise AssertionError(f"no numpy reference for {type(layer).__name__}")


MIXED = {"two": [A, B], "three": [A, B, C]}  # different widths
COMMON = {"two": SAME[:2], "three": SAME}  # one width
PAIR = {"two": [A, B]}  # layers that fuse two modalities only (they must refuse three)
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
    ("film", {}, MIXED),  # units=None: the first modality modulated as it is
    ("film", {"units": 4}, MIXED),
    ("film", {"units": 4, "activation": "tanh"}, MIXED),
    ("mfb", {"units": 4, "factors": 3}, MIXED),
    ("mfb", {"units": 3, "factors": 1, "activation": "tanh"}, MIXED),
    ("mfb", {"units": 4, "factors": 2, "dropout": 0.5}, MIXED),  # no dropout at inference
    ("multiplicative", {}, PAIR),  # units=None: the first modality's width
    ("multiplicative", {"units": 4}, PAIR),
    ("multiplicative", {"units": 4, "activation": "relu"}, PAIR),
    ("deep_set", {}, MIXED),
    ("deep_set", {"units": 4}, MIXED),
    ("deep_set", {"units": 4, "activation": "tanh"}, MIXED),
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
    layer = fusion.get_fusion(name, **kwargs)
    if count not in inputs:  # a two-modality layer refuses three
        with pytest.raises(ValueError, match=f"between 2 and {layer.max_inputs} modalities"):
            layer(MIXED[count])
        return
    inputs = inputs[count]
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


# --- FiLM, MFB, multiplicative interactions and Deep Sets: what their formulas promise ------------


def test_film_projects_only_the_first_modality_and_starts_from_the_identity():
    layer = fusion.FiLMFusion(units=4)
    layer([A, B, C])
    assert [w.path.split("/")[-1] for w in layer.weights] == ["kernel_0", "bias_0", "condition_kernel", "condition_bias"]
    assert tuple(layer.condition_kernel.shape) == (5 + 2, 2 * 4)  # the other modalities, unprojected
    randomize_weights(layer)
    modulated = ops.convert_to_numpy(layer([A, B, C]))
    assert not np.allclose(modulated, ops.convert_to_numpy(layer([A, B, 2 * C])))  # every condition counts
    layer.condition_kernel.assign(np.zeros((7, 8), "float32"))
    layer.condition_bias.assign(np.zeros(8, "float32"))
    # gamma = beta = 0: the output is h itself, (1 + gamma) * h + beta = h.
    np.testing.assert_allclose(layer([A, B, C]), reference_projection(layer, [A, B, C])[0], rtol=1e-5, atol=1e-6)


def test_mfb_has_unit_norm_and_drops_out_only_in_training():
    layer = fusion.MFBFusion(units=4, factors=3, dropout=0.5)
    inference = ops.convert_to_numpy(layer([A, B, C]))
    training = ops.convert_to_numpy(layer([A, B, C], training=True))
    for out in (inference, training):
        np.testing.assert_allclose(np.linalg.norm(out, axis=-1), 1.0, atol=1e-5)
    assert not np.allclose(training, inference)
    plain = fusion.MFBFusion(units=4, factors=3)
    plain([A, B, C])
    plain.set_weights(layer.get_weights())  # the dropout adds no weights
    np.testing.assert_allclose(plain([A, B, C], training=True), inference, atol=1e-6)
    clone = fusion.MFBFusion.from_config(layer.get_config())
    assert clone.get_config() == layer.get_config() and clone.get_config()["dropout"] == 0.5


def test_mfb_signed_square_root_keeps_gradients_finite_at_zero():
    layer = fusion.MFBFusion(units=2, factors=2)
    zeros = [np.zeros((2, 3), "float32"), np.zeros((2, 5), "float32")]
    layer(zeros)  # the biases are zero: every pooled value is exactly 0
    import tensorflow as tf

    with tf.GradientTape() as tape:
        out = layer(zeros)
    grads = tape.gradient(out, layer.trainable_weights)
    assert all(np.isfinite(ops.convert_to_numpy(g)).all() for g in grads)
    np.testing.assert_array_equal(ops.convert_to_numpy(out), 0.0)


def test_multiplicative_parameter_count_and_two_modalities_only():
    layer = fusion.MultiplicativeFusion(units=4)
    layer([A, B])
    u = 4
    assert layer.count_params() == (3 + 1) * u + (5 + 1) * u + u**3 + 2 * u**2 + u
    assert tuple(layer.interaction_kernel.shape) == (u, u, u)
    with pytest.raises(ValueError, match=re.escape("between 2 and 2 modalities. Received: 3 inputs")):
        fusion.MultiplicativeFusion(units=4)([A, B, C])


def test_multiplicative_is_bilinear_in_the_projected_modalities():
    """Without the projections' biases, f(x, z) - f(x, 0) - f(0, z) + f(0, 0) = z^T W x: it scales by a * b."""
    layer = fusion.MultiplicativeFusion(units=4)
    layer([A, B])
    randomize_weights(layer)
    for bias in layer.biases:
        bias.assign(np.zeros(4, "float32"))

    def interaction(a, b):
        f = lambda x, z: ops.convert_to_numpy(layer([x, z])).astype("float64")  # noqa: E731
        return f(a * A, b * B) - f(a * A, 0 * B) - f(0 * A, b * B) + f(0 * A, 0 * B)

    np.testing.assert_allclose(interaction(2.0, 3.0), 6.0 * interaction(1.0, 1.0), rtol=1e-4, atol=1e-4)


PRESENCE = np.array([[1, 1, 1], [1, 0, 1], [0, 0, 1], [0, 0, 0]], "float32")  # the last row: nothing present


@pytest.mark.parametrize("count", ["two", "three"])
def test_deep_set_masked_mean_matches_its_numpy_reference(count):
    inputs, presence = MIXED[count], PRESENCE[:, : {"two": 2, "three": 3}[count]]
    layer = fusion.DeepSetFusion(units=4, activation="tanh")
    layer(inputs)
    randomize_weights(layer)
    for mask in (presence, presence.astype(bool), 0.5 * presence):
        out = ops.convert_to_numpy(layer(inputs, presence=mask))
        np.testing.assert_allclose(out, reference_fusion(layer, inputs, presence=mask), rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(out[3], 0.0)  # no modality present: zeros, not phi of anything
    everything = np.ones((4, len(inputs)), "float32")
    np.testing.assert_allclose(layer(inputs, presence=everything), layer(inputs), rtol=1e-6, atol=1e-6)


def test_deep_set_ignores_absent_modalities_whatever_their_values():
    layer = fusion.DeepSetFusion(units=4)
    layer([A, B, C])
    randomize_weights(layer)
    expected = ops.convert_to_numpy(layer([A, B, C], presence=PRESENCE))
    for absent in (np.full_like(B, 1e6), np.full_like(B, np.nan)):
        b = np.where(PRESENCE[:, 1:2] > 0, B, absent)  # B replaced where it is absent
        np.testing.assert_array_equal(ops.convert_to_numpy(layer([A, b, C], presence=PRESENCE)), expected)


def test_deep_set_does_not_depend_on_the_order_of_the_modalities():
    layer = fusion.DeepSetFusion(units=4)
    layer([A, B, C])
    randomize_weights(layer)
    order = [2, 0, 1]
    permuted = fusion.DeepSetFusion(units=4)
    permuted([C, A, B])
    kernels, biases, phi = layer.get_weights()[0:6:2], layer.get_weights()[1:6:2], layer.get_weights()[6:]
    permuted.set_weights([w for i in order for w in (kernels[i], biases[i])] + phi)
    for presence in (None, PRESENCE):
        out = layer([A, B, C], presence=presence)
        swapped = permuted([C, A, B], presence=None if presence is None else presence[:, order])
        np.testing.assert_allclose(ops.convert_to_numpy(swapped), ops.convert_to_numpy(out), rtol=1e-6, atol=1e-6)


def test_deep_set_takes_presence_in_a_functional_model():
    inputs = [keras.Input((3,)), keras.Input((5,))]
    presence = keras.Input((2,), dtype="bool")
    layer = fusion.get_fusion("deep_set", units=4)
    assert layer.uses_presence and not fusion.get_fusion("sum", units=4).uses_presence
    model = keras.Model([*inputs, presence], layer(inputs, presence=presence))
    mask = PRESENCE[:, :2].astype(bool)
    np.testing.assert_allclose(model.predict([A, B, mask], verbose=0), layer([A, B], presence=mask), atol=1e-6)


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: fusion.MFBFusion(units=0), "`units` must be a positive integer. Received: units=0"),
        (lambda: fusion.MFBFusion(units=None), "`units` must be a positive integer. Received: units=None"),
        (lambda: fusion.MFBFusion(factors=2.5), "`factors` must be a positive integer. Received: factors=2.5"),
        (lambda: fusion.MFBFusion(factors=0), "`factors` must be a positive integer. Received: factors=0"),
        (lambda: fusion.MFBFusion(dropout=1.0), "`dropout` must be a number in [0, 1). Received: dropout=1.0"),
        (lambda: fusion.FiLMFusion(units=-1), "`units` must be a positive integer. Received: units=-1"),
        (lambda: fusion.MultiplicativeFusion(units="64"), "`units` must be a positive integer. Received: units='64'"),
        (lambda: fusion.DeepSetFusion(units=0), "`units` must be a positive integer. Received: units=0"),
        (lambda: fusion.get_fusion("mfb", rank=2), "Invalid arguments for `fusion` 'mfb': ['rank']"),
        (lambda: fusion.get_fusion("film", factors=2), "Invalid arguments for `fusion` 'film': ['factors']"),
        (lambda: fusion.get_fusion("deep_set", presence=None), "Invalid arguments for `fusion` 'deep_set': ['presence']"),
        (
            lambda: fusion.MultiplicativeFusion()([A]),
            "MultiplicativeFusion fuses between 2 and 2 modalities. Received: 1 inputs",
        ),
        (
            lambda: fusion.DeepSetFusion(units=4)([A, B, C], presence=PRESENCE[:, :2]),
            "`presence` must have shape (batch, 3): one column per modality. Received: presence with shape (4, 2)",
        ),
    ],
    ids=["mfb-units", "mfb-units-none", "mfb-factors-float", "mfb-factors", "mfb-dropout", "film-units",
         "multiplicative-units", "deep_set-units", "mfb-kwargs", "film-kwargs", "deep_set-presence-kwarg",
         "multiplicative-one", "deep_set-presence-shape"],
)
def test_new_fusions_name_a_bad_argument(make, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        make()
