"""Shared pytest set-up: quiet TensorFlow, seeded runs, one temporary folder per test.

Keras is imported inside the fixture, not here: under `pytest -n 2` (pytest-xdist) the controlling
process loads this file too but runs no test, and importing TensorFlow there would print its
start-up lines outside pytest's output capture.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _seed():
    import keras

    keras.utils.set_random_seed(1234)
    yield
    keras.backend.clear_session()
