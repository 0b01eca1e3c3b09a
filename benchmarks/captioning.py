"""The captioning table of docs/captioning.md: trained captioners beside two baselines.

For each dataset, trains each recipe with `mmkeras.train` (its registered training defaults, no
run folder) and reads the test metrics it measured on the official test split (BLEU-1..4 and
exact match, greedy and beam search). Beside them, on the same test images and with the same
`mmkeras.bleu` scoring:

- **most common caption**: the training split's most frequent caption, for every image;
- **nearest neighbour**: the caption of the training image nearest in pixels (L2 on the images
  as the dataset stores them).

Prints a Markdown table and writes it, with the settings and the machine, as JSON.

Usage:
    python benchmarks/captioning.py [--datasets easy_vqa_captions fashion_mnist_pair_captions]
        [--models caption_transformer caption_lstm] [--output benchmarks/results/captioning.json]
"""

import argparse
import collections
import json
import os
import sys
import time


sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from machine_info import cpu_name  # noqa: E402

DATASETS = ("easy_vqa_captions", "fashion_mnist_pair_captions")
MODELS = ("caption_transformer", "caption_lstm")


def _scores(references, captions):
    from mmkeras.bleu import corpus_bleu, exact_match

    return {**corpus_bleu(references, captions), "exact_match": exact_match(references, captions)}


def baselines(splits):
    """`{"most common caption": metrics, "nearest neighbour": metrics}` on the test split."""
    from mmkeras.tasks.captioner import standardize_caption

    train = [standardize_caption(t) for t in splits.train.texts]
    references = [[standardize_caption(t)] for t in splits.test.texts]
    common = collections.Counter(train).most_common(1)[0][0]
    table = splits.train.images.reshape(len(train), -1).astype("float32")
    squares = (table ** 2).sum(axis=1)
    nearest = []
    for start in range(0, len(splits.test), 512):
        queries = splits.test.images[start : start + 512].reshape(-1, table.shape[1]).astype("float32")
        distances = squares[None, :] - 2 * queries @ table.T  # + |q|^2, the same for every candidate
        nearest += [train[i] for i in distances.argmin(axis=1)]
    return {"most common caption": _scores(references, [common] * len(references)),
            "nearest neighbour": _scores(references, nearest)}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS))
    parser.add_argument("--models", nargs="+", default=list(MODELS))
    parser.add_argument("--output", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "results", "captioning.json"))
    args = parser.parse_args(argv)

    import mmkeras

    rows = []
    for dataset in args.datasets:
        splits = mmkeras.data.load_dataset(dataset, validation_split=0, verbose=False)
        for name, metrics in baselines(splits).items():
            rows.append({"dataset": dataset, "model": name, "beam": metrics, "greedy": None, "train_s": None})
        del splits
        for model in args.models:
            load = os.getloadavg()[0]
            started = time.perf_counter()
            result = mmkeras.train(model, dataset, output=False, verbose=0)
            recorded = result.metrics
            metrics = {mode: {k: recorded[f"test_{mode}_{k}"] for k in ("bleu1", "bleu2", "bleu3", "bleu4", "exact_match")}
                       for mode in ("greedy", "beam")}
            rows.append({"dataset": dataset, "model": model, **metrics, "train_s": recorded["train_wall_time_s"],
                         "total_s": round(time.perf_counter() - started, 1), "epochs": recorded["epochs"],
                         "image_shape": recorded["image_shape"], "precision": str(recorded["precision"]),
                         "parameters": recorded["parameters"], "load_at_start": round(load, 2),
                         "token_accuracy": recorded["test_metrics"].get("token_accuracy")})
            print(f"{model} on {dataset}: {rows[-1]['beam']} in {rows[-1]['train_s']} s", file=sys.stderr)

    lines = ["| dataset | captions from | BLEU-1 | BLEU-4 | exact match | greedy BLEU-4 | greedy exact | training |",
             "|---|---|---:|---:|---:|---:|---:|---|"]
    for r in rows:
        greedy = r["greedy"] or {}
        training = "none" if r["train_s"] is None else (
            f"{r['epochs']} epochs at {r['image_shape'][0]}x{r['image_shape'][1]}, {r['train_s']:.0f} s, {r['precision']}")
        lines.append(
            f"| `{r['dataset']}` | {'`' + r['model'] + '` (beam 3)' if r['train_s'] is not None else r['model']} | "
            f"{r['beam']['bleu1']:.4f} | {r['beam']['bleu4']:.4f} | {r['beam']['exact_match']:.4f} | "
            + (f"{greedy['bleu4']:.4f} | {greedy['exact_match']:.4f}" if greedy else "- | -") + f" | {training} |"
        )
    machine = f"{cpu_name()}, {os.cpu_count()} cores"
    print("\n".join(lines))
    print(f"\nMachine: {machine}.")
    os.makedirs(os.path.dirname(args.output), exist_ok=True)
    with open(args.output, "w", encoding="utf-8") as f:
        json.dump({"rows": rows, "machine": machine, "table": lines}, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
