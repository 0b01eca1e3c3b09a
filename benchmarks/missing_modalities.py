"""Missing-modality benchmark: accuracy with both modalities, the image only and the text only, for a
recipe trained with and without modality dropout.

A script, not a test: it trains for real. For each dataset and dropout rate it trains the recipe
through `mmkeras.train` (`model_overrides={"modality_dropout": p}`; p = 0 builds the plain model),
then measures the official test split with `mmkeras.missing.modality_ablation`: the absent modality
is marked absent (a NaN image, an empty text) for a model that knows about absence, and given as
users otherwise give it (a black image, an empty text) to the plain one.

Every run is appended to `--results` (JSON lines; `--resume` skips the ones there) and the table is
rewritten between `<!-- missing-table:start -->` and `<!-- missing-table:end -->` of `--doc`.

Usage (from the repository root):

    python benchmarks/missing_modalities.py                      # easy_vqa and fashion_pairs, p = 0 and 0.3
    python benchmarks/missing_modalities.py --datasets easy_vqa --limit 500   # a smoke run
    python benchmarks/missing_modalities.py --render-only
"""

import argparse
import json
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

START, END = "<!-- missing-table:start -->", "<!-- missing-table:end -->"
ROBUST_START, ROBUST_END = "<!-- robustness-table:start -->", "<!-- robustness-table:end -->"


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", nargs="+", default=["easy_vqa", "fashion_pairs"])
    parser.add_argument("--recipe", default="vqa", help="the recipe to train (default: the default recipe)")
    parser.add_argument("--dropouts", nargs="+", type=float, default=[0.0, 0.3], help="modality dropout rates")
    parser.add_argument("--epochs", type=int, default=None, help="epochs (default: the recipe's for the dataset)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--robustness", type=int, default=2000, metavar="N",
                        help="also measure robustness curves on the first N test examples (0: skip), against "
                        "--baseline trained the same way; the table goes to --robustness-doc")
    parser.add_argument("--levels", default="0,0.25,0.5,0.75,1", help="noise levels of the robustness curves")
    parser.add_argument("--baseline", default="fusion_concatenate",
                        help="the baseline of effective robustness (MultiBench's late fusion: unimodal encodings concatenated)")
    parser.add_argument("--robustness-doc", default=os.path.join(ROOT, "docs", "robustness.md"))
    parser.add_argument("--limit", type=int, default=None, help="examples per split (a smoke run)")
    parser.add_argument("--results", default=os.path.join(ROOT, "benchmarks", "results", "missing_modalities.jsonl"))
    parser.add_argument("--doc", default=os.path.join(ROOT, "docs", "missing_modalities.md"))
    parser.add_argument("--resume", action="store_true", help="skip runs already in --results")
    parser.add_argument("--render-only", action="store_true", help="only rewrite --doc from --results")
    return parser.parse_args(argv)


