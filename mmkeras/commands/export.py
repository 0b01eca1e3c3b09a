"""`mmkeras export`: a trained model folder -> a SavedModel serving raw bytes and strings (or .keras).

Example:

    mmkeras export runs/vqa saved_models/vqa/1            # runs/vqa holds model.keras + preprocessor.json
    mmkeras export runs/vqa saved_models/vqa.keras --format keras --overwrite
"""

import os
import sys


def add_parser(subparsers):
    parser = subparsers.add_parser(
        "export",
        help="export a trained model as a SavedModel (raw image bytes + strings in) or .keras",
        description="Export MODEL_DIR (a folder holding model.keras and preprocessor.json, as "
        "`mmkeras train` writes it, or a .keras file) to OUTPUT. The SavedModel's `serving_default` "
        "signature takes encoded image bytes and raw strings; `serve_tensors` takes float images and "
        "token ids. The export is written beside OUTPUT first and moved into place when complete.",
    )
    parser.add_argument("model_dir", metavar="MODEL_DIR", help="folder with model.keras (+ preprocessor.json), or a .keras file")
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
    from mmkeras.export import SERVING_SIGNATURE, TENSORS_SIGNATURE, export_model, load

    source = args.model_dir
    if os.path.isdir(source) and not os.path.exists(os.path.join(source, "model.keras")):
        print(
            f"mmkeras export: error: MODEL_DIR must hold model.keras (and preprocessor.json), as "
            f"`mmkeras train` writes it. Received: {source!r}",
            file=sys.stderr,
        )
        return 2
    try:
        model, preprocessor = load(source, return_preprocessor=True)
        path = export_model(model, args.output, preprocessor=preprocessor, format=args.format, overwrite=args.overwrite)
    except (FileExistsError, ValueError) as error:
        print(f"mmkeras export: error: {error}", file=sys.stderr)
        return 1
    print(f"Exported {model.name!r} to {path} ({args.format}).")
    if args.format == "saved_model":
        print(f"Signatures: {SERVING_SIGNATURE} (encoded image bytes + raw strings), {TENSORS_SIGNATURE} (tensors).")
        print(f"Inspect:    saved_model_cli show --dir {path} --all")
    return 0
