"""Fusion ranking: every `fusion_*` recipe (and `late_fusion`) trained with the same budget on the same
data, several seeds, ranked by test accuracy.

A script, not a test: it trains for real (minutes per run on a CPU). Every recipe gets the same
encoders (a CNN 32/64/128 and an Embedding+LSTM(64), see `mmkeras/models/fusion_recipes.py`), the
same epochs, batch size, learning rate schedule and precision; only the fusion differs. For each
dataset the table gives the median test accuracy over the seeds with the range, the parameters and
the median training wall time, best first, and how far each recipe falls behind the best.

Every finished run is appended to `--results` (JSON lines; `--resume` skips the runs there) and the
tables are rewritten between `<!-- fusion-table:start -->` and `<!-- fusion-table:end -->` of `--doc`.

Usage (from the repository root):

    python benchmarks/fusions.py                                  # fashion_pairs and easy_vqa, 3 seeds
    python benchmarks/fusions.py --datasets fashion_pairs --seeds 0 --epochs 4
    python benchmarks/fusions.py --limit 300 --epochs 1 --results /tmp/smoke.jsonl --doc /tmp/smoke.md
    python benchmarks/fusions.py --render-only
"""

import argparse
import json
import os
import statistics
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from machine_info import cpu_name  # noqa: E402

