"""Every registered model goes through the same checks: adding a recipe adds its tests."""

import keras
import numpy as np
import pytest

import mmkeras
from tests.helpers import (
    run_config_test,
    run_fit_test,
    run_modalities_test,
    run_output_test,
    run_precision_test,
    run_saving_test,
    tiny_model,
    toy_inputs,
    toy_labels,
)

MODELS = mmkeras.list_models()

# Parameter counts at each documented configuration (no overrides). S1's count is the one the
# source document states; the others are pinned so an accidental architecture change fails.
PINNED_PARAMETERS = {
    "s0": 8_203_905,
    "s1": 23_211_649,
    "s2": 363_777,
    "s3": 100_936_842,
    "s4": 704_737,
}


def test_the_zoo_has_the_documents_models_and_a_recipe_per_fusion():
    assert {"s0", "s1", "s2", "s3", "s4"} <= set(MODELS)
    fusion_recipes = mmkeras.list_models(family="fusion")
    assert len(fusion_recipes) >= 8
    assert {f"fusion_{name}" for name in mmkeras.fusion.FUSIONS} == set(fusion_recipes)


@pytest.mark.parametrize("name", MODELS)
def test_outputs(name):
    run_output_test(tiny_model(name))


@pytest.mark.parametrize("name", MODELS)
def test_every_input_moves_every_output(name):
    run_modalities_test(tiny_model(name, compile=False))


# Training a keras.applications backbone takes about 17 s of the default run: slow set.
HEAVY_TO_FIT = {"mobilenet_conv_text"}


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n in HEAVY_TO_FIT else n for n in MODELS])
def test_fit_lowers_the_loss(name):
    run_fit_test(tiny_model(name, learning_rate=3e-3))


@pytest.mark.parametrize("name", MODELS)
def test_config_round_trip(name):
    run_config_test(tiny_model(name))


@pytest.mark.parametrize("name", MODELS)
def test_keras_save_and_load(name, tmp_path):
    run_saving_test(tiny_model(name), tmp_path)


@pytest.mark.parametrize("name", sorted(PINNED_PARAMETERS))
def test_pinned_parameter_counts(name):
    assert mmkeras.get_model(name, compile=False).count_params() == PINNED_PARAMETERS[name]


def test_s1_matches_the_document_layer_by_layer():
    model = mmkeras.get_model("s1")
    image = model.get_layer("image_encoder")
    assert [layer.filters for layer in image.layers if "conv" in layer.name] == [64, 128, 256]
    assert image.output_shape == (None, 26 * 26 * 256)
    text = model.get_layer("text_encoder")
    assert text.get_layer("text_embedding").output_dim == 64
    assert text.get_layer("text_lstm1").units == 64
    assert [model.get_layer(n).units for n in ("hidden_dense1", "hidden_dense2", "label")] == [128, 64, 1]
    assert model.loss == "binary_crossentropy"
    assert model.input["image"].shape == (None, 224, 224, 3)
    assert model.input["text"].shape == (None, 100)


def test_image_only_model_has_only_an_image_input():
    model = tiny_model("s3")
    assert list(model.input) == ["image"]
    assert model.output.shape == (None, 10)


def test_multitask_model_has_a_dict_of_named_outputs():
    model = tiny_model("s4_multitask")
    assert sorted(model.output) == ["image_class", "sentiment"]
    assert sorted(model.loss) == ["image_class", "sentiment"]
    assert {n: h.kind for n, h in model.head.heads.items()} == {"image_class": "multiclass", "sentiment": "binary"}


@pytest.mark.parametrize("name", MODELS)
def test_every_registered_model_is_a_task_of_its_entry(name):
    entry = mmkeras.get_entry(name)
    model = tiny_model(name, compile=False)
    assert isinstance(model, mmkeras.tasks.Task) and isinstance(model, entry.task)
    assert not model.compiled
    model.compile()  # no arguments: the head's loss and metrics (or the task's own), the recipe's optimizer
    own_loss = type(model).compute_loss is not keras.Model.compute_loss  # a dual encoder's contrastive loss
    assert (model.loss is not None or own_loss) and model.optimizer is not None


@pytest.fixture
def mixed_bfloat16():
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    yield
    keras.mixed_precision.set_global_policy("float32")


# Under mixed precision, every model whose parts differ from the others' and the default recipe
# (the rest: `-m slow`).
MIXED_DEFAULT = {"s1", "s2", "s4_multitask", "fusion_attention", "fusion_gated", "fusion_low_rank_tensor",
                 "fusion_sequence", "fusion_weighted_sum", "residual_transformer", "vqa"}


@pytest.mark.parametrize(
    "name", [n if n in MIXED_DEFAULT else pytest.param(n, marks=pytest.mark.slow) for n in MODELS]
)
def test_mixed_precision_computes_in_bfloat16_and_keeps_float32_outputs(name, mixed_bfloat16):
    model = tiny_model(name)
    assert model.dtype_policy.name == "mixed_bfloat16"
    run_precision_test(model, "bfloat16")  # hidden layers bfloat16, heads float32
    x, y = toy_inputs(model, n=4), toy_labels(model, n=4)
    losses = model.train_on_batch(x, y)
    assert np.isfinite(losses).all()
    outputs = model.predict(x, verbose=0)
    for value in outputs.values() if isinstance(outputs, dict) else [outputs]:
        assert value.dtype == np.float32


def test_a_model_built_in_a_precision_scope_keeps_its_policy():
    with mmkeras.precision.precision_scope("mixed_bfloat16"):
        mixed = tiny_model("vqa", compile=False)
    plain = tiny_model("vqa", compile=False)  # the scope restored float32
    run_precision_test(mixed, "bfloat16")  # run outside the scope: the layers keep their policy
    run_precision_test(plain, "float32")
