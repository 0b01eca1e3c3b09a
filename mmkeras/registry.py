"""The model registry: `register_model`, `get_model`, `list_models`.

A registered model is a name bound to a builder function that takes keyword overrides.
Registering a name twice raises; asking for an unknown name raises with the closest names.

Example:

>>> import mmkeras
>>> "s1" in mmkeras.list_models()
True
>>> model = mmkeras.get_model("s1", image_shape=(32, 32, 3), vocab_size=100)
"""

import dataclasses
import fnmatch
from typing import Callable

from mmkeras.validation import check_one_of


@dataclasses.dataclass(frozen=True)
class ModelEntry:
    """One registered model.

    Attributes:
        name: the registry name.
        builder: a function `builder(**overrides) -> keras.Model`.
        family: the family the model belongs to (`"documents"`, `"fusion"`, ...).
        description: one line on what it is.
        reference: the document or paper it comes from.
        tiny: overrides that make a small, fast version (for tests, docs and smoke runs).
    """

    name: str
    builder: Callable
    family: str
    description: str = ""
    reference: str = ""
    tiny: dict = dataclasses.field(default_factory=dict)


_REGISTRY = {}


def register_model(name, *, family, description="", reference="", tiny=None):
    """Decorator: register `builder(**overrides) -> keras.Model` under `name`.

    Raises:
        ValueError: if `name` is already registered.

    Example:

    >>> @register_model("my_model", family="custom")
    ... def my_model(**overrides):
    ...     return mmkeras.build_model(**{"fusion": "sum", **overrides})
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"`name` must be a non-empty string. Received: name={name!r}")

    def decorator(builder):
        if name in _REGISTRY:
            raise ValueError(
                f"`name` is already registered (by {_REGISTRY[name].builder.__module__}); "
                f"choose another name. Received: name={name!r}"
            )
        _REGISTRY[name] = ModelEntry(
            name=name,
            builder=builder,
            family=family,
            description=description or (builder.__doc__ or "").strip().split("\n")[0],
            reference=reference,
            tiny=dict(tiny or {}),
        )
        return builder

    return decorator


def unregister_model(name):
    """Remove a registered model (for user code and tests that register temporary models)."""
    get_entry(name)
    del _REGISTRY[name]


def get_entry(name):
    """The `ModelEntry` registered under `name`."""
    check_one_of("name", name, _REGISTRY)
    return _REGISTRY[name]


def get_model(name, **overrides):
    """Build the registered model `name`, with keyword `overrides` of its recipe.

    Args:
        name: a name from `list_models()`.
        **overrides: arguments of the recipe (see `mmkeras.build_model`): e.g. `image_shape`,
            `num_classes`, or `image_encoder={"filters": (16,)}` to change one encoder argument.

    Example:

    >>> model = get_model("fusion_gated", image_shape=(32, 32, 3), num_classes=1)
    """
    return get_entry(name).builder(**overrides)


def list_models(pattern=None, family=None):
    """Sorted registered names, optionally filtered by a glob `pattern` and a `family`.

    Example:

    >>> list_models("fusion_*")[:2]
    ['fusion_attention', 'fusion_concatenate']
    """
    names = sorted(_REGISTRY)
    if pattern is not None:
        names = fnmatch.filter(names, pattern)
    if family is not None:
        names = [n for n in names if _REGISTRY[n].family == family]
    return names
