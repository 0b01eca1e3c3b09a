"""`build_model`: the one generic builder, a `FusionClassifier` compiled with its defaults.

Every zoo recipe is a set of arguments for it; parts may be passed as names, as
`{"kind": name, **arguments}` dicts, or as ready objects (a `keras.Model` encoder, a fusion
layer, a head).
"""

from mmkeras.tasks.fusion_classifier import FusionClassifier


def build_model(*args, compile=True, **kwargs):
    """Assemble a `FusionClassifier` (encoders -> fusion -> dense layers -> head), compiled.

    Takes the arguments of `mmkeras.tasks.FusionClassifier` (see there), plus:

    Args:
        compile: bool, compile with the task's defaults (the head's loss and metrics, the
            optimizer and learning rate). Defaults to `True`.

    Returns:
        A `FusionClassifier` (a `keras.Model`).

    Example:

    >>> model = build_model(
    ...     image_encoder={"kind": "cnn", "filters": (16, 32), "output": "avg"},
    ...     text_encoder={"kind": "rnn", "units": 32},
    ...     fusion={"kind": "product", "units": 32},
    ...     head="multiclass", num_classes=13,
    ...     image_shape=(64, 64, 3), sequence_length=12, vocab_size=200)
    >>> model.output_names, type(model).__name__
    (['label'], 'FusionClassifier')
    """
    if not isinstance(compile, bool):
        raise ValueError(f"`compile` must be True or False. Received: compile={compile!r}")
    model = FusionClassifier(*args, **kwargs)
    if compile:
        model.compile()
    return model
