"""Argument checks shared by every builder, with one wording for all errors.

Every message names the argument, says what was expected and ends with
``Received: name=value``, in the style of Keras' own errors.
"""

import difflib
import inspect
import numbers


def received(name, value):
    """`Received: name=value`, with a long value's repr cut to 80 characters."""
    text = repr(value)
    return f"Received: {name}={text if len(text) <= 80 else text[:77] + '...'}"


def check_one_of(name, value, choices):
    """Raise unless `value` is one of `choices`; suggest the closest choices.

    Example:

    >>> check_one_of("fusion", "concat", ["concatenate", "sum"])
    Traceback (most recent call last):
    ...
    ValueError: `fusion` must be one of ['concatenate', 'sum'] (did you mean 'concatenate'?). Received: fusion='concat'
    """
    choices = list(choices)
    if value in choices:
        return value
    hint = ""
    if isinstance(value, str):
        close = difflib.get_close_matches(value, [str(c) for c in choices], n=3, cutoff=0.5)
        if close:
            hint = " (did you mean " + " or ".join(repr(c) for c in close) + "?)"
    raise ValueError(f"`{name}` must be one of {sorted(choices, key=str)}{hint}. {received(name, value)}")


def check_bool(name, value):
    """Raise unless `value` is `True` or `False` (not 0, 1 or a string: a flag is a bool).

    Example:

    >>> check_bool("batch_norm", "yes")
    Traceback (most recent call last):
    ...
    ValueError: `batch_norm` must be True or False. Received: batch_norm='yes'
    """
    if not isinstance(value, bool):
        raise ValueError(f"`{name}` must be True or False. {received(name, value)}")
    return value


def check_positive_int(name, value, allow_none=False):
    """Raise unless `value` is an int > 0 (or None when `allow_none`)."""
    if value is None and allow_none:
        return value
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"`{name}` must be a positive integer. {received(name, value)}")
    return value


def check_int_tuple(name, value, allow_empty=True):
    """Normalise an int or a sequence of positive ints to a tuple of ints."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = (value,)
    try:
        items = tuple(value)
    except TypeError:
        items = None
    if (
        items is None
        or (not items and not allow_empty)
        or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in items)
    ):
        raise ValueError(
            f"`{name}` must be a positive integer or a sequence of positive integers. "
            f"{received(name, value)}"
        )
    return items


def check_image_shape(name, value):
    """Check an image shape (height, width, channels) of positive ints."""
    try:
        shape = tuple(value)
    except TypeError:
        shape = ()
    if len(shape) != 3 or not all(
        isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in shape
    ):
        raise ValueError(
            f"`{name}` must be a tuple (height, width, channels) of 3 positive integers. "
            f"{received(name, value)}"
        )
    return shape


def check_fraction(name, value):
    """Check a rate in [0, 1)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
        raise ValueError(f"`{name}` must be a number in [0, 1). {received(name, value)}")
    return float(value)


def check_kwargs(name, kind, funcs, kwargs, extra=()):
    """Raise unless every key of `kwargs` is a parameter of one of `funcs` (or in `extra`).

    Used where a part is given as `{"kind": kind, **kwargs}`, so a misspelt argument is named
    instead of surfacing as a `TypeError` deep inside Keras.
    """
    allowed = set(extra)
    for func in funcs:
        allowed |= set(inspect.signature(func).parameters) - {"self", "args", "kwargs"}
    unknown = sorted(set(kwargs) - allowed)
    if unknown:
        raise ValueError(
            f"Invalid arguments for `{name}` {kind!r}: {unknown} (it takes {sorted(allowed)}). "
            f"Received: {kwargs!r}"
        )


SEED_LIMIT = 2**32  # numpy's and TensorFlow's seeds: integers in [0, 2**32)


def check_seed(name, value):
    """Raise `ValueError` unless `value` is an integer in [0, 2**32), the seeds numpy takes.

    Example:

    >>> check_seed("seed", 7)
    >>> check_seed("seed", -1)
    Traceback (most recent call last):
    ...
    ValueError: `seed` must be an integer from 0 to 2**32 - 1 (4294967295). Received: seed=-1
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or not 0 <= value < SEED_LIMIT:
        raise ValueError(
            f"`{name}` must be an integer from 0 to 2**32 - 1 ({SEED_LIMIT - 1}). Received: {name}={value!r}"
        )
