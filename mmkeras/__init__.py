"""mmkeras: a Keras 3 zoo of multimodal (image + text) models.

Every model is a task (`mmkeras.tasks`): a `keras.Model` that carries its head, its preprocessor
and its serving endpoints.

Example:

>>> import mmkeras
>>> mmkeras.list_models("s*")
['s0', 's0_product', 's0_weighted_sum', 's1', 's2', 's3', 's4', 's4_multitask']
>>> model = mmkeras.get_model("s1", image_shape=(32, 32, 3))
>>> sorted(model.input), model.head.kind
(['image', 'text'], 'binary')
"""

from mmkeras import data, encoders, fusion, heads, precision, preprocessing, tasks
from mmkeras.builder import build_model
from mmkeras.export import export_model, load
from mmkeras.models import documents, fusion_recipes, vqa  # noqa: F401  (registers the zoo)
from mmkeras.data import Examples, list_datasets, load_dataset, make_dataset
from mmkeras.training import TrainResult, evaluate, load_run, predict, train
from mmkeras.registry import ModelEntry, get_entry, get_model, list_models, register_model, unregister_model

__version__ = "0.1.0"

__all__ = [
    "Examples",
    "ModelEntry",
    "TrainResult",
    "build_model",
    "data",
    "encoders",
    "evaluate",
    "export_model",
    "fusion",
    "get_entry",
    "get_model",
    "heads",
    "list_datasets",
    "list_models",
    "load",
    "load_dataset",
    "load_run",
    "make_dataset",
    "precision",
    "predict",
    "preprocessing",
    "register_model",
    "tasks",
    "train",
    "unregister_model",
]
