"""Every `>>>` example in mmkeras's docstrings runs, so none can go stale.

The walk finds every module of the package (`pkgutil.walk_packages`), `doctest.DocTestFinder`
collects the examples of each docstring (only the objects the module defines, so a re-exported
function is run once), and each docstring is its own test case, named by its qualified name
(e.g. `mmkeras.registry.get_model`). Each runs in a fresh temporary working directory, so examples
that write files (`saved_models/...`, `.keras` files) write there.

Run one module's examples with e.g. `pytest tests/test_docstrings.py -k mmkeras.registry`.
"""

import copy
import doctest
import importlib
import pkgutil

import keras
import pytest

import mmkeras
from mmkeras import registry
from mmkeras.data import fashion_mnist

OPTIONFLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE

# Docstrings whose examples together take more than ~20 s on a CPU (they train, save and export
# real models), by qualified name; the default run leaves them out (`-m slow` runs them).
SLOW = set()

# Docstrings that read Fashion-MNIST from Debian's `dataset-fashion-mnist` package: skipped where
# it is not installed, as in tests/test_data.py (mmkeras never downloads data).
NEEDS_FASHION_MNIST = {
    "mmkeras.data.fashion_mnist.load_fashion_mnist_captions",
    "mmkeras.data.fashion_mnist.read_idx",
    "mmkeras.data.retrieval_datasets.load_fashion_mnist_descriptions",
    "mmkeras.data.caption_datasets.load_fashion_mnist_pair_captions",
    "mmkeras.data.fashion_pairs.load_fashion_pairs",
}


def _fashion_mnist_installed():
    try:
        fashion_mnist.data_dir()
    except FileNotFoundError:
        return False
    return True


def _module_names():
    """`mmkeras` and all its submodules, sorted; an import error fails loudly, never skips a module."""

    def onerror(name):
        raise ImportError(f"walking the mmkeras package could not import {name}")

    names = {"mmkeras"}
    names.update(info.name for info in pkgutil.walk_packages(mmkeras.__path__, "mmkeras.", onerror=onerror))
    return sorted(names)


def _collect():
    finder = doctest.DocTestFinder()
    tests = []
    for name in _module_names():
        module = importlib.import_module(name)
        tests.extend(test for test in finder.find(module) if test.examples)
    return sorted(tests, key=lambda test: test.name)


DOCTESTS = _collect()


def _param(test):
    marks = [pytest.mark.slow] if test.name in SLOW else []
    if test.name in NEEDS_FASHION_MNIST:
        marks.append(pytest.mark.skipif(not _fashion_mnist_installed(), reason="dataset-fashion-mnist is not installed"))
    return pytest.param(test, id=test.name, marks=marks)


@pytest.fixture
def _isolated(tmp_path, monkeypatch):
    """A fresh working directory; the registry, Keras custom objects and dtype policy restored after."""
    monkeypatch.chdir(tmp_path)
    models = dict(registry._REGISTRY)
    custom_objects = dict(keras.saving.get_custom_objects())
    policy = keras.config.dtype_policy()
    yield
    registry._REGISTRY.clear()
    registry._REGISTRY.update(models)
    keras.saving.get_custom_objects().clear()
    keras.saving.get_custom_objects().update(custom_objects)
    keras.config.set_dtype_policy(policy)


@pytest.mark.parametrize("test", [_param(t) for t in DOCTESTS])
def test_docstring_examples(test, _isolated):
    test = copy.copy(test)
    test.globs = dict(test.globs)  # the runner clears its globals after the run: keep the collected ones
    runner = doctest.DocTestRunner(optionflags=OPTIONFLAGS)
    report = []
    result = runner.run(test, out=report.append)
    if result.failed:
        pytest.fail(f"{result.failed} of {result.attempted} examples failed in {test.name}:\n" + "".join(report), pytrace=False)


def test_the_walk_finds_the_examples():
    assert sum(len(test.examples) for test in DOCTESTS) >= 100
    names = {test.name for test in DOCTESTS}
    assert not (SLOW | NEEDS_FASHION_MNIST) - names, "SLOW or NEEDS_FASHION_MNIST names a docstring without examples"
