"""Write `docs/api.md`, the API reference, from the code: signatures, checks and docstrings.

    python docs/make_api.py            # (re)write docs/api.md
    python docs/make_api.py --check    # exit 1, saying what differs, when docs/api.md is stale

Nothing in the page is written by hand. For every encoder, fusion, head and the task class:

- the arguments and their defaults come from `inspect.signature` (for a fusion layer, the
  constructors from its class up to `Fusion`, which is what `get_fusion` accepts);
- the accepted values of an enumerated argument come from the `check_one_of(name, value,
  choices)` and `check_bool(name, value)` calls in its code (the choices expression is evaluated
  in its module), so the page lists exactly what the code accepts;
- the meaning of each argument comes from the docstring's `Args:` section and the example from
  its `Example:` section (which tests/test_docstrings.py runs).

An argument without an `Args:` entry, or a documented object without an example, stops the
script with the list of what is missing: document it in the docstring, not here.
`tests/test_api_docs.py` runs `--check`, so the page cannot drift from the code.
"""

import argparse
import ast
import difflib
import inspect
import os
import re
import sys
import textwrap

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PAGE = os.path.join(ROOT, "docs", "api.md")

# Generic checks whose accepted values are known without evaluating anything.
BOOL_CHECKS = ("check_bool",)
# Lists of accepted values longer than this are written once, at the end of the page.
LONG_LIST = 12
# Docstring section headers (Google style).
SECTIONS = "Args|Arguments|Attributes|Example|Examples|Note|Notes|Raises|References|Returns|Yields"


class UndocumentedError(ValueError):
    """Raised when an argument lacks an `Args:` entry or an object lacks an example."""


# Reading the code.


def public_parameters(obj, up_to=None):
    """`{name: inspect.Parameter}` of what a user may pass: no `self`, `*args` or `**kwargs`.

    For a class, its constructor's; with `up_to` (a base class), the constructors of every
    class from `obj` up to `up_to` (the first one that names a parameter gives its default).
    """
    if inspect.isclass(obj):
        mro = obj.__mro__
        classes = mro[: mro.index(up_to) + 1] if up_to is not None else mro[:1]
        funcs = [klass.__init__ for klass in classes if "__init__" in vars(klass)]
    else:
        funcs = [obj]
    params = {}
    for func in funcs:
        for name, param in inspect.signature(func).parameters.items():
            if name == "self" or param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
                continue
            params.setdefault(name, param)
    return params


def _code_of(obj):
    """The functions whose checks decide what `obj` accepts (a class: every mmkeras `__init__`)."""
    if not inspect.isclass(obj):
        return [obj]
    return [
        vars(klass)["__init__"]
        for klass in obj.__mro__
        if "__init__" in vars(klass) and klass.__module__.startswith("mmkeras")
    ]


def enumerations(obj):
    """`{argument: [accepted values]}` from the `check_one_of` / `check_bool` calls in `obj`'s code.

    Only calls whose first argument is a string literal naming one of `obj`'s parameters count;
    the choices expression is evaluated in the function's module.
    """
    names = set(public_parameters(obj, up_to=_base_of(obj)))
    found = {}
    for func in _code_of(obj):
        tree = ast.parse(textwrap.dedent(inspect.getsource(func)))
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.args):
                continue
            first = node.args[0]
            if not (isinstance(first, ast.Constant) and isinstance(first.value, str)) or first.value not in names:
                continue
            if node.func.id in BOOL_CHECKS:
                found.setdefault(first.value, [True, False])
            elif node.func.id == "check_one_of" and len(node.args) == 3:
                expression = ast.Expression(node.args[2])
                choices = eval(compile(expression, func.__code__.co_filename, "eval"), func.__globals__)
                found.setdefault(first.value, list(choices))
    return found


def _base_of(obj):
    from mmkeras.fusion import Fusion

    return Fusion if inspect.isclass(obj) and issubclass(obj, Fusion) else None


def summary(obj):
    """The docstring's first paragraph, on one line."""
    doc = inspect.getdoc(obj) or ""
    return " ".join(doc.split("\n\n")[0].split())


def _section(doc, header):
    """The indented lines under `header:` (e.g. `Args`), dedented, or None."""
    lines = doc.splitlines()
    for i, line in enumerate(lines):
        if line.strip() == f"{header}:" and not line.startswith(" "):
            body = []
            for following in lines[i + 1 :]:
                if following.strip() and not following.startswith(" "):
                    break
                body.append(following)
            return textwrap.dedent("\n".join(body)).strip("\n")
    return None


