"""Heads: the output layers of a model, with their loss, metrics and post-processing.

A head turns the fused features into one named output (the output layer carries the head's
`name`), knows how to compile for it, checks labels before training starts, and turns its
outputs into answers: `postprocess` in Python (class names and probabilities, per-label
probabilities, values) and `serving_outputs` inside an exported graph. A task asks its head what
its outputs mean; nothing reads activations or loss names back. Output layers always compute in
float32, so mixed-precision models still give float32 probabilities. `get_config()` is the spec
that `get_head` takes back.

Example:

>>> head = get_head("multiclass", num_classes=13, name="answer")
>>> head.loss
'sparse_categorical_crossentropy'
"""

import keras
import numpy as np

from mmkeras.validation import check_bool, check_kwargs, check_one_of, check_positive_int


class Head:
    """Base class of the single-output heads.

    Args:
        name: str, the output's name (the output layer's name). Defaults to `"label"`.
        units: int, the output width.
    """

    kind = None
    activation = None
    loss = None
    from_logits = False

    def __init__(self, name="label", units=1):
        if not isinstance(name, str) or not name.isidentifier():
            raise ValueError(f"`name` must be a Python identifier, the output's name. Received: name={name!r}")
        self.name = name
        self.units = check_positive_int("units", units)

    def get_config(self):
        """The head's spec, `{"kind": ..., **arguments}`: `get_head(head.get_config())` rebuilds it."""
        return {"kind": self.kind, "name": self.name}

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items() if k != "kind")
        return f"{type(self).__name__}({args})"

    # What the outputs mean.

    @property
    def num_class_names(self):
        """How many class names this head takes (None: it has no classes)."""
        return None

    def check_class_names(self, class_names):
        """`class_names` as a list of str, checked against this head; None stays None."""
        if class_names is None:
            return None
        expected = self.num_class_names
        if expected is None:
            raise ValueError(
                f"`class_names` cannot be given for {type(self).__name__} {self.name!r}: its outputs are "
                f"values, not classes. Received: class_names={class_names!r}"
            )
        if isinstance(class_names, str) or not hasattr(class_names, "__len__"):
            raise ValueError(f"`class_names` must be a list of strings. Received: class_names={class_names!r}")
        names = [str(c) for c in class_names]
        if len(names) != expected:
            raise ValueError(
                f"`class_names` for output {self.name!r} ({type(self).__name__}, {self.units} unit(s)) must "
                f"hold {expected} names{' (negative first, then positive)' if self.kind == 'binary' else ''}. "
                f"Received: {len(names)} names {names[:20]!r}"
            )
        return names

    def _names(self, class_names):
        return class_names or [str(i) for i in range(self.num_class_names)]

    def probabilities(self, values):
        """The head's outputs as probabilities (numpy), or the values for a regression head."""
        return np.asarray(values, dtype="float64")

    def postprocess(self, values, class_names=None, top_k=3):
        """Outputs `(batch, units)` -> one answer dict per example (see each head)."""
        raise NotImplementedError

    def serving_outputs(self, value, class_names=None):
        """Named output tensors of an exported graph: `{name: value, ...}` (TensorFlow ops)."""
        return {self.name: value}

    def __call__(self, features):
        return keras.layers.Dense(self.units, activation=self.activation, dtype="float32", name=self.name)(
            features
        )

    @property
    def output_names(self):
        return [self.name]

    def metrics(self):
        """Fresh metric objects for `model.compile`."""
        return ["accuracy"]

    def compile_args(self):
        """The `loss` and `metrics` arguments of `model.compile`."""
        return {"loss": self.loss, "metrics": self.metrics()}

    def check_labels(self, labels):
        """Raise `ValueError` if `labels` cannot train this head; return them as an array."""
        labels = np.asarray(labels)
        if labels.ndim == 0 or not np.issubdtype(labels.dtype, np.number) and labels.dtype != bool:
            raise ValueError(
                f"labels for head {self.name!r} must be a numeric array with one row per example. "
                f"Received: labels of dtype {labels.dtype} and shape {labels.shape}"
            )
        if np.issubdtype(labels.dtype, np.floating) and not np.all(np.isfinite(labels)):
            raise ValueError(f"labels for head {self.name!r} must be finite. Received: labels containing NaN or inf")
        return labels

    def _check_width(self, labels):
        width = 1 if labels.ndim == 1 else labels.shape[-1]
        if labels.ndim > 2 or width != self.units:
            raise ValueError(
                f"labels for head {self.name!r} ({type(self).__name__}, {self.units} outputs) must have "
                f"shape (n,) or (n, {self.units}). Received: labels of shape {labels.shape}"
            )


