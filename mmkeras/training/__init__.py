"""Train, evaluate and predict: the Python API that the `mmkeras` command is a thin layer over.

- `train` (`train.py`): the main job end to end, writing a run folder.
- `evaluate`, `predict` (`inference.py`): a trained task on a dataset split, or on one example.
- `load_run` and the run-folder format (`runs.py`); `plot_history` and the learning-rate
  schedule (`reporting.py`).

Example:

>>> import mmkeras
>>> result = mmkeras.train(epochs=1, limit=300, max_steps=2, output=False, verbose=0)
>>> result.model.head.name, sorted(result.history)[:2]
('answer', ['accuracy', 'loss'])
"""

from mmkeras.training.inference import evaluate, predict
from mmkeras.training.reporting import learning_rate_schedule, plot_history
from mmkeras.training.runs import default_output, load_run
from mmkeras.training.train import DEFAULT_DATASET, DEFAULT_MODEL, TrainResult, train, training_defaults

__all__ = [
    "DEFAULT_DATASET",
    "DEFAULT_MODEL",
    "TrainResult",
    "default_output",
    "evaluate",
    "learning_rate_schedule",
    "load_run",
    "plot_history",
    "predict",
    "train",
    "training_defaults",
]
