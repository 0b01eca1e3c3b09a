"""`mmkeras train --deterministic`: the same seed gives the same weights and metrics, bit for bit.

Op determinism is process-wide and cannot be switched off through TensorFlow's public API, so each
run is its own process (as a user's `mmkeras train` is).
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

import mmkeras

ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}

# Trains through the CLI, then prints whether TensorFlow's op determinism is on in that process.
WORKER = """
import sys
from mmkeras.cli import main
code = main(sys.argv[1:])
from tensorflow.python.framework import config
print("op determinism:", config.is_op_determinism_enabled())
sys.exit(code)
"""


def _train(folder, *extra):
    command = [
        sys.executable, "-c", WORKER, "train", "--tiny", "--limit", "300", "--epochs", "2", "--max-steps", "4",
        "--batch-size", "16", "--no-export", "--quiet", "--output", str(folder), *extra,
    ]
    done = subprocess.run(command, capture_output=True, text=True, env=ENV, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    with open(os.path.join(folder, "metrics.json"), encoding="utf-8") as f:
        metrics = json.load(f)
    weights = [np.asarray(w) for w in mmkeras.load_run(str(folder)).get_weights()]
    return done.stdout, metrics, weights


def _same(a, b):
    return len(a) == len(b) and all(x.shape == y.shape and np.array_equal(x, y) for x, y in zip(a, b))


@pytest.mark.slow  # three training processes (about 20 s each)
def test_two_deterministic_runs_give_identical_weights_and_metrics(tmp_path):
    out_a, metrics_a, weights_a = _train(tmp_path / "a", "--deterministic", "--seed", "3")
    out_b, metrics_b, weights_b = _train(tmp_path / "b", "--deterministic", "--seed", "3")
    assert "op determinism: True" in out_a and "op determinism: True" in out_b
    assert metrics_a["deterministic"] is True
    assert _same(weights_a, weights_b)
    for key in ("test_accuracy", "test_loss", "history"):
        assert metrics_a[key] == metrics_b[key], key
    # Another seed trains other weights, so the comparison above can tell runs apart.
    out_c, metrics_c, weights_c = _train(tmp_path / "c", "--seed", "4")
    assert "op determinism: False" in out_c and metrics_c["deterministic"] is False
    assert not _same(weights_a, weights_c)


def test_deterministic_must_be_a_bool():
    with pytest.raises(ValueError, match="deterministic"):
        mmkeras.train("vqa", "easy_vqa", deterministic="yes", output=False)