class BinaryHead(Head):
    """One sigmoid unit: match / no match, positive / negative (the documents' default head).

    Args:
        name: str, the output's name. Defaults to `"label"`.
        from_logits: bool, output the logit instead of the probability (the loss then applies
            the sigmoid itself; accuracy thresholds the logit at 0). Defaults to `False`.

    Example:

    >>> head = BinaryHead(name="match")
    >>> head.postprocess([[0.8]], class_names=["no", "yes"])[0]["answer"]
    'yes'
    """

    kind = "binary"

    def __init__(self, name="label", from_logits=False):
        super().__init__(name=name, units=1)
        self.from_logits = check_bool("from_logits", from_logits)
        self.activation = None if from_logits else "sigmoid"
        self.loss = keras.losses.BinaryCrossentropy(from_logits=True) if from_logits else "binary_crossentropy"

    def get_config(self):
        return {**super().get_config(), "from_logits": self.from_logits}

    def metrics(self):
        threshold = 0.0 if self.from_logits else 0.5
        return [keras.metrics.BinaryAccuracy(threshold=threshold, name="accuracy")]

    @property
    def num_class_names(self):
        return 2

    def probabilities(self, values):
        values = np.asarray(values, dtype="float64")
        return 1.0 / (1.0 + np.exp(-values)) if self.from_logits else values

    def postprocess(self, values, class_names=None, top_k=3):
        """One dict per example: `answer` (the class name, positive when p >= 0.5), its
        `probability`, and `top`: both classes with their probabilities, most likely first."""
        names = self._names(class_names)
        answers = []
        for p in self.probabilities(values).reshape(len(values), self.units)[:, 0]:
            top = sorted([(names[1], float(p)), (names[0], float(1 - p))], key=lambda t: -t[1])
            answers.append({"answer": top[0][0], "probability": top[0][1], "top": top[:top_k]})
        return answers

    def serving_outputs(self, value, class_names=None):
        import tensorflow as tf

        outputs = {self.name: value}
        probability = tf.sigmoid(value) if self.from_logits else value
        if self.from_logits:
            outputs[f"{self.name}_probability"] = probability
        index = tf.cast(probability[:, 0] >= 0.5, tf.int32)
        outputs[f"{self.name}_class"] = tf.gather(tf.constant(self._names(class_names)), index)
        return outputs

    def check_labels(self, labels):
        labels = super().check_labels(labels)
        self._check_width(labels)
        if not np.isin(labels, (0, 1)).all():
            raise ValueError(
                f"labels for binary head {self.name!r} must be 0 or 1. "
                f"Received: labels with values {np.unique(labels)[:10].tolist()}"
            )
        return labels


class MulticlassHead(Head):
    """Softmax over `num_classes`; integer labels (sparse categorical cross-entropy).

    Args:
        num_classes: int >= 2, the number of classes (output units).
        name: str, the output's name. Defaults to `"label"`.

    Example:

    >>> head = MulticlassHead(3, name="answer")
    >>> head.postprocess([[0.1, 0.7, 0.2]], class_names=["red", "green", "blue"])[0]["answer"]
    'green'
    """

    kind = "multiclass"
    activation = "softmax"
    loss = "sparse_categorical_crossentropy"

    def __init__(self, num_classes, name="label"):
        check_positive_int("num_classes", num_classes)
        if num_classes < 2:
            raise ValueError(
                "`num_classes` must be at least 2 for a multiclass head (use head='binary' for one "
                f"sigmoid output). Received: num_classes={num_classes}"
            )
        super().__init__(name=name, units=num_classes)
        self.num_classes = num_classes

    def get_config(self):
        return {**super().get_config(), "num_classes": self.num_classes}

    @property
    def num_class_names(self):
        return self.num_classes

    def postprocess(self, values, class_names=None, top_k=3):
        """One dict per example: `answer` (the most likely class name), its `probability`, and
        `top`: the `top_k` most likely `(class name, probability)`, most likely first."""
        names = self._names(class_names)
        answers = []
        for row in self.probabilities(values):
            order = np.argsort(-row, kind="stable")[:top_k]
            top = [(names[i], float(row[i])) for i in order]
            answers.append({"answer": top[0][0], "probability": top[0][1], "top": top})
        return answers

    def serving_outputs(self, value, class_names=None):
        import tensorflow as tf

        index = tf.argmax(value, axis=-1, output_type=tf.int32)
        return {self.name: value, f"{self.name}_class": tf.gather(tf.constant(self._names(class_names)), index)}

    def check_labels(self, labels):
        labels = super().check_labels(labels)
        if labels.ndim == 2 and labels.shape[-1] == 1:
            labels = labels[:, 0]
        if labels.ndim != 1:
            raise ValueError(
                f"labels for multiclass head {self.name!r} must be class indices of shape (n,). "
                f"Received: labels of shape {labels.shape}"
            )
        if labels.size and (
            not np.all(np.equal(np.mod(labels, 1), 0)) or labels.min() < 0 or labels.max() >= self.num_classes
        ):
            raise ValueError(
                f"labels for multiclass head {self.name!r} must be integers in [0, {self.num_classes}). "
                f"Received: labels from {labels.min()} to {labels.max()}"
            )
        return labels