def args_section(obj):
    """`{argument: meaning}` from the docstring's `Args:` (entries `name: text` or `a, b: text`)."""
    text = _section(inspect.getdoc(obj) or "", "Args")
    entries = {}
    current = None
    for line in (text or "").splitlines():
        match = re.match(r"^([\w*][\w, *]*):(\s|$)(.*)", line)
        if match and not line.startswith(" "):
            current = [n.strip() for n in match.group(1).split(",")]
            for name in current:
                entries[name] = match.group(3).strip()
        elif current and line.strip():
            for name in current:
                entries[name] = (entries[name] + " " + line.strip()).strip()
    return entries


def example(obj):
    """The docstring's `Example:` section (up to the next section or the end), or None."""
    doc = inspect.getdoc(obj) or ""
    match = re.search(rf"^Examples?:\n(.*?)(?=^(?:{SECTIONS}):\n|\Z)", doc, re.S | re.M)
    if not match or ">>>" not in match.group(1):
        return None
    return textwrap.dedent(match.group(1)).strip()


# Writing markdown.


def format_value(value):
    """A default or accepted value as the page writes it (in backticks)."""
    if value is inspect.Parameter.empty:
        return "required"
    if isinstance(value, str):
        return f'`"{value}"`'
    return f"`{value!r}`"


def _cell(text):
    return " ".join(str(text).split()).replace("|", "\\|")


def _meaning(text):
    """The docstring's meaning without its closing `Defaults to `x`.` (the table has a column)."""
    return re.sub(r"\s*Defaults to `[^`]*`\.\s*$", "", text)


def _accepted(name, choices, long_lists):
    """The accepted-values cell: the values, or a link to a long list kept in `long_lists`."""
    values = [format_value(v) for v in choices]
    if len(values) <= LONG_LIST:
        return values
    title = f"{name} values"
    while long_lists.get(title, values) != values:
        title += " (2)"
    long_lists[title] = values
    return [f"one of [{len(values)} names](#{title.replace(' ', '-').replace('(', '').replace(')', '')})"]


def argument_table(obj, extra_values=None, up_to=None, long_lists=None):
    """The markdown table of `obj`'s arguments, and the list of what its docstring lacks."""
    params = public_parameters(obj, up_to=up_to)
    meanings = args_section(obj)
    long_lists = {} if long_lists is None else long_lists
    values = {name: _accepted(name, choices, long_lists) for name, choices in enumerations(obj).items()}
    values.update(extra_values or {})
    missing = [f"`{name}` has no entry in the `Args:` section" for name in params if not meanings.get(name)]
    rows = ["| argument | default | accepted values | meaning |", "|---|---|---|---|"]
    for name, param in params.items():
        accepted = ", ".join(values.get(name, []))
        rows.append(
            f"| `{name}` | {format_value(param.default)} | {_cell(accepted)} | {_cell(_meaning(meanings.get(name, '')))} |"
        )
    return "\n".join(rows), missing


def qualified_name(obj, public_module):
    return f"{public_module}.{obj.__qualname__}"


def entry(title, obj, public_module, spec=None, extra_values=None, up_to=None, problems=None, long_lists=None):
    """One documented object: heading, qualified name and summary, spec form, table, example."""
    table, missing = argument_table(obj, extra_values, up_to, long_lists)
    code = example(obj)
    name = qualified_name(obj, public_module)
    if code is None:
        missing.append("no `>>>` example in an `Example:` section")
    if problems is not None:
        problems.extend(f"{name}: {m}" for m in missing)
    lines = [f"### {title}", "", f"`{name}`: {summary(obj)}", ""]
    if spec:
        lines += [spec, ""]
    lines += [table, ""]
    if code:
        lines += ["```python", code, "```", ""]
    return "\n".join(lines)


def _names(table):
    return ", ".join(f"`{name}`" for name in table)


def _links(names):
    """Markdown links to the entries of `names` (a heading's anchor is its text)."""
    return [f"[`{name}`](#{name})" for name in names]


