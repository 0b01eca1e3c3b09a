"""Image and text encoders: builders that return a `keras.Model` from one modality to a vector (or, for
the `patch` and `embedding` stems of a single-stream model, to a sequence of tokens)."""

from mmkeras.encoders.image import (
    IMAGE_ENCODERS,
    PositionEmbedding,
    applications_encoder,
    cnn_encoder,
    patch_encoder,
    residual_cnn_encoder,
)
from mmkeras.encoders.text import (
    TEXT_ENCODERS,
    TokenAndPositionEmbedding,
    conv_text_encoder,
    embedding_encoder,
    rnn_encoder,
    transformer_text_encoder,
)
