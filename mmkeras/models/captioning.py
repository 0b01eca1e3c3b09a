"""Captioners (`Captioner`): an image encoder's sequence of vectors read by a decoder.

`caption_transformer` reads a CNN's 8x8 feature map with Transformer decoder blocks (causal
self-attention, cross-attention on the image); `caption_lstm` is Show and Tell: the mean image
vector starts an LSTM. Train them on a captioning dataset (`mmkeras train --model
caption_transformer --dataset easy_vqa_captions`); see docs/captioning.md.
"""

from mmkeras.models.recipe import register_recipe

IMAGE_ENCODER = {
    "kind": "cnn",
    "filters": (32, 64, 128),
    "padding": "same",
    "pooling": "max",
    "output": "sequence",
    "batch_norm": True,
    "batch_norm_momentum": 0.9,
}
COMMON = dict(image_encoder=IMAGE_ENCODER, image_shape=(64, 64, 3), sequence_length=16, vocab_size=1000, beam_width=3)
TINY = {
    "image_shape": (16, 16, 3),
    "image_encoder": {"filters": (8, 16)},
    "units": 16,
    "sequence_length": 6,
    "vocab_size": 64,
}
TRAINING = {"epochs": 10, "batch_size": 64, "learning_rate": 2e-3, "warmup": 0.05}
DATASET_TRAINING = {
    "easy_vqa_captions": {"epochs": 10, "image_shape": (32, 32, 3)},
    "fashion_mnist_pair_captions": {"epochs": 4, "batch_size": 128},
}

caption_transformer = register_recipe(
    "caption_transformer",
    family="captioning",
    description="A captioner: a batch-normalised CNN 32/64/128 read as a sequence by 2 Transformer decoder "
    "blocks (width 128, 4 heads) with causal self-attention and cross-attention; beam search 3.",
    reference="Vaswani et al. (2017), Attention Is All You Need (the decoder)",
    tiny={**TINY, "num_layers": 1, "num_heads": 2},
    task="mmkeras.tasks.Captioner",
    training=TRAINING,
    dataset_training=DATASET_TRAINING,
    decoder="transformer",
    units=128,
    num_layers=2,
    num_heads=4,
    dropout=0.1,
    **COMMON,
)

caption_lstm = register_recipe(
    "caption_lstm",
    family="captioning",
    description="Show and Tell: the same CNN's mean vector sets the initial state of an LSTM(256) that "
    "writes the caption; beam search 3.",
    reference="Vinyals et al. (2015), Show and Tell: A Neural Image Caption Generator",
    tiny=TINY,
    task="mmkeras.tasks.Captioner",
    training=TRAINING,
    dataset_training=DATASET_TRAINING,
    decoder="lstm",
    units=256,
    dropout=0.0,
    **COMMON,
)
