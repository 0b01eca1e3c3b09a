"""The model registry: `register_model`, `get_model`, `list_models`.

A registered model is a name bound to a builder function that takes keyword overrides and
returns a task (`mmkeras.tasks.Task`). Its entry also carries its tiny test configuration and its
training defaults (`ModelEntry.training_defaults`). Registering a name twice raises; asking for
an unknown name raises with the closest names.

Nothing here imports Keras: the zoo's recipes (`mmkeras.models`, registered the first time the
registry is used) name their task class by its import path, which is imported when a model is
built, so `mmkeras list` answers without TensorFlow.

Example:

>>> import mmkeras
>>> "s1" in mmkeras.list_models()
True
>>> model = mmkeras.get_model("s1", image_shape=(32, 32, 3), vocab_size=100)
>>> tuple(model.input["image"].shape), tuple(model.input["text"].shape)
((None, 32, 32, 3), (None, 100))
"""

import dataclasses
import fnmatch
import importlib
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
        task_ref: the task class the builder returns (e.g. `FusionClassifier`), its import path
            (`"mmkeras.tasks.FusionClassifier"`), or None if unknown. Read `task` for the class:
            a path is imported then, not when the model is registered.
        training: the settings `mmkeras.train` uses when the caller gives none (see
            `TRAINING_SETTINGS`).
        dataset_training: `{dataset name: settings}` that win over `training` on that dataset.
    """

    name: str
    builder: Callable
    family: str
    description: str = ""
    reference: str = ""
    tiny: dict = dataclasses.field(default_factory=dict)
    task_ref: object = None
    training: dict = dataclasses.field(default_factory=dict)
    dataset_training: dict = dataclasses.field(default_factory=dict)

    @property
    def task(self):
        """The task class the builder returns, or None if unknown."""
        return import_task(self.task_ref) if isinstance(self.task_ref, str) else self.task_ref

    def training_defaults(self, dataset=None):
        """The training settings for `dataset`: the base settings, the entry's, the dataset's.

        Example:

        >>> get_entry("vqa").training_defaults("easy_vqa")["epochs"]
        8
        """
        return {**BASE_TRAINING, **self.training, **(self.dataset_training.get(dataset, {}) if dataset else {})}


# Training settings of a recipe that has no tuned ones (the documents' `fit` defaults, with a
# warm-up + cosine schedule on top): `epochs`, `batch_size`, `learning_rate`, `warmup` (share of
# the steps spent warming up), `vocab_size` (most tokens kept) and `image_shape` (the shape images
# are decoded to, for training and every later prediction and export; None: the dataset's own).
BASE_TRAINING = {
    "epochs": 10,
    "batch_size": 64,
    "learning_rate": 1e-3,
    "warmup": 0.05,
    "vocab_size": 10000,
    "image_shape": None,
}


def _check_training(training, name="training"):
    training = dict(training or {})
    unknown = sorted(set(training) - set(BASE_TRAINING))
    if unknown:
        raise ValueError(f"`{name}` keys must be among {sorted(BASE_TRAINING)}. Received: {unknown}")
    return training


_REGISTRY = {}


def _load_zoo():
    """Register the zoo's recipes (importing `mmkeras.models` does), so no caller depends on what
    was imported before it. Cheap once done; a no-op while the zoo itself is being imported."""
    import mmkeras.models  # noqa: F401


def _check_task(task):
    if task is not None and not isinstance(task, type) and not (isinstance(task, str) and "." in task.strip(".")):
        raise ValueError(
            "`task` must be a task class, its import path (e.g. 'mmkeras.tasks.FusionClassifier') or None. "
            f"Received: task={task!r}"
        )
    return task


def import_task(path):
    """The class at the import path `"module.Class"` (the module is imported on first use).

    Example:

    >>> import_task("mmkeras.tasks.FusionClassifier").__name__
    'FusionClassifier'
    """
    module, _, name = path.rpartition(".")
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as error:
        raise ValueError(f"`task` names no importable class ({error}). Received: task={path!r}") from error


def register_model(name, *, family, description="", reference="", tiny=None, task=None, training=None, dataset_training=None):
    """Decorator: register `builder(**overrides) -> Task` under `name`.

    Args:
        name: str, the registry name.
        family: str, the family (`"documents"`, `"fusion"`, ...).
        description: str, one line; defaults to the builder's docstring's first line.
        reference: str, the document or paper the model comes from.
        tiny: dict, overrides that make a small, fast version (tests run every model with it).
        task: the task class the builder returns, if known, or its import path
            (`"mmkeras.tasks.FusionClassifier"`), imported when first needed.
        training: dict, training defaults for `mmkeras.train` (keys of `BASE_TRAINING`).
        dataset_training: dict `{dataset: training settings}` for one dataset.

    Raises:
        ValueError: if `name` is already registered.

    Example:

    >>> import mmkeras
    >>> @register_model("my_model", family="custom")
    ... def my_model(**overrides):
    ...     return mmkeras.build_model(**{"fusion": {"kind": "sum", "units": 8}, **overrides})
    >>> get_model("my_model", image_shape=(16, 16, 3), sequence_length=4, vocab_size=10).name
    'mmkeras_model'
    >>> unregister_model("my_model")
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"`name` must be a non-empty string. Received: name={name!r}")
    training = _check_training(training)
    dataset_training = {k: _check_training(v, f"dataset_training[{k!r}]") for k, v in (dataset_training or {}).items()}
    _check_task(task)
    _load_zoo()  # a name the zoo takes is refused here, not when the zoo is loaded later

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
            task_ref=task,
            training=training,
            dataset_training=dataset_training,
        )
        return builder

    return decorator


def unregister_model(name):
    """Remove a registered model (for user code and tests that register temporary models)."""
    get_entry(name)
    del _REGISTRY[name]


def get_entry(name):
    """The `ModelEntry` registered under `name`."""
    _load_zoo()
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
    >>> model.head.kind
    'binary'
    """
    from mmkeras.tasks import Task

    model = get_entry(name).builder(**overrides)
    if not isinstance(model, Task):
        raise ValueError(
            f"The builder registered as {name!r} must return an mmkeras task (a mmkeras.tasks.Task, e.g. "
            "FusionClassifier, or a ModelTask around your own Keras model). "
            f"Received: {type(model).__name__}"
        )
    return model


def list_models(pattern=None, family=None):
    """Sorted registered names, optionally filtered by a glob `pattern` and a `family`.

    Example:

    >>> list_models("fusion_*")[:2]
    ['fusion_attention', 'fusion_concatenate']
    """
    _load_zoo()
    names = sorted(_REGISTRY)
    if pattern is not None:
        names = fnmatch.filter(names, pattern)
    if family is not None:
        names = [n for n in names if _REGISTRY[n].family == family]
    return names
