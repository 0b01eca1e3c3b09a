"""The zoo runs on Keras' JAX backend too: its layers are written with keras.ops.

Two promises are checked in JAX-backend subprocesses (`KERAS_BACKEND=jax`, `JAX_PLATFORMS=cpu`):

- every fusion layer, text encoder and image encoder, built on JAX from the `.weights.h5` file this
  (TensorFlow) process saved, loads exactly those weights and gives TensorFlow's outputs on the
  same inputs (one subprocess for all of them, each case reported by name, bounded in time);
- the zoo models in `MODELS` build, fit and save on JAX (one subprocess per model, `slow`).
"""

import json
import os
import subprocess
import sys
import traceback

import keras
import numpy as np
import pytest

pytest.importorskip("jax")

from mmkeras import fusion  # noqa: E402
from mmkeras.encoders import IMAGE_ENCODERS, TEXT_ENCODERS, TokenAndPositionEmbedding  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# --- TensorFlow and JAX give the same outputs from the same weights --------------------------------

MIXED, COMMON = (3, 5, 2), (4, 4, 4)  # modality widths
SEQUENCE_LENGTH, VOCAB = 12, 40
TEXT = dict(sequence_length=SEQUENCE_LENGTH, vocab_size=VOCAB, embedding_dim=8)


def _fusion_cases():
    """Every `FUSIONS` entry, with and without `units` where it takes both, on 3 (and 2) modalities."""
    cases = {}
    for name in fusion.FUSIONS:
        if name == "low_rank_tensor":  # `units` is its output width, never a projection
            variants = [({"units": 5, "rank": 3}, MIXED)]
        elif name in ("sum", "weighted_sum", "product"):  # without units: one width
            variants = [({}, COMMON), ({"units": 4, "activation": "tanh"}, MIXED)]
        elif name == "shared_transformer":  # without units: heads dividing the first width (3)
            variants = [({"num_heads": 1}, MIXED), ({"units": 4, "num_layers": 2}, MIXED)]
        else:
            variants = [({}, MIXED), ({"units": 2 if name == "tensor" else 4}, MIXED)]
        if name == "sequence":
            variants.append(({"units": 4, "cell": "lstm"}, MIXED))
        most = fusion.FUSIONS[name].max_inputs or 3
        for kwargs, widths in variants:
            for count in (3, 2) if most >= 3 else (2,):
                label = "-".join([name, *(f"{k}={v}" for k, v in kwargs.items()), f"{count}mod"])
                cases[f"fusion-{label}"] = ("fusion", name, kwargs, widths[:count])
    # Sequences: 16 patch-like tokens of width 3 and token ids embedded with a padding mask.
    cases["fusion-shared_transformer-units=4-sequences-masked"] = (
        "fusion", "shared_transformer", {"units": 4, "num_layers": 2}, ((16, 3), "token_ids")
    )
    return cases


CASES = {
    **_fusion_cases(),
    "text-rnn-lstm": ("text", "rnn", {**TEXT, "units": 6}),
    "text-rnn-gru-2layers": ("text", "rnn", {**TEXT, "units": 6, "cell": "gru", "num_layers": 2}),
    "text-rnn-bilstm-2layers": ("text", "rnn", {**TEXT, "units": 6, "bidirectional": True, "num_layers": 2}),
    "text-rnn-bigru": ("text", "rnn", {**TEXT, "units": 6, "cell": "gru", "bidirectional": True}),
    "text-rnn-lstm-unmasked": ("text", "rnn", {**TEXT, "units": 6, "mask_zero": False}),
    "text-conv": ("text", "conv", {**TEXT, "filters": 4, "kernel_sizes": (2, 3)}),
    "text-transformer": ("text", "transformer", {**TEXT, "num_heads": 2, "intermediate_dim": 16, "num_layers": 2}),
    "text-embedding": ("text", "embedding", TEXT),
    "image-cnn": ("image", "cnn", {"image_shape": (16, 16, 3), "filters": (4, 8)}),
    "image-cnn-bn-same-avg-dense": (
        "image",
        "cnn",
        {"image_shape": (16, 16, 3), "filters": (4, 8), "padding": "same", "pooling": "avg",
         "output": "avg", "batch_norm": True, "dense_units": (6,)},
    ),
    "image-cnn-unpooled-max": (
        "image", "cnn", {"image_shape": (12, 12, 3), "filters": (4,), "pooling": None, "output": "max"}
    ),
    "image-residual_cnn": ("image", "residual_cnn", {"image_shape": (16, 16, 3), "filters": (4, 8)}),
    "image-applications-MobileNetV3Small": ("image", "applications", {"image_shape": (32, 32, 3)}),
    "image-patch": ("image", "patch", {"image_shape": (16, 16, 3), "patch_size": 4, "embedding_dim": 6}),
}


