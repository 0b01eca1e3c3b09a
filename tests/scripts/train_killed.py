"""Run `mmkeras train ...` and SIGKILL it at a chosen point: a helper of tests/test_faults.py.

A test-only script (the library has no kill hooks): before it runs the command it wraps one
function so that its N-th call (counting only calls with an argument containing `--match`)
kills this process with SIGKILL, `before` the call, `after` it, or `truncate`: after it, with
the `.h5` / `.keras` file it wrote cut to half its size first (a kill in the middle of a write).
With `--no-exchange` the atomic swap of folders is unavailable (as on a file system without
`renameat2(RENAME_EXCHANGE)`), so publishing falls back on two renames.

Examples:

    python tests/scripts/train_killed.py --kill-at mmkeras.distribute._Backup._save_model --call 2 \\
        -- train --tiny --limit 120 --epochs 3 --max-steps 2 --output run --backup-dir backup
    python tests/scripts/train_killed.py --kill-at keras.Model.save_weights --when truncate \\
        -- train --tiny --limit 120 --epochs 3 --max-steps 2 --output run --backup-dir backup
    python tests/scripts/train_killed.py -- train --tiny ...   # no kill: the command as is
"""

import argparse
import functools
import importlib
import os
import signal
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")


def _resolve(target):
    """(owner, attribute name) for a dotted path such as `mmkeras.atomic._exchange` or `os.replace`."""
    parts = target.split(".")
    for cut in range(len(parts) - 1, 0, -1):
        try:
            owner = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for name in parts[cut:-1]:
            owner = getattr(owner, name)
        return owner, parts[-1]
    raise SystemExit(f"cannot find {target!r}")


def _half(args, kwargs):
    for value in [*args, *kwargs.values()]:
        if isinstance(value, (str, os.PathLike)) and os.fspath(value).endswith((".h5", ".keras")):
            path = os.fspath(value)
            if os.path.isfile(path):
                with open(path, "r+b") as f:
                    f.truncate(os.path.getsize(path) // 2)


def install(target, call, when, match):
    owner, name = _resolve(target)
    original = getattr(owner, name)
    calls = {"n": 0}

    def die():
        print(f"KILLED at {target} call {call} ({when})", flush=True)
        os.kill(os.getpid(), signal.SIGKILL)

    @functools.wraps(original)
    def wrapper(*args, **kwargs):
        if match is None or any(match in str(value) for value in [*args, *kwargs.values()]):
            calls["n"] += 1
        hit = calls["n"] == call and (match is None or any(match in str(v) for v in [*args, *kwargs.values()]))
        if hit and when == "before":
            die()
        result = original(*args, **kwargs)
        if hit:
            if when == "truncate":
                _half(args, kwargs)
            die()
        return result

    if isinstance(owner, type) and isinstance(owner.__dict__.get(name), staticmethod):
        wrapper = staticmethod(wrapper)
    setattr(owner, name, wrapper)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--kill-at", default=None, help="dotted path of the function to kill in")
    parser.add_argument("--call", type=int, default=1, help="which call kills (1-based)")
    parser.add_argument("--when", choices=("before", "after", "truncate"), default="before")
    parser.add_argument("--match", default=None, help="count only calls with an argument containing this")
    parser.add_argument("--no-exchange", action="store_true", help="publish folders with two renames")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- then the mmkeras command line")
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    import mmkeras.atomic
    from mmkeras import cli

    if args.no_exchange:
        mmkeras.atomic._exchange = lambda a, b: False
    if args.kill_at:
        install(args.kill_at, args.call, args.when, args.match)
    return cli.main(command)


if __name__ == "__main__":
    sys.exit(main())
