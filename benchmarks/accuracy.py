"""Accuracy benchmark: official test accuracy of the default recipe and of zoo recipes.

A script, not a test: it trains for real (minutes per run on a CPU). For each recipe, precision
and seed it calls `mmkeras.train(...)` on easy-VQA (official train/test split, 10% of the training
images held out for validation) and records the test accuracy, parameters and training wall time;
the table gives the median over seeds (with the range). With `--fashion` it also trains the
default recipe and `fashion_cnn` (`--fashion-recipes`) on Fashion-MNIST caption matching and
reports their 10-way caption ranking accuracy (= 10-class accuracy) beside the published
image-only baselines and the goal.

Every finished run is appended to a JSON lines file (`--results`), so an interrupted benchmark
resumes where it stopped (`--resume`); the markdown table is rewritten after each run between the
markers `<!-- accuracy-table:start -->` and `<!-- accuracy-table:end -->` of `--doc`.

Usage (from the repository root):

    python benchmarks/accuracy.py --fashion                         # every row of docs/benchmarks.md
    python benchmarks/accuracy.py --recipes vqa --precisions auto   # the default recipe only
    python benchmarks/accuracy.py --fashion --resume                # continue an interrupted run
    python benchmarks/accuracy.py --render-only                     # rewrite the table from the results

Zoo recipes have no tuned settings for easy-VQA; they train with the default recipe's schedule,
batch size and image shape for `--zoo-epochs` epochs, so the rows compare architectures on the same
budget (the documents' own 64x64 or 224x224 settings would take far longer on a CPU).
"""

import argparse
import json
import os
import platform
import statistics
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

ZOO = ["fusion_concatenate", "fusion_product", "fusion_gated", "s0_product"]
PUBLISHED_VQA = [
    ("small Keras CNN + bag of words, Multiply fusion (victorzhou.com/blog/easy-vqa)", "93.8%"),
]
PUBLISHED_FASHION = [
    ("2-layer CNN (image only)", "91.6%"),
    ("2-layer CNN with batch norm (image only)", "93.4%"),
    ("AutoML (image only)", "93.9%"),
    ("humans", "83.5%"),
]
FASHION_GOAL = (0.945, 600)  # >= 94.5% 10-way within 10 minutes of training, median of the seeds
START, END = "<!-- accuracy-table:start -->", "<!-- accuracy-table:end -->"


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--recipes", nargs="+", default=["vqa", *ZOO], help="recipes to compare")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2], help="seeds (median over them)")
    parser.add_argument("--precisions", nargs="+", default=["auto", "float32"], help="precisions to run")
    parser.add_argument("--zoo-epochs", type=int, default=4, help="epochs for recipes without tuned settings")
    parser.add_argument("--zoo-precisions", nargs="+", default=["auto"], help="precisions for the zoo recipes")
    parser.add_argument("--fashion", action="store_true", help="also Fashion-MNIST caption matching (--fashion-recipes)")
    parser.add_argument("--fashion-only", action="store_true", help="only Fashion-MNIST")
    parser.add_argument(
        "--fashion-recipes", nargs="+", default=["vqa", "fashion_cnn"], help="recipes trained on Fashion-MNIST"
    )
    parser.add_argument("--results", default=os.path.join(ROOT, "benchmarks", "results", "accuracy.jsonl"))
    parser.add_argument("--doc", default=os.path.join(ROOT, "docs", "benchmarks.md"))
    parser.add_argument("--resume", action="store_true", help="skip runs already in --results")
    parser.add_argument("--limit", type=int, default=None, help="examples per split (a smoke run of this script)")
    parser.add_argument("--render-only", action="store_true", help="only rewrite --doc from --results")
    args = parser.parse_args(argv)
    import mmkeras

    unknown = [name for name in (*args.recipes, *args.fashion_recipes) if name not in mmkeras.list_models()]
    if unknown:
        parser.error(f"--recipes and --fashion-recipes must be registered models (`mmkeras list`). Received: {unknown}")
    return args


