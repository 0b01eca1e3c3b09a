"""The default recipe: a lean CNN + bag-of-words model for visual question answering.

`vqa` is what `mmkeras train` trains by default. It is tuned for easy-VQA on CPUs: a small
batch-normalised CNN on the image, a bag-of-words text encoder (an embedding per token, max-pooled:
1-D convolutions of width 1), product fusion (the question gates the image features, after
Antol et al. 2015, "VQA: Visual Question Answering"), one hidden layer and a softmax over the
answers, trained with Adam on a warm-up + cosine learning-rate schedule (see
`mmkeras.training`). Its training defaults live in its registry entry.
"""

from mmkeras.models.recipe import register_recipe

VQA = dict(
    image_encoder={
        "kind": "cnn",
        "filters": (16, 32, 64),
        "padding": "same",
        "pooling": "max",
        "output": "avg",
        "batch_norm": True,
    },
    text_encoder={"kind": "conv", "embedding_dim": 32, "filters": 64, "kernel_sizes": (1,)},
    fusion={"kind": "product", "units": 64},
    head={"kind": "multiclass", "num_classes": 13, "name": "answer"},
    image_shape=(64, 64, 3),
    sequence_length=9,
    vocab_size=64,
    hidden_units=(64,),
)

vqa = register_recipe(
    "vqa",
    family="vqa",
    description="The default recipe: batch-normalised CNN 16/32/64 + global pooling, bag-of-words "
    "text encoder, product fusion, Dense(64), softmax over 13 answers (tuned on easy-VQA).",
    reference="mmkeras; product fusion after Antol et al. (2015), VQA: Visual Question Answering",
    tiny={"image_shape": (32, 32, 3), "image_encoder": {"filters": (8, 16)}, "text_encoder": {"filters": 8}},
    training={"epochs": 8, "batch_size": 128, "learning_rate": 3e-3, "warmup": 0.1},
    # easy-VQA's 64x64 images are scaled to 32x32 once, in preprocessing (the Preprocessor keeps
    # the shape, so prediction and export resize the same way): a quarter of the pixels, the same
    # answers.
    dataset_training={name: {"image_shape": (32, 32, 3)} for name in ("easy_vqa", "easy_vqa_yes_no")},
    **VQA,
)
