"""`mmkeras evaluate`: test a trained run folder on a built-in dataset or your own table.

With `--robustness`, the accuracy under noisy images and noisy texts instead (MultiBench's
protocol, `mmkeras.robustness`), written to a report folder.
"""

import argparse

ROBUSTNESS_OPTIONS = ("baseline", "noise", "levels", "output", "seed")


def add_parser(subparsers):
    parser = subparsers.add_parser(
        "evaluate",
        help="evaluate a trained model folder on a dataset's test split",
        description=(
            "Load a folder written by `mmkeras train` (its model.keras holds the whole model) and print\n"
            "its loss and accuracy on the official test split of the dataset it was trained on\n"
            "(or the one named), plus the 10-way caption ranking accuracy for Fashion-MNIST. A run\n"
            "trained on your own tables reads its test table again (or draws the same held-out share\n"
            "of its training table); --data evaluates on another table.\n\n"
            "--robustness measures the accuracy with one modality made noisy at levels 0 to 1\n"
            "(MultiBench's protocol: see docs/robustness.md) and writes robustness.png, .md and\n"
            ".json to RUN/robustness (or --output)."
        ),
        epilog=(
            "examples:\n  mmkeras evaluate saved_models/vqa-easy_vqa\n  mmkeras evaluate saved_models/vqa-train --data more.csv\n"
            "  mmkeras evaluate saved_models/vqa-easy_vqa --robustness --noise blur --noise typos --levels 0,0.5,1"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("model", help="a folder written by `mmkeras train`")
    parser.add_argument("--dataset", default=None, help="dataset name (default: the one the model trained on)")
    parser.add_argument("--data", default=None, help="your own table (or image folder by class) to evaluate on")
    for column in ("image", "text", "label"):
        parser.add_argument(f"--{column}-column", default=None, help=f"--data's column of {column}s (default: the run's, else {column})")
    parser.add_argument("--label-separator", default=None, help="splits a label cell of --data into several labels")
    parser.add_argument("--caption", default=None, help="the text of every example when --data is an image folder")
    parser.add_argument("--split", default="test", choices=["test", "validation"], help="default test")
    parser.add_argument("--batch-size", type=int, default=256, help="default 256")
    parser.add_argument("--limit", type=int, default=None, help="at most this many examples")
    parser.add_argument("--json", action="store_true", help="print the metrics as JSON")
    robustness = parser.add_argument_group("robustness (MultiBench's protocol)")
    robustness.add_argument("--robustness", action="store_true", help="accuracy under noisy images and texts, per noise and level")
    robustness.add_argument("--baseline", default=None, metavar="RUN", help="a late-fusion run to compare with (effective robustness)")
    robustness.add_argument(
        "--noise", action="append", default=None, metavar="NAME",
        help="a noise to apply (repeatable; default all): gaussian, blur, occlusion, contrast, salt_and_pepper, "
        "typos, dropped_words, swapped_words",
    )
    robustness.add_argument("--levels", default=None, help="noise levels in [0, 1], comma-separated (default 0,0.1,...,1)")
    robustness.add_argument("--output", default=None, metavar="DIR", help="the report folder (default RUN/robustness)")
    robustness.add_argument("--seed", type=int, default=None, help="the noise's seed (default 0)")
    parser.set_defaults(func=run)


def _data_options(args):
    options = {k: getattr(args, k) for k in ("image_column", "text_column", "label_column", "label_separator", "caption")}
    options = {k: v for k, v in options.items() if v is not None}
    if options and args.data is None:
        raise ValueError(f"--{next(iter(options)).replace('_', '-')} goes with --data. Received: --data not given")
    return options or None


def run(args):
    import json

    from mmkeras.training import evaluate

    options = _data_options(args)
    if args.robustness:
        return run_robustness(args, options)
    given = [name for name in ROBUSTNESS_OPTIONS if getattr(args, name) is not None]
    if given:
        raise ValueError(f"--{given[0]} goes with --robustness. Received: --robustness not given")
    result = evaluate(
        args.model, args.dataset, data=args.data, split=args.split, batch_size=args.batch_size, limit=args.limit,
        verbose=not args.json, data_options=options,
    )
    if args.json:
        print(json.dumps(result))
    return 0


def _default_output(model):
    """`RUN/robustness`, or `robustness/` beside a `.keras` file."""
    import os

    folder = os.path.dirname(os.path.abspath(model)) if str(model).endswith(".keras") and os.path.isfile(model) else model
    return os.path.join(folder, "robustness")


def run_robustness(args, options):
    """`mmkeras evaluate RUN --robustness`: curves, summary numbers, and the report folder."""
    import json

    from mmkeras import robustness
    from mmkeras.training.inference import _task, evaluation_examples

    # Every argument is checked before anything is loaded.
    noises = robustness.check_noises(args.noise)
    levels = robustness.DEFAULT_LEVELS if args.levels is None else robustness.parse_levels(args.levels)
    seed = 0 if args.seed is None else args.seed
    if not 0 <= seed < 2**32:
        raise ValueError(f"--seed must be an integer from 0 to 2**32 - 1. Received: --seed {seed}")
    if args.batch_size <= 0:
        raise ValueError(f"--batch-size must be a positive integer. Received: --batch-size {args.batch_size}")
    output = robustness.check_report_target(args.output or _default_output(args.model))
    verbose = not args.json

    net, examples, name, _ = evaluation_examples(
        args.model, args.dataset, data=args.data, split=args.split, limit=args.limit, verbose=verbose, data_options=options,
    )
    baseline_net = None
    if args.baseline is not None:
        baseline_net = _task(args.baseline)
        ours, theirs = net.preprocessor.class_names, baseline_net.preprocessor.class_names
        if ours is not None and theirs is not None and list(ours) != list(theirs):
            raise ValueError(
                "--baseline must answer with the model's classes, so that both are scored on the same labels. "
                f"Received: --baseline {args.baseline} with classes {list(theirs)[:5]}..."
            )
    if verbose:
        print(f"Robustness of {args.model} on {name} {args.split} ({len(examples)} examples):")
    result = robustness.robustness_curves(net, examples, noises, levels, seed=seed, batch_size=args.batch_size, verbose=int(verbose))
    baseline = None
    if baseline_net is not None:
        ran = [noise for curves in result["curves"].values() for noise in curves]
        if verbose:
            print(f"Baseline {args.baseline}:")
        try:
            baseline = robustness.robustness_curves(
                baseline_net, examples, ran, levels, seed=seed, batch_size=args.batch_size, verbose=int(verbose)
            )
        except ValueError as error:
            raise ValueError(f"--baseline {args.baseline} cannot be compared: {error}") from None
    info = {"model": str(args.model), "baseline": args.baseline, "data": f"{name} {args.split}"}
    robustness.write_report(result, output, baseline=baseline, info=info)
    if args.json:
        print(json.dumps({"summary": robustness.summarize(result, baseline), "result": result, "baseline_result": baseline, "output": output}))
    else:
        print(robustness.robustness_table(result, baseline))
        print(f"Wrote robustness.png, robustness.md and robustness.json to {output}")
    return 0