def load_results(path):
    if not os.path.isfile(path):
        return []
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def run_one(recipe, dataset, precision, seed, epochs, limit=None):
    import keras

    import mmkeras
    from mmkeras.training import training_defaults

    settings = {}
    if not mmkeras.get_entry(recipe).training:  # a recipe without tuned settings: the default recipe's budget
        tuned = training_defaults(mmkeras.training.DEFAULT_MODEL, dataset)
        settings = dict(
            epochs=epochs,
            batch_size=tuned["batch_size"],
            learning_rate=tuned["learning_rate"],
            image_shape=tuned["image_shape"],
        )
    load_before = os.getloadavg()[0]
    result = mmkeras.train(
        recipe, dataset, seed=seed, precision=precision, limit=limit, output=False, export=False, verbose=0, **settings
    )
    m = result.metrics
    record = {
        "recipe": recipe,
        "dataset": dataset,
        "precision": precision,
        "policy": m["precision"],
        "seed": seed,
        "test_accuracy": m["test_accuracy"],
        "test_ranking_accuracy": m.get("test_ranking_accuracy"),
        "test_examples": m["examples"]["test"],
        "parameters": m["parameters"],
        "epochs": m["epochs"],
        "batch_size": m["batch_size"],
        "image_shape": m["image_shape"],
        "train_wall_time_s": m["train_wall_time_s"],
        "load_average": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        "finished": time.strftime("%Y-%m-%d %H:%M:%S"),
        "machine": machine(),
    }
    keras.backend.clear_session()
    return record


def machine():
    cpu = platform.processor()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    import keras
    import tensorflow as tf

    from mmkeras.precision import cpu_supports_bfloat16

    return (
        f"{cpu}, {os.cpu_count()} cores visible (AVX512_BF16/AMX: {'yes' if cpu_supports_bfloat16() else 'no'}), "
        f"Python {platform.python_version()}, TensorFlow {tf.__version__}, Keras {keras.__version__}"
    )


def machines(records):
    """Each machine the records ran on, with the days they finished there."""
    days = {}
    for r in records:
        days.setdefault(r.get("machine", "not recorded"), set()).add(r["finished"][:10])
    return "; ".join(f"{name} ({', '.join(sorted(d))})" for name, d in days.items())


TEST_EXAMPLES = {"easy_vqa": 9673, "fashion_mnist_captions": 10000}


def _pct(x):
    return f"{100 * x:.2f}%" if x in (0, 1) else f"{100 * x:.3f}%"


def _wrong(record, metric):
    n = record.get("test_examples") or TEST_EXAMPLES[record["dataset"]]
    return round((1 - record[metric]) * n)


def table(records, dataset, metric="test_accuracy"):
    groups = {}
    for r in records:
        if r["dataset"] == dataset and r.get(metric) is not None:
            groups.setdefault((r["recipe"], r["precision"]), []).append(r)
    lines = [
        "| recipe | precision | parameters | epochs | image | test accuracy, median [min, max] | errors per seed | training wall time, median | seeds | load average |",
        "|---|---|---:|---:|---|---|---|---:|---|---|",
    ]
    order = sorted(groups, key=lambda key: (key[0] != "vqa", key[1] != "auto"))  # the default recipe first
    for recipe, precision in order:
        runs = sorted(groups[(recipe, precision)], key=lambda r: r["seed"])
        accs = [r[metric] for r in runs]
        wrong = ", ".join(str(_wrong(r, metric)) for r in runs)
        times = [r["train_wall_time_s"] for r in runs]
        loads = [r["load_average"][0] for r in runs] + [r["load_average"][1] for r in runs]
        lines.append(
            f"| `{recipe}` | {precision} ({runs[0]['policy']}) | {runs[0]['parameters']:,} | {runs[0]['epochs']} | "
            f"{'x'.join(map(str, runs[0]['image_shape']))} | **{_pct(statistics.median(accs))}** "
            f"[{_pct(min(accs))}, {_pct(max(accs))}] | {wrong} | {statistics.median(times):.0f} s | "
            f"{', '.join(str(r['seed']) for r in runs)} | {min(loads):.1f} to {max(loads):.1f} |"
        )
    return "\n".join(lines)


def fashion_goal(records):
    """The Fashion-MNIST goal line: the recipe with the best median ranking accuracy, and whether
    its medians meet `FASHION_GOAL`."""
    groups = {}
    for r in records:
        if r["dataset"] == "fashion_mnist_captions" and r.get("test_ranking_accuracy") is not None:
            groups.setdefault(r["recipe"], []).append(r)
    medians = {
        recipe: (
            statistics.median(r["test_ranking_accuracy"] for r in runs),
            statistics.median(r["train_wall_time_s"] for r in runs),
        )
        for recipe, runs in groups.items()
    }
    best = max(medians, key=lambda recipe: medians[recipe][0])
    accuracy, seconds = medians[best]
    met = accuracy >= FASHION_GOAL[0] and seconds <= FASHION_GOAL[1]
    return (
        f"Goal: at least {100 * FASHION_GOAL[0]:.1f}% 10-way within {FASHION_GOAL[1] // 60} minutes of training "
        f"(medians over the seeds). Best: `{best}`, {_pct(accuracy)} in {seconds:.0f} s: **{'met' if met else 'missed'}**."
    )


