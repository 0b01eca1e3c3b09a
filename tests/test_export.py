"""Export: SavedModels that serve raw image bytes and strings, `.keras` export, loading, atomic writes.

The default run checks one representative model per registered family (plus the models whose
inputs or outputs differ: grey images and a logit output, image-only, multi-task, raw-string
input) against every consumer: in-process signatures, `keras.layers.TFSMLayer`, a fresh Python
process that never imports mmkeras, `saved_model_cli show` and `saved_model_cli run`. The slow
run (`-m slow`) does the same for every registered model.
"""

import json
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf

import mmkeras
from mmkeras.export import METADATA_FILE, PREPROCESSOR_FILE, SERVING_SIGNATURE, TENSORS_SIGNATURE
from mmkeras.preprocessing import Preprocessor, text_vectorizer

ATOL = 1e-5
BATCH_SIZES = (1, 3)
PREFERRED = ("s0", "fusion_attention", "residual_transformer")  # cheap members of their families
SPECIAL = ("s2", "s3", "s4_multitask")  # grey images + logit output; image-only; two outputs
WORDS = "is the a circle square triangle red blue green yellow what shape color it there image".split()
SUBPROCESS_ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}
SAVED_MODEL_CLI = os.path.join(os.path.dirname(sys.executable), "saved_model_cli")


def representatives():
    """One model per registered family (a cheap one where known), so a new family is covered."""
    picks = []
    for family in sorted({mmkeras.get_entry(n).family for n in mmkeras.list_models()}):
        names = mmkeras.list_models(family=family)
        picks.append(next((n for n in PREFERRED if n in names), names[0]))
    return picks


DEFAULT_MODELS = sorted(set(representatives()) | {n for n in SPECIAL if n in mmkeras.list_models()})


# ---------------------------------------------------------------------------------------------
# Cases: a tiny model, its preprocessor, raw requests and the live model's answers.


def tiny(name):
    return mmkeras.get_model(name, **mmkeras.get_entry(name).tiny)


def class_names_for(model):
    """Class names for single-output classifiers; None otherwise (then indices are served)."""
    if isinstance(model.output, dict):
        return None
    units = model.output.shape[-1]
    return ["no", "yes"] if units == 1 else [f"class_{i}" for i in range(units)]


def preprocessor_for(model, class_names=None):
    """A Preprocessor fitted to the model's inputs: its image shape, a small vocabulary."""
    image = model.input.get("image")
    text = model.input.get("text")
    image_shape = tuple(image.shape[1:]) if image is not None else None
    if text is None or text.dtype == "string":
        return Preprocessor(image_shape=image_shape, class_names=class_names)
    vectorizer = text_vectorizer(WORDS[:12], vocab_size=32, sequence_length=text.shape[1])  # later words are OOV
    return Preprocessor.from_vectorizer(vectorizer, image_shape=image_shape, class_names=class_names)


def make_request(model, n, seed):
    """Raw inputs (PNG and JPEG bytes of various sizes, RGB or grey; strings) for `n` examples."""
    rng = np.random.default_rng(seed)
    request = {}
    if "image" in model.input:
        images = []
        for i in range(n):
            shape = (int(rng.integers(8, 48)), int(rng.integers(8, 48)), 1 if i % 3 == 2 else 3)
            pixels = tf.constant(rng.integers(0, 256, size=shape, dtype=np.uint8))
            images.append((tf.io.encode_png if i % 2 == 0 else tf.io.encode_jpeg)(pixels).numpy())
        request["image"] = np.array(images, dtype=object)
    if "text" in model.input:
        texts = [" ".join(rng.choice(WORDS, size=int(rng.integers(1, 9)))).capitalize() + "?" for _ in range(n)]
        request["text"] = np.array(texts, dtype=object)
    return request


