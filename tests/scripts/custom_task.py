"""`PenalizedClassifier`: a task whose loss is not its head's default, for tests/test_distribute.py.

Its `compute_loss` adds a penalty on the outputs to the head's compiled loss, so a training loop
that computed the loss from `model.loss` instead of calling `compute_loss` would train another
model; and it carries a weight regularizer, a loss that must count once per step, not once per
replica. The tests import it as `tests.scripts.custom_task`, tests/scripts/train_resumable.py
(`--task penalized`) as `custom_task`; both also draw their data with `random_examples`.
"""

import keras
import numpy as np

import mmkeras
from mmkeras.tasks import FusionClassifier


@keras.saving.register_keras_serializable(package="tests")
class PenalizedClassifier(FusionClassifier):
    """A `FusionClassifier` trained on its head's loss + `penalty` x the mean square of its outputs.

    The first hidden layer's kernel also carries an L2 regularizer of factor `weight_decay`
    (a regularization loss, which `compute_loss` adds).

    Args:
        penalty: float, the weight of the penalty on the outputs. Defaults to `0.5`.
        weight_decay: float, the L2 factor on the `hidden_dense1` kernel. Defaults to `1e-3`.
        *args, **kwargs: the arguments of `FusionClassifier`.

    Example:

    >>> model = penalized_model("s0")
    >>> model.penalty, len(model.losses)  # the regularization loss
    (0.5, 1)
    """

    def __init__(self, *args, penalty=0.5, weight_decay=1e-3, **kwargs):
        super().__init__(*args, **kwargs)
        self.penalty = penalty
        self.weight_decay = weight_decay
        self.get_layer("hidden_dense1").kernel.regularizer = keras.regularizers.L2(weight_decay)
        # A keras.losses.Loss: inside a replica it divides by the number of replicas, which is
        # what Keras (and mmkeras' custom loop) expect of the value `compute_loss` returns.
        self.square = keras.losses.MeanSquaredError(name="output_penalty")

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        loss = super().compute_loss(x=x, y=y, y_pred=y_pred, sample_weight=sample_weight, training=training)
        outputs = keras.tree.flatten(y_pred)
        return loss + self.penalty * sum(self.square(keras.ops.zeros_like(p), p) for p in outputs)

    def get_config(self):
        return {**super().get_config(), "penalty": self.penalty, "weight_decay": self.weight_decay}


def penalized_model(name):
    """The zoo recipe `name`, tiny, as a `PenalizedClassifier` compiled with its defaults."""
    config = mmkeras.get_model(name, compile=False, **mmkeras.get_entry(name).tiny).get_config()
    model = PenalizedClassifier.from_config(config)
    model.compile()
    return model


def random_examples(model, n, seed=0):
    """`(x, y)`: `n` random images and token ids for `model`, and labels for each of its outputs."""
    rng = np.random.default_rng(seed)
    x = {
        "image": rng.random((n, *model.input["image"].shape[1:]), dtype="float32"),
        "text": rng.integers(0, 64, (n, model.input["text"].shape[1])).astype("int32"),
    }
    outputs = model.output if isinstance(model.output, dict) else {"label": model.output}
    y = {
        name: rng.integers(0, 2, (n,)).astype("float32") if out.shape[-1] == 1 else rng.integers(0, out.shape[-1], (n,))
        for name, out in outputs.items()
    }
    return x, (y if isinstance(model.output, dict) else y["label"])
