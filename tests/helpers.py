"""Shared test helpers, in the spirit of keras-hub's `run_*` checks.

`toy_inputs(model)` / `toy_labels(model)` make inputs and labels that fit any zoo task (from its
inputs and its head); the `run_*` functions are the checks every registered model goes through.
"""

import copy
import importlib.util
import json
import os

import keras
import numpy as np

import mmkeras

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def load_benchmark(name):
    """The script `benchmarks/<name>.py` as a module (imported, not run)."""
    spec = importlib.util.spec_from_file_location(f"{name}_benchmark", os.path.join(ROOT, "benchmarks", f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def tiny_model(name, **overrides):
    """The registered model `name` at its small test configuration."""
    entry = mmkeras.get_entry(name)
    return mmkeras.get_model(name, **{**entry.tiny, **overrides})


def toy_inputs(model, n=16, seed=0):
    """Random inputs for every model input: floats for images, token ids (some padding) for text."""
    rng = np.random.default_rng(seed)
    inputs = {}
    for key, tensor in model.input.items():
        shape = (n, *tensor.shape[1:])
        if key == "image":
            inputs[key] = rng.random(shape, dtype=np.float32)
        else:
            ids = rng.integers(2, 50, size=shape).astype("int32")
            ids[:, shape[1] // 2 :] *= rng.random((n, 1)) < 0.5  # half the texts end in padding
            inputs[key] = ids
    return inputs


def _labels_for(head, n, rng):
    """Labels that fit one head, from what the head is (not from its loss)."""
    if head.kind == "multiclass":
        return rng.integers(0, head.num_classes, size=(n,))
    if head.kind in ("binary", "multilabel"):
        return rng.integers(0, 2, size=(n, head.units)).astype("float32")
    if head.kind == "regression":
        return rng.normal(size=(n, head.units)).astype("float32")
    raise AssertionError(f"toy_labels does not know the head {head!r}")


def toy_labels(model, n=16, seed=0):
    """Labels that suit the task's head(s); a dict for multi-task models; for a task without a head
    (a dual encoder) the class of each pair, which its loss does not use."""
    rng = np.random.default_rng(seed + 1)
    if not hasattr(model, "head"):
        return rng.integers(0, 4, size=(n,))
    if model.multi_output:
        return {name: _labels_for(head, n, rng) for name, head in model.head.heads.items()}
    return _labels_for(model.head, n, rng)


def assert_outputs_close(a, b, atol):
    if isinstance(a, dict):
        assert sorted(a) == sorted(b)
        for key in a:
            np.testing.assert_allclose(a[key], b[key], atol=atol)
    else:
        np.testing.assert_allclose(a, b, atol=atol)


def run_output_test(model):
    """Dict inputs with the documented keys; named outputs with the expected batch size."""
    assert set(model.input) <= {"image", "text"} and model.input
    x = toy_inputs(model, n=3)
    y = model.predict(x, verbose=0)
    assert all(not name.startswith("output_") for name in model.output_names)
    outputs = y if isinstance(y, dict) else {model.output_names[0]: y}
    assert sorted(outputs) == sorted(model.output_names)
    for name, value in outputs.items():
        assert value.shape[0] == 3, name
        assert np.isfinite(value).all(), name
        assert value.dtype == np.float32, name


def run_modalities_test(model, n=3, atol=1e-6):
    """Every input is used: changing only one input (the token ids, or the image) moves every output.

    From toy inputs, each input in turn is replaced by other toy values while the others stay; every
    output (each head of a multi-task model) must then move by more than `atol` (times its scale
    when that is above 1) somewhere in the batch, in inference mode. `atol` sits far above float32
    rounding (about 1e-7 for outputs near 1) and far below what a used input does; a model that
    drops a modality, or whose features of one modality vanish beside the other's, moves by 0.
    A single-input model (`s3`: image only) checks its one input; an output that does not depend on
    an input (`task.output_dependencies()`: a dual encoder's towers) must not move at all. One forward pass: the reference
    batch and each changed copy are stacked.
    """
    keys = sorted(model.input_kinds, key=lambda key: key != "text")  # the token ids first, then the image
    assert keys, model.name
    x, other = toy_inputs(model, n=n, seed=0), toy_inputs(model, n=n, seed=1)
    batch = {key: np.concatenate([x[key]] + [other[key] if k == key else x[key] for k in keys]) for key in x}
    outputs = model(batch, training=False)
    outputs = outputs if isinstance(outputs, dict) else {model.output_names[0]: outputs}
    assert sorted(outputs) == sorted(model.output_names)
    dependencies = model.output_dependencies()
    for name, value in outputs.items():
        value = keras.ops.convert_to_numpy(value).reshape(1 + len(keys), n, -1)
        for i, key in enumerate(keys, start=1):
            assert not np.array_equal(x[key], other[key]), key
            difference = float(np.max(np.abs(value[i] - value[0])))
            limit = atol * max(1.0, float(np.max(np.abs(value[0]))))
            if key not in dependencies[name]:  # e.g. a dual encoder's towers: the other input must not count
                assert difference == 0, f"{model.name}: output {name!r} moves with {key!r}, which it must not use"
                continue
            assert difference > limit, (
                f"{model.name}: changing only its {key!r} input moves the output {name!r} by at most "
                f"{difference:.3g} (<= {limit:.3g}): the {key!r} input is not used measurably"
            )


def _output_dtypes(graph, inputs):
    """`{layer: dtype of the tensor it outputs}` for the layers with weights of a functional graph,
    measured by running the graph on `inputs`; nested models are entered (fed ones of their input
    shapes: only the dtypes matter)."""
    layers = [layer for layer in graph.layers if layer.weights]
    leaves = [layer for layer in layers if not isinstance(layer, keras.Model)]
    dtypes = {}
    if leaves:
        values = keras.Model(graph.input, [layer.output for layer in leaves])(inputs)
        dtypes.update({layer: keras.backend.standardize_dtype(v.dtype) for layer, v in zip(leaves, values)})
    for nested in layers:
        if isinstance(nested, keras.Model):
            ones = keras.tree.map_structure(lambda t: np.ones((2, *t.shape[1:]), t.dtype), nested.input)
            found = _output_dtypes(nested, ones)
            assert found, f"no layer with weights checked inside {nested.name!r}"
            dtypes.update(found)
    return dtypes


def run_precision_test(model, hidden_dtype="bfloat16"):
    """The hidden layers compute in `hidden_dtype`, the heads' output layers in float32.

    Every layer with weights, nested encoders (and backbones) included, must declare the compute
    dtype (`layer.compute_dtype`) and really output it when the model runs on toy inputs; the
    layers that give the model's outputs (the heads) compute in float32 under every policy.
    """
    # The layers that give the outputs, where they have weights (a dual encoder's normalisations have none).
    heads = {model.get_layer(name) for name in model.output_names} & {layer for layer in model.layers if layer.weights}
    dtypes = _output_dtypes(model, toy_inputs(model, n=2))
    assert heads <= set(dtypes)
    assert len(dtypes) > len(heads)
    for layer, dtype in dtypes.items():
        expected = "float32" if layer in heads else hidden_dtype
        assert (layer.compute_dtype, dtype) == (expected, expected), (
            f"{model.name}: layer {layer.name!r} ({type(layer).__name__}) declares "
            f"{layer.compute_dtype} and outputs {dtype}; expected {expected}"
        )
        assert layer.variable_dtype == "float32", layer.name
    return dtypes


def run_fit_test(model, epochs=8):
    """A few full-batch steps on a fixed toy batch: the loss stays finite and falls.

    A task whose loss is a two-player game (a GAN: `task.loss_must_fall` is False) need not lower
    its summed loss; there every trainable weight must move instead (each player's optimizer
    reaches all of its variables).
    """
    x, y = toy_inputs(model), toy_labels(model)
    must_fall = getattr(model, "loss_must_fall", True)
    before = None if must_fall else [np.array(v) for v in model.trainable_variables]
    history = model.fit(x, y, batch_size=16, epochs=epochs, verbose=0, shuffle=False)
    losses = history.history["loss"]
    assert np.isfinite(losses).all(), losses
    if must_fall:
        assert losses[-1] < losses[0], losses
    else:
        still = [v.path for v, old in zip(model.trainable_variables, before) if np.array_equal(np.array(v), old)]
        assert not still, f"{model.name}: these trainable variables did not move: {still}"
    return losses


def run_config_test(model):
    """`from_config(get_config())` rebuilds the same task: identical config JSON and outputs."""
    config = model.get_config()
    rebuilt = type(model).from_config(copy.deepcopy(config))  # from_config consumes its argument
    assert type(rebuilt) is type(model)
    assert json.dumps(rebuilt.get_config(), sort_keys=True, default=str) == json.dumps(
        config, sort_keys=True, default=str
    )
    rebuilt.set_weights(model.get_weights())
    x = toy_inputs(model, n=4)  # called directly: `predict` would trace a function for each model
    assert_outputs_close(model(x, training=False), rebuilt(x, training=False), atol=1e-6)


def run_saving_test(model, tmp_path):
    """`.keras` save and load with `safe_mode=True`: same class of model, outputs equal to 1e-6."""
    path = os.path.join(tmp_path, "model.keras")
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    assert type(loaded) is type(model)
    assert loaded.count_params() == model.count_params()
    as_json = lambda config: json.dumps(config, sort_keys=True, default=str)  # noqa: E731  (tuples become lists)
    assert as_json(loaded.get_config()) == as_json(model.get_config())  # head, parts and preprocessor included
    assert loaded.compiled
    serialized = lambda loss: json.dumps(keras.saving.serialize_keras_object(loss), sort_keys=True, default=str)  # noqa: E731
    assert serialized(loaded.loss) == serialized(model.loss)
    x = toy_inputs(model, n=4)
    assert_outputs_close(model.predict(x, verbose=0), loaded.predict(x, verbose=0), atol=1e-6)
    return loaded
