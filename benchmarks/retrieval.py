"""The retrieval table of docs/retrieval.md: trained dual encoders beside a random baseline.

For each run folder written by `mmkeras train --model clip_small|siglip_small --dataset ...`, read
its test metrics (`metrics.json`: measured on the official test split right after training) and
its training time, and add a random baseline on the same test pairs: random unit embeddings (3
seeds, the median), scored with the same `mmkeras.retrieval.retrieval_metrics` and the same zero-
shot rule (each image's nearest of 10 random class embeddings). Prints a Markdown table.

Usage:
    mmkeras train --model clip_small --dataset fashion_mnist_descriptions --output runs/clip
    python benchmarks/retrieval.py runs/clip [runs/siglip ...]
"""

import argparse
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from machine_info import cpu_name  # noqa: E402

COLUMNS = [
    ("t2i_recall@1", "text->image R@1"),
    ("t2i_recall@10", "R@10"),
    ("t2i_median_rank", "median rank"),
    ("class_t2i_recall@1", "class-level text->image R@1"),
    ("class_i2t_recall@1", "class-level image->text R@1"),
    ("class_t2i_mrr", "class-level MRR"),
    ("zero_shot_accuracy", "zero-shot accuracy"),
]


def random_baseline(labels, num_classes, dim=64, seeds=(0, 1, 2)):
    """The metrics of random unit embeddings on these test pairs (median over seeds)."""
    from mmkeras.retrieval import retrieval_metrics

    runs = []
    for seed in seeds:
        rng = np.random.default_rng(seed)
        images, texts, classes = (rng.normal(size=(n, dim)).astype("float32") for n in (len(labels), len(labels), num_classes))
        images, texts, classes = (v / np.linalg.norm(v, axis=1, keepdims=True) for v in (images, texts, classes))
        metrics = retrieval_metrics(images, texts, labels)
        metrics["zero_shot_accuracy"] = float(np.mean((images @ classes.T).argmax(axis=1) == labels))
        runs.append(metrics)
    return {key: float(np.median([m[key] for m in runs])) for key in runs[0]}


def row(name, metrics, extra):
    cells = [f"{metrics[key]:.4f}" if "rank" not in key else f"{metrics[key]:.1f}" for key, _ in COLUMNS]
    return f"| {name} | " + " | ".join(cells) + f" | {extra} |"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", help="run folders written by `mmkeras train` with a dual encoder")
    args = parser.parse_args(argv)
    from mmkeras import data

    lines = ["| model | " + " | ".join(label for _, label in COLUMNS) + " | training |",
             "|---|" + "---:|" * len(COLUMNS) + "---|"]
    datasets = {}
    for folder in args.runs:
        with open(os.path.join(folder, "metrics.json"), encoding="utf-8") as f:
            recorded = json.load(f)
        metrics = {k[len("test_"):]: v for k, v in recorded.items() if k.startswith("test_") and isinstance(v, float)}
        load = recorded["machine"].get("load_average_at_start")
        extra = (f"{recorded['epochs']} epochs, {recorded['train_wall_time_s']:.0f} s, {recorded['precision']}, "
                 f"load {load[0] if load else '?'} at start")
        lines.append(row(f"`{recorded['model']}` on `{recorded['dataset']}`", metrics, extra))
        datasets[recorded["dataset"]] = recorded.get("seed", 0)
    for name, seed in datasets.items():
        splits = data.load_dataset(name, validation_split=0, seed=seed, verbose=False)
        lines.append(row(f"random embeddings on `{name}`", random_baseline(splits.test.labels, len(splits.class_names)), "none"))
    print("\n".join(lines))
    print(f"\nMachine: {cpu_name()}, {os.cpu_count()} cores.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
