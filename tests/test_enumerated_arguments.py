"""Every enumerated argument refuses an unknown value, naming the argument and what it accepts.

The house form (`mmkeras.validation.check_one_of`, `check_bool`):
"`padding` must be one of ['same', 'valid']. Received: padding='x'".
`test_every_checked_argument_has_a_case` keeps the list below complete: an argument checked with
`check_one_of` or `check_bool` in a documented encoder, fusion, head or task needs a case here.
"""

import importlib.util
import os

import keras
import numpy as np
import pytest

from mmkeras import precision
from mmkeras.encoders import IMAGE_ENCODERS, TEXT_ENCODERS, applications_encoder, cnn_encoder, residual_cnn_encoder, rnn_encoder
from mmkeras.fusion import ACTIVATIONS, FUSIONS, SEQUENCE_CELLS, SequenceFusion, get_fusion
from mmkeras.heads import HEADS, BinaryHead, get_head
from mmkeras.parts import build_image_encoder, build_text_encoder
from mmkeras.tasks import Captioner, ConditionalGAN, DualEncoder, FusionClassifier, ModelTask, Task
from mmkeras.tasks.captioner import DECODERS
from mmkeras.tasks.gan import CONDITIONINGS
from mmkeras.tasks.dual_encoder import LOSSES, LogitScale
from mmkeras.tasks.head_task import OPTIMIZERS
from mmkeras.tasks.task import INPUT_KINDS

TINY = {"image_shape": (16, 16, 3), "sequence_length": 4, "vocab_size": 16}
GAN_TINY = {"image_shape": (8, 8, 1), "sequence_length": 4, "vocab_size": 16, "generator_filters": (4,),
            "discriminator_filters": (4,), "noise_dim": 4, "condition_dim": 4}
BOOL = (True, False)


def _tiny_model():
    inputs = {"image": keras.Input((8, 8, 3), name="image")}
    outputs = keras.layers.Dense(1, activation="sigmoid")(keras.layers.Flatten()(inputs["image"]))
    return keras.Model(inputs, outputs)


# (id, function of the bad value, argument, accepted values, the object documented in docs/api.md or None)
CASES = [
    ("cnn-padding", lambda v: cnn_encoder(padding=v), "padding", ("valid", "same"), cnn_encoder),
    ("cnn-pooling", lambda v: cnn_encoder(pooling=v), "pooling", ("max", "avg", None), cnn_encoder),
    ("cnn-output", lambda v: cnn_encoder(output=v), "output", ("flatten", "avg", "max", "sequence"), cnn_encoder),
    ("residual-output", lambda v: residual_cnn_encoder(output=v), "output", ("avg", "max", "sequence"), residual_cnn_encoder),
    ("cnn-batch_norm", lambda v: cnn_encoder(batch_norm=v), "batch_norm", BOOL, cnn_encoder),
    ("applications-backbone", lambda v: applications_encoder(backbone=v), "backbone", ("ResNet50", "MobileNetV3Small"), applications_encoder),
    ("applications-pooling", lambda v: applications_encoder(pooling=v), "pooling", ("avg", "max", "sequence"), applications_encoder),
    ("applications-trainable", lambda v: applications_encoder(trainable=v), "trainable", BOOL, applications_encoder),
    ("applications-normalize", lambda v: applications_encoder(normalize=v), "normalize", BOOL, applications_encoder),
    ("rnn-cell", lambda v: rnn_encoder(cell=v), "cell", ("lstm", "gru"), rnn_encoder),
    ("rnn-bidirectional", lambda v: rnn_encoder(bidirectional=v), "bidirectional", BOOL, rnn_encoder),
    ("rnn-mask_zero", lambda v: rnn_encoder(mask_zero=v), "mask_zero", BOOL, rnn_encoder),
    ("sequence-cell", lambda v: SequenceFusion(cell=v), "cell", SEQUENCE_CELLS, SequenceFusion),
    *[
        (f"{kind}-activation", lambda v, cls=cls: cls(activation=v), "activation", ("relu", "tanh", "gelu"), cls)
        for kind, cls in FUSIONS.items()
    ],
    ("get_fusion-fusion", lambda v: get_fusion(v), "fusion", tuple(FUSIONS), None),
    ("get_head-head", lambda v: get_head(v), "head", tuple(HEADS), None),
    ("get_head-spec-kind", lambda v: get_head({"kind": v, "name": "answer"}), "head", tuple(HEADS), None),
    ("binary-from_logits", lambda v: BinaryHead(from_logits=v), "from_logits", BOOL, BinaryHead),
    ("image_encoder-kind", lambda v: build_image_encoder({"kind": v}, (16, 16, 3)), "image_encoder", tuple(IMAGE_ENCODERS), None),
    ("text_encoder-kind", lambda v: build_text_encoder(v, 4, 16), "text_encoder", tuple(TEXT_ENCODERS), None),
    ("model-image_encoder", lambda v: FusionClassifier(image_encoder=v, **TINY), "image_encoder", tuple(IMAGE_ENCODERS), None),
    ("model-fusion", lambda v: FusionClassifier(fusion={"kind": v}, **TINY), "fusion", tuple(FUSIONS), None),
    ("model-head", lambda v: FusionClassifier(head=v, **TINY), "head", tuple(HEADS), None),
    ("model-raw_text", lambda v: FusionClassifier(raw_text=v, **TINY), "raw_text", BOOL, FusionClassifier),
    ("model-optimizer", lambda v: FusionClassifier(optimizer=v, **TINY), "optimizer", OPTIMIZERS, FusionClassifier),
    ("dual-loss", lambda v: DualEncoder(loss=v, **TINY), "loss", LOSSES, DualEncoder),
    ("dual-optimizer", lambda v: DualEncoder(optimizer=v, **TINY), "optimizer", OPTIMIZERS, DualEncoder),
    ("dual-raw_text", lambda v: DualEncoder(raw_text=v, **TINY), "raw_text", BOOL, DualEncoder),
    ("dual-gather_negatives", lambda v: DualEncoder(gather_negatives=v, **TINY), "gather_negatives", BOOL, DualEncoder),
    ("dual-learn_temperature", lambda v: DualEncoder(learn_temperature=v, **TINY), "learn_temperature", BOOL, DualEncoder),
    ("captioner-decoder", lambda v: Captioner(decoder=v, **TINY), "decoder", DECODERS, Captioner),
    ("captioner-optimizer", lambda v: Captioner(optimizer=v, **TINY), "optimizer", OPTIMIZERS, Captioner),
    ("gan-conditioning", lambda v: ConditionalGAN(conditioning=v, **GAN_TINY), "conditioning", CONDITIONINGS, ConditionalGAN),
    ("gan-spectral_norm", lambda v: ConditionalGAN(spectral_norm=v, **GAN_TINY), "spectral_norm", BOOL, ConditionalGAN),
    ("gan-raw_text", lambda v: ConditionalGAN(raw_text=v, **GAN_TINY), "raw_text", BOOL, ConditionalGAN),
    ("logit_scale-trainable_scale", lambda v: LogitScale(trainable_scale=v), "trainable_scale", BOOL, None),
    ("model_task-optimizer", lambda v: ModelTask(_tiny_model(), "binary", optimizer=v), "optimizer", OPTIMIZERS, None),
    ("task-input_kinds", lambda v: Task(None, None, input_kinds={"image": v}), "input_kinds['image']", INPUT_KINDS, None),
    ("resolve_precision", lambda v: precision.resolve_precision(v), "precision", precision.PRECISIONS, None),
    ("precision_scope", lambda v: precision.precision_scope(v).__enter__(), "precision", precision.PRECISIONS, None),
]


