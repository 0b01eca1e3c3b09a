"""`mmkeras evaluate`: test a trained run folder on a built-in dataset or your own table."""

import argparse


def add_parser(subparsers):
    parser = subparsers.add_parser(
        "evaluate",
        help="evaluate a trained model folder on a dataset's test split",
        description=(
            "Load a folder written by `mmkeras train` (its model.keras holds the whole model) and print\n"
            "its loss and accuracy on the official test split of the dataset it was trained on\n"
            "(or the one named), plus the 10-way caption ranking accuracy for Fashion-MNIST. A run\n"
            "trained on your own tables reads its test table again (or draws the same held-out share\n"
            "of its training table); --data evaluates on another table."
        ),
        epilog="examples:\n  mmkeras evaluate saved_models/vqa-easy_vqa\n  mmkeras evaluate saved_models/vqa-train --data more.csv",
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
    parser.set_defaults(func=run)


def run(args):
    import json

    from mmkeras.training import evaluate

    options = {k: getattr(args, k) for k in ("image_column", "text_column", "label_column", "label_separator", "caption")}
    options = {k: v for k, v in options.items() if v is not None}
    if options and args.data is None:
        raise ValueError(f"--{next(iter(options)).replace('_', '-')} goes with --data. Received: --data not given")
    result = evaluate(
        args.model, args.dataset, data=args.data, split=args.split, batch_size=args.batch_size, limit=args.limit,
        verbose=not args.json, data_options=options or None,
    )
    if args.json:
        print(json.dumps(result))
    return 0
