"""Graph pieces of the serving endpoints: request checks that run inside an exported graph.

The signatures declare unknown shapes on purpose: a loaded signature (and TF Serving) does not
enforce declared shapes, and a declared shape would let the graph optimizer fold these checks
away. So every request is checked here, in the graph, and a bad one fails with an
`InvalidArgumentError` that says what was expected. TensorFlow only (SavedModel export).
"""

import tensorflow as tf

SERVING_SIGNATURE = "serving_default"
TENSORS_SIGNATURE = "serve_tensors"

INPUT_CONTENT = {
    "image": "float image in [0, 1]",
    "token_ids": "token ids",
    "text": "raw text",
}


def checked(value, condition, *message):
    """`value` once `condition` holds; else an InvalidArgumentError that prints `message`."""
    check = tf.debugging.Assert(condition, ["Invalid request:", *message], summarize=8)
    with tf.control_dependencies([check]):
        return tf.identity(value)


def shape_text(shape):
    """`(batch, 32, 32, 3)`-style text for a per-example shape (None prints as `?`)."""
    return "(" + ", ".join(["batch", *("?" if d is None else str(d) for d in shape)]) + ("," if not shape else "") + ")"


def check_tensor(value, name, shape, what):
    """Check a request tensor's rank and known dimensions at run time, then give it a static shape."""
    rank = len(shape) + 1
    actual = tf.shape(value)
    condition = tf.equal(tf.size(actual), rank)
    known = [(i + 1, d) for i, d in enumerate(shape) if d is not None]
    if known:
        # Padded to `rank` entries, so the comparison itself never fails on a wrong rank.
        padded = tf.concat([actual, tf.fill([rank], -1)], axis=0)[:rank]
        same = tf.equal(tf.gather(padded, [i for i, _ in known]), [d for _, d in known])
        condition = tf.logical_and(condition, tf.reduce_all(same))
    value = checked(
        value,
        condition,
        f"`{name}` must be {what} of shape {shape_text(shape)}; received a tensor of shape",
        actual,
    )
    value.set_shape((None, *shape))
    return value


def check_same_batch(features):
    """All request tensors must hold the same number of examples."""
    names = list(features)
    if len(names) < 2:
        return features
    sizes = tf.stack([tf.shape(features[n])[0] for n in names])
    first = names[0]
    features = dict(features)
    features[first] = checked(
        features[first],
        tf.reduce_all(tf.equal(sizes, sizes[0])),
        f"the inputs {', '.join(f'`{n}`' for n in names)} must hold the same number of examples; "
        "received batch sizes",
        sizes,
    )
    return features


def check_image_bytes(images, name):
    """Every item must be non-empty encoded image bytes."""
    empty = tf.equal(tf.strings.length(images), 0)
    return checked(
        images,
        tf.logical_not(tf.reduce_any(empty)),
        f"`{name}` must hold the encoded bytes of one image (JPEG or PNG) per example; these items "
        "are empty strings (0-based indices):",
        tf.where(empty)[:, 0],
    )


def raw_request(request, input_kinds, absent_allowed=False):
    """Check a `serving_default` request (strings only) and return it as a dict.

    With `absent_allowed` (a model with missing modalities), empty image bytes are an absent
    image rather than an error.
    """
    features = {}
    for name, kind in input_kinds.items():
        if kind == "image":
            value = check_tensor(request[name], name, (), "a batch of encoded images (tf.string)")
            features[name] = value if absent_allowed else check_image_bytes(value, name)
        else:
            features[name] = check_tensor(request[name], name, (), "a batch of texts (tf.string)")
    return check_same_batch(features)


def first_bad_item(bad):
    """The 0-based index of the first example with a `True` in `bad` (batch, ...), or -1."""
    per_item = tf.reduce_any(tf.reshape(bad, [tf.shape(bad)[0], -1]), axis=1)
    return tf.cast(tf.reduce_min(tf.concat([tf.cast(tf.where(per_item)[:, 0], tf.int32), [-1]], 0)[:1]), tf.int32)


def check_image_values(value, name, absent_allowed=False):
    """Float images must be finite and in [0, 1]: NaN, inf or 0..255 values give wrong answers.

    With `absent_allowed`, an image of NaN only is an absent image (see `mmkeras.missing`).
    """
    finite = tf.math.is_finite(value)
    if absent_allowed:
        all_nan = tf.reduce_all(tf.reshape(tf.math.is_nan(value), [tf.shape(value)[0], -1]), axis=1)
        finite = tf.logical_or(finite, tf.reshape(all_nan, [-1, 1, 1, 1]))
    value = checked(
        value,
        tf.reduce_all(finite),
        f"`{name}` must hold finite float images in [0, 1]; NaN or inf in item (0-based index)",
        first_bad_item(tf.logical_not(finite)),
    )
    seen = tf.boolean_mask(value, tf.math.is_finite(value)) if absent_allowed else value
    outside = tf.logical_or(value < 0, value > 1)  # False for NaN
    return checked(
        value,
        tf.logical_not(tf.reduce_any(outside)),
        f"`{name}` must hold float images in [0, 1] (images in [0, 255] must be divided by 255); values "
        "outside [0, 1] in item (0-based index)",
        first_bad_item(outside),
        "from",
        tf.reduce_min(seen),
        "to",
        tf.reduce_max(seen),
    )


def check_token_ids(value, name, vocab_size):
    """Token ids must lie in [0, vocab_size): a negative id would read the embedding's last row."""
    bad = value < 0 if vocab_size is None else tf.logical_or(value < 0, value >= vocab_size)
    expected = "be >= 0" if vocab_size is None else f"lie in [0, {vocab_size})"
    return checked(
        value,
        tf.logical_not(tf.reduce_any(bad)),
        f"`{name}` token ids must {expected}; received out-of-range ids in item (0-based index)",
        first_bad_item(bad),
        "from",
        tf.reduce_min(value),
        "to",
        tf.reduce_max(value),
    )


def tensor_request(request, input_specs, input_kinds, vocab_sizes=None, absent_allowed=False):
    """Check a `serve_tensors` request against the model's own input specs and value ranges.

    Float images must be finite and in [0, 1] (or all NaN, absent, with `absent_allowed`); token
    ids in [0, `vocab_sizes[name]`).
    """
    what = {"image": "a batch of float images", "token_ids": "a batch of token ids", "text": "a batch of texts"}
    features = {}
    for name, kind in input_kinds.items():
        value = check_tensor(request[name], name, tuple(input_specs[name].shape[1:]), what[kind])
        if kind == "image" and value.dtype.is_floating:
            value = check_image_values(value, name, absent_allowed)
        elif kind == "token_ids" and value.dtype.is_integer:
            value = check_token_ids(value, name, (vocab_sizes or {}).get(name))
        features[name] = value
    return check_same_batch(features)


def batch_size(features):
    """The number of examples in a checked request (the first input's first dimension)."""
    return tf.shape(next(iter(features.values())))[0]


def empty_or(features, serve, empty_outputs):
    """`serve(features)`, or `empty_outputs()` (0 rows each) for a request of 0 examples.

    Empty in, empty out: some graphs cannot run on 0 examples (a reshape to a fixed batch, a
    fusion that broadcasts), so an empty request never reaches the model.
    """
    return tf.cond(batch_size(features) > 0, lambda: serve(features), empty_outputs)


def raw_signature(input_kinds):
    return {name: tf.TensorSpec(None, tf.string, name=name) for name in input_kinds}


def tensor_signature(input_specs):
    return {name: tf.TensorSpec(None, tf.as_dtype(spec.dtype), name=name) for name, spec in input_specs.items()}
