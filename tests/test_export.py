"""Export: SavedModels that serve raw image bytes and strings, `.keras` export, loading, atomic writes.

Every model is a task carrying its preprocessor (`model.preprocessor`): `export_model(model, path)`
needs nothing else. The default run exports every registered model at its test size. One model per
registered family, plus the models whose inputs or outputs differ (grey images and a logit output,
image-only, multi-task, raw-string input, multilabel and regression heads), answer as the live
model at batch sizes 1 and 3 through both signatures in process, a fresh Python process that never
imports mmkeras, and saved_model_cli's code (`show --all`, `run` on both signatures, all in one
process); some also through `keras.layers.TFSMLayer`, and `s0` through the `saved_model_cli`
console script. Every other registered model answers as the live model on 2 examples through both
signatures in process. The slow run (`-m slow`) checks every consumer on every registered model.
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
from mmkeras.atomic import _umask
from mmkeras.export import METADATA_FILE, PREPROCESSOR_FILE, SERVING_SIGNATURE, TENSORS_SIGNATURE
from mmkeras.preprocessing import Preprocessor, text_vectorizer
from mmkeras.tasks import FusionClassifier, ModelTask, Task

ATOL = 1e-5
BATCH_SIZES = (1, 3)
PREFERRED = ("s0", "fusion_attention", "residual_transformer")  # cheap members of their families
SPECIAL = ("s2", "s3", "s4_multitask")  # grey images + logit output; image-only; two outputs
WORDS = "is the a circle square triangle red blue green yellow what shape color it there image".split()
SUBPROCESS_ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}
SAVED_MODEL_CLI = os.path.join(os.path.dirname(sys.executable), "saved_model_cli")


# The models whose outputs are heads: the cases below serve heads. The dual encoders (no head;
# signatures embed_image, embed_text and a similarity) are exported in tests/test_dual_encoder.py.
HEAD_MODELS = [n for n in mmkeras.list_models() if issubclass(mmkeras.get_entry(n).task, mmkeras.tasks.HeadTask)]


def representatives():
    """One model per registered family (a cheap one where known), so a new family is covered."""
    picks = []
    for family in sorted({mmkeras.get_entry(n).family for n in HEAD_MODELS}):
        names = [n for n in mmkeras.list_models(family=family) if n in HEAD_MODELS]
        picks.append(next((n for n in PREFERRED if n in names), names[0]))
    return picks


DEFAULT_MODELS = sorted(set(representatives()) | {n for n in SPECIAL if n in mmkeras.list_models()})


# ---------------------------------------------------------------------------------------------
# Cases: a tiny task carrying its preprocessor, raw requests and the live model's answers.


def heads_of(model):
    """The task's single-output heads (the heads of a multi-task head)."""
    return list(model.head.heads.values()) if model.head.kind == "multitask" else [model.head]


def class_names_for(model):
    """Class names for single-output classifiers; None otherwise (then indices are served)."""
    head = model.head
    if head.kind == "binary":
        return ["no", "yes"]
    if head.kind in ("multiclass", "multilabel"):
        return [f"class_{i}" for i in range(head.units)]
    return None


def preprocessor_for(model, class_names=None):
    """A Preprocessor fitted to the task's inputs: its image shape, a small vocabulary."""
    kinds = model.input_kinds
    image_shape = tuple(model.input["image"].shape[1:]) if "image" in kinds else None
    if kinds.get("text") != "token_ids":
        return Preprocessor(image_shape=image_shape, class_names=class_names)
    length = model.input["text"].shape[1]
    vectorizer = text_vectorizer(WORDS[:12], vocab_size=32, sequence_length=length)  # later words are OOV
    return Preprocessor.from_vectorizer(vectorizer, image_shape=image_shape, class_names=class_names)


def tiny(name, class_names="auto"):
    """The registered model `name` at its test size, carrying a preprocessor fitted to it."""
    model = mmkeras.get_model(name, **mmkeras.get_entry(name).tiny)
    model.preprocessor = preprocessor_for(model, class_names_for(model) if class_names == "auto" else class_names)
    return model


def make_request(model, n, seed):
    """Raw inputs (PNG and JPEG bytes of various sizes, RGB or grey; strings) for `n` examples."""
    rng = np.random.default_rng(seed)
    request = {}
    if "image" in model.input_kinds:
        images = []
        for i in range(n):
            shape = (int(rng.integers(8, 48)), int(rng.integers(8, 48)), 1 if i % 3 == 2 else 3)
            pixels = tf.constant(rng.integers(0, 256, size=shape, dtype=np.uint8))
            images.append((tf.io.encode_png if i % 2 == 0 else tf.io.encode_jpeg)(pixels).numpy())
        request["image"] = np.array(images, dtype=object)
    if "text" in model.input_kinds:
        texts = [" ".join(rng.choice(WORDS, size=int(rng.integers(1, 9)))).capitalize() + "?" for _ in range(n)]
        request["text"] = np.array(texts, dtype=object)
    return request


def to_tensors(model, request):
    """What training's preprocessing makes of a raw request (the task's own Preprocessor)."""
    tensors = {}
    if "image" in request:
        tensors["image"] = model.preprocessor.decode_images(tf.constant(request["image"])).numpy()
    if "text" in request:
        text = tf.constant(request["text"])
        tensors["text"] = text.numpy() if model.input_kinds["text"] == "text" else model.preprocessor.texts_to_ids(text).numpy()
    return tensors


