"""The zoo runs on Keras' JAX backend too: its layers are written with keras.ops."""

import json
import os
import subprocess
import sys

import pytest

pytest.importorskip("jax")

MODELS = ["s1", "s4_multitask", "fusion_gated", "fusion_low_rank_tensor", "fusion_attention", "residual_transformer"]

SCRIPT = """
import json, sys
import keras, numpy as np
import mmkeras
from tests.helpers import run_fit_test, run_saving_test, tiny_model
import tempfile
assert keras.backend.backend() == "jax", keras.backend.backend()
results = {}
for name in sys.argv[1:]:
    model = tiny_model(name, learning_rate=3e-3)
    losses = run_fit_test(model)
    with tempfile.TemporaryDirectory() as tmp:
        run_saving_test(model, tmp)
    results[name] = losses
print("RESULTS " + json.dumps(results))
"""


def test_zoo_models_build_fit_and_save_on_jax():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = {**os.environ, "KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu", "PYTHONPATH": root}
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, *MODELS], env=env, cwd=root, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-3000:]
    line = [l for l in done.stdout.splitlines() if l.startswith("RESULTS ")][-1]
    results = json.loads(line[len("RESULTS "):])
    assert sorted(results) == sorted(MODELS)
    for name, losses in results.items():
        assert losses[-1] < losses[0], (name, losses)