class MultilabelHead(Head):
    """`num_labels` independent sigmoids (several labels may be on at once).

    Args:
        num_labels: int, the number of labels (output units).
        name: str, the output's name. Defaults to `"labels"`.
        threshold: float in (0, 1), the probability from which a label is on (post-processing
            and the accuracy metric). Defaults to `0.5`.

    Example:

    >>> head = MultilabelHead(3, threshold=0.4)
    >>> head.postprocess([[0.9, 0.1, 0.5]], class_names=["cat", "dog", "bird"])[0]["answer"]
    ['cat', 'bird']
    """

    kind = "multilabel"
    activation = "sigmoid"
    loss = "binary_crossentropy"

    def __init__(self, num_labels, name="labels", threshold=0.5):
        super().__init__(name=name, units=check_positive_int("num_labels", num_labels))
        self.num_labels = num_labels
        if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0 < threshold < 1:
            raise ValueError(f"`threshold` must be a number in (0, 1). Received: threshold={threshold!r}")
        self.threshold = float(threshold)

    def get_config(self):
        return {**super().get_config(), "num_labels": self.num_labels, "threshold": self.threshold}

    @property
    def num_class_names(self):
        return self.num_labels

    def postprocess(self, values, class_names=None, top_k=3):
        """One dict per example: `answer` (the names of the labels whose probability reaches
        `threshold`, most likely first) and `probabilities` (`{label name: probability}`)."""
        names = self._names(class_names)
        answers = []
        for row in self.probabilities(values):
            order = np.argsort(-row, kind="stable")
            answers.append({
                "answer": [names[i] for i in order if row[i] >= self.threshold],
                "probabilities": {names[i]: float(row[i]) for i in range(len(names))},
            })
        return answers

    def serving_outputs(self, value, class_names=None):
        import tensorflow as tf

        return {self.name: value, f"{self.name}_on": tf.cast(value >= self.threshold, tf.int32)}

    def metrics(self):
        return [
            keras.metrics.BinaryAccuracy(threshold=self.threshold, name="accuracy"),
            keras.metrics.AUC(multi_label=True, num_labels=self.num_labels, name="auc"),
        ]

    def check_labels(self, labels):
        labels = super().check_labels(labels)
        self._check_width(labels if labels.ndim > 1 else labels[:, None])
        if not np.isin(labels, (0, 1)).all():
            raise ValueError(f"labels for multilabel head {self.name!r} must be 0 or 1 multi-hot rows.")
        return labels


class RegressionHead(Head):
    """Linear outputs, mean squared error, mean absolute error as the metric.

    Args:
        units: int, the number of targets. Defaults to `1`.
        name: str, the output's name. Defaults to `"value"`.

    Example:

    >>> RegressionHead(units=2).postprocess([[0.5, 1.5]])
    [{'answer': [0.5, 1.5]}]
    """

    kind = "regression"
    loss = "mean_squared_error"

    def __init__(self, units=1, name="value"):
        super().__init__(name=name, units=units)

    def get_config(self):
        return {**super().get_config(), "units": self.units}

    def postprocess(self, values, class_names=None, top_k=3):
        """One dict per example: `answer`, the predicted value (a float, or a list of
        `units` floats)."""
        values = np.asarray(values, dtype="float64").reshape(len(values), self.units)
        return [{"answer": float(row[0]) if self.units == 1 else [float(v) for v in row]} for row in values]

    def metrics(self):
        return [keras.metrics.MeanAbsoluteError(name="mae")]

    def check_labels(self, labels):
        labels = super().check_labels(labels)
        self._check_width(labels)
        return labels


