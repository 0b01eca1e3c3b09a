"""The `mmkeras` command: `mmkeras list | train | evaluate | predict | export`.

Each subcommand lives in its own module, which provides `add_parser(subparsers)`; the parser it
adds sets `func`, the function that runs the subcommand and returns an exit code.
"""

import argparse
import importlib
import sys

SUBCOMMAND_MODULES = (
    "mmkeras.commands.list_models",
    "mmkeras.commands.train",
    "mmkeras.commands.evaluate",
    "mmkeras.commands.predict",
    "mmkeras.commands.export",
)


def build_parser():
    parser = argparse.ArgumentParser(
        prog="mmkeras",
        description="Multimodal (image + text) Keras models: list the zoo, train on built-in "
        "datasets, evaluate, predict and export.",
    )
    from mmkeras import __version__

    parser.add_argument("--version", action="version", version=f"mmkeras {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in SUBCOMMAND_MODULES:
        importlib.import_module(module).add_parser(subparsers)
    return parser


# Errors a command reports in one line (exit code 2), without a traceback: bad arguments, bad or
# missing files, an output that would overwrite something. Any other error is a bug: it keeps its
# traceback (exit code 1).
USER_ERRORS = (ValueError, FileNotFoundError, FileExistsError)


def main(argv=None):
    """Run the `mmkeras` command; return its exit code (0 ok, 2 bad input or usage)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return args.func(args) or 0
    except USER_ERRORS as error:
        print(f"mmkeras {args.command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
