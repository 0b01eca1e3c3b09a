"""The `mmkeras` command's surface: list, --version, the installed console script, and the
registry and dataset listings under them. (train / evaluate / predict / export: test_training_cli.py
and test_export.py.)"""

import os
import shutil
import subprocess
import sys

import pytest

import mmkeras
from mmkeras import cli


def test_version(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip() == f"mmkeras {mmkeras.__version__}"


def test_list_with_a_pattern_and_a_family(capsys):
    assert cli.main(["list", "fusion_*"]) == 0
    names = [line.split()[0] for line in capsys.readouterr().out.splitlines()]
    assert names == mmkeras.list_models("fusion_*") and len(names) == len(mmkeras.fusion.FUSIONS)
    assert cli.main(["list", "--family", "documents"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == mmkeras.list_models(family="documents")
    assert all("[documents]" in line for line in lines)
    assert cli.main(["list", "no_such_*"]) == 0 and capsys.readouterr().out == ""


def test_no_command_prints_help_and_exits_2(capsys):
    assert cli.main([]) == 2
    assert "usage: mmkeras" in capsys.readouterr().out


def test_list_models_and_datasets():
    assert mmkeras.list_models("s4*") == ["s4", "s4_multitask"]
    assert mmkeras.list_models(family="vqa") == ["vqa"]
    assert set(mmkeras.list_models()) >= {"s0", "s1", "vqa", "fusion_gated"}
    assert mmkeras.list_datasets() == [
        "easy_vqa", "easy_vqa_captions", "easy_vqa_descriptions", "easy_vqa_yes_no", "fashion_mnist_captions",
        "fashion_mnist_descriptions", "fashion_mnist_pair_captions", "fashion_pairs",
    ]


def test_the_installed_console_script_runs():
    script = shutil.which("mmkeras", path=os.path.dirname(sys.executable)) or shutil.which("mmkeras")
    if script is None:
        pytest.skip("the mmkeras console script is not installed (pip install -e .)")
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    done = subprocess.run([script, "--version"], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == f"mmkeras {mmkeras.__version__}"
    done = subprocess.run([script, "list", "s1"], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0 and done.stdout.startswith("s1  [documents]")
    done = subprocess.run([script, "train", "--epochs", "0"], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines()[-1].startswith("mmkeras train: error: `epochs` must be a positive integer")


@pytest.mark.parametrize(
    "shape, message",
    [("32,32,4", "CHANNELS must be 1 (grey) or 3 (RGB), got '32,32,4'"), ("0,32,3", "expected HEIGHT,WIDTH,CHANNELS"),
     ("32x32", "expected HEIGHT,WIDTH,CHANNELS")],
)
def test_image_shape_option_names_itself(shape, message, capsys):
    """`--image-shape` is checked when parsed, and the error names the option (not `images`)."""
    with pytest.raises(SystemExit) as info:
        cli.main(["train", "--image-shape", shape])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "argument --image-shape: " + message in err and "Traceback" not in err