def to_tensors(model, preprocessor, request):
    """What training's preprocessing makes of a raw request (the same Preprocessor functions)."""
    tensors = {}
    if "image" in request:
        tensors["image"] = preprocessor.decode_images(tf.constant(request["image"])).numpy()
    if "text" in request:
        text = tf.constant(request["text"])
        tensors["text"] = text.numpy() if model.input["text"].dtype == "string" else preprocessor.texts_to_ids(text).numpy()
    return tensors


def live_outputs(model, tensors):
    outputs = model({k: tf.constant(v) for k, v in tensors.items()}, training=False)
    if not isinstance(outputs, dict):
        outputs = {model.output_names[0]: outputs}
    return {k: np.asarray(v) for k, v in outputs.items()}


def expected_keys(model):
    keys = set()
    for name, tensor in (model.output.items() if isinstance(model.output, dict) else [(model.output_names[0], model.output)]):
        keys |= {name, f"{name}_class"}
        if tensor._keras_history[0].activation.__name__ == "linear":  # a logit output (s2)
            keys.add(f"{name}_probability")
    return keys


class Case:
    """An exported model with its requests and the live model's answers at each batch size."""

    def __init__(self, name, model, preprocessor, path, class_names=None):
        self.name, self.path = name, path
        self.class_names = class_names or {}
        self.keys = expected_keys(model)
        self.requests, self.tensors, self.expected = {}, {}, {}
        for n in BATCH_SIZES:
            self.requests[n] = make_request(model, n, seed=n)
            self.tensors[n] = to_tensors(model, preprocessor, self.requests[n])
            self.expected[n] = live_outputs(model, self.tensors[n])


def export_case(name, root, model=None, preprocessor=None, class_names=None):
    model = model or tiny(name)
    if preprocessor is None:
        preprocessor = preprocessor_for(model, class_names_for(model))
    path = mmkeras.export_model(model, os.path.join(root, name), preprocessor=preprocessor, class_names=class_names)
    if class_names is None and preprocessor.class_names:
        class_names = {model.output_names[0]: preprocessor.class_names}
    return Case(name, model, preprocessor, path, class_names)


def as_numpy(outputs):
    return {k: np.asarray(v.numpy() if hasattr(v, "numpy") else v) for k, v in outputs.items()}


def assert_matches(case, n, outputs, where):
    """Served outputs equal the live model's (atol 1e-5); `<name>_class` is its top class."""
    outputs = as_numpy(outputs)
    assert set(outputs) == case.keys, f"{case.name} via {where}: outputs {sorted(outputs)}"
    for name, expected in case.expected[n].items():
        np.testing.assert_allclose(outputs[name], expected, atol=ATOL, err_msg=f"{case.name} {name} via {where}")
        assert outputs[name].shape == expected.shape
        probabilities = expected
        if f"{name}_probability" in outputs:
            probabilities = 1 / (1 + np.exp(-expected.astype("float64")))
            np.testing.assert_allclose(outputs[f"{name}_probability"], probabilities, atol=ATOL)
        if probabilities.shape[-1] == 1:
            index, margin = (probabilities[:, 0] >= 0.5).astype(int), np.abs(probabilities[:, 0] - 0.5)
        else:
            top2 = np.sort(probabilities, axis=-1)[:, -2:]
            index, margin = probabilities.argmax(-1), top2[:, 1] - top2[:, 0]
        names = case.class_names.get(name) or [str(i) for i in range(max(2, probabilities.shape[-1]))]
        served = [s.decode() for s in outputs[f"{name}_class"]]
        for i in np.flatnonzero(margin > 1e-4):  # ties at float precision may go either way
            assert served[i] == names[index[i]], f"{case.name} {name}_class via {where}"


