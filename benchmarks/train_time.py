"""Training time of `mmkeras train` (defaults) for two versions of mmkeras, or two sets of flags, side by side.

A script, not a test. It runs the default main job (`vqa` on easy-VQA, its tuned settings, no
export) with the code in this checkout (A) and with the code in another checkout (B, e.g. an
earlier commit: `git worktree add /tmp/base <commit>`; by default this checkout again), each
with its own extra `mmkeras train` flags (`--a-flags`, `--b-flags`), alternating A B A B, each run in a fresh
process whose `PYTHONPATH` points at its checkout. It prints, per version, the median training
wall time (`metrics.json`'s `train_wall_time_s`, the `fit` call alone) and test accuracy, the
spread, the ratio A/B of the medians, the machine and the load average. Single runs vary
(before mmkeras switched tf.data autotuning off, an epoch could end waiting for the autotuning
timer, up to twice its time: `benchmarks/stall.py`), and the machine's load changes: compare
medians of runs interleaved in one sitting, never single timings.

Usage (from the repository root):

    git worktree add /tmp/base 082558e          # the code before the task refactor
    python benchmarks/train_time.py --baseline /tmp/base --repeats 3
    python benchmarks/train_time.py --a-flags=--deterministic --repeats 5   # what determinism costs
"""

import argparse
import json
import os
import platform
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile

from machine_info import cpu_name

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_once(tree, output, seed, precision, flags=()):
    env = {**os.environ, "PYTHONPATH": tree, "TF_CPP_MIN_LOG_LEVEL": "3"}
    command = [
        sys.executable, "-c",
        "import sys, mmkeras; assert mmkeras.__file__.startswith(sys.argv[1]), mmkeras.__file__; "
        "from mmkeras.cli import main; sys.exit(main(sys.argv[2:]))",
        tree, "train", "--output", output, "--no-export", "--quiet", "--seed", str(seed), "--precision", precision,
        *flags,
    ]
    done = subprocess.run(command, env=env, cwd=tree, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"run failed in {tree}:\n{done.stderr[-3000:]}")
    with open(os.path.join(output, "metrics.json"), encoding="utf-8") as f:
        metrics = json.load(f)
    shutil.rmtree(output, ignore_errors=True)
    return metrics


def summary(values):
    return f"median {statistics.median(values):.1f} s [{min(values):.1f}, {max(values):.1f}]"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline", default=ROOT, help="another mmkeras checkout (B); default: this one")
    parser.add_argument("--a-flags", default="", help="extra `mmkeras train` flags of A, e.g. --a-flags=--deterministic")
    parser.add_argument("--b-flags", default="", help="extra `mmkeras train` flags of B")
    parser.add_argument("--repeats", type=int, default=3, help="runs per version (default 3)")
    parser.add_argument("--seed", type=int, default=0, help="training seed of every run (default 0)")
    parser.add_argument("--precision", default="auto", help="--precision of every run (default auto)")
    args = parser.parse_args(argv)
    trees = {
        f"A (this checkout{' ' + args.a_flags if args.a_flags else ''})": (ROOT, shlex.split(args.a_flags)),
        f"B ({'baseline' if os.path.abspath(args.baseline) != ROOT else 'this checkout'}"
        f"{' ' + args.b_flags if args.b_flags else ''})": (os.path.abspath(args.baseline), shlex.split(args.b_flags)),
    }
    results = {name: [] for name in trees}
    width = max(map(len, trees))
    scratch = tempfile.mkdtemp(prefix="mmkeras-train-time-")
    loads = [os.getloadavg()]
    for repeat in range(args.repeats):
        for name, (tree, flags) in trees.items():
            metrics = run_once(tree, os.path.join(scratch, f"run{repeat}"), args.seed, args.precision, flags)
            results[name].append(metrics)
            print(
                f"{name:<{width}} run {repeat + 1}: train {metrics['train_wall_time_s']:.1f} s, test accuracy "
                f"{metrics['test_accuracy']:.5f}, precision {metrics['precision']}, load {os.getloadavg()[0]:.2f}",
                flush=True,
            )
    loads.append(os.getloadavg())
    shutil.rmtree(scratch, ignore_errors=True)
    print(f"\nmachine: {cpu_name()}, {os.cpu_count()} cores, {platform.platform()}")
    print(f"load average before / after: {loads[0][0]:.2f} / {loads[1][0]:.2f}")
    medians = {}
    for name, runs in results.items():
        times = [m["train_wall_time_s"] for m in runs]
        accuracies = [m["test_accuracy"] for m in runs]
        medians[name] = statistics.median(times)
        print(f"{name:<{width}} training {summary(times)}; test accuracy {min(accuracies):.5f}..{max(accuracies):.5f}")
    a, b = medians.values()
    print(f"ratio A / B of the median training times: {a / b:.3f}")


if __name__ == "__main__":
    main()
