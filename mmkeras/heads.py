"""Heads: the output layers of a model, each with its default loss and metrics.

A head turns the fused features into one named output (the output layer carries the head's
`name`), knows how to compile for it, and checks labels before training starts. Output layers
always compute in float32, so mixed-precision models still give float32 probabilities.

Example:

>>> head = get_head("multiclass", num_classes=13, name="answer")
>>> head.loss
'sparse_categorical_crossentropy'
"""

import keras
import numpy as np

from mmkeras.validation import check_kwargs, check_one_of, check_positive_int


class Head:
    """Base class of the single-output heads.

    Args:
        name: str, the output's name (the output layer's name). Defaults to `"label"`.
        units: int, the output width.
    """

    activation = None
    loss = None

    def __init__(self, name="label", units=1):
        if not isinstance(name, str) or not name.isidentifier():
            raise ValueError(f"`name` must be a Python identifier, the output's name. Received: name={name!r}")
        self.name = name
        self.units = check_positive_int("units", units)

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
    """

    def __init__(self, name="label", from_logits=False):
        super().__init__(name=name, units=1)
        self.from_logits = from_logits
        self.activation = None if from_logits else "sigmoid"
        self.loss = keras.losses.BinaryCrossentropy(from_logits=True) if from_logits else "binary_crossentropy"

    def metrics(self):
        threshold = 0.0 if self.from_logits else 0.5
        return [keras.metrics.BinaryAccuracy(threshold=threshold, name="accuracy")]

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
        num_classes: int >= 2.
        name: str, the output's name. Defaults to `"label"`.
    """

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
        num_labels: int.
        name: str, the output's name. Defaults to `"labels"`.
    """

    activation = "sigmoid"
    loss = "binary_crossentropy"

    def __init__(self, num_labels, name="labels"):
        super().__init__(name=name, units=check_positive_int("num_labels", num_labels))
        self.num_labels = num_labels

    def metrics(self):
        return [
            keras.metrics.BinaryAccuracy(name="accuracy"),
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
    """

    loss = "mean_squared_error"

    def __init__(self, units=1, name="value"):
        super().__init__(name=name, units=units)

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

    @property
    def output_names(self):
        return list(self.heads)

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