def check_in_process(case):
    """tf.saved_model.load, both signatures (keyword calls) and the dict-taking functions."""
    loaded = mmkeras.load(case.path)
    assert sorted(k for k in loaded.signatures) == [TENSORS_SIGNATURE, SERVING_SIGNATURE]
    for n in BATCH_SIZES:
        raw = {k: tf.constant(v) for k, v in case.requests[n].items()}
        tensors = {k: tf.constant(v) for k, v in case.tensors[n].items()}
        assert_matches(case, n, loaded.signatures[SERVING_SIGNATURE](**raw), "serving_default")
        assert_matches(case, n, loaded.signatures[TENSORS_SIGNATURE](**tensors), "serve_tensors")
        assert_matches(case, n, loaded.serving_default(raw), "loaded.serving_default")


def check_tfsm_layer(case):
    for endpoint, inputs in ((SERVING_SIGNATURE, case.requests), (TENSORS_SIGNATURE, case.tensors)):
        layer = keras.layers.TFSMLayer(case.path, call_endpoint=endpoint)
        for n in BATCH_SIZES:
            assert_matches(case, n, layer({k: tf.constant(v) for k, v in inputs[n].items()}), f"TFSMLayer({endpoint})")


FRESH_PROCESS = textwrap.dedent(
    """
    import sys
    import numpy as np
    import tensorflow as tf

    jobs = np.load(sys.argv[1], allow_pickle=True)["jobs"]
    results, loaded_models = [], {}
    for path, signature, request in jobs:
        if path not in loaded_models:
            loaded_models[path] = tf.saved_model.load(path)
        loaded = loaded_models[path]
        outputs = loaded.signatures[signature](**{k: tf.constant(v) for k, v in request.items()})
        results.append({k: v.numpy() for k, v in outputs.items()})
    assert "mmkeras" not in sys.modules, "the fresh process imported mmkeras"
    np.save(sys.argv[2], np.array(results, dtype=object), allow_pickle=True)
    """
)


def check_fresh_process(cases, tmp_path):
    """One new Python process (no mmkeras import) serves every case, both signatures, two batch sizes."""
    jobs = [
        (case.path, signature, inputs[n])
        for case in cases
        for signature, inputs in ((SERVING_SIGNATURE, case.requests), (TENSORS_SIGNATURE, case.tensors))
        for n in BATCH_SIZES
    ]
    job_file, result_file = str(tmp_path / "jobs.npz"), str(tmp_path / "results.npy")
    packed = np.empty(len(jobs), dtype=object)
    packed[:] = jobs
    np.savez(job_file, jobs=packed)
    script = tmp_path / "serve_fresh.py"
    script.write_text(FRESH_PROCESS)
    done = subprocess.run(
        [sys.executable, str(script), job_file, result_file], cwd=tmp_path, env=SUBPROCESS_ENV, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-3000:]
    results = iter(np.load(result_file, allow_pickle=True))
    for case in cases:
        for signature in (SERVING_SIGNATURE, TENSORS_SIGNATURE):
            for n in BATCH_SIZES:
                assert_matches(case, n, next(results), f"fresh process {signature}")


def check_saved_model_cli_show(case):
    done = subprocess.run(
        [SAVED_MODEL_CLI, "show", "--dir", case.path, "--all"], env=SUBPROCESS_ENV, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-3000:]
    text = done.stdout
    assert f"signature_def['{SERVING_SIGNATURE}']" in text and f"signature_def['{TENSORS_SIGNATURE}']" in text
    serving = text.split(f"signature_def['{SERVING_SIGNATURE}']")[1].split("signature_def[")[0]
    inputs = serving.split("output(s):")[0]
    for name in case.requests[1]:
        assert f"inputs['{name}']" in inputs
    assert inputs.count("DT_STRING") == len(case.requests[1]), inputs
    for key in case.keys:
        assert f"outputs['{key}']" in serving
    assert "output_0" not in text


