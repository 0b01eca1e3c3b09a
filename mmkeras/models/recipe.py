"""`register_recipe`: a registered model that is a set of `build_model` arguments."""

from mmkeras.builder import build_model
from mmkeras.registry import register_model

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


def register_recipe(name, *, family, description, reference="", tiny=None, **config):
    """Register `name` as `build_model(**config)`, with the user's overrides merged on top."""

    def builder(**overrides):
        return build_model(**merge_overrides({"name": name, **config}, overrides))

    builder.__name__ = name
    builder.__doc__ = f"{description}\n\nRecipe arguments (see `mmkeras.build_model`): {config!r}"
    register_model(name, family=family, description=description, reference=reference, tiny=tiny)(builder)
    return builder
