"""`register_recipe`: a registered model that is a set of arguments of a task class.

Registering a recipe imports nothing heavy: its task class, named by import path, is imported
when the model is first built (`mmkeras list` runs without TensorFlow).
"""

from mmkeras.registry import import_task, register_model

PART_KEYS = ("image_encoder", "text_encoder", "fusion", "head")


def merge_overrides(config, overrides):
    """Recipe arguments with `overrides` on top.

    A dict override of a part given as a dict (or a name) updates that part's arguments, so
    `image_encoder={"filters": (16,)}` changes only the filters of the recipe's encoder; any other
    override replaces the recipe's value.

    Example:

    >>> merge_overrides({"fusion": {"kind": "sum", "units": 64}}, {"fusion": {"units": 8}})
    {'fusion': {'kind': 'sum', 'units': 8}}
    """
    merged = dict(config)
    for key, value in overrides.items():
        base = merged.get(key)
        if key in PART_KEYS and isinstance(value, dict) and "kind" not in value and base is not None:
            base = {"kind": base} if isinstance(base, str) else base
            if isinstance(base, dict):
                value = {**base, **value}
        merged[key] = value
    return merged


def register_recipe(
    name,
    *,
    family,
    description,
    reference="",
    tiny=None,
    task="mmkeras.tasks.FusionClassifier",
    training=None,
    dataset_training=None,
    **config,
):
    """Register `name` as `task(**config)`, with the user's overrides merged on top.

    The built model is compiled with its task's defaults unless the overrides say
    `compile=False`.

    Args:
        name, family, description, reference, tiny: as for `mmkeras.register_model`.
        task: the task class, or its import path (imported when the model is first built).
            Defaults to `"mmkeras.tasks.FusionClassifier"`.
        training: dict, the recipe's training defaults (see `mmkeras.registry.BASE_TRAINING`).
        dataset_training: dict `{dataset: settings}`, defaults for one dataset.
        **config: the arguments of `task`.

    Example:

    >>> from mmkeras.registry import get_model, unregister_model
    >>> _ = register_recipe("tiny_sum", family="custom", description="A sum fusion.",
    ...                     fusion={"kind": "sum", "units": 8}, image_shape=(16, 16, 3),
    ...                     sequence_length=4, vocab_size=10, training={"epochs": 2})
    >>> get_model("tiny_sum", fusion={"units": 4}).get_config()["fusion"]
    {'kind': 'sum', 'units': 4}
    >>> unregister_model("tiny_sum")
    """

    def builder(compile=True, **overrides):
        if not isinstance(compile, bool):
            raise ValueError(f"`compile` must be True or False. Received: compile={compile!r}")
        task_class = import_task(task) if isinstance(task, str) else task
        model = task_class(**merge_overrides({"name": name, **config}, overrides))
        if compile:
            model.compile()
        return model

    builder.__name__ = name
    task_name = task.rpartition(".")[2] if isinstance(task, str) else task.__name__
    builder.__doc__ = f"{description}\n\nRecipe arguments (see `mmkeras.tasks.{task_name}`): {config!r}"
    register_model(
        name,
        family=family,
        description=description,
        reference=reference,
        tiny=tiny,
        task=task,
        training=training,
        dataset_training=dataset_training,
    )(builder)
    return builder
