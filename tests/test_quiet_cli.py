"""Quiet, quick commands: `import mmkeras`, `mmkeras --help`, `--version` and `list` do not
import TensorFlow or Keras; no command prints TensorFlow's start-up lines unless `--verbose`; the
filter that hides them hides nothing else; the registry loads its zoo whatever was imported first.

(Their speed is measured in benchmarks/cli_startup.py, not here.)
"""

import os
import shutil
import subprocess
import sys
import warnings

import numpy as np
import pytest
import tensorflow as tf

import mmkeras
from mmkeras import cli, distribute, fusion
from mmkeras.fusion_kinds import FUSION_KINDS

# conftest.py sets TF_CPP_MIN_LOG_LEVEL=3 for the tests; the commands here run as a user runs them.
ENV = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}

NO_TENSORFLOW = """
import sys
from mmkeras.cli import main
try:
    code = main({argv!r})
except SystemExit as exit:
    code = exit.code
heavy = sorted(m for m in ("tensorflow", "keras") if m in sys.modules)
print("exit", code, "imported", heavy)
"""


def _python(code, timeout=120):
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=ENV, timeout=timeout)


@pytest.mark.parametrize("argv", [["--help"], ["--version"], ["train", "--help"], ["list"], ["list", "s*"], ["list", "--family", "fusion"]])
def test_help_version_and_list_do_not_import_tensorflow(argv):
    done = _python(NO_TENSORFLOW.format(argv=argv))
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert lines[-1] == "exit 0 imported []"
    if argv[0] == "list":
        pattern = argv[1] if len(argv) == 2 else None
        family = argv[2] if len(argv) == 3 else None
        assert [line.split()[0] for line in lines[:-1]] == mmkeras.list_models(pattern, family=family) != []


def test_import_mmkeras_and_the_registry_do_not_import_tensorflow():
    done = _python(
        "import sys, mmkeras\n"
        "entry = mmkeras.get_entry('vqa')\n"
        "print(mmkeras.__version__, len(mmkeras.list_models()), entry.family, entry.task_ref, entry.training_defaults('easy_vqa')['epochs'])\n"
        "print(sorted(m for m in ('tensorflow', 'keras') if m in sys.modules))\n"
    )
    assert done.returncode == 0, done.stderr
    first, second = done.stdout.strip().splitlines()
    entry = mmkeras.get_entry("vqa")
    assert first == f"{mmkeras.__version__} {len(mmkeras.list_models())} vqa mmkeras.tasks.FusionClassifier {entry.training_defaults('easy_vqa')['epochs']}"
    assert second == "[]"


