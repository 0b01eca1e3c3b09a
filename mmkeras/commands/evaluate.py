"""`mmkeras evaluate`: test a trained run folder on a built-in dataset."""

import argparse


def add_parser(subparsers):
    parser = subparsers.add_parser(
        "evaluate",
        help="evaluate a trained model folder on a dataset's test split",
        description=(
            "Load a folder written by `mmkeras train` (its model.keras holds the whole model) and print\n"
            "its loss and accuracy on the official test split of the dataset it was trained on\n"
            "(or the one named), plus the 10-way caption ranking accuracy for Fashion-MNIST."
        ),
        epilog="example:\n  mmkeras evaluate saved_models/vqa-easy_vqa",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("model", help="a folder written by `mmkeras train`")
    parser.add_argument("--dataset", default=None, help="dataset name (default: the one the model trained on)")
    parser.add_argument("--split", default="test", choices=["test", "validation"], help="default test")
    parser.add_argument("--batch-size", type=int, default=256, help="default 256")
    parser.add_argument("--limit", type=int, default=None, help="at most this many examples")
    parser.add_argument("--json", action="store_true", help="print the metrics as JSON")
    parser.set_defaults(func=run)


def run(args):
    import json

    from mmkeras.training import evaluate

    result = evaluate(
        args.model, args.dataset, split=args.split, batch_size=args.batch_size, limit=args.limit, verbose=not args.json
    )
    if args.json:
        print(json.dumps(result))
    return 0