def render():
    """The whole page, as a string; raises `UndocumentedError` listing every gap in the docstrings."""
    import mmkeras
    from mmkeras.encoders import IMAGE_ENCODERS, TEXT_ENCODERS
    from mmkeras.fusion import FUSIONS, Fusion
    from mmkeras.heads import HEADS
    from mmkeras.parts import build_image_encoder, build_text_encoder
    from mmkeras.tasks import Captioner, ConditionalGAN, DualEncoder, FusionClassifier

    problems, long_lists = [], {}
    set_by_task = {
        "image_encoder": [p for p in inspect.signature(build_image_encoder).parameters if p != "spec"],
        "text_encoder": [p for p in inspect.signature(build_text_encoder).parameters if p != "spec"],
    }
    parts = {"image_encoder": IMAGE_ENCODERS, "text_encoder": TEXT_ENCODERS, "fusion": FUSIONS, "head": HEADS}
    out = [
        "# API reference",
        "",
        "<!-- Written by docs/make_api.py from the signatures and docstrings: do not edit by hand. Run",
        "     `python docs/make_api.py` after changing an argument or a docstring (tests/test_api_docs.py",
        "     fails while this page is stale). -->",
        "",
        "Every encoder, fusion and head, with its arguments, their defaults, the values an enumerated argument",
        "accepts and a runnable example (each example is a docstring that `tests/test_docstrings.py` runs). An",
        "unknown value of an enumerated argument raises a `ValueError` that names the argument and lists the",
        "accepted values, e.g. ``ValueError: `padding` must be one of ['same', 'valid']. Received: padding='full'``.",
        "",
        "- [Giving parts and overrides](#giving-parts-and-overrides)",
        "- [The task: FusionClassifier](#the-task-fusionclassifier)",
        f"- [Image encoders](#image-encoders): {_names(IMAGE_ENCODERS)}",
        f"- [Text encoders](#text-encoders): {_names(TEXT_ENCODERS)}",
        f"- [Fusions](#fusions): {_names(FUSIONS)}",
        f"- [Heads](#heads): {_names(HEADS)}",
        "- [Registered models](#registered-models)",
        "- [Long lists of accepted values](#long-lists-of-accepted-values)",
        "",
        "## Giving parts and overrides",
        "",
        "`mmkeras.build_model`, `mmkeras.tasks.FusionClassifier` and every registered recipe take four parts:",
        "",
        "| argument | names | where |",
        "|---|---|---|",
    ]
    where = {
        "image_encoder": "[Image encoders](#image-encoders)",
        "text_encoder": "[Text encoders](#text-encoders)",
        "fusion": "[Fusions](#fusions)",
        "head": "[Heads](#heads)",
    }
    for part, table in parts.items():
        out.append(f"| `{part}` | {_names(table)} | {where[part]} |")
    out += [
        "",
        "Each part is given in one of three forms:",
        "",
        '- a name: `image_encoder="cnn"` (the part with its default arguments);',
        '- a spec dict, the name under `"kind"` and any of its arguments beside it:',
        '  `image_encoder={"kind": "cnn", "filters": (32, 64), "padding": "same", "batch_norm": True}`;',
        "- a ready object: a `keras.Model` with one input as an encoder, a fusion layer, a head object.",
        "",
        "The task passes its own input sizes to the encoders, so a spec leaves them out: "
        + "; ".join(
            f"`{part}` gets {', '.join(f'`{a}`' for a in args)}" for part, args in set_by_task.items()
        )
        + " (a spec that sets them to other values than the model's is refused). An unknown name or argument "
        "raises a `ValueError` that lists the accepted ones.",
        "",
        "**Overrides.** `mmkeras.get_model(name, **overrides)` builds a registered recipe with `overrides` on top "
        "of its arguments, and `mmkeras.train(model, dataset, model_overrides={...})` passes `model_overrides` the "
        "same way: both are arguments of the recipe's task (`FusionClassifier` below). A dict given for a part "
        'without a `"kind"` changes only the arguments it names, so `model_overrides={"image_encoder": {"filters": '
        "(8, 16)}}` keeps the recipe's encoder and its other arguments; any other value replaces the recipe's. "
        "`mmkeras.train` sets the head, the input sizes, the preprocessor and the compilation from the data, and "
        "refuses them in `model_overrides` (use its `image_shape=` argument for the image size, `task=` for your "
        "own data's head).",
        "",
        "## The task: FusionClassifier",
        "",
        entry(
            "FusionClassifier",
            FusionClassifier,
            "mmkeras.tasks",
            spec="`mmkeras.build_model(**arguments)` builds one and compiles it (`compile=False` leaves it "
            "uncompiled); every registered recipe is one of these with its own arguments.",
            extra_values={part: _links(table) + ([format_value(None)] if part != "head" else []) for part, table in parts.items()},
            problems=problems,
            long_lists=long_lists,
        ),
        "## The task: DualEncoder",
        "",
        entry(
            "DualEncoder",
            DualEncoder,
            "mmkeras.tasks",
            spec="`mmkeras.get_model('clip_small')` (contrastive) and `get_model('siglip_small')` (sigmoid) are "
            "recipes of it; see [retrieval.md](retrieval.md).",
            problems=problems,
            long_lists=long_lists,
        ),
        "## The task: Captioner",
        "",
        entry(
            "Captioner",
            Captioner,
            "mmkeras.tasks",
            spec="`mmkeras.get_model('caption_transformer')` and `get_model('caption_lstm')` are recipes of it; "
            "see [captioning.md](captioning.md).",
            problems=problems,
            long_lists=long_lists,
        ),
        "## The task: ConditionalGAN",
        "",
        entry(
            "ConditionalGAN",
            ConditionalGAN,
            "mmkeras.tasks",
            spec="`mmkeras.get_model('text_gan')` is a recipe of it; see [gan.md](gan.md).",
            problems=problems,
            long_lists=long_lists,
        ),
        "## Image encoders",
        "",
        "Functions returning a `keras.Model` from `(batch, height, width, channels)` floats in [0, 1] to "
        "`(batch, features)` (the `patch` stem of a single-stream model: `(batch, patches, features)`, for the "
        "`shared_transformer` fusion); layer names start with `image_`.",
        "",
    ]
    for kind, builder in IMAGE_ENCODERS.items():
        spec = f'Spec: `image_encoder={{"kind": "{kind}", ...}}`; the task sets {_names(set_by_task["image_encoder"])}.'
        out.append(entry(kind, builder, "mmkeras.encoders", spec=spec, problems=problems, long_lists=long_lists))
    out += [
        "## Text encoders",
        "",
        "Functions returning a `keras.Model` from `(batch, sequence_length)` int token ids (0 is padding) to "
        "`(batch, features)` (the `embedding` stem: `(batch, sequence_length, features)`, padding masked, for "
        "the `shared_transformer` fusion); layer names start with `text_`.",
        "",
    ]
    for kind, builder in TEXT_ENCODERS.items():
        spec = f'Spec: `text_encoder={{"kind": "{kind}", ...}}`; the task sets {_names(set_by_task["text_encoder"])}.'
        out.append(entry(kind, builder, "mmkeras.encoders", spec=spec, problems=problems, long_lists=long_lists))
    out += [
        "## Fusions",
        "",
        summary(sys.modules["mmkeras.fusion"]),
        "",
        "Every fusion layer also takes the Keras layer keywords `name` (defaults to `\"fusion\"` through "
        "`get_fusion`), `dtype` and `trainable`.",
        "",
    ]
    for kind, cls in FUSIONS.items():
        spec = (
            f'Spec: `fusion={{"kind": "{kind}", ...}}`, or the layer itself: '
            f'`mmkeras.fusion.get_fusion("{kind}", ...)`, `mmkeras.fusion.{cls.__name__}(...)`.'
        )
        out.append(entry(kind, cls, "mmkeras.fusion", spec=spec, up_to=Fusion, problems=problems, long_lists=long_lists))
    out += [
        "## Heads",
        "",
        summary(sys.modules["mmkeras.heads"]),
        "",
        "A model's `num_classes` argument, when given, fills the head's number of outputs (`num_classes` of "
        "`multiclass`, `num_labels` of `multilabel`, `units` of `regression`; it must be 1 for `binary`).",
        "",
    ]
    for kind, cls in HEADS.items():
        spec = f'Spec: `head={{"kind": "{kind}", ...}}`, or `mmkeras.heads.get_head("{kind}", ...)`.'
        out.append(entry(kind, cls, "mmkeras.heads", spec=spec, problems=problems, long_lists=long_lists))
    out += [
        "## Registered models",
        "",
        "`mmkeras.list_models()`, built with `mmkeras.get_model(name, **overrides)`; `docs/models.md` describes "
        "them and their training settings.",
        "",
        "| model | family | task | description |",
        "|---|---|---|---|",
    ]
    for name in mmkeras.list_models():
        entry_ = mmkeras.get_entry(name)
        task = entry_.task.__name__ if entry_.task is not None else ""
        out.append(f"| `{name}` | {entry_.family} | {task} | {_cell(entry_.description)} |")
    out += ["", "## Long lists of accepted values", ""]
    for title, values in long_lists.items():
        out += [f"### {title}", "", ", ".join(values), ""]
    if problems:
        raise UndocumentedError(
            "Document these in the docstrings (docs/api.md is written from them):\n  " + "\n  ".join(problems)
        )
    return "\n".join(out).rstrip("\n") + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description="Write docs/api.md from the signatures and docstrings.")
    parser.add_argument("--check", action="store_true", help="exit 1 if docs/api.md differs from what would be written")
    args = parser.parse_args(argv)
    try:
        page = render()
    except UndocumentedError as error:
        print(error, file=sys.stderr)
        return 1
    if args.check:
        current = open(PAGE, encoding="utf-8").read() if os.path.exists(PAGE) else ""
        if current == page:
            print("docs/api.md is up to date")
            return 0
        diff = list(
            difflib.unified_diff(
                current.splitlines(), page.splitlines(), "docs/api.md", "docs/api.md (from the code)", lineterm="", n=1
            )
        )
        print("docs/api.md is stale: run `python docs/make_api.py`. What differs:", file=sys.stderr)
        print("\n".join(diff[:80] + ([f"... ({len(diff) - 80} more lines)"] if len(diff) > 80 else [])), file=sys.stderr)
        return 1
    with open(PAGE, "w", encoding="utf-8") as f:
        f.write(page)
    print(f"wrote {os.path.relpath(PAGE, ROOT)}")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    sys.path.insert(0, ROOT)  # this checkout's mmkeras
    sys.exit(main())