class MultiTaskHead:
    """Several heads on the same features: a dict of named outputs, a loss per output.

    Args:
        heads: dict `{output_name: head}`, where each head is a `Head` or a spec accepted by
            `get_head` (the key becomes the head's name).
        loss_weights: dict `{output_name: float}` or None. Defaults to `None` (all 1).

    Example:

    >>> head = MultiTaskHead({"image_class": {"kind": "multiclass", "num_classes": 10},
    ...                       "sentiment": "binary"})
    >>> head.output_names
    ['image_class', 'sentiment']
    """

    def __init__(self, heads, loss_weights=None):
        if not isinstance(heads, dict) or len(heads) < 2:
            raise ValueError(
                "`heads` must be a dict of at least two {output_name: head} entries for a multi-task "
                f"head. Received: heads={heads!r}"
            )
        self.heads = {}
        for name, spec in heads.items():
            if isinstance(spec, Head):
                if spec.name != name:
                    raise ValueError(f"`heads` key {name!r} must equal the head's name. Received: name={spec.name!r}")
                self.heads[name] = spec
            else:
                self.heads[name] = get_head(spec, name=name)
        if loss_weights is not None and set(loss_weights) != set(self.heads):
            raise ValueError(
                f"`loss_weights` must have one weight per output {sorted(self.heads)}. "
                f"Received: loss_weights={loss_weights!r}"
            )
        self.loss_weights = loss_weights
        self.name = None  # several outputs: no one name

    kind = "multitask"

    def get_config(self):
        config = {"kind": self.kind, "heads": {name: head.get_config() for name, head in self.heads.items()}}
        if self.loss_weights:
            config["loss_weights"] = dict(self.loss_weights)
        return config

    def __repr__(self):
        return f"MultiTaskHead({self.heads!r})"

    @property
    def output_names(self):
        return list(self.heads)

    def check_class_names(self, class_names):
        """`{output_name: [names]}` for some of the heads (each checked by its head)."""
        if class_names is None:
            return None
        if not isinstance(class_names, dict) or not set(class_names) <= set(self.heads):
            raise ValueError(
                "`class_names` of a multi-task model must be a dict `{output_name: [names]}` over the "
                f"outputs {sorted(self.heads)}. Received: class_names={class_names!r}"
            )
        return {name: self.heads[name].check_class_names(names) for name, names in class_names.items()}

    def postprocess(self, values, class_names=None, top_k=3):
        """One dict per example: `{output_name: that head's answer dict}`."""
        class_names = class_names or {}
        per_head = {
            name: head.postprocess(values[name], class_names.get(name), top_k) for name, head in self.heads.items()
        }
        size = len(next(iter(per_head.values())))
        return [{name: answers[i] for name, answers in per_head.items()} for i in range(size)]

    def serving_outputs(self, values, class_names=None):
        class_names = class_names or {}
        outputs = {}
        for name, head in self.heads.items():
            outputs.update(head.serving_outputs(values[name], class_names.get(name)))
        return outputs

    def __call__(self, features):
        return {name: head(features) for name, head in self.heads.items()}

    def compile_args(self):
        args = {
            "loss": {name: head.loss for name, head in self.heads.items()},
            "metrics": {name: head.metrics() for name, head in self.heads.items()},
        }
        if self.loss_weights:
            args["loss_weights"] = dict(self.loss_weights)
        return args

    def check_labels(self, labels):
        if not isinstance(labels, dict) or set(labels) != set(self.heads):
            got = sorted(labels) if isinstance(labels, dict) else type(labels).__name__
            raise ValueError(
                f"labels for a multi-task head must be a dict with the keys {sorted(self.heads)}. "
                f"Received: {got}"
            )
        return {name: head.check_labels(labels[name]) for name, head in self.heads.items()}


HEADS = {
    "binary": BinaryHead,
    "multiclass": MulticlassHead,
    "multilabel": MultilabelHead,
    "regression": RegressionHead,
    "multitask": MultiTaskHead,
}


def get_head(head, num_classes=None, **kwargs):
    """Return a head from a name in `HEADS`, a dict `{"kind": name, **arguments}`, or a head.

    `num_classes`, when given, is the number of outputs: it must be 1 (or None) for a binary head,
    and fills `num_classes` / `num_labels` / `units` of the other heads.

    Example:

    >>> get_head({"kind": "multiclass", "num_classes": 13, "name": "answer"}).units
    13
    """
    if isinstance(head, (Head, MultiTaskHead)):
        if num_classes is not None and head.output_names and isinstance(head, Head) and head.units != num_classes:
            raise ValueError(
                f"`num_classes` does not match the head's {head.units} outputs. Received: num_classes={num_classes}"
            )
        return head
    if isinstance(head, dict):
        kwargs = {**{k: v for k, v in head.items() if k != "kind"}, **kwargs}
        head = head.get("kind")
    check_one_of("head", head, HEADS)
    cls = HEADS[head]
    if num_classes is not None:
        check_positive_int("num_classes", num_classes)
        if cls is BinaryHead and num_classes != 1:
            raise ValueError(
                "`num_classes` must be 1 for a binary head (use head='multiclass' for more classes). "
                f"Received: num_classes={num_classes}"
            )
        if cls is MultiTaskHead:
            raise ValueError(
                "`num_classes` cannot be set for a multi-task head: set it per task in `heads`. "
                f"Received: num_classes={num_classes}"
            )
        key = {MulticlassHead: "num_classes", MultilabelHead: "num_labels", RegressionHead: "units"}.get(cls)
        if key:
            kwargs[key] = num_classes
    check_kwargs("head", head, [cls.__init__], kwargs)
    return cls(**kwargs)
