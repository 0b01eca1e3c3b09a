"""The `mmkeras` command: `mmkeras list | train | evaluate | predict | export`.

Each subcommand lives in its own module, which provides `add_parser(subparsers)`; the parser it
adds sets `func`, the function that runs the subcommand and returns an exit code. A subcommand
module imports TensorFlow and Keras only inside `func`, so `mmkeras --help`, `mmkeras COMMAND
--help`, `mmkeras --version` and `mmkeras list` answer without importing them.

TensorFlow's start-up lines (oneDNN, CUDA drivers, CPU instructions) are hidden unless
`--verbose` is given: before a command runs, `main` imports TensorFlow through
`import_tensorflow_quietly`, except for a command whose parser sets `imports_tensorflow=False`
(`list`).
"""

import argparse
import contextlib
import importlib
import os
import re
import sys
import tempfile

SUBCOMMAND_MODULES = (
    "mmkeras.commands.list_models",
    "mmkeras.commands.train",
    "mmkeras.commands.evaluate",
    "mmkeras.commands.predict",
    "mmkeras.commands.export",
)

VERBOSE_HELP = "show TensorFlow's start-up log lines (hidden by default)"


def build_parser():
    from mmkeras import __version__

    parser = argparse.ArgumentParser(
        prog="mmkeras",
        description="Multimodal (image + text) Keras models: list the zoo, train on built-in "
        "datasets, evaluate, predict and export.",
    )
    parser.add_argument("--version", action="version", version=f"mmkeras {__version__}")
    parser.add_argument("--verbose", action="store_true", help=VERBOSE_HELP)
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in SUBCOMMAND_MODULES:
        importlib.import_module(module).add_parser(subparsers)
    for subparser in subparsers.choices.values():  # `mmkeras predict --verbose ...` works too
        if "--verbose" not in subparser._option_string_actions:
            subparser.add_argument("--verbose", action="store_true", default=argparse.SUPPRESS, help=VERBOSE_HELP)
    return parser


# TensorFlow's start-up lines, as TensorFlow 2.21 writes them on file descriptor 2 when it is
# imported and first looks for devices (measured on a CPU machine; the CUDA build):
#   WARNING: All log messages before absl::InitializeLog() is called are written to STDERR
#   I0000 00:00:1795722431.729747  308 port.cc:153] oneDNN custom operations are on. ...
#   I0000 00:00:1795722431.730100  308 cudart_stub.cc:31] Could not find cuda drivers on your machine, ...
#   I0000 00:00:1795722431.774996  308 cpu_feature_guard.cc:227] This TensorFlow binary is optimized ...
#   To enable the following instructions: AVX2 AVX512F ..., rebuild TensorFlow with the appropriate compiler flags.
#   E0000 00:00:1795722440.138617  308 cuda_platform.cc:52] failed call to cuInit: ...
# TF_CPP_MIN_LOG_LEVEL=1 hides only cpu_feature_guard's two lines: absl writes the oneDNN and CUDA
# driver lines before TensorFlow reads it (they stay at levels 1 to 3), and only level 3 hides the
# cuInit error, with every other error. So TensorFlow is imported, and its devices listed, with
# descriptor 2 sent to a file; what was written there is then written back, less these lines.
STARTUP_LINE = re.compile(
    r"WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"
    r"|[IW]\d{4} [\d:.]+ +\d+ \S+:\d+\] .*"  # every info or warning line of TensorFlow's C++ logs
    r"|To enable the following instructions: .*rebuild TensorFlow with the appropriate compiler flags\."
    r"|E\d{4} [\d:.]+ +\d+ cuda_platform\.cc:\d+\] failed call to cuInit: .*"
)


@contextlib.contextmanager
def _stderr_without_startup_lines():
    """Send file descriptor 2 to a file in the block; then write back what is not a start-up line.

    Everything else written there (a Python warning, a C++ error, a traceback) comes back, in
    order, when the block ends, even when it raises.
    """
    if sys.stderr is not None:
        sys.stderr.flush()
    saved = os.dup(2)
    try:
        with tempfile.TemporaryFile() as captured:
            os.dup2(captured.fileno(), 2)
            try:
                yield
            finally:
                if sys.stderr is not None:
                    sys.stderr.flush()
                os.dup2(saved, 2)
                captured.seek(0)
                kept = [line for line in captured.read().splitlines(keepends=True)
                        if not STARTUP_LINE.fullmatch(line.rstrip(b"\r\n").decode(errors="replace"))]
                with open(2, "wb", closefd=False) as stderr:
                    stderr.write(b"".join(kept))
    finally:
        os.close(saved)


def import_tensorflow_quietly():
    """Import TensorFlow and list its devices without printing its start-up lines.

    Also sets `TF_CPP_MIN_LOG_LEVEL=1`, unless it is set already: TensorFlow's later C++ info
    lines (a multi-worker run's coordination service and gRPC server, for one) stay off; its
    warnings and errors do not. A no-op when TensorFlow is imported already.
    """
    if "tensorflow" in sys.modules:
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")
    with _stderr_without_startup_lines():
        import tensorflow as tf

        tf.config.list_physical_devices()  # CUDA's start-up lines come here, not at the first op


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
    if not args.verbose and getattr(args, "imports_tensorflow", True):
        import_tensorflow_quietly()
    try:
        return args.func(args) or 0
    except USER_ERRORS as error:
        print(f"mmkeras {args.command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
