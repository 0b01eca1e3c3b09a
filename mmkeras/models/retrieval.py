"""Dual encoders for image-text retrieval and zero-shot classification (`DualEncoder`).

`clip_small` trains with CLIP's symmetric contrastive loss, `siglip_small` with SigLIP's pairwise
sigmoid loss; both put a batch-normalised CNN and a bag-of-words text encoder in a 64-wide space.
Train them on a retrieval dataset (`mmkeras train --model clip_small --dataset
fashion_mnist_descriptions`); see docs/retrieval.md.
"""

from mmkeras.models.recipe import register_recipe

DUAL = dict(
    image_encoder={
        "kind": "cnn",
        "filters": (32, 64, 128),
        "padding": "same",
        "pooling": "max",
        "output": "avg",
        "batch_norm": True,
        "batch_norm_momentum": 0.9,  # settles in tens of steps: 0.99 collapses the embeddings of short runs
    },
    text_encoder={"kind": "conv", "embedding_dim": 64, "filters": 128, "kernel_sizes": (1, 2)},
    embedding_dim=64,
    image_shape=(28, 28, 1),
    sequence_length=16,
    vocab_size=1000,
)
TINY = {
    "image_shape": (16, 16, 3),
    "image_encoder": {"filters": (8, 16)},
    "text_encoder": {"embedding_dim": 8, "filters": 8},
    "embedding_dim": 16,
    "sequence_length": 8,
    "vocab_size": 64,
}
TRAINING = {"epochs": 6, "batch_size": 256, "learning_rate": 3e-3, "warmup": 0.1}
# Tuned on the built-in retrieval datasets (docs/retrieval.md): Fashion-MNIST's 54,000 pairs need
# few epochs; easy-VQA's 3,220 scenes need more passes, at a quarter of the pixels.
DATASET_TRAINING = {
    "fashion_mnist_descriptions": {"epochs": 4},
    "easy_vqa_descriptions": {"epochs": 20, "batch_size": 128, "image_shape": (32, 32, 3)},
}

clip_small = register_recipe(
    "clip_small",
    family="retrieval",
    description="A CLIP-style dual encoder: batch-normalised CNN 32/64/128 and bag-of-words/bigram text "
    "towers projected to 64, symmetric contrastive loss with a learned temperature.",
    reference="Radford et al. (2021), Learning Transferable Visual Models From Natural Language Supervision (CLIP)",
    tiny=TINY,
    task="mmkeras.tasks.DualEncoder",
    training=TRAINING,
    dataset_training=DATASET_TRAINING,
    loss="contrastive",
    **DUAL,
)

siglip_small = register_recipe(
    "siglip_small",
    family="retrieval",
    description="clip_small's towers trained with SigLIP's pairwise sigmoid loss (learned scale and bias).",
    reference="Zhai et al. (2023), Sigmoid Loss for Language Image Pre-Training (SigLIP)",
    tiny=TINY,
    task="mmkeras.tasks.DualEncoder",
    training=TRAINING,
    dataset_training=DATASET_TRAINING,
    loss="sigmoid",
    **DUAL,
)
