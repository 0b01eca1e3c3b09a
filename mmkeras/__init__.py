"""mmkeras: a Keras 3 zoo of multimodal (image + text) models.

Example:

>>> import mmkeras
>>> mmkeras.list_models("s*")
['s0', 's0_product', 's0_weighted_sum', 's1', 's2', 's3', 's4', 's4_multitask']
>>> model = mmkeras.get_model("s1", image_shape=(32, 32, 3))
>>> model.input  # {'image': <KerasTensor ...>, 'text': <KerasTensor ...>}
"""

from mmkeras import encoders, fusion, heads, preprocessing
from mmkeras.builder import build_model
from mmkeras.models import documents, fusion_recipes  # noqa: F401  (registers the zoo)
from mmkeras.registry import ModelEntry, get_entry, get_model, list_models, register_model, unregister_model

__version__ = "0.1.0"

__all__ = [
    "ModelEntry",
    "build_model",
    "encoders",
    "fusion",
    "get_entry",
    "get_model",
    "heads",
    "list_models",
    "preprocessing",
    "register_model",
    "unregister_model",
]
