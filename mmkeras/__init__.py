"""mmkeras: a Keras 3 zoo of multimodal (image + text) models.

Every model is a task (`mmkeras.tasks`): a `keras.Model` that carries its head, its preprocessor
and its serving endpoints.

`import mmkeras` is quick: each public name (and each submodule) is imported the first time it
is used, so `mmkeras.list_models()` and `mmkeras.__version__` answer without TensorFlow, and
`mmkeras.get_model(...)` imports Keras when it builds the model.

Example:

>>> import mmkeras
>>> mmkeras.list_models("s[0-9]*")  # the source documents' models
['s0', 's0_product', 's0_weighted_sum', 's1', 's2', 's3', 's4', 's4_multitask']
>>> model = mmkeras.get_model("s1", image_shape=(32, 32, 3))
>>> sorted(model.input), model.head.kind
(['image', 'text'], 'binary')
"""

import importlib
import importlib.util

__version__ = "0.1.0"

# Public name -> the module that defines it; a name equal to its module's last part is that
# submodule. Read by `__getattr__` the first time a name is used.
_EXPORTS = {
    "Examples": "mmkeras.data",
    "ModelEntry": "mmkeras.registry",
    "TrainResult": "mmkeras.training",
    "build_model": "mmkeras.builder",
    "data": "mmkeras.data",
    "encoders": "mmkeras.encoders",
    "evaluate": "mmkeras.training",
    "export_model": "mmkeras.export",
    "fusion": "mmkeras.fusion",
    "get_entry": "mmkeras.registry",
    "get_model": "mmkeras.registry",
    "heads": "mmkeras.heads",
    "list_datasets": "mmkeras.data",
    "list_models": "mmkeras.registry",
    "load": "mmkeras.export",
    "load_dataset": "mmkeras.data",
    "load_run": "mmkeras.training",
    "make_dataset": "mmkeras.data",
    "precision": "mmkeras.precision",
    "predict": "mmkeras.training",
    "preprocessing": "mmkeras.preprocessing",
    "register_model": "mmkeras.registry",
    "tasks": "mmkeras.tasks",
    "train": "mmkeras.training",
    "unregister_model": "mmkeras.registry",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    """Import a public name, or a submodule (`mmkeras.training`), the first time it is used."""
    module = _EXPORTS.get(name)
    if module is not None:
        value = importlib.import_module(module)
        if module.rpartition(".")[2] != name:
            value = getattr(value, name)
    elif name.isidentifier() and importlib.util.find_spec(f"{__name__}.{name}") is not None:
        value = importlib.import_module(f"{__name__}.{name}")
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))
