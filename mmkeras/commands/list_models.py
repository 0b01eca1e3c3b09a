"""`mmkeras list`: the registered models, with their family and description.

Reads only the registry (names, families, descriptions): it answers without importing
TensorFlow or Keras.
"""


def add_parser(subparsers):
    parser = subparsers.add_parser(
        "list",
        help="list the registered models",
        description="List the registered zoo models (optionally those matching a glob pattern).",
    )
    parser.add_argument("pattern", nargs="?", default=None, help="glob pattern, e.g. 'fusion_*'")
    parser.add_argument("--family", default=None, help="only models of this family (documents, fusion, ...)")
    parser.set_defaults(func=run, imports_tensorflow=False)


def run(args):
    from mmkeras.registry import get_entry, list_models

    names = list_models(args.pattern, family=args.family)
    width = max((len(n) for n in names), default=0)
    for name in names:
        entry = get_entry(name)
        print(f"{name:<{width}}  [{entry.family}]  {entry.description.splitlines()[0]}")
    return 0
