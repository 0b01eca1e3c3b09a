"""One recipe per fusion method over the same encoders, so fusions compare like with like,
plus recipes that put the other encoders (residual CNN, keras.applications backbone, 1-D conv
and Transformer text encoders) to work."""

from mmkeras.fusion_kinds import FUSION_KINDS
from mmkeras.models.recipe import register_recipe

TINY = {"image_shape": (32, 32, 3), "sequence_length": 12, "vocab_size": 64}

BASE = dict(
    image_encoder={"kind": "cnn", "filters": (32, 64, 128), "pooling": "max", "output": "avg"},
    text_encoder={"kind": "rnn", "embedding_dim": 64, "units": 64},
    head="binary",
    image_shape=(64, 64, 3),
    sequence_length=32,
    vocab_size=10000,
    hidden_units=(64,),
)

FUSION_ARGS = {
    "concatenate": {},
    "sum": {"units": 64},
    "weighted_sum": {"units": 64},
    "product": {"units": 64},
    "gated": {"units": 64},
    "attention": {"units": 64},
    "tensor": {"units": 16},
    "low_rank_tensor": {"units": 64, "rank": 4},
    "sequence": {"units": 64},
    "shared_transformer": {"units": 64, "num_heads": 4},
    "film": {"units": 64},
    "mfb": {"units": 64, "factors": 5},
    "multiplicative": {"units": 64},
    "deep_set": {"units": 64},
}

for _method, _args in FUSION_ARGS.items():
    register_recipe(
        f"fusion_{_method}",
        family="fusion",
        description=f"{FUSION_KINDS[_method].rstrip('.')}; "
        "over a CNN 32/64/128 and an Embedding+LSTM(64), then Dense(64) and a sigmoid.",
        reference=FUSION_KINDS[_method],
        tiny=TINY,
        fusion={"kind": _method, **_args},
        **BASE,
    )

register_recipe(
    "late_fusion",
    family="baseline",
    description="Late fusion: each modality's encoder and its own linear classifier, their logits summed "
    "(a sum fusion straight into a linear head); the baseline of effective robustness (docs/robustness.md).",
    reference="Late fusion, the baseline of MultiBench's effective robustness (Liang et al. 2021)",
    tiny=TINY,
    **{**BASE, "fusion": {"kind": "sum", "units": 64}, "hidden_units": ()},
)

register_recipe(
    "residual_transformer",
    family="encoders",
    description="A small residual CNN and a Transformer text encoder, joined by cross-modal attention.",
    tiny={**TINY, "image_encoder": {"filters": (8, 16)}, "text_encoder": {"embedding_dim": 16}},
    image_encoder={"kind": "residual_cnn", "filters": (32, 64, 128)},
    text_encoder={"kind": "transformer", "embedding_dim": 64, "num_heads": 2, "intermediate_dim": 128},
    fusion={"kind": "attention", "units": 64},
    head="binary",
    image_shape=(64, 64, 3),
    sequence_length=32,
    vocab_size=10000,
    hidden_units=(64,),
)

register_recipe(
    "mobilenet_conv_text",
    family="encoders",
    description="A keras.applications MobileNetV3Small backbone (random or local weights) and a "
    "1-D convolution text encoder, joined by a gated multimodal unit.",
    tiny={**TINY, "text_encoder": {"filters": 8}},
    image_encoder={"kind": "applications", "backbone": "MobileNetV3Small"},
    text_encoder={"kind": "conv", "embedding_dim": 64, "filters": 64},
    fusion={"kind": "gated", "units": 64},
    head="binary",
    image_shape=(224, 224, 3),
    sequence_length=32,
    vocab_size=10000,
    hidden_units=(64,),
)