def test_cases_cover_every_fusion_and_encoder():
    covered = {(kind, name) for kind, name, *_ in CASES.values()}
    assert covered == {
        *(("fusion", name) for name in fusion.FUSIONS),
        *(("text", name) for name in TEXT_ENCODERS),
        *(("image", name) for name in IMAGE_ENCODERS),
    }


def build_case(case):
    """The case's layer or encoder as a `keras.Model` (fusions get one `Input` per modality: a
    vector of width `w`, a sequence of shape `(length, width)`, or `"token_ids"` embedded with a mask)."""
    kind, name, kwargs, *widths = CASES[case]
    if kind == "fusion":
        inputs, features = [], []
        for i, w in enumerate(widths[0]):
            if w == "token_ids":
                inputs.append(keras.Input((SEQUENCE_LENGTH,), dtype="int32", name=f"modality_{i}"))
                features.append(TokenAndPositionEmbedding(VOCAB, SEQUENCE_LENGTH, 4)(inputs[-1]))
            else:
                inputs.append(keras.Input(w if isinstance(w, tuple) else (w,), name=f"modality_{i}"))
                features.append(inputs[-1])
        return keras.Model(inputs, fusion.get_fusion(name, **kwargs)(features))
    return (TEXT_ENCODERS if kind == "text" else IMAGE_ENCODERS)[name](**kwargs)


def case_inputs(case, n=5):
    """Fixed inputs: normal vectors, token ids padded (id 0) at the end by different amounts, images."""
    kind, _, kwargs, *widths = CASES[case]
    rng = np.random.default_rng(7)

    def token_ids():
        ids = rng.integers(1, VOCAB, size=(n, SEQUENCE_LENGTH)).astype("int32")
        for row, length in enumerate([SEQUENCE_LENGTH, 1, 5, SEQUENCE_LENGTH - 1, 8][:n]):
            ids[row, length:] = 0
        return ids

    if kind == "fusion":
        return [
            token_ids() if w == "token_ids" else rng.normal(size=(n, *(w if isinstance(w, tuple) else (w,)))).astype("float32")
            for w in widths[0]
        ]
    if kind == "text":
        return token_ids()
    return rng.random((n, *kwargs["image_shape"]), dtype=np.float32)


def randomize_initial_weights(model, seed=0):
    """Weights initialised to all 0s or all 1s (biases, batch-norm statistics, logits) become random,
    and embeddings (initialised within +-0.05) standard normal.

    Otherwise a backend that dropped a bias or ignored batch-norm statistics would still match, and
    the text encoders' outputs would be so small (about 0.01) that 1e-5 would not be a tight check.
    """
    rng = np.random.default_rng(seed)
    for variable in model.weights:
        w = keras.ops.convert_to_numpy(variable)
        if variable.path.endswith("/embeddings"):
            w = rng.normal(size=w.shape)
        elif np.all(w == 0):
            w = rng.normal(scale=0.2, size=w.shape)
        elif np.all(w == 1):
            w = rng.uniform(0.5, 1.5, size=w.shape)
        variable.assign(w.astype(variable.dtype))


JAX_WORKER = """
import json, os, sys, traceback
import keras, numpy as np
assert keras.backend.backend() == "jax", keras.backend.backend()
from tests.test_backends import build_case, case_inputs, skip_random_initialisation
skip_random_initialisation()
folder = sys.argv[1]
for case in json.loads(sys.argv[2]):
    try:
        model = build_case(case)
        model.load_weights(os.path.join(folder, case + ".weights.h5"))
        inputs = case_inputs(case)
        output = model.predict(inputs, batch_size=64, verbose=0)  # one jit-compiled batch
        arrays = {f"weight_{i}": w for i, w in enumerate(model.get_weights())}
        np.savez(os.path.join(folder, case + ".jax.npz"), output=output, **arrays)
    except Exception:
        with open(os.path.join(folder, case + ".jax_error.txt"), "w") as f:
            f.write(traceback.format_exc())
    print("done", case, flush=True)
"""


def skip_random_initialisation():
    """JAX compiles a random initialiser for every new weight shape (seconds per model on 2 cores).

    The JAX side loads every weight from TensorFlow's file (and the test checks that it did), so
    its initial values do not matter: they become zeros, which cost no compilation.
    """
    import jax.numpy as jnp
    from keras.src.backend.jax import random

    def zeros(shape, *args, dtype=None, **kwargs):
        return jnp.zeros(shape, dtype or "float32")

    for name in ("uniform", "normal", "truncated_normal"):
        setattr(random, name, zeros)


