"""`mmkeras train`: train a zoo recipe on a built-in dataset or your own table, test it, save and export it."""

import argparse


def _shape(text):
    try:
        values = tuple(int(v) for v in text.replace("x", ",").split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected HEIGHT,WIDTH,CHANNELS such as 64,64,3, got {text!r}") from None
    if len(values) != 3 or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected HEIGHT,WIDTH,CHANNELS such as 64,64,3, got {text!r}")
    if values[2] not in (1, 3):
        raise argparse.ArgumentTypeError(f"CHANNELS must be 1 (grey) or 3 (RGB), got {text!r}")
    return values


def add_parser(subparsers):
    from mmkeras.defaults import DEFAULT_DATASET, DEFAULT_MODEL, IMAGE_STORAGES, PRECISIONS, TASKS

    parser = subparsers.add_parser(
        "train",
        help="train a model on a built-in dataset or your own table (default: the VQA recipe on easy-VQA)",
        description=(
            "Train a zoo recipe on a built-in offline dataset or on your own data, with a progress\n"
            "bar, and print its test accuracy. With no arguments: the default recipe `vqa` on easy-VQA.\n\n"
            "Your own data (--data): a CSV or JSON-lines table with one row per example: an image\n"
            "file (a path relative to the table's folder, or absolute), a text and a label; or a\n"
            "folder of images by class (DIR/<class>/<image>, with --caption as every example's text).\n"
            "The head comes from the labels: two values -> binary; strings or a few integers ->\n"
            "multiclass; lists (JSON lines, or --label-separator) -> multilabel; other numbers ->\n"
            "regression (--task overrides). Without --test-data / --validation-data, a seeded share\n"
            "of the table's images is held out (--test-split, --validation-split).\n\n"
            "Writes into the output folder (default saved_models/<model>-<dataset or table name>):\n"
            "  model.keras         the trained model, with its preprocessor (image shape,\n"
            "                      vocabulary, class names) inside\n"
            "  history.png         training curves (loss, accuracy; train and validation)\n"
            "  metrics.json        test accuracy, parameters, wall time, settings, versions\n"
            "  saved_model/        a SavedModel that takes raw image bytes and raw strings\n\n"
            "Every input is checked before training starts, and the folder is written under a\n"
            "temporary name and renamed at the end: a failed run leaves nothing half-written."
        ),
        epilog=(
            "examples:\n"
            "  mmkeras train\n"
            "  mmkeras train --dataset fashion_mnist_captions --epochs 3\n"
            "  mmkeras train --model fusion_gated --precision float32 --output runs/gated\n"
            "  mmkeras train --data train.csv --test-data test.csv --image-shape 50,200,3\n"
            "  mmkeras train --data photos/ --caption 'a photo' --model s1\n"
            "  mmkeras train --epochs 1 --limit 500 --max-steps 5 --no-export   # a smoke test"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--model", default=DEFAULT_MODEL, help=f"zoo recipe (see `mmkeras list`); default {DEFAULT_MODEL}")
    parser.add_argument(
        "--dataset",
        default=None,
        help="easy_vqa (13 answers), easy_vqa_yes_no (binary), fashion_mnist_captions; for a dual encoder "
        "(--model clip_small) fashion_mnist_descriptions or easy_vqa_descriptions; "
        f"default {DEFAULT_DATASET} (unless --data is given)",
    )
    own = parser.add_argument_group("your own data")
    own.add_argument("--data", default=None, help="training table (.csv, .jsonl, .parquet with pandas) or image folder by class")
    own.add_argument("--test-data", default=None, help="test table (default: --test-split of --data's images)")
    own.add_argument("--validation-data", default=None, help="validation table (default: --validation-split of --data's images)")
    own.add_argument("--image-column", default="image", help="column of image paths; default image")
    own.add_argument("--text-column", default="text", help="column of texts; default text")
    own.add_argument("--label-column", default="label", help="column of labels; default label")
    own.add_argument("--task", default=None, choices=TASKS,
                     help="the head (default: inferred from the labels)")
    own.add_argument("--class-names", default=None, help="classes in order, comma-separated (binary: negative first)")
    own.add_argument("--label-separator", default=None, help="splits a label cell into several labels (multilabel)")
    own.add_argument("--caption", default="a photo", help="text of every example of an image folder; {file} is the file name")
    own.add_argument("--test-split", type=float, default=0.1, help="share of --data's images held out for testing; default 0.1")
    own.add_argument("--image-storage", default="auto", choices=IMAGE_STORAGES,
                     help="where decoded images are kept; auto = on disk when they exceed a quarter of the memory")
    parser.add_argument("--epochs", type=int, default=None, help="epochs (default: the recipe's tuned value)")
    parser.add_argument(
        "--batch-size", type=int, default=None, help="global batch size (default: the recipe's tuned value)"
    )
    parser.add_argument(
        "--learning-rate", type=float, default=None, help="peak learning rate of the warm-up + cosine schedule"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of weights, shuffling and the validation draw; default 0")
    parser.add_argument(
        "--deterministic", action="store_true",
        help="TensorFlow op determinism on: the same seed gives the same weights and metrics, bit for bit",
    )
    parser.add_argument(
        "--output", default=None, help="output folder (default saved_models/<model>-<dataset or table name>); an earlier run there is replaced"
    )
    parser.add_argument(
        "--precision",
        default="auto",
        choices=PRECISIONS,
        help="numeric precision; auto = bfloat16 where the CPU (AVX512_BF16/AMX) or GPU supports it, else float32",
    )
    parser.add_argument(
        "--strategy",
        default="auto",
        help="tf.distribute strategy: auto, mirrored, multi_worker, one_device or tpu (see mmkeras.distribute); "
        "default auto. --batch-size stays the global batch size",
    )
    parser.add_argument(
        "--backup-dir", default=None, help="folder for BackupAndRestore state, so an interrupted run resumes"
    )
    parser.add_argument("--validation-split", type=float, default=0.1, help="share of training images held out; default 0.1")
    parser.add_argument(
        "--modality-dropout", type=float, default=None,
        help="drop the image or the text of a training example with this probability, so the model also answers "
        "with one of them absent (see docs/robustness.md); default off",
    )
    parser.add_argument("--image-shape", type=_shape, default=None, help="image shape H,W,C the model takes (default: the recipe's tuned shape, else the dataset's)")
    parser.add_argument("--max-steps", type=int, default=None, help="at most this many training steps per epoch (smoke tests)")
    parser.add_argument("--limit", type=int, default=None, help="at most this many examples per split (smoke tests)")
    parser.add_argument(
        "--tiny", action="store_true", help="build the recipe's tiny variant (its registered small overrides), for smoke tests"
    )
    parser.add_argument("--no-export", dest="export", action="store_false", help="skip the SavedModel export")
    parser.add_argument("--quiet", action="store_true", help="no progress bars: print only the test accuracy")
    parser.add_argument("--log", action="store_true", help="one line per epoch instead of progress bars (for log files)")
    parser.set_defaults(func=run)


def run(args):
    import mmkeras
    from mmkeras.training import train
    from mmkeras.training.train import headline

    overrides = None
    if args.tiny:
        overrides = {
            k: v
            for k, v in mmkeras.get_entry(args.model).tiny.items()
            if k not in ("image_shape", "sequence_length", "vocab_size")
        }
    if args.modality_dropout is not None:
        overrides = {**(overrides or {}), "modality_dropout": args.modality_dropout}
    data_options = None
    if args.data is not None:
        data_options = {
            "image_column": args.image_column, "text_column": args.text_column, "label_column": args.label_column,
            "label_separator": args.label_separator, "caption": args.caption, "test_split": args.test_split,
            "class_names": None if args.class_names is None else [c.strip() for c in args.class_names.split(",")],
        }
    else:
        for flag in ("test_data", "validation_data", "task", "class_names", "label_separator"):
            if getattr(args, flag) is not None:
                raise ValueError(f"--{flag.replace('_', '-')} goes with --data (your own table). Received: --data not given")
    result = train(
        args.model,
        args.dataset,
        data=args.data,
        test_data=args.test_data,
        validation_data=args.validation_data,
        task=args.task,
        image_storage=args.image_storage,
        data_options=data_options,
        epochs=args.epochs,
        batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        seed=args.seed,
        output=args.output,
        precision=args.precision,
        strategy=args.strategy,
        backup_dir=args.backup_dir,
        max_steps=args.max_steps,
        limit=args.limit,
        validation_split=args.validation_split,
        image_shape=args.image_shape,
        model_overrides=overrides,
        export=args.export,
        deterministic=args.deterministic,
        verbose=0 if args.quiet else 2 if args.log else 1,
    )
    if args.quiet:
        print(headline(result.metrics) + (f"  (saved to {result.output})" if result.output else ""))
    return 0
