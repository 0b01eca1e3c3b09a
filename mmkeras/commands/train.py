"""`mmkeras train`: train a zoo recipe on a built-in dataset, test it, save and export it."""

import argparse


def _shape(text):
    try:
        values = tuple(int(v) for v in text.replace("x", ",").split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected HEIGHT,WIDTH,CHANNELS such as 64,64,3, got {text!r}") from None
    if len(values) != 3:
        raise argparse.ArgumentTypeError(f"expected HEIGHT,WIDTH,CHANNELS such as 64,64,3, got {text!r}")
    return values


def add_parser(subparsers):
    from mmkeras.training import DEFAULT_DATASET, DEFAULT_MODEL

    parser = subparsers.add_parser(
        "train",
        help="train a model on a built-in dataset (default: the VQA recipe on easy-VQA)",
        description=(
            "Train a zoo recipe on a built-in offline dataset, with a progress bar, and print its\n"
            "test accuracy. With no arguments: the default recipe `vqa` on easy-VQA.\n\n"
            "Writes into the output folder (default saved_models/<model>-<dataset>):\n"
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
            "  mmkeras train --epochs 1 --limit 500 --max-steps 5 --no-export   # a smoke test"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--model", default=DEFAULT_MODEL, help=f"zoo recipe (see `mmkeras list`); default {DEFAULT_MODEL}")
    parser.add_argument(
        "--dataset",
        default=DEFAULT_DATASET,
        help="easy_vqa (13 answers), easy_vqa_yes_no (binary) or fashion_mnist_captions; "
        f"default {DEFAULT_DATASET}",
    )
    parser.add_argument("--epochs", type=int, default=None, help="epochs (default: the recipe's tuned value)")
    parser.add_argument(
        "--batch-size", type=int, default=None, help="global batch size (default: the recipe's tuned value)"
    )
    parser.add_argument(
        "--learning-rate", type=float, default=None, help="peak learning rate of the warm-up + cosine schedule"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of weights, shuffling and the validation draw; default 0")
    parser.add_argument(
        "--output", default=None, help="output folder (default saved_models/<model>-<dataset>); an earlier run there is replaced"
    )
    parser.add_argument(
        "--precision",
        default="auto",
        choices=["auto", "float32", "mixed_bfloat16", "mixed_float16"],
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
    parser.add_argument("--image-shape", type=_shape, default=None, help="image shape H,W,C the model takes (default: the recipe's tuned shape, else the dataset's)")
    parser.add_argument("--max-steps", type=int, default=None, help="at most this many training steps per epoch (smoke tests)")
    parser.add_argument("--limit", type=int, default=None, help="at most this many examples per split (smoke tests)")
    parser.add_argument(
        "--tiny", action="store_true", help="build the recipe's tiny variant (its registered small overrides), for smoke tests"
    )
    parser.add_argument("--no-export", dest="export", action="store_false", help="skip the SavedModel export")
    parser.add_argument("--quiet", action="store_true", help="no progress bars: print only the test accuracy")
    parser.set_defaults(func=run)


def run(args):
    import mmkeras
    from mmkeras.training import train

    overrides = None
    if args.tiny:
        overrides = {
            k: v
            for k, v in mmkeras.get_entry(args.model).tiny.items()
            if k not in ("image_shape", "sequence_length", "vocab_size")
        }
    result = train(
        args.model,
        args.dataset,
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
        verbose=0 if args.quiet else 1,
    )
    if args.quiet:
        print(f"Test accuracy: {result.metrics['test_accuracy']:.4f}" + (f"  (saved to {result.output})" if result.output else ""))
    return 0
