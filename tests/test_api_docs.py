"""docs/api.md cannot drift: it is written from the code by docs/make_api.py, and checked here.

A new argument without an `Args:` entry in its docstring, or a documented object without an
example, stops the generator; a page older than the code fails `--check`.
"""

import importlib.util
import inspect
import os
import re
import subprocess
import sys

import pytest

from mmkeras.encoders import IMAGE_ENCODERS, TEXT_ENCODERS
from mmkeras.fusion import FUSIONS, Fusion
from mmkeras.heads import HEADS
from mmkeras.tasks import FusionClassifier

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "docs", "make_api.py")


def load_make_api():
    """docs/make_api.py as a module (it is a script, not part of the package)."""
    spec = importlib.util.spec_from_file_location("make_api", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


make_api = load_make_api()

# Every documented object: (qualified name on the page, object, the base whose constructors count too).
DOCUMENTED = (
    [(f"mmkeras.encoders.{f.__name__}", f, None) for f in {**IMAGE_ENCODERS, **TEXT_ENCODERS}.values()]
    + [(f"mmkeras.fusion.{cls.__name__}", cls, Fusion) for cls in FUSIONS.values()]
    + [(f"mmkeras.heads.{cls.__name__}", cls, None) for cls in HEADS.values()]
    + [("mmkeras.tasks.FusionClassifier", FusionClassifier, None)]
)


def _public_arguments(obj, base):
    """What a user may pass, straight from the signatures (for a fusion: every constructor up to `Fusion`)."""
    if inspect.isclass(obj):
        classes = obj.__mro__[: obj.__mro__.index(base) + 1] if base else obj.__mro__[:1]
        funcs = [klass.__init__ for klass in classes if "__init__" in vars(klass)]
    else:
        funcs = [obj]
    arguments = {}
    for func in funcs:
        for name, param in inspect.signature(func).parameters.items():
            if name != "self" and param.kind not in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
                arguments.setdefault(name, param.default)
    return arguments


def _page():
    with open(os.path.join(ROOT, "docs", "api.md"), encoding="utf-8") as f:
        return f.read()


def test_api_page_is_up_to_date():
    """`python docs/make_api.py --check`, as a user would run it, in a fresh process."""
    run = subprocess.run(
        [sys.executable, SCRIPT, "--check"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
        timeout=300,
    )
    assert run.returncode == 0, run.stdout + run.stderr[-4000:]


@pytest.mark.parametrize("qualified, obj, base", DOCUMENTED, ids=[d[0] for d in DOCUMENTED])
def test_every_argument_is_on_the_page_with_its_default(qualified, obj, base):
    page = _page()
    start = page.find(f"`{qualified}`: ")
    assert start >= 0, f"docs/api.md has no entry for {qualified}: run `python docs/make_api.py`"
    end = page.find("\n### ", start)
    section = page[start : end if end >= 0 else len(page)]
    for name, default in _public_arguments(obj, base).items():
        row = re.search(rf"^\| `{re.escape(name)}` \| (.*?) \| (.*?) \| (.*) \|$", section, re.M)
        assert row, f"{qualified}: argument `{name}` is not in docs/api.md"
        assert row.group(1) == make_api.format_value(default), f"{qualified}: `{name}` shows the default {row.group(1)}"
        assert row.group(3).strip(), f"{qualified}: `{name}` has no meaning in docs/api.md"
    assert "```python\n>>> " in section, f"{qualified} has no example in docs/api.md"


def test_an_undocumented_argument_stops_the_generator(monkeypatch):
    def fake_encoder(image_shape=(8, 8, 3), documented=1, sharpness="soft"):
        """A fake encoder.

        Args:
            image_shape: tuple.
            documented: int.
        """

    monkeypatch.setitem(IMAGE_ENCODERS, "fake", fake_encoder)
    with pytest.raises(make_api.UndocumentedError) as info:
        make_api.render()
    message = str(info.value)
    assert "fake_encoder: `sharpness` has no entry in the `Args:` section" in message
    assert "fake_encoder: no `>>>` example" in message
    assert "documented" not in message.replace("undocumented", "")


def test_a_new_argument_makes_the_page_stale(monkeypatch):
    """The page is compared with the code: an argument added to an encoder changes it."""
    original = IMAGE_ENCODERS["residual_cnn"]

    def residual_cnn_encoder(image_shape=(64, 64, 3), filters=(32, 64, 128), dense_units=(), dropout=0.0, name="image_encoder", stem_stride=1):
        return original(image_shape, filters, dense_units, dropout, name)

    name_line = '        name: str. Defaults to `"image_encoder"`.\n'
    assert name_line in original.__doc__
    residual_cnn_encoder.__doc__ = original.__doc__.replace(
        name_line, name_line + "        stem_stride: int, the stride of the stem. Defaults to `1`.\n"
    )
    residual_cnn_encoder.__module__ = original.__module__
    monkeypatch.setitem(IMAGE_ENCODERS, "residual_cnn", residual_cnn_encoder)
    page = make_api.render()
    assert "| `stem_stride` | `1` |  | int, the stride of the stem. |" in page
    assert page != _page()


def test_the_page_lists_the_accepted_values_the_code_checks():
    enumerations = make_api.enumerations(IMAGE_ENCODERS["cnn"])
    assert enumerations["padding"] == ["valid", "same"]
    assert enumerations["batch_norm"] == [True, False]
    assert make_api.enumerations(FUSIONS["sequence"])["cell"] == ["gru", "lstm"]
    page = _page()
    assert '| `padding` | `"valid"` | `"valid"`, `"same"` |' in page
    assert '| `cell` | `"lstm"` | `"lstm"`, `"gru"` |' in page

