"""Numeric precision: pick and apply a Keras mixed-precision policy.

`"auto"` chooses `"mixed_bfloat16"` where the hardware computes bfloat16 natively (a CPU with the
AVX512_BF16 or AMX instructions, or a GPU of compute capability 8.0 or newer) and `"float32"`
elsewhere. mmkeras heads always compute their outputs in float32 (`dtype="float32"` on the output
layer), so probabilities and losses stay float32 under every policy.

Example:

>>> import mmkeras
>>> from mmkeras import precision
>>> precision.resolve_precision("float32")
'float32'
>>> with precision.precision_scope("mixed_bfloat16"):
...     model = mmkeras.get_model("s0", **mmkeras.get_entry("s0").tiny)
>>> model.get_layer("hidden_dense1").compute_dtype, model.get_layer("label").compute_dtype  # head in float32
('bfloat16', 'float32')
"""

import contextlib
import functools

import keras

from mmkeras.defaults import PRECISIONS  # kept keras-free for the command line
from mmkeras.validation import check_one_of

_CPU_BF16_FLAGS = ("avx512_bf16", "amx_bf16", "amx_tile")


@functools.lru_cache(maxsize=None)
def cpu_supports_bfloat16(cpuinfo_path="/proc/cpuinfo"):
    """True when the CPU flags include AVX512_BF16 or AMX (Linux `/proc/cpuinfo`)."""
    try:
        with open(cpuinfo_path, encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[-1].split())
                    return any(flag in flags for flag in _CPU_BF16_FLAGS)
    except OSError:
        pass
    return False


def gpu_supports_bfloat16():
    """True when TensorFlow sees a GPU of compute capability 8.0 or newer (Ampere and later)."""
    import tensorflow as tf

    for gpu in tf.config.list_physical_devices("GPU"):
        try:
            capability = tf.config.experimental.get_device_details(gpu).get("compute_capability")
        except (RuntimeError, ValueError):
            capability = None
        if capability and tuple(capability) >= (8, 0):
            return True
    return False


def resolve_precision(precision="auto"):
    """The Keras dtype policy name for `precision` (`"auto"` resolved for this machine).

    Args:
        precision: one of `"auto"`, `"float32"`, `"mixed_bfloat16"`, `"mixed_float16"`.
            Defaults to `"auto"`.

    Returns:
        `"float32"`, `"mixed_bfloat16"` or `"mixed_float16"`.

    Example:

    >>> resolve_precision("auto") in ("float32", "mixed_bfloat16")
    True
    """
    check_one_of("precision", precision, PRECISIONS)
    if precision != "auto":
        return precision
    if gpu_supports_bfloat16() or cpu_supports_bfloat16():
        return "mixed_bfloat16"
    return "float32"


@contextlib.contextmanager
def precision_scope(precision="auto"):
    """Set Keras' global dtype policy for the models built inside; restore it on exit.

    Yields the policy name (`"auto"` resolved).

    Example:

    >>> with precision_scope("mixed_bfloat16") as policy:
    ...     layer = keras.layers.Dense(4)
    >>> policy, layer.compute_dtype
    ('mixed_bfloat16', 'bfloat16')
    """
    policy = resolve_precision(precision)
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(policy)
    try:
        yield policy
    finally:
        keras.mixed_precision.set_global_policy(previous)
