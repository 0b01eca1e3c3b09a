"""`mmkeras export`: a trained task -> a SavedModel serving raw bytes and strings (or .keras).

Example:

    mmkeras export runs/vqa saved_models/vqa/1            # runs/vqa is a run folder (model.keras)
    mmkeras export runs/vqa saved_models/vqa.keras --format keras --overwrite
"""


def add_parser(subparsers):
    parser = subparsers.add_parser(
        "export",
        help="export a trained model as a SavedModel (raw image bytes + strings in) or .keras",
        description="Export MODEL_DIR (a run folder holding model.keras, as `mmkeras train` writes it, "
        "or a .keras file holding a task) to OUTPUT. The SavedModel's `serving_default` signature takes "
        "encoded image bytes and raw strings; `serve_tensors` takes float images and token ids. The "
        "export is written beside OUTPUT first and moved into place when complete. A run folder written "
        "by mmkeras 0.1 (a plain model, preprocessor.json, metrics.json) is exported with the head its "
        "metrics.json records.",
    )
    parser.add_argument("model_dir", metavar="MODEL_DIR", help="a run folder holding model.keras, or a .keras file")
    parser.add_argument(
        "output",
        metavar="OUTPUT",
        nargs="?",
        default=None,
        help="where to write (a folder; for --format keras a .keras file or a folder). "
        "Defaults to saved_models/<model name>",
    )
    parser.add_argument("--format", choices=("saved_model", "keras"), default="saved_model", help="default: saved_model")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing export at OUTPUT once the new one is complete")
    parser.set_defaults(func=run)


def run(args):
    from mmkeras.export import SERVING_SIGNATURE, TENSORS_SIGNATURE, export_model
    from mmkeras.training import load_run

    # Errors (a bad MODEL_DIR, an existing OUTPUT) are printed by `mmkeras.cli.main`, exit code 2.
    model = load_run(args.model_dir)  # a 0.1 run folder: ModelTask.from_v0_1_run
    path = export_model(model, args.output, format=args.format, overwrite=args.overwrite)
    print(f"Exported {model.name!r} to {path} ({args.format}).")
    if args.format == "saved_model":
        print(f"Signatures: {SERVING_SIGNATURE} (encoded image bytes + raw strings), {TENSORS_SIGNATURE} (tensors).")
        print(f"Inspect:    saved_model_cli show --dir {path} --all")
    return 0