def live_outputs(model, tensors):
    outputs = model({k: tf.constant(v) for k, v in tensors.items()}, training=False)
    if not isinstance(outputs, dict):
        outputs = {model.output_names[0]: outputs}
    return {k: np.asarray(v) for k, v in outputs.items()}


def expected_keys(model):
    """The named outputs docs/serving.md promises for the task's heads."""
    keys = set()
    for head in heads_of(model):
        keys.add(head.name)
        if head.kind in ("binary", "multiclass"):
            keys.add(f"{head.name}_class")
        if head.kind == "binary" and head.from_logits:  # a logit output (s2)
            keys.add(f"{head.name}_probability")
        if head.kind == "multilabel":
            keys.add(f"{head.name}_on")
    return keys


def class_names_by_output(model):
    names = model.class_names()
    if isinstance(names, dict):
        return names
    return {model.output_names[0]: names} if names else {}


class Case:
    """An exported task with its requests and the live model's answers at each batch size."""

    def __init__(self, name, model, path, class_names=None, batch_sizes=BATCH_SIZES):
        self.name, self.path = name, path
        self.class_names = class_names_by_output(model) if class_names is None else class_names
        self.heads = {head.name: head for head in heads_of(model)}
        self.keys = expected_keys(model)
        self.requests, self.tensors, self.expected = {}, {}, {}
        for n in batch_sizes:
            self.requests[n] = make_request(model, n, seed=n)
            self.tensors[n] = to_tensors(model, self.requests[n])
            self.expected[n] = live_outputs(model, self.tensors[n])


def export_case(name, root, model=None, batch_sizes=BATCH_SIZES):
    model = model or tiny(name)
    return Case(name, model, mmkeras.export_model(model, os.path.join(root, name)), batch_sizes=batch_sizes)


def as_numpy(outputs):
    return {k: np.asarray(v.numpy() if hasattr(v, "numpy") else v) for k, v in outputs.items()}


def assert_matches(case, n, outputs, where):
    """Served outputs equal the live model's (atol 1e-5); `<name>_class` is its top class,
    `<name>_on` its labels at or above the head's threshold."""
    outputs = as_numpy(outputs)
    assert set(outputs) == case.keys, f"{case.name} via {where}: outputs {sorted(outputs)}"
    for name, expected in case.expected[n].items():
        np.testing.assert_allclose(outputs[name], expected, atol=ATOL, err_msg=f"{case.name} {name} via {where}")
        assert outputs[name].shape == expected.shape
        head = case.heads[name]
        if head.kind == "multilabel":
            sure = np.abs(expected - head.threshold) > 1e-4  # ties at float precision may go either way
            np.testing.assert_array_equal(outputs[f"{name}_on"][sure], (expected >= head.threshold)[sure])
            continue
        if head.kind not in ("binary", "multiclass"):
            continue
        probabilities = expected
        if f"{name}_probability" in outputs:
            probabilities = 1 / (1 + np.exp(-expected.astype("float64")))
            np.testing.assert_allclose(outputs[f"{name}_probability"], probabilities, atol=ATOL)
        if head.kind == "binary":
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
    for n in case.requests:
        raw = {k: tf.constant(v) for k, v in case.requests[n].items()}
        tensors = {k: tf.constant(v) for k, v in case.tensors[n].items()}
        assert_matches(case, n, loaded.signatures[SERVING_SIGNATURE](**raw), "serving_default")
        assert_matches(case, n, loaded.signatures[TENSORS_SIGNATURE](**tensors), "serve_tensors")
        assert_matches(case, n, loaded.serving_default(raw), "loaded.serving_default")