def check_saved_model_cli_run(case, tmp_path):
    request_file = str(tmp_path / f"{case.name}_request.npz")
    np.savez(request_file, **case.requests[3])
    outdir = tmp_path / f"{case.name}_out"
    inputs = ";".join(f"{k}={request_file}[{k}]" for k in case.requests[3])
    done = subprocess.run(
        [SAVED_MODEL_CLI, "run", "--dir", case.path, "--tag_set", "serve", "--signature_def", SERVING_SIGNATURE,
         "--inputs", inputs, "--outdir", str(outdir)],
        env=SUBPROCESS_ENV, capture_output=True, text=True,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    outputs = {f[: -len(".npy")]: np.load(outdir / f, allow_pickle=True) for f in os.listdir(outdir)}
    assert_matches(case, 3, outputs, "saved_model_cli run")


# ---------------------------------------------------------------------------------------------
# Every consumer, on one model per family and the special cases.


@pytest.fixture(scope="module")
def cases(tmp_path_factory):
    root = tmp_path_factory.mktemp("exports")
    result = {}
    for name in DEFAULT_MODELS:
        class_names = None
        if name == "s4_multitask":  # names for one output; the other serves class indices
            class_names = {"image_class": [f"kind_{i}" for i in range(10)]}
        result[name] = export_case(name, str(root), class_names=class_names)
    # A model holding its own TextVectorization: it takes raw strings in both signatures.
    vectorizer = text_vectorizer(WORDS[:10], vocab_size=32, sequence_length=8)
    model = mmkeras.build_model(
        image_encoder={"kind": "cnn", "filters": (4,), "output": "avg"},
        text_encoder={"kind": "rnn", "embedding_dim": 8, "units": 8},
        fusion="concatenate", head="multiclass", num_classes=3,
        image_shape=(16, 16, 3), text_vectorizer=vectorizer, hidden_units=(8,), name="string_input",
    )  # fmt: skip
    pre = Preprocessor(image_shape=(16, 16, 3), class_names=["red", "green", "blue"])
    result["string_input"] = export_case("string_input", str(root), model=model, preprocessor=pre)
    return result


def test_every_family_has_a_default_representative():
    families = {mmkeras.get_entry(n).family for n in mmkeras.list_models()}
    assert {mmkeras.get_entry(n).family for n in representatives()} == families


@pytest.mark.parametrize("name", DEFAULT_MODELS + ["string_input"])
def test_signatures_match_live_model(cases, name):
    check_in_process(cases[name])


def test_tfsm_layer_wraps_export(cases):
    for name in ("s0", "s3", "s4_multitask", "string_input"):
        check_tfsm_layer(cases[name])


def test_fresh_process_without_mmkeras_serves_exports(cases, tmp_path):
    check_fresh_process(list(cases.values()), tmp_path)


# saved_model_cli starts a TensorFlow process per call (5 to 10 s here): the default run uses it on
# an image + text model and an image-only one; the slow run on every family and every model.
CLI_MODELS = [pytest.param(n, marks=[] if n in ("s0", "s3") else [pytest.mark.slow]) for n in sorted(set(representatives()) | {"s3"})]


@pytest.mark.parametrize("name", CLI_MODELS)
def test_saved_model_cli_show_lists_string_signatures(cases, name):
    check_saved_model_cli_show(cases[name])


@pytest.mark.parametrize("name", CLI_MODELS)
def test_saved_model_cli_run_answers_like_live_model(cases, name, tmp_path):
    check_saved_model_cli_run(cases[name], tmp_path)


def test_export_contents(cases):
    case = cases["s0"]
    files = sorted(os.listdir(case.path))
    assert {"saved_model.pb", "variables", PREPROCESSOR_FILE, METADATA_FILE} <= set(files), files
    metadata = json.load(open(os.path.join(case.path, METADATA_FILE)))
    assert metadata["format_version"] == 1 and metadata["model_name"] == "s0"
    serving = metadata["signatures"][SERVING_SIGNATURE]
    assert serving["inputs"]["image"]["dtype"] == "string" and serving["inputs"]["text"]["dtype"] == "string"
    assert set(serving["outputs"]) == case.keys
    assert metadata["signatures"][TENSORS_SIGNATURE]["inputs"]["image"]["shape"] == [None, 32, 32, 3]
    loaded, preprocessor = mmkeras.load(case.path, return_preprocessor=True)
    assert preprocessor.class_names == ["no", "yes"] and preprocessor.sequence_length == 12
    assert mmkeras.export.load_preprocessor(case.path).get_config() == preprocessor.get_config()
    # The folder is readable by other users (a service account), like any file the user writes.
    mode = os.stat(case.path).st_mode & 0o777
    assert mode & 0o055 == 0o755 & ~mmkeras.export._umask() & 0o055


def test_image_only_signatures_take_only_an_image(cases):
    loaded = mmkeras.load(cases["s3"].path)
    assert set(loaded.signatures[SERVING_SIGNATURE].structured_input_signature[1]) == {"image"}
    assert set(loaded.signatures[TENSORS_SIGNATURE].structured_input_signature[1]) == {"image"}


# ---------------------------------------------------------------------------------------------
# Bad requests: a readable InvalidArgumentError from the serving function, and the process serves on.


def bad_request(fn, match, **inputs):
    with pytest.raises(tf.errors.InvalidArgumentError, match=match):
        fn(**{k: tf.constant(v) for k, v in inputs.items()})


def test_bad_requests_get_clear_errors(cases):
    case = cases["s0"]
    loaded = mmkeras.load(case.path)
    serve, tensors = loaded.signatures[SERVING_SIGNATURE], loaded.signatures[TENSORS_SIGNATURE]
    png = case.requests[1]["image"][0]
    bad_request(serve, r"`image` must hold the encoded bytes .* empty strings .*\[1\]", image=[png, b""], text=["a", "b"])
    bad_request(serve, "Unknown image file format", image=[b"these are not image bytes"], text=["a"])
    bad_request(serve, "Invalid PNG|PNG", image=[png[: len(png) // 2]], text=["a"])  # truncated
    bad_request(serve, r"`image` must be a batch of encoded images .* shape \(batch,\); received .*\[1 1\]", image=[[png]], text=[["a"]])
    bad_request(serve, r"`image` must be a batch .* received a tensor of shape\] \[\]", image=png, text="a")
    bad_request(serve, r"`text` must be a batch of texts", image=[png], text=[["a"]])
    bad_request(serve, r"same number of examples; received batch sizes\] \[2 1\]", image=[png, png], text=["a"])
    bad_request(tensors, r"`image` must be a batch of float images of shape \(batch, 32, 32, 3\)", image=np.zeros((1, 16, 16, 3), "float32"), text=np.zeros((1, 12), "int32"))
    bad_request(tensors, r"shape \(batch, 32, 32, 3\); received a tensor of shape\] \[32 32 3\]", image=np.zeros((32, 32, 3), "float32"), text=np.zeros((1, 12), "int32"))
    bad_request(tensors, r"`text` must be a batch of token ids of shape \(batch, 12\)", image=np.zeros((1, 32, 32, 3), "float32"), text=np.zeros((1, 5), "int32"))
    # The same loaded model still answers good requests.
    assert_matches(case, 1, serve(**{k: tf.constant(v) for k, v in case.requests[1].items()}), "after bad requests")


def test_empty_text_and_empty_batch_are_served(cases):
    loaded = mmkeras.load(cases["s0"].path)
    png = cases["s0"].requests[1]["image"][0]
    out = loaded.signatures[SERVING_SIGNATURE](image=tf.constant([png]), text=tf.constant([""]))
    assert out["label"].shape == (1, 1)
    out = loaded.signatures[SERVING_SIGNATURE](image=tf.zeros([0], tf.string), text=tf.zeros([0], tf.string))
    assert out["label"].shape == (0, 1) and out["label_class"].shape == (0,)


def test_mixed_bfloat16_model_exports(tmp_path):
    """`mmkeras train` builds in mixed bfloat16 where the CPU has it: such models export too."""
    keras.mixed_precision.set_dtype_policy("mixed_bfloat16")
    try:
        model = tiny("s4")
    finally:
        keras.mixed_precision.set_dtype_policy("float32")
    pre = preprocessor_for(model)
    path = mmkeras.export_model(model, tmp_path / "s4", preprocessor=pre)
    request = make_request(model, 3, seed=4)
    served = mmkeras.load(path).signatures[SERVING_SIGNATURE](**{k: tf.constant(v) for k, v in request.items()})
    assert served["sentiment"].dtype == tf.float32
    # bfloat16 keeps 8 bits of mantissa: graph and eager runs may round differently.
    np.testing.assert_allclose(served["sentiment"], live_outputs(model, to_tensors(model, pre, request))["sentiment"], atol=1e-2)


# ---------------------------------------------------------------------------------------------
# Arguments.


@pytest.fixture(scope="module")
def s0_model():
    return tiny("s0")


def test_export_needs_a_vocabulary_for_token_ids(s0_model, tmp_path):
    with pytest.raises(ValueError, match=r"`preprocessor` must hold the text vocabulary.*Received: preprocessor=None"):
        mmkeras.export_model(s0_model, tmp_path / "x")
    wrong = Preprocessor.from_vectorizer(text_vectorizer(WORDS, sequence_length=5), image_shape=(32, 32, 3))
    with pytest.raises(ValueError, match=r"`preprocessor.sequence_length` must equal .* \(12\). Received: preprocessor.sequence_length=5"):
        mmkeras.export_model(s0_model, tmp_path / "x", preprocessor=wrong)
    wrong = preprocessor_for(s0_model)
    wrong.image_shape = (64, 64, 3)
    with pytest.raises(ValueError, match=r"`preprocessor.image_shape` must match"):
        mmkeras.export_model(s0_model, tmp_path / "x", preprocessor=wrong)
    assert not os.listdir(tmp_path), "a refused export left files behind"


def test_export_argument_errors(s0_model, tmp_path):
    pre = preprocessor_for(s0_model)
    with pytest.raises(ValueError, match=r"`format` must be one of \['keras', 'saved_model'\].*Received: format='onnx'"):
        mmkeras.export_model(s0_model, tmp_path / "x", preprocessor=pre, format="onnx")
    with pytest.raises(ValueError, match=r"`model` must be a keras.Model"):
        mmkeras.export_model("s0", tmp_path / "x")
    with pytest.raises(ValueError, match=r"`preprocessor` must be a mmkeras.preprocessing.Preprocessor"):
        mmkeras.export_model(s0_model, tmp_path / "x", preprocessor={"vocabulary": []})
    with pytest.raises(ValueError, match=r"`class_names` for output 'label' \(binary, 1 unit\(s\)\) must hold 2 names"):
        mmkeras.export_model(s0_model, tmp_path / "x", preprocessor=pre, class_names=["yes"])
    with pytest.raises(ValueError, match=r"exactly one classification output"):
        mmkeras.export_model(tiny("s4_multitask"), tmp_path / "x", preprocessor=preprocessor_for(s0_model), class_names=["a", "b"])
    with pytest.raises(ValueError, match=r"`path` must be a str or a path-like"):
        mmkeras.export_model(s0_model, 42, preprocessor=pre)


# ---------------------------------------------------------------------------------------------
# Atomic, careful writes.


@pytest.fixture(scope="module")
def s3_model():
    return tiny("s3")


def tree_state(path):
    """{relative file: bytes} of a folder, to show it is untouched."""
    state = {}
    for folder, _, files in os.walk(path):
        for f in files:
            with open(os.path.join(folder, f), "rb") as handle:
                state[os.path.relpath(os.path.join(folder, f), path)] = handle.read()
    return state


def test_existing_export_is_kept_unless_overwrite(s3_model, tmp_path, capfd):
    path = str(tmp_path / "s3")
    assert mmkeras.export_model(s3_model, path) == path
    assert capfd.readouterr().out == "", "export printed to stdout"
    before = tree_state(path)
    with pytest.raises(FileExistsError, match=r"already holds an export; it is kept. Pass overwrite=True"):
        mmkeras.export_model(s3_model, path)
    assert tree_state(path) == before
    other = tiny("s3")  # new weights: the replaced export must answer like this model
    mmkeras.export_model(other, path, overwrite=True)
    assert tree_state(path) != before
    images = make_request(other, 2, seed=5)["image"]
    served = mmkeras.load(path).signatures[SERVING_SIGNATURE](image=tf.constant(images))["label"]
    expected = other({"image": Preprocessor(image_shape=(32, 32, 3)).decode_images(tf.constant(images))})
    np.testing.assert_allclose(served, expected, atol=ATOL)
    assert sorted(os.listdir(tmp_path)) == ["s3"], "temporary or old folders were left behind"


def test_default_paths_are_under_saved_models(s3_model, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert mmkeras.export_model(s3_model) == os.path.join("saved_models", s3_model.name)
    assert mmkeras.export_model(s3_model, format="keras") == os.path.join("saved_models", s3_model.name + "_keras")
    assert sorted(os.listdir(tmp_path / "saved_models" / "s3_keras")) == ["model.keras"]


def test_overwrite_only_replaces_exports(s3_model, tmp_path):
    precious = tmp_path / "data"
    precious.mkdir()
    (precious / "notes.txt").write_text("keep me")
    with pytest.raises(ValueError, match=r"is not an export .* overwrite=True only replaces exports"):
        mmkeras.export_model(s3_model, precious, overwrite=True)
    assert (precious / "notes.txt").read_text() == "keep me"
    (tmp_path / "notes.txt").write_text("keep me too")
    with pytest.raises(ValueError, match=r"is not an export"):
        mmkeras.export_model(s3_model, tmp_path / "notes.txt", overwrite=True)
    assert (tmp_path / "notes.txt").read_text() == "keep me too"
    assert sorted(os.listdir(tmp_path)) == ["data", "notes.txt"]


def test_failed_export_leaves_nothing_half_written(s3_model, tmp_path, monkeypatch):
    path = str(tmp_path / "s3")
    mmkeras.export_model(s3_model, path)
    before = tree_state(path)

    def fail(*args, **kwargs):
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(mmkeras.export, "_write_json", fail)  # after saved_model.pb is written
    with pytest.raises(OSError, match="disk full"):
        mmkeras.export_model(s3_model, path, overwrite=True)
    assert tree_state(path) == before
    with pytest.raises(OSError, match="disk full"):
        mmkeras.export_model(s3_model, str(tmp_path / "new"))
    assert sorted(os.listdir(tmp_path)) == ["s3"], "a failed export left files behind"


CRASH_SCRIPT = textwrap.dedent(
    """
    import os, sys
    import mmkeras, mmkeras.export

    def crash(path, data):  # the process dies after saved_model.pb is written, before the rename
        os._exit(3)

    mmkeras.export._write_json = crash
    model = mmkeras.get_model("s3", image_shape=(32, 32, 3))
    mmkeras.export_model(model, sys.argv[1], overwrite=True)
    """
)


def test_crash_mid_export_never_leaves_a_half_written_model(s3_model, tmp_path):
    path = str(tmp_path / "s3")
    mmkeras.export_model(s3_model, path)
    before = tree_state(path)
    script = tmp_path / "crash.py"
    script.write_text(CRASH_SCRIPT)
    done = subprocess.run([sys.executable, str(script), path], env=SUBPROCESS_ENV, capture_output=True, text=True)
    assert done.returncode == 3, done.stderr[-2000:]
    assert tree_state(path) == before, "the crash changed the published export"
    leftovers = [f for f in os.listdir(tmp_path) if f not in ("s3", "crash.py")]
    assert len(leftovers) == 1 and leftovers[0].startswith(".s3.tmp-"), leftovers  # hidden, beside it
    assert os.path.exists(os.path.join(tmp_path, leftovers[0], "saved_model.pb"))


# ---------------------------------------------------------------------------------------------
# .keras export and loading.


def test_keras_export_file_and_folder(s0_model, tmp_path):
    pre = preprocessor_for(s0_model, class_names=["no", "yes"])
    request = make_request(s0_model, 3, seed=1)
    expected = live_outputs(s0_model, to_tensors(s0_model, pre, request))["label"]

    path = mmkeras.export_model(s0_model, tmp_path / "s0.keras", preprocessor=pre, format="keras")
    assert sorted(os.listdir(tmp_path)) == [PREPROCESSOR_FILE, "s0.keras"]
    model, loaded_pre = mmkeras.load(path, return_preprocessor=True)
    assert isinstance(model, keras.Model) and loaded_pre.get_config() == pre.get_config()
    np.testing.assert_allclose(live_outputs(model, to_tensors(model, loaded_pre, request))["label"], expected, atol=1e-6)
    with pytest.raises(FileExistsError):
        mmkeras.export_model(s0_model, path, preprocessor=pre, format="keras")

    folder = mmkeras.export_model(s0_model, tmp_path / "run", preprocessor=pre, format="keras")
    assert sorted(os.listdir(folder)) == ["model.keras", PREPROCESSOR_FILE]
    model, loaded_pre = mmkeras.load(folder, return_preprocessor=True)
    np.testing.assert_allclose(live_outputs(model, to_tensors(model, loaded_pre, request))["label"], expected, atol=1e-6)
    assert mmkeras.load(folder).name == "s0"


def test_load_errors(tmp_path):
    with pytest.raises(ValueError, match=r"`path` must be a SavedModel folder .* \(it does not exist\)"):
        mmkeras.load(tmp_path / "nothing")
    with pytest.raises(ValueError, match=r"`path` must be a SavedModel folder"):
        mmkeras.load(tmp_path)


# ---------------------------------------------------------------------------------------------
# The `mmkeras export` command.


def test_cli_export(s0_model, tmp_path, capsys):
    from mmkeras.cli import main

    run_dir = tmp_path / "run"  # the layout `mmkeras train` writes
    run_dir.mkdir()
    s0_model.save(run_dir / "model.keras")
    pre = preprocessor_for(s0_model, class_names=["no", "yes"])
    pre.save(str(run_dir / PREPROCESSOR_FILE))
    out = str(tmp_path / "served" / "1")
    assert main(["export", str(run_dir), out]) == 0
    assert out in capsys.readouterr().out
    request = make_request(s0_model, 2, seed=3)
    served = mmkeras.load(out).signatures[SERVING_SIGNATURE](**{k: tf.constant(v) for k, v in request.items()})
    np.testing.assert_allclose(served["label"], live_outputs(s0_model, to_tensors(s0_model, pre, request))["label"], atol=ATOL)

    assert main(["export", str(run_dir), out]) == 1
    assert "already holds an export; it is kept. Pass overwrite=True (CLI: --overwrite)" in capsys.readouterr().err
    assert main(["export", str(run_dir), out, "--overwrite"]) == 0
    assert main(["export", str(run_dir), str(tmp_path / "copy.keras"), "--format", "keras"]) == 0
    assert isinstance(mmkeras.load(tmp_path / "copy.keras"), keras.Model)
    assert main(["export", str(tmp_path), str(tmp_path / "x")]) == 2  # no model.keras there
    assert "MODEL_DIR must hold model.keras" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------
# Every registered model (slow).


@pytest.mark.slow
@pytest.mark.parametrize("name", mmkeras.list_models())
def test_every_registered_model_exports_and_serves(name, tmp_path):
    case = export_case(name, str(tmp_path))
    check_in_process(case)
    check_tfsm_layer(case)
    check_fresh_process([case], tmp_path)
    check_saved_model_cli_show(case)
    check_saved_model_cli_run(case, tmp_path)
