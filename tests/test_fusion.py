"""The fusion layers compute what their docstrings say, for two and three modalities."""

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