def check_tfsm_layer(case):
    for endpoint, inputs in ((SERVING_SIGNATURE, case.requests), (TENSORS_SIGNATURE, case.tensors)):
        layer = keras.layers.TFSMLayer(case.path, call_endpoint=endpoint)
        for n in case.requests:
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
    """One new Python process (no mmkeras import) serves every case, both signatures, each batch size."""
    jobs = [
        (case.path, signature, inputs[n])
        for case in cases
        for signature, inputs in ((SERVING_SIGNATURE, case.requests), (TENSORS_SIGNATURE, case.tensors))
        for n in case.requests
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
            for n in case.requests:
                assert_matches(case, n, next(results), f"fresh process {signature}")


def assert_cli_show(case, text, where="saved_model_cli show --all"):
    """`saved_model_cli show --all` lists both signatures, string inputs and the named outputs."""
    assert f"signature_def['{SERVING_SIGNATURE}']" in text and f"signature_def['{TENSORS_SIGNATURE}']" in text, where
    serving = text.split(f"signature_def['{SERVING_SIGNATURE}']")[1].split("signature_def[")[0]
    inputs = serving.split("output(s):")[0]
    for name in case.requests[max(case.requests)]:
        assert f"inputs['{name}']" in inputs, f"{case.name} via {where}"
    assert inputs.count("DT_STRING") == len(case.requests[max(case.requests)]), inputs
    for key in case.keys:
        assert f"outputs['{key}']" in serving, f"{case.name} {key} via {where}"
    assert "output_0" not in text, where


def cli_run_args(case, signature, tmp_path):
    """`saved_model_cli run` arguments answering the case's largest request (raw or tensors)."""
    n = max(case.requests)
    inputs = case.requests[n] if signature == SERVING_SIGNATURE else case.tensors[n]
    request_file = str(tmp_path / f"{case.name}_{signature}_request.npz")
    np.savez(request_file, **inputs)
    outdir = tmp_path / f"{case.name}_{signature}_out"
    spec = ";".join(f"{k}={request_file}[{k}]" for k in inputs)
    args = ["run", "--dir", case.path, "--tag_set", "serve", "--signature_def", signature, "--inputs", spec, "--outdir", str(outdir)]
    return args, outdir


def assert_cli_run(case, outdir, where="saved_model_cli run"):
    outputs = {f[: -len(".npy")]: np.load(outdir / f, allow_pickle=True) for f in os.listdir(outdir)}
    assert_matches(case, max(case.requests), outputs, where)


def check_saved_model_cli_show(case):
    done = subprocess.run(
        [SAVED_MODEL_CLI, "show", "--dir", case.path, "--all"], env=SUBPROCESS_ENV, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert_cli_show(case, done.stdout)


def check_saved_model_cli_run(case, tmp_path):
    args, outdir = cli_run_args(case, SERVING_SIGNATURE, tmp_path)
    done = subprocess.run([SAVED_MODEL_CLI, *args], env=SUBPROCESS_ENV, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    assert_cli_run(case, outdir)


# The `saved_model_cli` console script is `tensorflow.python.tools.saved_model_cli:main`: absl's
# `app.run` around "parse the command line (`create_parser`), call the command (`args.func`)". This
# process does the same for many command lines, so one TensorFlow start-up (5 to 10 s here) serves
# every export: `show --all` and `run` of both signatures, each in its own `tf.compat.v1` Session.
CLI_IN_ONE_PROCESS = textwrap.dedent(
    """
    import contextlib, io, json, sys
    from absl import flags
    from tensorflow.python.tools import saved_model_cli

    with open(sys.argv[1]) as f:
        jobs = json.load(f)
    for argv, stdout_file in jobs:
        flags.FLAGS.unparse_flags()  # the flags of the previous command line
        args = saved_model_cli.create_parser().parse_args(argv)
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed):
            args.func()
        with open(stdout_file, "w") as f:
            f.write(printed.getvalue())
    assert "mmkeras" not in sys.modules, "the saved_model_cli process imported mmkeras"
    """
)


def check_saved_model_cli_in_one_process(cases, tmp_path):
    """saved_model_cli's own code, in one new process: `show --all` and `run` on both signatures of
    every case (its largest request), checked as the console script's output is."""
    jobs, checks = [], []
    for case in cases:
        shown = tmp_path / f"{case.name}_show.txt"
        jobs.append((["show", "--dir", case.path, "--all"], str(shown)))
        checks.append(lambda case=case, shown=shown: assert_cli_show(case, shown.read_text(), "saved_model_cli code: show"))
        for signature in (SERVING_SIGNATURE, TENSORS_SIGNATURE):
            args, outdir = cli_run_args(case, signature, tmp_path)
            jobs.append((args, str(tmp_path / f"{case.name}_{signature}_run.txt")))
            checks.append(lambda case=case, outdir=outdir, s=signature: assert_cli_run(case, outdir, f"saved_model_cli code: run {s}"))
    job_file, script = tmp_path / "cli_jobs.json", tmp_path / "cli_in_one_process.py"
    job_file.write_text(json.dumps(jobs))
    script.write_text(CLI_IN_ONE_PROCESS)
    done = subprocess.run([sys.executable, str(script), str(job_file)], env=SUBPROCESS_ENV, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    for check in checks:
        check()


# ---------------------------------------------------------------------------------------------
# Every consumer, on one model per family and the special cases.


@pytest.fixture(scope="module")
def cases(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("exports"))
    result = {}
    for name in DEFAULT_MODELS:
        # s4_multitask: names for one output; the other serves class indices.
        class_names = {"image_class": [f"kind_{i}" for i in range(10)]} if name == "s4_multitask" else "auto"
        result[name] = export_case(name, root, model=tiny(name, class_names))
    # A model holding its own TextVectorization: it takes raw strings in both signatures.
    vectorizer = text_vectorizer(WORDS[:10], vocab_size=32, sequence_length=8)
    model = mmkeras.build_model(
        image_encoder={"kind": "cnn", "filters": (4,), "output": "avg"},
        text_encoder={"kind": "rnn", "embedding_dim": 8, "units": 8},
        fusion="concatenate", head="multiclass", num_classes=3,
        image_shape=(16, 16, 3), text_vectorizer=vectorizer, hidden_units=(8,), name="string_input",
        preprocessor=Preprocessor(class_names=["red", "green", "blue"]),
    )  # fmt: skip
    result["string_input"] = export_case("string_input", root, model=model)
    # The heads that serve no class: several labels at once, and values.
    multilabel = mmkeras.build_model(
        image_encoder={"kind": "cnn", "filters": (4,), "output": "avg"},
        text_encoder={"kind": "rnn", "embedding_dim": 8, "units": 8},
        head={"kind": "multilabel", "num_labels": 3}, image_shape=(16, 16, 3), sequence_length=8,
        vocab_size=32, hidden_units=(8,), name="multilabel",
    )  # fmt: skip
    multilabel.preprocessor = preprocessor_for(multilabel, ["round", "red", "small"])
    result["multilabel"] = export_case("multilabel", root, model=multilabel)
    result["regression"] = export_case("regression", root, model=regression_task())
    return result


def regression_task():
    """Your own functional Keras model (two regression outputs), made a task by naming its head."""
    inputs = {"image": keras.Input((16, 16, 3), name="image"), "text": keras.Input((8,), dtype="int32", name="text")}
    image = keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(4, 3)(inputs["image"]))
    text = keras.layers.GlobalAveragePooling1D()(keras.layers.Embedding(32, 4)(inputs["text"]))
    outputs = keras.layers.Dense(2)(keras.layers.Concatenate()([image, text]))
    plain = keras.Model(inputs, outputs, name="regression")
    vectorizer = text_vectorizer(WORDS[:12], vocab_size=32, sequence_length=8)
    preprocessor = Preprocessor.from_vectorizer(vectorizer, image_shape=(16, 16, 3))
    return ModelTask(plain, head={"kind": "regression", "units": 2}, preprocessor=preprocessor)


EXTRA_CASES = ["string_input", "multilabel", "regression"]


def test_every_family_has_a_default_representative():
    families = {mmkeras.get_entry(n).family for n in HEAD_MODELS}
    assert {mmkeras.get_entry(n).family for n in representatives()} == families


@pytest.mark.parametrize("name", DEFAULT_MODELS + EXTRA_CASES)
def test_signatures_match_live_model(cases, name):
    check_in_process(cases[name])


def test_multilabel_and_regression_exports_describe_their_heads(cases):
    metadata = json.load(open(os.path.join(cases["multilabel"].path, METADATA_FILE)))
    outputs = metadata["signatures"][SERVING_SIGNATURE]["outputs"]
    assert outputs["labels"] == {"dtype": "float32", "shape": [None, 3], "head": "multilabel"}
    assert outputs["labels_on"] == {"dtype": "int32", "shape": [None, 3]}
    assert metadata["class_names"] == {"labels": ["round", "red", "small"]}
    metadata = json.load(open(os.path.join(cases["regression"].path, METADATA_FILE)))
    assert metadata["signatures"][SERVING_SIGNATURE]["outputs"] == {
        "value": {"dtype": "float32", "shape": [None, 2], "head": "regression"}
    }
    assert metadata["task"] == "ModelTask" and metadata["class_names"] == {}


def test_tfsm_layer_wraps_export(cases):
    for name in ("s0", "s3", "s4_multitask", "string_input", "multilabel"):
        check_tfsm_layer(cases[name])


def test_fresh_process_without_mmkeras_serves_exports(cases, tmp_path):
    check_fresh_process(list(cases.values()), tmp_path)


# The saved_model_cli console script starts a TensorFlow process per call (5 to 10 s here): the
# default run calls it on an image + text model (`s0`); the slow run on every family, `s3` and every
# model. Its code (`show --all`, `run` on both signatures) runs in one process on every export above.
CLI_MODELS = [pytest.param(n, marks=[] if n == "s0" else [pytest.mark.slow]) for n in sorted(set(representatives()) | {"s3"})]


@pytest.mark.parametrize("name", CLI_MODELS)
def test_saved_model_cli_show_lists_string_signatures(cases, name):
    check_saved_model_cli_show(cases[name])


@pytest.mark.parametrize("name", CLI_MODELS)
def test_saved_model_cli_run_answers_like_live_model(cases, name, tmp_path):
    check_saved_model_cli_run(cases[name], tmp_path)


def test_saved_model_cli_code_shows_and_runs_every_default_export(cases, tmp_path):
    check_saved_model_cli_in_one_process(list(cases.values()), tmp_path)


def test_export_contents(cases):
    case = cases["s0"]
    files = sorted(os.listdir(case.path))
    assert {"saved_model.pb", "variables", METADATA_FILE} <= set(files), files
    assert PREPROCESSOR_FILE not in files, "the preprocessor lives in mmkeras_export.json now"
    metadata = json.load(open(os.path.join(case.path, METADATA_FILE)))
    assert metadata["format_version"] == 2 and metadata["model_name"] == "s0" and metadata["task"] == "FusionClassifier"
    serving = metadata["signatures"][SERVING_SIGNATURE]
    assert serving["inputs"]["image"]["dtype"] == "string" and serving["inputs"]["text"]["dtype"] == "string"
    assert set(serving["outputs"]) == case.keys and serving["outputs"]["label"]["head"] == "binary"
    assert metadata["signatures"][TENSORS_SIGNATURE]["inputs"]["image"]["shape"] == [None, 32, 32, 3]
    assert metadata["class_names"] == {"label": ["no", "yes"]}
    loaded, preprocessor = mmkeras.load(case.path, return_preprocessor=True)
    assert preprocessor.get_config() == metadata["preprocessor"]
    assert preprocessor.class_names == ["no", "yes"] and preprocessor.sequence_length == 12
    assert mmkeras.export.load_preprocessor(case.path).get_config() == preprocessor.get_config()
    # The folder is readable by other users (a service account), like any file the user writes.
    mode = os.stat(case.path).st_mode & 0o777
    assert mode & 0o055 == 0o755 & ~_umask() & 0o055


def test_image_only_signatures_take_only_an_image(cases):
    loaded = mmkeras.load(cases["s3"].path)
    assert set(loaded.signatures[SERVING_SIGNATURE].structured_input_signature[1]) == {"image"}
    assert set(loaded.signatures[TENSORS_SIGNATURE].structured_input_signature[1]) == {"image"}


# ---------------------------------------------------------------------------------------------
# Every other registered model, cheaply: exported at its test size and answering as the live model
# on 2 examples through both signatures in process (the slow run checks every consumer).

OTHER_MODELS = [n for n in HEAD_MODELS if n not in DEFAULT_MODELS]


def test_every_registered_model_is_exported_in_the_default_run():
    assert set(DEFAULT_MODELS) | set(OTHER_MODELS) == set(HEAD_MODELS)
    from tests.test_dual_encoder import DUAL_ENCODERS  # the others, exported there
    from tests.test_captioner import CAPTIONERS  # exported in tests/test_captioner.py
    from tests.test_gan import GANS  # exported in tests/test_gan.py

    assert set(HEAD_MODELS) | set(DUAL_ENCODERS) | set(CAPTIONERS) | set(GANS) == set(mmkeras.list_models())


# A keras.applications backbone (about 13 s to export): slow set.
HEAVY_MODELS = {"mobilenet_conv_text"}


@pytest.mark.parametrize(
    "name", [pytest.param(n, marks=pytest.mark.slow) if n in HEAVY_MODELS else n for n in OTHER_MODELS]
)
def test_every_other_registered_model_serves_like_live_model(name, tmp_path):
    check_in_process(export_case(name, str(tmp_path), batch_sizes=(2,)))


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
    bad_request(serve, r"image\[1\] \(25 bytes\) is not an encoded image: it must be JPEG, PNG",
                image=[png, b"these are not image bytes"], text=["a", "b"])
    bad_request(serve, r"image\[0\] \(\d+ bytes\) is a truncated or corrupt PNG image", image=[png[: len(png) // 2]], text=["a"])
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


# A mixed-bfloat16 model against its live self. Measured here (4 models x 320 examples): served
# and live outputs differ by at most 1.2e-7 when both see the same float32 images, and by up to
# 7.8e-5 through `serving_default` on images it resizes (the graph's and the eager resize differ by
# up to 1.2e-7 in a pixel; bfloat16 rounding amplifies that). The same weights computed in float32
# answer 1.4e-4 away from bfloat16.
BF16_ATOL = 1e-6
BF16_RESIZED_ATOL = 2.5e-4


def exact_size_request(model, n, seed):
    """A request whose PNG images have the model's own size: decoding them is exact (no resizing)."""
    request = make_request(model, n, seed)
    rng = np.random.default_rng(seed)
    shape = tuple(model.input["image"].shape[1:])
    pngs = [tf.io.encode_png(rng.integers(0, 256, size=shape, dtype=np.uint8)).numpy() for _ in range(n)]
    request["image"] = np.array(pngs, dtype=object)
    return request


def assert_tells_examples_apart(outputs, atol, margin):
    """Any two examples' outputs differ by more than `margin` times `atol`: a comparison at `atol`
    fails when an answer belongs to another example."""
    flat = outputs.reshape(len(outputs), -1).astype("float64")
    gaps = np.abs(flat[:, None, :] - flat[None, :, :]).max(-1)
    smallest = gaps[~np.eye(len(flat), dtype=bool)].min()
    assert smallest > margin * atol, f"examples' outputs differ by only {smallest:.2e}: atol {atol:g} cannot tell them apart"


def test_mixed_bfloat16_model_exports(tmp_path):
    """`mmkeras train` builds in mixed bfloat16 where the CPU has it: such models export, serve
    float32 outputs, still compute in bfloat16, and answer as the live model."""
    keras.mixed_precision.set_dtype_policy("mixed_bfloat16")
    try:
        model = tiny("s4")
    finally:
        keras.mixed_precision.set_dtype_policy("float32")
    assert model.get_layer("image_encoder").dtype_policy.compute_dtype == "bfloat16"
    loaded = mmkeras.load(mmkeras.export_model(model, tmp_path / "s4"))
    # Both signatures on the same float32 inputs as the live model: only graph against eager
    # execution of bfloat16 ops could differ.
    request = exact_size_request(model, 4, seed=4)
    tensors = to_tensors(model, request)
    expected = live_outputs(model, tensors)["sentiment"]
    assert_tells_examples_apart(expected, BF16_ATOL, margin=100)
    for signature, inputs in ((SERVING_SIGNATURE, request), (TENSORS_SIGNATURE, tensors)):
        served = loaded.signatures[signature](**{k: tf.constant(v) for k, v in inputs.items()})["sentiment"]
        assert served.dtype == tf.float32
        np.testing.assert_allclose(served, expected, atol=BF16_ATOL, rtol=0, err_msg=signature)
    # The tolerance also tells bfloat16 from float32 computation: had the export lost the mixed
    # policy, its answers would be as far from the live model's as these.
    as_float32 = mmkeras.get_model("s4", **mmkeras.get_entry("s4").tiny)
    as_float32.set_weights(model.get_weights())
    assert np.abs(live_outputs(as_float32, tensors)["sentiment"] - expected).max() > 10 * BF16_ATOL
    # Images of other sizes and formats (PNG and JPEG, grey and RGB), resized by `serving_default`.
    request = make_request(model, 4, seed=6)
    expected = live_outputs(model, to_tensors(model, request))["sentiment"]
    assert_tells_examples_apart(expected, BF16_RESIZED_ATOL, margin=10)
    served = loaded.signatures[SERVING_SIGNATURE](**{k: tf.constant(v) for k, v in request.items()})["sentiment"]
    np.testing.assert_allclose(served, expected, atol=BF16_RESIZED_ATOL, rtol=0, err_msg="resized images")


# ---------------------------------------------------------------------------------------------
# Arguments.


@pytest.fixture(scope="module")
def s0_model():
    return tiny("s0")


def test_export_needs_a_vocabulary_for_token_ids(s0_model, tmp_path):
    bare = mmkeras.get_model("s0", **mmkeras.get_entry("s0").tiny)  # a preprocessor without vocabulary
    with pytest.raises(ValueError, match=r"`preprocessor` must hold the text vocabulary.*Received: preprocessor=Preprocessor\("):
        mmkeras.export_model(bare, tmp_path / "x")
    own = s0_model.preprocessor
    wrong = Preprocessor.from_vectorizer(text_vectorizer(WORDS, sequence_length=5), image_shape=(32, 32, 3))
    with pytest.raises(ValueError, match=r"`preprocessor.sequence_length` must equal .* \(12\). Received: preprocessor.sequence_length=5"):
        mmkeras.export_model(s0_model, tmp_path / "x", preprocessor=wrong)
    wrong = Preprocessor.from_config({**own.get_config(), "image_shape": (64, 64, 3)})
    with pytest.raises(ValueError, match=r"`preprocessor.image_shape` must match"):
        mmkeras.export_model(s0_model, tmp_path / "x", preprocessor=wrong)
    assert s0_model.preprocessor is own, "a refused override changed the task"
    assert not os.listdir(tmp_path), "a refused export left files behind"


def test_export_argument_errors(s0_model, tmp_path):
    with pytest.raises(ValueError, match=r"`format` must be one of \['keras', 'saved_model'\].*Received: format='onnx'"):
        mmkeras.export_model(s0_model, tmp_path / "x", format="onnx")
    with pytest.raises(ValueError, match=r"`model` must be an mmkeras task .*Received: model='s0'"):
        mmkeras.export_model("s0", tmp_path / "x")
    with pytest.raises(ValueError, match=r"`preprocessor` must be a mmkeras.preprocessing.Preprocessor"):
        mmkeras.export_model(s0_model, tmp_path / "x", preprocessor={"vocabulary": []})
    with pytest.raises(ValueError, match=r"`class_names` for output 'label' \(BinaryHead, 1 unit\(s\)\) must hold 2 names"):
        mmkeras.export_model(s0_model, tmp_path / "x", class_names=["yes"])
    with pytest.raises(ValueError, match=r"`class_names` of a multi-task model must be a dict"):
        mmkeras.export_model(tiny("s4_multitask"), tmp_path / "x", class_names=["a", "b"])
    with pytest.raises(ValueError, match=r"`overwrite` must be True or False. Received: overwrite='yes'"):
        mmkeras.export_model(s0_model, tmp_path / "x", overwrite="yes")
    with pytest.raises(ValueError, match=r"`path` must be a str or a path-like"):
        mmkeras.export_model(s0_model, 42)
    assert s0_model.preprocessor.class_names == ["no", "yes"]
    assert not os.listdir(tmp_path), "a refused export left files behind"


def test_plain_keras_model_is_refused_naming_model_task(s0_model, tmp_path):
    plain = keras.Model(s0_model.input, s0_model.output)
    with pytest.raises(ValueError, match=r"wrap it as mmkeras.tasks.ModelTask\(model, head=\.\.\., preprocessor=\.\.\.\).*Received: model=Functional"):
        mmkeras.export_model(plain, tmp_path / "x")
    # Wrapped, the same model exports and serves like the task it came from.
    task = ModelTask(plain, head="binary", preprocessor=s0_model.preprocessor)
    case = Case("wrapped", task, mmkeras.export_model(task, tmp_path / "wrapped"))
    for n in BATCH_SIZES:
        np.testing.assert_allclose(case.expected[n]["label"], live_outputs(s0_model, case.tensors[n])["label"], atol=ATOL)
    check_in_process(case)


def test_raw_text_model_keeps_its_vocabulary(tmp_path):
    """A model that tokenizes inside its graph is rebuilt from its preprocessor's vocabulary when
    loaded: a preprocessor without it would write a `.keras` file that cannot load."""
    vectorizer = text_vectorizer(WORDS[:10], vocab_size=32, sequence_length=8)
    model = mmkeras.build_model(
        image_encoder=None, text_encoder={"kind": "rnn", "embedding_dim": 8, "units": 8}, fusion=None,
        text_vectorizer=vectorizer, hidden_units=(), name="raw_text",
    )  # fmt: skip
    with pytest.raises(ValueError, match=r"must keep the model's vocabulary, sequence length and standardization"):
        mmkeras.export_model(model, tmp_path / "raw_text.keras", format="keras", preprocessor=Preprocessor(class_names=["no", "yes"]))
    path = mmkeras.export_model(model, tmp_path / "raw_text.keras", format="keras", class_names=["no", "yes"])
    loaded = mmkeras.load(path)
    assert loaded.class_names() == ["no", "yes"] and loaded.preprocessor.vocabulary == vectorizer.get_vocabulary()
    texts = np.array(["is it red?", "a square"], dtype=object)
    np.testing.assert_allclose(loaded({"text": texts}), model({"text": texts}), atol=1e-6)


def test_preprocessor_and_class_names_override_for_one_export(s0_model, tmp_path):
    own = s0_model.preprocessor
    names = ["different", "same"]
    path = mmkeras.export_model(s0_model, tmp_path / "renamed", class_names=names)
    assert s0_model.preprocessor is own, "the override outlived the export"
    case = Case("renamed", s0_model, path, class_names={"label": names})
    check_in_process(case)
    assert mmkeras.export.load_preprocessor(path).get_config() == {**own.get_config(), "class_names": names}
    # A whole preprocessor (here: another vocabulary) is what the signature tokenizes with.
    other = Preprocessor.from_vectorizer(text_vectorizer(WORDS[4:], vocab_size=32, sequence_length=12), image_shape=(32, 32, 3))
    path = mmkeras.export_model(s0_model, tmp_path / "other", preprocessor=other, format="keras")
    loaded = mmkeras.load(path)
    assert loaded.preprocessor.get_config() == other.get_config() and s0_model.preprocessor is own


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
    expected = other({"image": other.preprocessor.decode_images(tf.constant(images))})
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
    with pytest.raises(ValueError, match=r"is not an export \(nor an empty folder\): overwrite=True only replaces an export"):
        mmkeras.export_model(s3_model, precious, overwrite=True)
    assert (precious / "notes.txt").read_text() == "keep me"
    (tmp_path / "notes.txt").write_text("keep me too")
    with pytest.raises(ValueError, match=r"is not an export"):
        mmkeras.export_model(s3_model, tmp_path / "notes.txt", overwrite=True)
    assert (tmp_path / "notes.txt").read_text() == "keep me too"
    (tmp_path / "notes.keras").mkdir()  # a folder named like a .keras file is not one
    (tmp_path / "notes.keras" / "notes.txt").write_text("keep me as well")
    with pytest.raises(ValueError, match=r"is not an export"):
        mmkeras.export_model(s3_model, tmp_path / "notes.keras", format="keras", overwrite=True)
    assert sorted(os.listdir(tmp_path)) == ["data", "notes.keras", "notes.txt"]


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
    monkeypatch.setattr(s3_model, "save", fail)  # the .keras file is written to a temporary file first
    with pytest.raises(OSError, match="disk full"):
        mmkeras.export_model(s3_model, str(tmp_path / "s3.keras"), format="keras")
    assert sorted(os.listdir(tmp_path)) == ["s3"], "a failed .keras export left files behind"


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
    # Hidden, beside it: the temporary folder, with the owner file that lets a later export clean it up.
    leftovers = sorted(f for f in os.listdir(tmp_path) if f not in ("s3", "crash.py") and not f.endswith(".owner"))
    assert len(leftovers) == 1 and leftovers[0].startswith(".s3.tmp-"), leftovers
    owners = [f for f in os.listdir(tmp_path) if f.endswith(".owner")]
    assert owners in ([], [leftovers[0] + ".owner"]), owners
    assert os.path.exists(os.path.join(tmp_path, leftovers[0], "saved_model.pb"))


# ---------------------------------------------------------------------------------------------
# .keras export and loading.


def test_keras_export_file_and_folder(s0_model, tmp_path):
    request = make_request(s0_model, 3, seed=1)
    expected = live_outputs(s0_model, to_tensors(s0_model, request))["label"]

    path = mmkeras.export_model(s0_model, tmp_path / "s0.keras", format="keras")
    assert sorted(os.listdir(tmp_path)) == ["s0.keras"], "the preprocessor is inside the .keras file"
    model, loaded_pre = mmkeras.load(path, return_preprocessor=True)
    assert isinstance(model, FusionClassifier) and loaded_pre is model.preprocessor
    assert loaded_pre.get_config() == s0_model.preprocessor.get_config()
    np.testing.assert_allclose(live_outputs(model, to_tensors(model, request))["label"], expected, atol=1e-6)
    with pytest.raises(FileExistsError):
        mmkeras.export_model(s0_model, path, format="keras")
    mmkeras.export_model(model, path, format="keras", overwrite=True)  # a .keras file replaces a .keras file
    assert sorted(os.listdir(tmp_path)) == ["s0.keras"]

    folder = mmkeras.export_model(s0_model, tmp_path / "run", format="keras")
    assert sorted(os.listdir(folder)) == ["model.keras"]
    model, loaded_pre = mmkeras.load(folder, return_preprocessor=True)
    np.testing.assert_allclose(live_outputs(model, to_tensors(model, request))["label"], expected, atol=1e-6)
    assert mmkeras.load(folder).name == "s0" and mmkeras.export.load_preprocessor(folder).class_names == ["no", "yes"]


def test_two_keras_files_in_one_folder_keep_their_own_preprocessors(s0_model, s3_model, tmp_path):
    paths = {
        "s0": mmkeras.export_model(s0_model, tmp_path / "s0.keras", format="keras"),
        "s3": mmkeras.export_model(s3_model, tmp_path / "s3.keras", format="keras"),
    }
    assert sorted(os.listdir(tmp_path)) == ["s0.keras", "s3.keras"]
    for model in (s0_model, s3_model):
        loaded, preprocessor = mmkeras.load(paths[model.name], return_preprocessor=True)
        assert preprocessor.get_config() == model.preprocessor.get_config()
        request = make_request(model, 3, seed=2)
        for name, expected in live_outputs(model, to_tensors(model, request)).items():
            np.testing.assert_allclose(live_outputs(loaded, to_tensors(loaded, request))[name], expected, atol=1e-6)
    assert mmkeras.export.load_preprocessor(paths["s0"]).vocabulary != mmkeras.export.load_preprocessor(paths["s3"]).vocabulary


ANSWER_SCRIPT = textwrap.dedent(
    """
    import json, sys

    import keras
    import mmkeras.tasks

    path, request_file, result_file = sys.argv[1:4]
    with open(request_file) as f:
        request = json.load(f)
    model = keras.saving.load_model(path, safe_mode=True)
    assert isinstance(model, mmkeras.tasks.Task), type(model)
    images = []
    for image_path in request["paths"]:
        with open(image_path, "rb") as f:
            images.append(f.read())
    result = {
        "paths": model.answer(image=request["paths"], text=request["texts"], top_k=100),
        "bytes": model.answer(image=images, text=request["texts"], top_k=100),
        "class_names": model.class_names(),
    }
    with open(result_file, "w") as f:
        json.dump(result, f)
    """
)


def test_keras_task_answers_in_a_fresh_process_like_the_saved_model(tmp_path):
    """A `.keras` task alone (`import mmkeras.tasks`, `load_model(safe_mode=True)`) answers raw PNG
    files and bytes with the probabilities and class names of the SavedModel's `serving_default`."""
    vectorizer = text_vectorizer(WORDS[:12], vocab_size=32, sequence_length=8)
    names = ["red", "green", "blue"]
    model = mmkeras.build_model(
        image_encoder={"kind": "cnn", "filters": (4,), "output": "avg"},
        text_encoder={"kind": "rnn", "embedding_dim": 8, "units": 8},
        head={"kind": "multiclass", "num_classes": 3, "name": "answer"}, image_shape=(16, 16, 3),
        sequence_length=8, vocab_size=32, hidden_units=(8,), name="answers",
        preprocessor=Preprocessor.from_vectorizer(vectorizer, image_shape=(16, 16, 3), class_names=names),
    )  # fmt: skip
    keras_path = mmkeras.export_model(model, tmp_path / "answers.keras", format="keras")
    served = mmkeras.load(mmkeras.export_model(model, tmp_path / "answers")).signatures[SERVING_SIGNATURE]
    rng = np.random.default_rng(6)
    paths, pngs = [], []
    for i, size in enumerate((16, 9, 40, 23)):
        png = tf.io.encode_png(rng.integers(0, 256, size=(size, size + 3, 1 + 2 * (i % 2)), dtype=np.uint8)).numpy()
        paths.append(str(tmp_path / f"image{i}.png"))
        with open(paths[-1], "wb") as f:
            f.write(png)
        pngs.append(png)
    texts = ["what color is it?", "Is the circle RED?", "", "square triangle yellow image"]
    with open(tmp_path / "request.json", "w") as f:
        json.dump({"paths": paths, "texts": texts}, f)
    script = tmp_path / "answer.py"
    script.write_text(ANSWER_SCRIPT)
    done = subprocess.run(
        [sys.executable, str(script), keras_path, str(tmp_path / "request.json"), str(tmp_path / "result.json")],
        env=SUBPROCESS_ENV, capture_output=True, text=True,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    with open(tmp_path / "result.json") as f:
        result = json.load(f)
    outputs = served(image=tf.constant(pngs), text=tf.constant(texts))
    probabilities, served_names = outputs["answer"].numpy(), [s.decode() for s in outputs["answer_class"].numpy()]
    assert result["class_names"] == names
    for way in ("paths", "bytes"):
        for answer, row, served_name in zip(result[way], probabilities, served_names):
            by_name = dict(answer["top"])
            np.testing.assert_allclose([by_name[n] for n in names], row, atol=ATOL, err_msg=way)
            top2 = np.sort(row)[-2:]
            if top2[1] - top2[0] > 1e-4:  # ties at float precision may go either way
                assert answer["answer"] == served_name, way


def test_load_errors(tmp_path):
    with pytest.raises(ValueError, match=r"`path` must be a SavedModel folder .* \(it does not exist\)"):
        mmkeras.load(tmp_path / "nothing")
    with pytest.raises(ValueError, match=r"`path` must be a SavedModel folder"):
        mmkeras.load(tmp_path)
    with pytest.raises(ValueError, match=r"`path` must be a str or a path-like"):
        mmkeras.load(3)


# ---------------------------------------------------------------------------------------------
# The `mmkeras export` command.


def test_cli_export(s0_model, tmp_path, capsys):
    from mmkeras.cli import main

    run_dir = tmp_path / "run"  # the layout `mmkeras train` writes: the task, its preprocessor inside
    run_dir.mkdir()
    s0_model.save(run_dir / "model.keras")
    out = str(tmp_path / "served" / "1")
    assert main(["export", str(run_dir), out]) == 0
    assert out in capsys.readouterr().out
    request = make_request(s0_model, 2, seed=3)
    served = mmkeras.load(out).signatures[SERVING_SIGNATURE](**{k: tf.constant(v) for k, v in request.items()})
    np.testing.assert_allclose(served["label"], live_outputs(s0_model, to_tensors(s0_model, request))["label"], atol=ATOL)

    assert main(["export", str(run_dir), out]) == 2
    assert "mmkeras export: error: `path` already holds an export; it is kept. Pass overwrite=True (CLI: --overwrite)" in capsys.readouterr().err
    assert main(["export", str(run_dir), out, "--overwrite"]) == 0
    assert main(["export", str(run_dir), str(tmp_path / "copy.keras"), "--format", "keras"]) == 0
    assert isinstance(mmkeras.load(tmp_path / "copy.keras"), Task)
    assert main(["export", str(tmp_path / "copy.keras"), str(tmp_path / "again")]) == 0  # a .keras file as MODEL_DIR
    capsys.readouterr()
    assert main(["export", str(tmp_path / "served"), str(tmp_path / "x")]) == 2  # no model.keras there
    err = capsys.readouterr().err
    assert err.startswith("mmkeras export: error: ") and "model.keras" in err and "Traceback" not in err


# ---------------------------------------------------------------------------------------------
# Every registered model (slow).


@pytest.mark.slow
@pytest.mark.parametrize("name", HEAD_MODELS)
def test_every_registered_model_exports_and_serves(name, tmp_path):
    case = export_case(name, str(tmp_path))
    check_in_process(case)
    check_tfsm_layer(case)
    check_fresh_process([case], tmp_path)
    check_saved_model_cli_show(case)
    check_saved_model_cli_run(case, tmp_path)