def test_the_zoo_is_registered_whatever_is_imported_first():
    # get_model after list_models, in a fresh process; the registry alone, without `import mmkeras`
    done = _python(
        "import mmkeras\n"
        "names = mmkeras.list_models()\n"
        "model = mmkeras.get_model('s1', image_shape=(32, 32, 3))\n"
        "print(type(model).__name__, model.head.kind, tuple(model.input['image'].shape), type(model) is mmkeras.get_entry('s1').task)\n"
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "FusionClassifier binary (None, 32, 32, 3) True"
    done = _python(
        "from mmkeras.registry import register_model\n"
        "try:\n"
        "    register_model('s1', family='custom')(lambda **overrides: None)\n"
        "except ValueError as error:\n"
        "    print(error)\n"
    )
    assert done.returncode == 0, done.stderr
    assert "`name` is already registered (by mmkeras.models.recipe)" in done.stdout


def test_every_public_name_resolves():
    namespace = {}
    exec("from mmkeras import *", namespace)
    for name in mmkeras.__all__:
        assert getattr(mmkeras, name) is namespace[name]
    assert set(mmkeras.__all__) <= set(dir(mmkeras))
    assert mmkeras.train is mmkeras.training.train and mmkeras.data is sys.modules["mmkeras.data"]
    assert mmkeras.export_model is sys.modules["mmkeras.export"].export_model
    with pytest.raises(AttributeError, match="no attribute 'no_such_name'"):
        mmkeras.no_such_name


def test_fusion_kinds_are_the_fusion_layers_and_their_summaries():
    assert list(FUSION_KINDS) == list(fusion.FUSIONS)
    for name, layer in fusion.FUSIONS.items():
        assert FUSION_KINDS[name] == layer.__doc__.strip().splitlines()[0], name
        assert mmkeras.get_entry(f"fusion_{name}").reference == FUSION_KINDS[name]


def _console_script():
    script = shutil.which("mmkeras", path=os.path.dirname(sys.executable)) or shutil.which("mmkeras")
    if script is None:
        pytest.skip("the mmkeras console script is not installed (pip install -e .)")
    return script


def test_the_console_scripts_help_prints_no_tensorflow_line():
    done = subprocess.run([_console_script(), "--help"], capture_output=True, text=True, env=ENV, timeout=120)
    assert done.returncode == 0 and done.stdout.startswith("usage: mmkeras")
    assert done.stderr == ""
    assert not any(cli.STARTUP_LINE.fullmatch(line) for line in done.stdout.splitlines())


def test_a_command_that_imports_tensorflow_prints_only_its_own_lines(tmp_path):
    argv = [_console_script(), "predict", str(tmp_path / "missing"), str(tmp_path / "x.png"), "what color is it?"]
    quiet = subprocess.run(argv, capture_output=True, text=True, env=ENV, timeout=300)
    assert quiet.returncode == 2
    assert quiet.stderr.splitlines() == [quiet.stderr.splitlines()[-1]]  # the error, alone
    assert quiet.stderr.startswith("mmkeras predict: error: `model` must be a folder written by `mmkeras train`")
    verbose = subprocess.run(argv[:1] + ["--verbose"] + argv[1:], capture_output=True, text=True, env=ENV, timeout=300)
    assert verbose.returncode == 2 and verbose.stderr.splitlines()[-1] == quiet.stderr.splitlines()[-1]
    # what --verbose adds is TensorFlow's start-up lines, and only those
    assert all(cli.STARTUP_LINE.fullmatch(line) for line in verbose.stderr.splitlines()[:-1])


def test_the_startup_filter_gives_back_every_other_line_and_the_error(capfd):
    startup = (
        "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n"
        "I0000 00:00:1795722431.729747     308 port.cc:153] oneDNN custom operations are on.\n"
        "I0000 00:00:1795722431.730100     308 cudart_stub.cc:31] Could not find cuda drivers on your machine, GPU will not be used.\n"
        "To enable the following instructions: AVX2 FMA, in other operations, rebuild TensorFlow with the appropriate compiler flags.\n"
        "E0000 00:00:1795722440.138617     402 cuda_platform.cc:52] failed call to cuInit: INTERNAL: CUDA error\n"
    )
    kept = (
        "E0000 00:00:1795722441.000000     402 some_kernel.cc:10] a real error\n"
        "F0000 00:00:1795722441.000000     402 check.cc:1] Check failed: x\n"
        "UserWarning: something a user should see\n"
    )
    with pytest.raises(RuntimeError, match="raised inside"):
        with cli._stderr_without_startup_lines():
            os.write(2, startup.encode() + kept.encode())
            raise RuntimeError("raised inside")
    assert capfd.readouterr().err == kept


def test_distribute_fit_on_a_dataset_gives_no_shuffle_warning():
    model = mmkeras.get_model("s3", **mmkeras.get_entry("s3").tiny)
    x = {"image": np.zeros((4, 32, 32, 3), "float32")}
    dataset = tf.data.Dataset.from_tensor_slices((x, np.zeros((4,), "int32"))).batch(2)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        distribute.fit(model, dataset, epochs=1, verbose=0)
    assert not [str(w.message) for w in caught if "shuffle" in str(w.message)]  # plain `model.fit(dataset)` gives one
