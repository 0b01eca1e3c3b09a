"""benchmarks/throughput.py: a quick run writes a row per variant; the hand-written graphs are mmkeras's.

The analytic FLOP count the script's graph count is held to (s1): forward, per Conv2D
`2 * kh * kw * c_in * c_out * h_out * w_out`, per Dense `2 * in * out`, per LSTM
`2 * steps * (in + units) * 4 * units`; training is 3 x forward (the forward pass, the gradient
with respect to the layer's input, the gradient with respect to its weights), except 2 x for the
first convolution, whose input (the image) needs no gradient. Biases, activations and pooling are
left out, so the graph count lies a little above it.
"""

import dataclasses
import json

import pytest

from tests.helpers import load_benchmark


@pytest.fixture(scope="module")
def throughput():
    return load_benchmark("throughput")


def s1_analytic_flops(size, steps, units=64, embedding_dim=64):
    """Training FLOPs per sample of s1 on `size` x `size` x 3 images and `steps` tokens (see the module docstring)."""
    total, side, channels = 0, size, 3
    for i, filters in enumerate((64, 128, 256)):
        side -= 2  # a valid 3x3 convolution
        total += (2 if i == 0 else 3) * 2 * 9 * channels * filters * side * side
        side, channels = side // 2, filters  # 2x2 max pooling
    dense = 2 * (side * side * 256 + units) * 128 + 2 * 128 * 64 + 2 * 64
    lstm = 2 * steps * (embedding_dim + units) * 4 * units
    return total + 3 * (dense + lstm)


def small_s1(throughput):
    return throughput.Case("s1", (32, 32, 3), 12, 10000, 4)


def test_hand_written_parameters_must_equal_mmkeras(throughput):
    case = small_s1(throughput)
    ours = throughput.build_mmkeras(case, "float32")
    assert throughput.check_parameters(ours, throughput.build_by_hand(case, "float32")) == ours.count_params()
    other = throughput.build_by_hand(dataclasses.replace(case, vocab_size=case.vocab_size - 1), "float32")
    with pytest.raises(AssertionError, match="not the graph"):  # one embedding row fewer
        throughput.check_parameters(ours, other)


def test_s1_flops_from_the_graph_match_the_analytic_count(throughput):
    case = small_s1(throughput)
    flops = throughput.training_flops(throughput.build_mmkeras(case, "float32"), case)
    assert flops == pytest.approx(s1_analytic_flops(32, 12), rel=0.1)


def test_pytorch_counts_one_more_lstm_bias(throughput):
    torch = pytest.importorskip("torch")
    for case in (small_s1(throughput), throughput.Case("vqa", (32, 32, 3), 9, 64, 4)):
        net = (throughput.torch_s1 if case.model == "s1" else throughput.torch_vqa)(torch, case)
        keras_parameters = throughput.build_mmkeras(case, "float32").count_params()
        assert throughput.torch_parameters(net) - keras_parameters == (256 if case.model == "s1" else 0)


@pytest.mark.slow
def test_quick_run_writes_a_row_per_variant(throughput, tmp_path):
    path = str(tmp_path / "throughput.json")
    throughput.main(["--quick", "--json", path])
    with open(path, encoding="utf-8") as f:
        result = json.load(f)
    rows = {(r["model"], r["variant"], r["precision"]): r for r in result["rows"]}
    variants = ["mmkeras", "keras"] + (["pytorch"] if result["versions"]["torch"] else [])
    assert set(rows) == {(m, v, p) for m in ("s1", "vqa") for v in variants for p in ("float32", "auto")}
    for row in result["rows"]:
        assert len(row["samples_per_s"]) == 2 and min(row["samples_per_s"]) > 0, row
        assert row["flops_per_sample"] > 0 and row["gflops"] > 0, row
    for (model, variant, precision), row in rows.items():
        ours = rows[(model, "mmkeras", precision)]["parameters"]
        extra = 256 if (model, variant) == ("s1", "pytorch") else 0  # PyTorch's LSTM keeps a second bias
        assert row["parameters"] == ours + extra, row
    assert rows[("s1", "mmkeras", "float32")]["flops_per_sample"] == pytest.approx(s1_analytic_flops(32, 12), rel=0.1)
