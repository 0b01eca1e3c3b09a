"""Training from image files against the same data in memory: samples/s per epoch, side by side.

A script, not a test. It trains the default `vqa` recipe on the first `--examples` easy-VQA
training questions, whose images are the package's PNG files (one path per example), fed by
`mmkeras.data.make_dataset` in two ways, interleaved run by run (memory, files, memory, files...):

- `memory` (`in_memory=True`, the default): every file decoded up front into a uint8 table, then
  batches gathered from it;
- `files` (`in_memory=False`, the streaming path): files read and decoded inside the `tf.data`
  pipeline, in parallel, the decoded images cached in memory during the first epoch.

Each run builds a fresh model with the same seed and trains `--epochs` epochs (shuffled, batch
64, float32). Reported per way (medians over `--repeats` runs, [min, max]): the seconds spent
before training (the up-front decoding of `memory`), the first epoch's seconds, and samples/s
from the second epoch on; then the ratio files / memory of those samples/s (the goal of issue 15:
at least 0.95) and of the time to the end of the first epoch. Results go to `--json`.

Usage (from the repository root):

    python benchmarks/streaming.py                       # 8,000 examples, 3 epochs, 3 runs per way
    python benchmarks/streaming.py --examples 2000 --repeats 1   # a quick look
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
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

GOAL = 0.95  # files / memory samples/s from the second epoch


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--examples", type=int, default=8000, help="easy-VQA training examples (default: 8000)")
    parser.add_argument("--epochs", type=int, default=3, help="epochs per run, at least 2 (default: 3)")
    parser.add_argument("--repeats", type=int, default=3, help="runs per way, interleaved (default: 3)")
    parser.add_argument("--batch-size", type=int, default=64, help="batch size (default: 64)")
    parser.add_argument("--json", default=os.path.join(ROOT, "benchmarks", "results", "streaming.json"),
                        help="where the results are written (default: benchmarks/results/streaming.json)")
    args = parser.parse_args(argv)
    if args.epochs < 2 or args.examples < args.batch_size or args.repeats < 1:
        parser.error("--epochs must be at least 2, --examples at least --batch-size and --repeats at least 1")
    return args


def easy_vqa_files(n):
    """Image paths (one per example), questions and answer indices of the first `n` training questions."""
    import easy_vqa

    questions, answers, image_ids = easy_vqa.get_train_questions()
    paths = easy_vqa.get_train_image_paths()
    classes = easy_vqa.get_answers()
    n = min(n, len(questions))
    return [paths[i] for i in image_ids[:n]], list(questions[:n]), [classes.index(a) for a in answers[:n]], classes


def epoch_timer():
    """A Keras callback that keeps each epoch's wall time in `.seconds`."""
    import keras

    class EpochTimes(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.seconds = []

        def on_epoch_begin(self, epoch, logs=None):
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self.seconds.append(time.perf_counter() - self.start)

    return EpochTimes()


def run(way, data, args):
    """One training run: (seconds before training, [seconds of each epoch])."""
    import keras

    import mmkeras
    from mmkeras.data import make_dataset
    from mmkeras.preprocessing import Preprocessor, text_vectorizer

    paths, questions, labels, classes = data
    keras.utils.set_random_seed(0)
    vectorizer = text_vectorizer(questions)
    preprocessor = Preprocessor.from_vectorizer(vectorizer, image_shape=(64, 64, 3), class_names=classes)
    model = mmkeras.get_model(
        "vqa", image_shape=(64, 64, 3), sequence_length=preprocessor.sequence_length,
        vocab_size=preprocessor.vocab_size, preprocessor=preprocessor,
    )
    start = time.perf_counter()
    dataset = make_dataset(paths, questions, labels, task=model, batch_size=args.batch_size, shuffle=True, seed=0,
                           in_memory=way == "memory", verbose=False)
    before = time.perf_counter() - start
    times = epoch_timer()
    model.fit(dataset, epochs=args.epochs, verbose=0, callbacks=[times])
    keras.backend.clear_session()
    return before, times.seconds


def summary(runs, examples):
    """Medians and ranges of one way's runs."""
    def stats(values):
        return {"median": statistics.median(values), "min": min(values), "max": max(values)}

    return {
        "before_training_s": stats([before for before, _ in runs]),
        "first_epoch_s": stats([epochs[0] for _, epochs in runs]),
        "to_end_of_first_epoch_s": stats([before + epochs[0] for before, epochs in runs]),
        "later_samples_per_s": stats([examples / statistics.median(epochs[1:]) for _, epochs in runs]),
        "runs": [{"before_training_s": before, "epochs_s": epochs} for before, epochs in runs],
    }


def main(argv=None):
    args = parse_args(argv)
    import keras
    import tensorflow as tf

    data = easy_vqa_files(args.examples)
    examples = len(data[0])
    load_before = os.getloadavg()
    runs = {"memory": [], "files": []}
    for repeat in range(args.repeats):
        for way in runs:  # interleaved: memory, files, memory, files...
            runs[way].append(run(way, data, args))
            print(f"run {repeat + 1}/{args.repeats}, {way}: before training {runs[way][-1][0]:.1f} s, epochs "
                  + ", ".join(f"{s:.1f}" for s in runs[way][-1][1]) + " s", file=sys.stderr, flush=True)
    result = {way: summary(r, examples) for way, r in runs.items()}
    # Ratios run by run (each files run beside the memory run just before it), then their median.
    later = [statistics.median(m[1][1:]) / statistics.median(f[1][1:]) for m, f in zip(runs["memory"], runs["files"])]
    first = [(f[0] + f[1][0]) / (m[0] + m[1][0]) for m, f in zip(runs["memory"], runs["files"])]
    result.update({
        "ratio_later_samples_per_s": statistics.median(later),
        "ratio_to_end_of_first_epoch": statistics.median(first),
        "goal": GOAL,
        "examples": examples, "epochs": args.epochs, "batch_size": args.batch_size, "repeats": args.repeats,
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} logical cores",
        "versions": {"tensorflow": tf.__version__, "keras": keras.__version__},
        "load_average_before_after": [load_before[0], os.getloadavg()[0]],
        "command": "python benchmarks/streaming.py " + " ".join(sys.argv[1:] if argv is None else argv),
    })
    os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
    with open(args.json, "w", encoding="utf-8") as f:
        json.dump(result, f, indent=1)
    print(f"{examples:,} easy-VQA examples from PNG files, vqa recipe, batch {args.batch_size}, {args.epochs} epochs, "
          f"{args.repeats} runs per way (load {load_before[0]:.2f} before, {os.getloadavg()[0]:.2f} after)")
    print("| way | before training (s) | first epoch (s) | samples/s from epoch 2 |")
    print("|---|---:|---:|---:|")
    for way in runs:
        r = result[way]
        fmt = lambda s, spec: f"{s['median']:{spec}} [{s['min']:{spec}}, {s['max']:{spec}}]"  # noqa: E731
        print(f"| {way} | {fmt(r['before_training_s'], '.1f')} | {fmt(r['first_epoch_s'], '.1f')} | "
              f"{fmt(r['later_samples_per_s'], ',.0f')} |")
    met = "met" if result["ratio_later_samples_per_s"] >= GOAL else "missed"
    print(f"files / memory, samples/s from epoch 2: {result['ratio_later_samples_per_s']:.3f} "
          f"(goal >= {GOAL}: {met}); time to the end of epoch 1: {result['ratio_to_end_of_first_epoch']:.2f}x")


if __name__ == "__main__":
    main()