START, END = "<!-- fusion-table:start -->", "<!-- fusion-table:end -->"
GOAL = ("fashion_pairs", 0.96, 600)  # the best recipe >= 96% on fashion_pairs within 10 minutes of training


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--recipes", nargs="+", default=None, help="default: every fusion_* recipe and late_fusion")
    parser.add_argument("--datasets", nargs="+", default=["fashion_pairs", "easy_vqa"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=6, help="epochs per run (the same for every recipe)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--learning-rate", type=float, default=2e-3)
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--limit", type=int, default=None, help="examples per split (a smoke run)")
    parser.add_argument(
        "--override", type=json.loads, default=None, metavar="JSON",
        help='recipe arguments given to every recipe alike, e.g. \'{"image_encoder": {"output": "flatten"}}\'',
    )
    parser.add_argument("--results", default=os.path.join(ROOT, "benchmarks", "results", "fusions.jsonl"))
    parser.add_argument("--doc", default=os.path.join(ROOT, "docs", "benchmarks.md"))
    parser.add_argument("--resume", action="store_true", help="skip runs already in --results")
    parser.add_argument("--render-only", action="store_true", help="only rewrite --doc from --results")
    return parser.parse_args(argv)


def recipes(args):
    import mmkeras

    return args.recipes or [*mmkeras.list_models("fusion_*"), "late_fusion"]


def load_results(path):
    if not os.path.isfile(path):
        return []
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def run_one(args, recipe, dataset, splits, seed):
    import keras

    import mmkeras

    load_before = os.getloadavg()[0]
    result = mmkeras.train(
        recipe, splits, seed=seed, epochs=args.epochs, batch_size=args.batch_size, learning_rate=args.learning_rate,
        precision=args.precision, image_shape=splits.image_shape, model_overrides=args.override, output=False,
        export=False, verbose=0,
    )
    m = result.metrics
    record = {
        "recipe": recipe, "dataset": dataset, "seed": seed, "test_accuracy": m["test_accuracy"],
        "parameters": m["parameters"], "epochs": m["epochs"], "batch_size": m["batch_size"],
        "precision": m["precision"], "train_wall_time_s": m["train_wall_time_s"], "override": args.override,
        "load_average": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        "finished": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    keras.backend.clear_session()
    return record


def table(records, dataset):
    groups = {}
    for r in records:
        if r["dataset"] == dataset:
            groups.setdefault(r["recipe"], []).append(r)
    rows = sorted(groups.items(), key=lambda item: -statistics.median(r["test_accuracy"] for r in item[1]))
    best = statistics.median(r["test_accuracy"] for r in rows[0][1]) if rows else 0
    lines = [
        "| rank | recipe | test accuracy, median [min, max] | behind the best | parameters | training, median | seeds | load average |",
        "|---:|---|---|---:|---:|---:|---|---|",
    ]
    for rank, (recipe, runs) in enumerate(rows, start=1):
        accs = [r["test_accuracy"] for r in runs]
        loads = [x for r in runs for x in r["load_average"]]
        median = statistics.median(accs)
        lines.append(
            f"| {rank} | `{recipe}` | **{100 * median:.2f}%** [{100 * min(accs):.2f}, {100 * max(accs):.2f}] | "
            f"{100 * (best - median):.2f} points | {runs[0]['parameters']:,} | "
            f"{statistics.median(r['train_wall_time_s'] for r in runs):.0f} s | "
            f"{', '.join(str(r['seed']) for r in sorted(runs, key=lambda r: r['seed']))} | "
            f"{min(loads):.1f} to {max(loads):.1f} |"
        )
    return "\n".join(lines), rows


def goal_line(rows):
    dataset, target, seconds = GOAL
    if not rows:
        return f"Goal: the best recipe >= {100 * target:.0f}% on {dataset} within {seconds // 60} minutes: not measured."
    recipe, runs = rows[0]
    median = statistics.median(r["test_accuracy"] for r in runs)
    time_s = statistics.median(r["train_wall_time_s"] for r in runs)
    met = median >= target and time_s <= seconds
    return (
        f"Goal: the best recipe >= {100 * target:.0f}% on {dataset} within {seconds // 60} minutes of training on "
        f"2 CPU cores: **{'met' if met else 'missed'}** (`{recipe}`, {100 * median:.2f}% in {time_s:.0f} s)."
    )


def render(records, args):
    import keras
    import tensorflow as tf

    first = records[0] if records else {}
    parts = [
        START,
        f"_Written by `python benchmarks/fusions.py` on {time.strftime('%Y-%m-%d')}; {cpu_name()}, {os.cpu_count()} "
        f"cores, TensorFlow {tf.__version__}, Keras {keras.__version__}. Every recipe: {first.get('epochs')} epochs, "
        f"batch {first.get('batch_size')}, warm-up + cosine schedule, precision {first.get('precision')}; the "
        "load average before and after each run (2.0: both cores busy) in the last column."
        + (f" Every recipe built with `{json.dumps(first['override'])}` on top of its own arguments." if first.get("override") else "")
        + "_",
    ]
    for dataset in sorted({r["dataset"] for r in records}, key=lambda d: d != GOAL[0]):
        text, rows = table(records, dataset)
        parts += ["", f"### {dataset}", "", text]
        if dataset == GOAL[0]:
            parts += ["", goal_line(rows)]
    parts.append(END)
    return "\n".join(parts)


def write_doc(path, block):
    with open(path, encoding="utf-8") as f:
        text = f.read()
    if START in text and END in text:
        text = text[: text.index(START)] + block + text[text.index(END) + len(END) :]
    else:
        text = text.rstrip() + "\n\n## Fusion ranking\n\n" + block + "\n"
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


def main(argv=None):
    args = parse_args(argv)
    records = load_results(args.results)
    if not args.render_only:
        import mmkeras

        same = [r for r in records if (r["epochs"], r["batch_size"], r.get("override")) == (args.epochs, args.batch_size, args.override)]
        if args.resume and len(same) < len(records):
            sys.exit(f"{args.results} holds runs of other settings (epochs, batch size or --override): "
                     "give another --results, or drop --resume to start over.")
        done = {(r["recipe"], r["dataset"], r["seed"]) for r in records} if args.resume else set()
        os.makedirs(os.path.dirname(os.path.abspath(args.results)), exist_ok=True)
        if not args.resume:
            records = []
            if os.path.exists(args.results):
                os.replace(args.results, args.results + ".previous")
        names = recipes(args)
        for dataset in args.datasets:
            plan = [(seed, recipe) for seed in args.seeds for recipe in names if (recipe, dataset, seed) not in done]
            if not plan:
                continue
            splits = mmkeras.data.load_dataset(dataset, limit=args.limit, verbose=False)
            for i, (seed, recipe) in enumerate(plan, start=1):  # seed by seed: every recipe once before the next seed
                print(f"[{dataset} {i}/{len(plan)}] {recipe}, seed {seed} ...", flush=True)
                record = run_one(args, recipe, dataset, splits, seed)
                print(f"  test accuracy {record['test_accuracy']:.4f} in {record['train_wall_time_s']:.0f} s", flush=True)
                records.append(record)
                with open(args.results, "a", encoding="utf-8") as f:
                    f.write(json.dumps(record) + "\n")
    if records:
        write_doc(args.doc, render(records, args))
        print(render(records, args))


if __name__ == "__main__":
    main()