def load_results(path):
    if not os.path.isfile(path):
        return []
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def run_one(args, dataset, splits, dropout, recipe=None):
    import keras
    import numpy as np

    import mmkeras
    from mmkeras.missing import modality_ablation
    from mmkeras.robustness import parse_levels, robustness_curves

    recipe = recipe or args.recipe
    load_before = os.getloadavg()[0]
    result = mmkeras.train(
        recipe, splits, seed=args.seed, epochs=args.epochs, output=False, export=False, verbose=0,
        model_overrides={"modality_dropout": dropout} if dropout else None,
    )
    scores = modality_ablation(result.model, splits.test)
    record = {
        "recipe": recipe,
        "dataset": dataset,
        "modality_dropout": dropout,
        "seed": args.seed,
        **scores,
        "test_accuracy": result.metrics["test_accuracy"],
        "test_examples": len(splits.test),
        "epochs": result.metrics["epochs"],
        "train_wall_time_s": result.metrics["train_wall_time_s"],
        "precision": result.metrics["precision"],
        "load_average": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        "finished": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    if args.robustness:
        examples = splits.test.subset(np.arange(min(args.robustness, len(splits.test))))
        record["robustness"] = robustness_curves(result.model, examples, levels=parse_levels(args.levels), seed=args.seed)
    keras.backend.clear_session()
    return record


def render(records):
    import keras
    import tensorflow as tf

    from machine_info import cpu_name

    lines = [
        START,
        f"_Written by `python benchmarks/missing_modalities.py` on {time.strftime('%Y-%m-%d')}; {cpu_name()}, "
        f"{os.cpu_count()} cores, TensorFlow {tf.__version__}, Keras {keras.__version__}; official test splits; "
        "the load average before and after each run (2.0: both cores busy) in the last column._",
        "",
        "| dataset | recipe | modality dropout | both | image only | text only | epochs | training | load average |",
        "|---|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in sorted(records, key=lambda r: (r["dataset"], r["recipe"] != "vqa", r["recipe"], r["modality_dropout"])):
        lines.append(
            f"| {r['dataset']} | `{r['recipe']}` | {r['modality_dropout']:g} | {100 * r['both']:.2f}% | "
            f"{100 * r['image_only']:.2f}% | {100 * r['text_only']:.2f}% | {r['epochs']} | "
            f"{r['train_wall_time_s']:.0f} s | {r['load_average'][0]:.1f} to {r['load_average'][1]:.1f} |"
        )
    lines.append(END)
    return "\n".join(lines)


def render_robustness(records, baseline):
    """Relative robustness per noise, and effective robustness against `baseline`, per model."""
    from mmkeras.robustness import summarize

    lines = [ROBUST_START, f"_Written by `python benchmarks/missing_modalities.py` on {time.strftime('%Y-%m-%d')}._"]
    for dataset in sorted({r["dataset"] for r in records if "robustness" in r}):
        rows = [r for r in records if r["dataset"] == dataset and "robustness" in r]
        base = next((r for r in rows if r["recipe"] == baseline and not r["modality_dropout"]), None)
        first = rows[0]["robustness"]
        lines += [
            "", f"### {dataset} (first {first['examples']:,} test examples; levels {', '.join(f'{x:g}' for x in first['levels'])}; "
            f"accuracy at level 0, relative robustness RR and, against `{baseline}`, effective robustness ER)", "",
            "| noise | " + " | ".join(f"`{r['recipe']}` dropout {r['modality_dropout']:g}" for r in rows) + " |",
            "|---|" + "---|" * len(rows),
        ]
        summaries = [summarize(r["robustness"], None if base is None or r is base else base["robustness"]) for r in rows]
        for noise in summaries[0]:
            cells = []
            for summary in summaries:
                item = summary[noise]
                er = "" if item["effective_robustness"] is None else f", ER {item['effective_robustness']:+.4f}"
                cells.append(f"{item['clean']:.4f}, RR {item['relative_robustness']:.4f}{er}")
            lines.append(f"| {summaries[0][noise]['modality']} {noise} | " + " | ".join(cells) + " |")
    lines.append(ROBUST_END)
    return "\n".join(lines)


def write_doc(path, table, start=START, end=END):
    with open(path, encoding="utf-8") as f:
        text = f.read()
    if start not in text or end not in text:
        raise SystemExit(f"{path} has no {start} ... {end} markers")
    head, rest = text.split(start, 1)
    with open(path, "w", encoding="utf-8") as f:
        f.write(head + table + rest.split(end, 1)[1])


def main(argv=None):
    args = parse_args(argv)
    records = load_results(args.results)
    if not args.render_only:
        import mmkeras

        done = {(r["dataset"], r["recipe"], r["modality_dropout"], r["seed"]) for r in records} if args.resume else set()
        os.makedirs(os.path.dirname(args.results), exist_ok=True)
        for dataset in args.datasets:
            todo = [(args.recipe, p) for p in args.dropouts]
            if args.robustness and args.baseline:
                todo.append((args.baseline, 0.0))
            todo = [(recipe, p) for recipe, p in todo if (dataset, recipe, p, args.seed) not in done]
            if not todo:
                continue
            splits = mmkeras.data.load_dataset(dataset, seed=args.seed, limit=args.limit, verbose=False)
            for recipe, dropout in todo:
                record = run_one(args, dataset, splits, dropout, recipe)
                print(json.dumps({k: v for k, v in record.items() if k != "robustness"}), flush=True)
                if args.limit is None:  # a smoke run is not a result
                    records = [r for r in records if (r["dataset"], r["recipe"], r["modality_dropout"], r["seed"])
                               != (dataset, recipe, dropout, args.seed)] + [record]
                    with open(args.results, "w", encoding="utf-8") as f:
                        f.writelines(json.dumps(r) + "\n" for r in records)
    if records:
        write_doc(args.doc, render(records))
        print(render(records))
        if any("robustness" in r for r in records):
            write_doc(args.robustness_doc, render_robustness(records, args.baseline), ROBUST_START, ROBUST_END)
            print(render_robustness(records, args.baseline))


if __name__ == "__main__":
    main()