@pytest.mark.parametrize("call, argument, accepted", [c[1:4] for c in CASES], ids=[c[0] for c in CASES])
@pytest.mark.parametrize("value", ["no_such_value", 3])
def test_an_unknown_value_is_refused_with_the_accepted_ones(call, argument, accepted, value):
    if accepted == BOOL:
        value = "yes" if value == "no_such_value" else value
    with pytest.raises(ValueError) as info:
        call(value)
    message = str(info.value)
    assert message.startswith(f"`{argument}` must be "), message
    assert message.endswith(f"Received: {argument}={value!r}"), message
    if accepted == BOOL:
        assert "must be True or False" in message
    else:
        for choice in accepted:
            assert repr(choice) in message, f"{choice!r} is not named in: {message}"


def test_every_checked_argument_has_a_case():
    """Each `check_one_of` / `check_bool` of a documented object (as docs/make_api.py reads them) has a case."""
    spec = importlib.util.spec_from_file_location(
        "make_api", os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "docs", "make_api.py")
    )
    make_api = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(make_api)
    covered = {(c[4], c[2]) for c in CASES if c[4] is not None}
    documented = [*IMAGE_ENCODERS.values(), *TEXT_ENCODERS.values(), *FUSIONS.values(), *HEADS.values(), FusionClassifier, DualEncoder,
                  Captioner, ConditionalGAN]
    missing = [
        f"{getattr(obj, '__name__', obj)}({argument}=...)"
        for obj in documented
        for argument in make_api.enumerations(obj)
        if (obj, argument) not in covered
    ]
    assert not missing, f"add a case to CASES for: {missing}"


@pytest.mark.parametrize("name", ACTIVATIONS)
def test_every_listed_activation_is_accepted(name):
    assert callable(keras.activations.get(name))
    assert get_fusion("concatenate", units=2, activation=name).activation is not None


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_every_listed_optimizer_compiles(name):
    optimizer = keras.optimizers.get({"class_name": name, "config": {"learning_rate": 1e-3}})
    assert isinstance(optimizer, keras.optimizers.Optimizer)


def test_optimizer_names_are_case_insensitive():
    task = ModelTask(_tiny_model(), "binary", optimizer="RMSprop")
    task.compile()
    assert type(task.optimizer).__name__ == "RMSprop"


def test_a_custom_activation_callable_is_still_accepted():
    fusion = get_fusion("sum", units=2, activation=lambda x: x * 2)
    out = fusion([np.ones((1, 3), "float32"), np.ones((1, 3), "float32")])
    assert out.shape == (1, 2)


@pytest.mark.parametrize(
    "spec, match",
    [
        ({"kind": "rnn", "vocab_size": 500}, "`text_encoder` sets `vocab_size` to 500, but the model's `vocab_size` is 16"),
        ({"kind": "conv", "sequence_length": 9}, "`text_encoder` sets `sequence_length` to 9"),
    ],
)
def test_an_encoder_spec_cannot_disagree_with_the_model(spec, match):
    with pytest.raises(ValueError, match=match):
        FusionClassifier(text_encoder=spec, **TINY)


def test_an_encoder_spec_may_repeat_the_models_sizes():
    model = FusionClassifier(
        image_encoder={"kind": "cnn", "image_shape": [16, 16, 3]}, text_encoder={"kind": "rnn", "vocab_size": 16}, **TINY
    )
    assert model.input["image"].shape[1:] == (16, 16, 3)