JAX_TIMEOUT_S = 300  # the whole comparison run; each case is written as soon as it is done


def _jax_env():
    return {**os.environ, "KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu", "PYTHONPATH": ROOT,
            "TF_CPP_MIN_LOG_LEVEL": "3"}


@pytest.fixture(scope="module")
def tensorflow_and_jax(request, tmp_path_factory):
    """Build every selected case here (TensorFlow), save its weights and outputs, run them all on JAX."""
    assert keras.backend.backend() == "tensorflow"
    folder = str(tmp_path_factory.mktemp("jax_vs_tf"))
    expected, errors = {}, {}
    selected = [
        item.callspec.params["case"]
        for item in request.session.items
        if getattr(item, "originalname", None) == "test_jax_gives_tensorflows_outputs_from_the_same_weights"
    ]
    for case in selected:
        try:
            keras.utils.set_random_seed(0)
            model = build_case(case)
            randomize_initial_weights(model)
            model.save_weights(os.path.join(folder, case + ".weights.h5"))
            output = keras.ops.convert_to_numpy(model(case_inputs(case), training=False))
            expected[case] = (output, model.get_weights())
        except Exception:
            errors[case] = traceback.format_exc()
    try:
        done = subprocess.run(
            [sys.executable, "-c", JAX_WORKER, folder, json.dumps([case for case in selected if case in expected])],
            env=_jax_env(), cwd=ROOT, capture_output=True, text=True, timeout=JAX_TIMEOUT_S,
        )
        log = f"exit code {done.returncode}\n{done.stderr[-3000:]}"
    except subprocess.TimeoutExpired as e:
        stdout = e.stdout.decode() if isinstance(e.stdout, bytes) else e.stdout
        log = f"the JAX run passed its {JAX_TIMEOUT_S} s limit; cases done:\n{stdout}"
    return folder, expected, errors, log


def _param(case):
    """Two-modality fusions repeat their three-modality code path: the `slow` run checks them
    (a fusion of at most two modalities has only its two-modality cases, in the default run)."""
    three = case.replace("-2mod", "-3mod")
    return pytest.param(case, marks=pytest.mark.slow) if case.endswith("-2mod") and three in CASES else case


@pytest.mark.parametrize("case", [_param(case) for case in CASES])
def test_jax_gives_tensorflows_outputs_from_the_same_weights(case, tensorflow_and_jax):
    folder, expected, errors, log = tensorflow_and_jax
    assert case not in errors, f"TensorFlow side failed:\n{errors[case]}"
    error_file = os.path.join(folder, case + ".jax_error.txt")
    if os.path.exists(error_file):
        with open(error_file) as f:
            pytest.fail(f"JAX side failed:\n{f.read()}")
    result_file = os.path.join(folder, case + ".jax.npz")
    assert os.path.exists(result_file), f"the JAX run never reached {case}: {log}"
    tf_output, tf_weights = expected[case]
    with np.load(result_file) as jax_result:
        jax_weights = [jax_result[f"weight_{i}"] for i in range(len(jax_result.files) - 1)]
        jax_output = jax_result["output"]
    assert len(jax_weights) == len(tf_weights)
    for i, (a, b) in enumerate(zip(jax_weights, tf_weights)):  # the .weights.h5 file loaded in full
        np.testing.assert_array_equal(a, b, err_msg=f"weight {i}")
    assert np.isfinite(tf_output).all()
    assert np.abs(tf_output).max() > 0.1  # outputs of order 1: atol=1e-5 is not a loose check
    np.testing.assert_allclose(jax_output, tf_output, rtol=1e-5, atol=1e-5)


# --- Zoo models build, fit and save on JAX ---------------------------------------------------------

MODELS = ["s1", "s4_multitask", "fusion_gated", "fusion_low_rank_tensor", "fusion_attention", "residual_transformer",
          "shared_encoder"]

FIT_WORKER = """
import json, sys, tempfile
import keras
from tests.helpers import run_fit_test, run_saving_test, tiny_model
assert keras.backend.backend() == "jax", keras.backend.backend()
model = tiny_model(sys.argv[1], learning_rate=3e-3)
losses = run_fit_test(model)
with tempfile.TemporaryDirectory() as tmp:
    run_saving_test(model, tmp)
print("RESULTS " + json.dumps(losses))
"""


@pytest.mark.slow
@pytest.mark.parametrize("name", MODELS)
def test_zoo_model_builds_fits_and_saves_on_jax(name):
    done = subprocess.run(
        [sys.executable, "-c", FIT_WORKER, name], env=_jax_env(), cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    losses = json.loads([line for line in done.stdout.splitlines() if line.startswith("RESULTS ")][-1][8:])
    assert losses[-1] < losses[0], losses
