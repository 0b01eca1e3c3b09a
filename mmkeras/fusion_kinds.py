"""The fusion kinds, by name, with each one's summary: the keras-free half of `mmkeras.fusion`.

`mmkeras.fusion.FUSIONS` maps these names, in this order, to their layers (it refuses to import
otherwise), and each summary is the first line of its layer's docstring
(`tests/test_quiet_cli.py`). The zoo's `fusion_*` recipes read them from here, so `mmkeras list`
answers without importing Keras or TensorFlow.
"""

FUSION_KINDS = {
    "concatenate": "Concatenation (early fusion): the source documents' default.",
    "sum": "Element-wise sum of the (projected) modalities.",
    "weighted_sum": "A learned convex combination: `sum_i softmax(w)_i * x_i`, one scalar weight per modality.",
    "product": "Element-wise (Hadamard) product of the (projected) modalities.",
    "gated": "Gated multimodal unit: learned gates choose, unit by unit, how much of each modality to keep.",
    "attention": "Cross-modal attention: similarity between modalities -> attention weights -> weighted sum.",
    "tensor": "Tensor fusion: the flattened outer product of the modalities, each extended by a 1.",
    "low_rank_tensor": "Low-rank multimodal fusion: tensor fusion computed through rank-`r` modality factors.",
    "sequence": "Sequence fusion: the (projected) modalities read in order by a recurrent layer.",
    "shared_transformer": "Shared-encoder fusion: every modality's tokens, tagged by modality, read by one Transformer.",
    "film": "Feature-wise linear modulation (FiLM): the other modalities scale and shift the first, unit by unit.",
    "mfb": "Multi-modal factorized bilinear pooling (MFB): projected product, sum-pooled, power- and L2-normalised.",
    "multiplicative": "Multiplicative interaction of two modalities: `z^T W x + z^T U + V x + b`, with a 3-D tensor `W`.",
    "deep_set": "Deep Sets: a shared network on every modality, then a mean over the modalities present.",
}
