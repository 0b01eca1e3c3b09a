"""The tf.data autotuning stall: `fit` calls with and without autotuning, side by side.

A script, not a test. tf.data's autotuning runs a thread beside each iterator that re-tunes the
pipeline on a timer whose period doubles (10 ms, 20 ms, ... up to 60 s). When the iterator is
destroyed, at the end of each `fit` epoch, TensorFlow often waits for that timer to run out, so the
call ends at the next of 1.27 s, 2.55 s, 5.11 s, 10.23 s, 20.47 s, ... (10 ms x (2^k - 1)) after
the iterator started. mmkeras's pipelines switch autotuning off (`without_autotune`).

This script trains the `vqa` recipe on synthetic batches from `Examples.to_dataset`, one epoch per
`fit` call (a new iterator each call, as each epoch of a longer `fit` has), alternating two
pipelines that differ only in that option: `mmkeras` (autotuning off) and `autotune` (the same
dataset with autotuning switched back on, TensorFlow's default). It prints each one's epoch time
(median and range), how many epochs ended on one of the timer's boundaries, and the ratio of the
medians.

Usage (from the repository root):

    python benchmarks/stall.py                 # 15 epochs of each, about 3 minutes
    python benchmarks/stall.py --epochs 6 --steps 20 --json /tmp/stall.json   # a smoke run
"""

import argparse
import json
import os
import platform
import statistics
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from machine_info import cpu_name  # noqa: E402

BOUNDARY_UNIT_S = 0.01  # the autotuning timer's first period


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=15, help="epochs (fit calls) of each pipeline (default 15)")
    parser.add_argument("--steps", type=int, default=100, help="batches per epoch (default 100)")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--json", default=os.path.join(ROOT, "benchmarks", "results", "stall.json"))
    args = parser.parse_args(argv)
    if min(args.epochs, args.steps, args.batch_size) < 1:
        parser.error("--epochs, --steps and --batch-size must be positive")
    return args


def on_boundary(seconds, tolerance=0.01):
    """Whether an epoch of `seconds` ended on a boundary of the autotuning timer, 10 ms x (2^k - 1).

    Example:

    >>> on_boundary(2.553), on_boundary(2.2), on_boundary(5.115)
    (True, False, True)
    """
    boundaries = (BOUNDARY_UNIT_S * (2**k - 1) for k in range(5, 24))  # 0.31 s to 23 hours
    return any(b - 0.01 <= seconds <= b * (1 + tolerance) + 0.03 for b in boundaries)


def pipelines(args):
    """The model and the two datasets (`mmkeras`, `autotune`) over the same synthetic batches."""
    import numpy as np
    import tensorflow as tf

    import mmkeras
    from mmkeras.data.pipeline import Examples

    n = args.steps * args.batch_size
    rng = np.random.default_rng(0)
    model = mmkeras.get_model("vqa", image_shape=(32, 32, 3), sequence_length=9, vocab_size=64)
    examples = Examples(
        rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8), rng.integers(1, 64, (n, 9)).astype("int32"),
        rng.integers(0, model.output_shape[-1], n), verbose=False,
    )
    ours = examples.to_dataset(task=model, batch_size=args.batch_size, shuffle=True, seed=0)
    options = tf.data.Options()
    options.autotune.enabled = True
    theirs = ours.with_options(options)
    if ours.options().autotune.enabled is not False or theirs.options().autotune.enabled is not True:
        raise SystemExit("the two pipelines do not differ in autotuning: nothing to compare")
    return model, {"mmkeras": ours, "autotune": theirs}


def measure(model, datasets, epochs):
    """Each pipeline's epoch times, one `fit` call per epoch, alternating (A B A B)."""
    for dataset in datasets.values():  # warm-up: tracing
        model.fit(dataset, epochs=1, verbose=0)
    times = {name: [] for name in datasets}
    for _ in range(epochs):
        for name, dataset in datasets.items():
            started = time.perf_counter()
            model.fit(dataset, epochs=1, verbose=0)
            times[name].append(time.perf_counter() - started)
    return times


def report(times):
    rows = {}
    for name, values in times.items():
        rows[name] = {
            "epoch_s": [round(v, 4) for v in values],
            "median_s": round(statistics.median(values), 4),
            "min_s": round(min(values), 4),
            "max_s": round(max(values), 4),
            "on_boundary": sum(on_boundary(v) for v in values),
        }
    return rows


def main(argv=None):
    args = parse_args(argv)
    import keras
    import tensorflow as tf

    load = os.getloadavg()
    print(f"{cpu_name()}, {os.cpu_count()} cores; TensorFlow {tf.__version__}, Keras {keras.__version__}")
    print(f"load average before: {load[0]:.2f}; {args.epochs} epochs of {args.steps} batches of {args.batch_size} each")
    model, datasets = pipelines(args)
    rows = report(measure(model, datasets, args.epochs))
    for name, row in rows.items():
        print(
            f"{name:>8}: epoch median {row['median_s']:.2f} s [{row['min_s']:.2f}, {row['max_s']:.2f}], "
            f"{row['on_boundary']} of {args.epochs} ended on a timer boundary"
        )
    ratio = rows["autotune"]["median_s"] / rows["mmkeras"]["median_s"]
    print(f"autotune / mmkeras, medians: {ratio:.2f}; load average after: {os.getloadavg()[0]:.2f}")
    result = {
        "machine": cpu_name(), "cores": os.cpu_count(), "python": platform.python_version(),
        "tensorflow": tf.__version__, "keras": keras.__version__, "settings": vars(args),
        "load_average": [round(load[0], 2), round(os.getloadavg()[0], 2)], "rows": rows,
        "ratio_of_medians": round(ratio, 3), "date": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
    with open(args.json, "w", encoding="utf-8") as f:
        json.dump(result, f, indent=1)
    print(f"written: {args.json}")
    return result


if __name__ == "__main__":
    main()
