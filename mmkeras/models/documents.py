"""The source documents' reference models S0 to S4 (see docs/models.md).

Each recipe follows its document's shapes and layers; where a document's code cannot run as
written, the note in its description says what was changed and why.
"""

from mmkeras.models.recipe import register_recipe

DOCUMENTS = "mmkeras source documents"
TINY = {"image_shape": (32, 32, 3), "sequence_length": 12, "vocab_size": 64}

_S0 = dict(
    image_encoder={"kind": "cnn", "filters": (32,), "pooling": None, "output": "flatten"},
    text_encoder={"kind": "rnn", "embedding_dim": 32, "units": 32},
    head="binary",
    image_shape=(64, 64, 3),
    sequence_length=100,
    vocab_size=10000,
    hidden_units=(64,),
)

s0 = register_recipe(
    "s0",
    family="documents",
    description="S0: Conv2D(32)+Flatten on 64x64 images, Embedding+LSTM(32) on 100 token ids, "
    "concatenation, Dense(64), sigmoid. The document feeds the LSTM 2-D token ids, which cannot "
    "run: an Embedding(10000, 32) comes first.",
    reference=f"{DOCUMENTS}, S0",
    tiny=TINY,
    fusion="concatenate",
    **_S0,
)

s0_weighted_sum = register_recipe(
    "s0_weighted_sum",
    family="documents",
    description="S0 with the document's learned weighted-sum fusion (both branches projected to 32).",
    reference=f"{DOCUMENTS}, S0",
    tiny=TINY,
    fusion={"kind": "weighted_sum", "units": 32},
    **_S0,
)

s0_product = register_recipe(
    "s0_product",
    family="documents",
    description="S0 with the document's element-wise product fusion (both branches projected to 32).",
    reference=f"{DOCUMENTS}, S0",
    tiny=TINY,
    fusion={"kind": "product", "units": 32},
    **_S0,
)

s1 = register_recipe(
    "s1",
    family="documents",
    description="S1: 3 x [Conv2D(64/128/256)+MaxPool] + Flatten on 224x224 images, "
    "Embedding(10000, 64)+LSTM(64), concatenation, Dense(128), Dense(64), sigmoid; "
    "adam, binary cross-entropy, accuracy. 23,211,649 parameters.",
    reference=f"{DOCUMENTS}, S1",
    tiny=TINY,
    image_encoder={"kind": "cnn", "filters": (64, 128, 256), "pooling": "max", "output": "flatten"},
    text_encoder={"kind": "rnn", "embedding_dim": 64, "units": 64},
    fusion="concatenate",
    head="binary",
    image_shape=(224, 224, 3),
    sequence_length=100,
    vocab_size=10000,
    hidden_units=(128, 64),
)

s2 = register_recipe(
    "s2",
    family="documents",
    description="S2: Conv2D(32), Conv2D(64) (same padding) with average pooling, pooled globally to "
    "64 features; Embedding(10000, 32)+LSTM(64); concatenation (64 + 64); one logit trained with "
    "binary cross-entropy on logits, adam 1e-3. The document's PyTorch code cannot run (its shapes "
    "do not meet); this is the model it describes.",
    reference=f"{DOCUMENTS}, S2",
    tiny={"sequence_length": 12, "vocab_size": 64},
    image_encoder={"kind": "cnn", "filters": (32, 64), "padding": "same", "pooling": "avg", "output": "avg"},
    text_encoder={"kind": "rnn", "embedding_dim": 32, "units": 64},
    fusion="concatenate",
    head={"kind": "binary", "from_logits": True},
    image_shape=(28, 28, 1),
    sequence_length=100,
    vocab_size=10000,
    hidden_units=(),
    learning_rate=1e-3,
)

s3 = register_recipe(
    "s3",
    family="documents",
    description="S3: the image-only baseline: Conv2D(64)+MaxPool+Flatten+Dense(128) on 224x224 "
    "images, softmax over 10 classes, categorical cross-entropy (integer labels).",
    reference=f"{DOCUMENTS}, S3",
    tiny={"image_shape": (32, 32, 3)},
    image_encoder={"kind": "cnn", "filters": (64,), "pooling": "max", "output": "flatten", "dense_units": (128,)},
    text_encoder=None,
    fusion=None,
    head={"kind": "multiclass", "num_classes": 10},
    image_shape=(224, 224, 3),
    hidden_units=(),
)

_S4 = dict(
    image_encoder={"kind": "cnn", "filters": (32,), "pooling": "max", "output": "flatten"},
    text_encoder={"kind": "rnn", "embedding_dim": 64, "units": 64},
    fusion="concatenate",
    image_shape=(64, 64, 3),
    sequence_length=100,
    vocab_size=10000,
)

s4 = register_recipe(
    "s4",
    family="documents",
    description="S4: multimodal sentiment: Conv2D(32)+MaxPool+Flatten, Embedding+LSTM(64), "
    "concatenation, one sigmoid output named 'sentiment'.",
    reference=f"{DOCUMENTS}, S4",
    tiny=TINY,
    head={"kind": "binary", "name": "sentiment"},
    hidden_units=(),
    **_S4,
)

s4_multitask = register_recipe(
    "s4_multitask",
    family="documents",
    description="S4's multi-task learning: one fused representation, two named outputs trained "
    "jointly: a 10-way image class and a binary text sentiment.",
    reference=f"{DOCUMENTS}, S4",
    tiny=TINY,
    head={
        "kind": "multitask",
        "heads": {
            "image_class": {"kind": "multiclass", "num_classes": 10},
            "sentiment": "binary",
        },
    },
    hidden_units=(64,),
    **_S4,
)
