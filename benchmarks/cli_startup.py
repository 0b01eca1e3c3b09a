"""Start-up time of `mmkeras --help` and `mmkeras list`, for this checkout and optionally another.

A script, not a test. Each repetition runs each command once in a fresh process, the commands
and versions interleaved (help A, list A, help B, list B, ...), and the script prints the median
wall time of each command per version, with the spread, the machine and the load average. A
version is a checkout, run as `python -c "from mmkeras.cli import main; ..."` with its folder on
`PYTHONPATH` (this checkout also through its installed `mmkeras` console script, when there is
one). Like every run of the command, these runs leave `TF_CPP_MIN_LOG_LEVEL` as the caller set it.

Usage (from the repository root):

    mkdir -p /tmp/base && git archive <commit> | tar -x -C /tmp/base   # the code before
    python benchmarks/cli_startup.py --baseline /tmp/base --repeats 5
"""

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time

from machine_info import cpu_name

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COMMANDS = {"--help": ["--help"], "list": ["list"]}


def version_command(tree):
    """The command line that runs the `mmkeras` command from the checkout `tree`."""
    return [
        sys.executable, "-c",
        "import sys, mmkeras; assert mmkeras.__file__.startswith(sys.argv[1]), mmkeras.__file__; "
        "from mmkeras.cli import main; sys.exit(main(sys.argv[2:]))",
        tree,
    ]


def time_once(command, tree):
    env = {**os.environ, "PYTHONPATH": tree}
    started = time.perf_counter()
    done = subprocess.run(command, env=env, cwd=tree, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed in {tree}:\n{done.stderr[-3000:]}")
    return seconds


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", default=None, help="another checkout to time the same way (e.g. the code before)")
    parser.add_argument("--repeats", type=int, default=5, help="repetitions of each command and version; default 5")
    args = parser.parse_args(argv)

    versions = {"this checkout": (version_command(ROOT), ROOT)}
    script = shutil.which("mmkeras", path=os.path.dirname(sys.executable))
    if script:
        versions["this checkout, console script"] = ([script], ROOT)
    if args.baseline:
        baseline = os.path.abspath(args.baseline)
        versions[f"baseline {baseline}"] = (version_command(baseline), baseline)

    times = {(version, name): [] for version in versions for name in COMMANDS}
    for _ in range(args.repeats):
        for version, (command, tree) in versions.items():
            for name, command_args in COMMANDS.items():
                times[version, name].append(time_once(command + command_args, tree))

    print(f"machine: {cpu_name()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
          f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"{args.repeats} interleaved runs of each command per version; wall time of the whole process")
    for (version, name), values in times.items():
        print(f"  {version:<40} mmkeras {name:<7} median {statistics.median(values):.3f} s "
              f"[{min(values):.3f}, {max(values):.3f}]")


if __name__ == "__main__":
    main()
