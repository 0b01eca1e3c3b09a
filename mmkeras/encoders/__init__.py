"""Image and text encoders: builders that return a `keras.Model` from one modality to a vector."""

from mmkeras.encoders.image import (
    IMAGE_ENCODERS,
    applications_encoder,
    cnn_encoder,
    residual_cnn_encoder,
)
from mmkeras.encoders.text import (
    TEXT_ENCODERS,
    TokenAndPositionEmbedding,
    conv_text_encoder,
    rnn_encoder,
    transformer_text_encoder,
)
