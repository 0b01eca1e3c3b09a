"""Distribution overhead benchmark: training samples/s of 1 vs 2 replicas and 1 vs 2 workers.

A script, not a test. Each configuration trains the same tiny zoo model on the same global batches
(tests/scripts/train_resumable.py, deterministic ops on) in a fresh process, and reports the
throughput after the first epoch (which includes tracing), in global examples per second:

- 1 replica, `model.fit` (the default strategy)
- 1 replica, `mmkeras.distribute.fit_custom_loop` (the default strategy): the loop's own cost
- 2 replicas, `MirroredStrategy` over 2 logical CPU devices, `model.fit`
- 1 worker, `MultiWorkerMirroredStrategy` (a one-worker `TF_CONFIG`), the custom loop
- 2 workers, `MultiWorkerMirroredStrategy`, 2 processes on 127.0.0.1, the custom loop

Configurations take turns, `--repeats` times, and the table gives the median (with the range), so
a change in the machine's load hits them alike. On a 2-core machine, 2 replicas or 2 workers share
the cores the single replica had to itself: the table measures the overhead of tf.distribute, not
a speed-up.

Usage (from the repository root):

    python benchmarks/distribute.py                       # 3 repeats, prints a markdown table
    python benchmarks/distribute.py --repeats 5 --doc docs/distributed.md   # update the docs' table
"""

import argparse
import contextlib
import json
import os
import platform
import statistics
import subprocess
import sys
import time

from mmkeras.distribute import reserve_ports

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "tests", "scripts", "train_resumable.py")

START, END = "<!-- distribute-table:start -->", "<!-- distribute-table:end -->"
CONFIGS = [
    ("1 replica, `fit`", dict(args=[]), 1),
    ("1 replica, custom loop", dict(args=["--loop", "custom"]), 1),
    ("2 replicas (MirroredStrategy, 2 logical CPUs), `fit`", dict(args=["--strategy", "mirrored", "--logical-devices", "2"]), 2),
    ("1 worker (MultiWorkerMirroredStrategy), custom loop", dict(workers=1), 1),
    ("2 workers (MultiWorkerMirroredStrategy, 127.0.0.1), custom loop", dict(workers=2), 2),
]


def _env(tf_config=None):
    env = {k: v for k, v in os.environ.items() if k != "TF_CONFIG"}
    env.update(TF_CPP_MIN_LOG_LEVEL="3", KERAS_BACKEND="tensorflow")
    if tf_config:
        env["TF_CONFIG"] = json.dumps(tf_config)
    return env


def run_config(config, common, timeout, workdir):
    """One run of one configuration: the warm samples/s reported by the (first) process."""
    workers = config.get("workers")
    with reserve_ports(workers) if workers else contextlib.nullcontext([]) as ports:  # held while they run
        commands = []
        if "workers" in config:
            cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
            for i in range(config["workers"]):
                tf_config = {"cluster": cluster, "task": {"type": "worker", "index": i}}
                commands.append((["--strategy", "multi_worker"], tf_config))
        else:
            commands.append((config["args"], None))
        procs = []
        try:
            for i, (args, tf_config) in enumerate(commands):
                cmd = [sys.executable, SCRIPT, *common, *args, "--out", os.path.join(workdir, f"w{i}.npz")]
                procs.append(
                    subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=_env(tf_config))
                )
            outputs = [p.communicate(timeout=timeout)[0] for p in procs]
        finally:
            for p in procs:  # only the processes started here
                if p.poll() is None:
                    p.kill()
                    p.wait()
    for p, out in zip(procs, outputs):
        if p.returncode != 0:
            raise RuntimeError(f"a benchmark process failed (exit code {p.returncode}):\n{out[-3000:]}")
    done = [line for line in outputs[0].splitlines() if line.startswith("DONE")]
    return float(done[-1].split("warm_samples_per_s=")[1])


def machine():
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{cpu}, {os.cpu_count()} cores"


def load():
    try:
        return " ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        return "n/a"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="s0", help="a zoo recipe; its tiny variant is trained")
    parser.add_argument("--batch-size", type=int, default=64, help="the global batch size")
    parser.add_argument("--steps", type=int, default=16, help="steps per epoch")
    parser.add_argument("--epochs", type=int, default=3, help="epochs (the first is not timed)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--timeout", type=int, default=600, help="seconds per run")
    parser.add_argument("--json", default=None, help="also write the results here")
    parser.add_argument("--doc", default=None, help="write the table into this markdown file, between "
                        f"{START} and {END} (e.g. docs/distributed.md)")
    args = parser.parse_args(argv)
    common = ["--model", args.model, "--batch-size", str(args.batch_size), "--steps", str(args.steps),
              "--epochs", str(args.epochs), "--quiet-steps"]

    import tempfile

    import tensorflow as tf  # only for its version

    load_before = load()
    started = time.time()
    rates = {name: [] for name, _, _ in CONFIGS}
    with tempfile.TemporaryDirectory() as workdir:
        for repeat in range(args.repeats):
            for name, config, _ in CONFIGS:
                rate = run_config(config, common, args.timeout, workdir)
                rates[name].append(rate)
                print(f"[{repeat + 1}/{args.repeats}] {name}: {rate:.1f} samples/s", file=sys.stderr, flush=True)
    load_after = load()

    command = " ".join(["python benchmarks/distribute.py", *(argv if argv is not None else sys.argv[1:])])
    base = statistics.median(rates[CONFIGS[0][0]])
    lines = [
        f"Machine: {machine()}; TensorFlow {tf.__version__}. Load average (1, 5, 15 min) before: {load_before}, "
        f"after: {load_after}. Tiny `{args.model}`, global batch {args.batch_size}, {args.steps} steps per "
        f"epoch, {args.epochs} epochs (the first untimed), median of {args.repeats} runs "
        f"({time.time() - started:.0f} s in all). Command: `{command}`.",
        "",
        "| configuration | replicas | samples/s (median) | range | vs 1 replica, `fit` |",
        "|---|---|---|---|---|",
    ]
    for name, _, replicas in CONFIGS:
        values = rates[name]
        median = statistics.median(values)
        lines.append(
            f"| {name} | {replicas} | {median:.1f} | {min(values):.1f} to {max(values):.1f} | {median / base:.2f}x |"
        )
    table = "\n".join(lines)
    print(table)
    if args.doc:
        with open(args.doc) as f:
            doc = f.read()
        if START not in doc or END not in doc:
            raise SystemExit(f"--doc {args.doc} has no {START} ... {END} markers")
        head, rest = doc.split(START, 1)
        with open(args.doc, "w") as f:
            f.write(head + START + "\n" + table + "\n" + END + rest.split(END, 1)[1])
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"rates": rates, "machine": machine(), "load_before": load_before, "load_after": load_after,
                       "settings": vars(args)}, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