def vqa_comparisons():
    """The answers that ignore the image, computed now from easy-VQA's questions, then the published."""
    import easy_vqa

    from mmkeras.data.datasets import text_only_baselines

    train_texts, train_answers, _ = easy_vqa.get_train_questions()
    test_texts, test_answers, _ = easy_vqa.get_test_questions()
    measured = text_only_baselines(train_texts, np.array(train_answers), test_texts, np.array(test_answers))
    return [
        ("always the most common answer (computed by `text_only_baselines`)", f"{100 * measured['most_common_answer']:.1f}%"),
        ("question only: the most common answer to the same question (computed)", f"{100 * measured['question_only']:.1f}%"),
        *PUBLISHED_VQA,
    ]


def render(records, args):
    parts = [
        START,
        f"_Written by `python benchmarks/accuracy.py`; the runs' machines: {machines(records)}. "
        "Other jobs shared the 2 CPU cores during these runs: the load average before and after each run "
        "is in the last column (2.0 means both cores busy)._",
        "",
        "### easy-VQA (official test split: 9,673 questions about 1,000 images)",
        "",
        table(records, "easy_vqa"),
        "",
        "For comparison:",
        "",
        *[f"- {name}: {value}" for name, value in vqa_comparisons()],
    ]
    if any(r["dataset"] == "fashion_mnist_captions" for r in records):
        parts += [
            "",
            "### Fashion-MNIST: 10-way caption ranking (= 10-class accuracy, 10,000 test photos)",
            "",
            table(records, "fashion_mnist_captions", "test_ranking_accuracy"),
            "",
            "Caption matching (binary, balanced) test accuracy:",
            "",
            table(records, "fashion_mnist_captions"),
            "",
            "Published image-only 10-class accuracies (Fashion-MNIST benchmark, Xiao et al. 2017 and "
            "its README): " + "; ".join(f"{name} {value}" for name, value in PUBLISHED_FASHION) + ".",
            "",
            fashion_goal(records),
        ]
    parts.append(END)
    return "\n".join(parts)


def write_doc(path, block):
    text = ""
    if os.path.isfile(path):
        with open(path, encoding="utf-8") as f:
            text = f.read()
    if START in text and END in text:
        text = text[: text.index(START)] + block + text[text.index(END) + len(END) :]
    else:
        text = (text.rstrip() + "\n\n" if text else "# Benchmarks\n\n") + block + "\n"
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


def main(argv=None):
    args = parse_args(argv)
    os.makedirs(os.path.dirname(args.results), exist_ok=True)
    if args.render_only:
        write_doc(args.doc, render(load_results(args.results), args))
        print(f"Wrote {args.doc}")
        return
    records = load_results(args.results) if args.resume else []
    if not args.resume and os.path.exists(args.results):
        os.replace(args.results, args.results + ".previous")
    plan = []  # the default recipe first, then Fashion-MNIST, then the zoo
    easy = [] if args.fashion_only else [
        (recipe, "easy_vqa", precision, seed)
        for recipe in args.recipes
        for precision in (args.precisions if recipe == "vqa" else args.zoo_precisions)
        for seed in args.seeds
    ]
    plan += [run for run in easy if run[0] == "vqa"]
    if args.fashion or args.fashion_only:
        plan += [
            (recipe, "fashion_mnist_captions", "auto", seed) for recipe in args.fashion_recipes for seed in args.seeds
        ]
    plan += [run for run in easy if run[0] != "vqa"]
    done = {(r["recipe"], r["dataset"], r["precision"], r["seed"]) for r in records}
    for i, (recipe, dataset, precision, seed) in enumerate(plan, start=1):
        if (recipe, dataset, precision, seed) in done:
            continue
        print(f"[{i}/{len(plan)}] {recipe} on {dataset}, precision {precision}, seed {seed} ...", flush=True)
        record = run_one(recipe, dataset, precision, seed, args.zoo_epochs, args.limit)
        print(
            f"    test accuracy {_pct(record['test_accuracy'])}, training {record['train_wall_time_s']:.0f} s, "
            f"load {record['load_average']}",
            flush=True,
        )
        records.append(record)
        with open(args.results, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")
        write_doc(args.doc, render(records, args))
    write_doc(args.doc, render(records, args))
    print(f"Wrote {args.doc}")


if __name__ == "__main__":
    main()
