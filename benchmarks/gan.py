"""The table of docs/gan.md: `text_gan` on Fashion-MNIST, judged by a classifier of real images.

1. Trains a **reference classifier** (a small CNN: two conv + pool blocks, Dense 128, softmax 10)
   on the real training images of `fashion_mnist_descriptions` for a few epochs, and measures
   its accuracy on the 10,000 real test images.
2. Trains `text_gan` with plain `model.fit` on the training pairs (image, description; the class
   labels only keep same-class texts out of the mismatched pairs), writing a sample grid (one
   row per class, fixed noise) after every epoch, and times it.
3. Draws one image for each of the 10,000 **test descriptions** (noise seed 0) and reports the
   **conditional accuracy** (the share the classifier puts in the class of its description) and
   the per-class **diversity** (mean L2 distance between two images of a class, pixels in [0, 1]),
   beside two baselines through the same classifier: uniform random noise images and the real
   test images.

Prints a Markdown table and the machine line, and writes everything to `--results` (JSON).

Usage:
    python benchmarks/gan.py                       # the full setting (about 15 minutes here)
    python benchmarks/gan.py --epochs 1 --limit 2000 --results /tmp/gan.json   # a smoke run
    python benchmarks/gan.py --overrides '{"spectral_norm": true}'             # a variant
"""

import argparse
import json
import os
import platform
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from machine_info import cpu_name  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATASET = "fashion_mnist_descriptions"


def reference_classifier(train, test, epochs, seed):
    """A small CNN trained on real images: `(model, test accuracy, seconds)`."""
    import keras

    keras.utils.set_random_seed(seed)
    model = keras.Sequential([
        keras.Input((28, 28, 1)),
        keras.layers.Conv2D(32, 3, activation="relu", padding="same"),
        keras.layers.MaxPooling2D(),
        keras.layers.Conv2D(64, 3, activation="relu", padding="same"),
        keras.layers.MaxPooling2D(),
        keras.layers.Flatten(),
        keras.layers.Dropout(0.3),
        keras.layers.Dense(128, activation="relu"),
        keras.layers.Dense(10, activation="softmax"),
    ], name="reference_classifier")
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    started = time.perf_counter()
    model.fit(train[0], train[1], batch_size=128, epochs=epochs, verbose=0, shuffle=True)
    seconds = time.perf_counter() - started
    accuracy = float(model.evaluate(test[0], test[1], batch_size=512, verbose=0)[1])
    return model, accuracy, seconds


def images_and_labels(examples):
    """Float images in [0, 1] `(n, 28, 28, 1)` and int labels of an `Examples`."""
    images = np.asarray(examples.example_images())
    return images.astype("float32") / (255.0 if images.dtype == np.uint8 else 1.0), np.asarray(examples.labels)


class EpochAccuracy:
    """A callback factory: the conditional accuracy on the first `n` test descriptions after each
    epoch (its own time is kept apart and taken out of the training time)."""

    def __new__(cls, classifier, texts, labels, n=2000):
        import keras

        from mmkeras.tasks.gan import conditional_accuracy

        class Callback(keras.callbacks.Callback):
            def __init__(self):
                super().__init__()
                self.accuracies, self.seconds = [], 0.0

            def on_epoch_end(self, epoch, logs=None):
                started = time.perf_counter()
                self.accuracies.append(conditional_accuracy(self.model, classifier, texts[:n], labels[:n], seed=1))
                self.seconds += time.perf_counter() - started
                print(f"epoch {epoch + 1}: conditional accuracy on {min(n, len(texts))} test descriptions "
                      f"{self.accuracies[-1]:.4f}", flush=True)

        return Callback()


def mean_diversity(per_class):
    return float(np.mean(list(per_class.values())))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=None, help="GAN epochs (default: the recipe's for the dataset)")
    parser.add_argument("--batch-size", type=int, default=None, help="GAN batch size (default: the recipe's)")
    parser.add_argument("--classifier-epochs", type=int, default=3)
    parser.add_argument("--classifier", default=None,
                        help="a .keras file: load the reference classifier from it if it exists, else train and save it there")
    parser.add_argument("--overrides", default="{}", help="JSON dict of text_gan arguments (a variant)")
    parser.add_argument("--limit", type=int, default=None, help="at most this many training pairs (smoke runs)")
    parser.add_argument("--precision", default="float32", help="the Keras dtype policy (float32 or mixed_bfloat16)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--grids", default=None, help="folder for the per-epoch sample grids (PNG)")
    parser.add_argument("--results", default=os.path.join(ROOT, "benchmarks", "results", "gan.json"))
    args = parser.parse_args(argv)

    import keras

    import mmkeras
    from mmkeras.preprocessing import Preprocessor, text_vectorizer
    from mmkeras.tasks.gan import SampleGrid, class_diversity, conditional_accuracy, image_diversity

    load = os.getloadavg()
    splits = mmkeras.data.load_dataset(DATASET, seed=args.seed, limit=args.limit, verbose=False)
    train_x, train_y = images_and_labels(splits.train)
    test_x, test_y = images_and_labels(splits.test)
    if args.classifier and os.path.exists(args.classifier):  # a variant judged by the same classifier
        classifier, classifier_seconds = keras.saving.load_model(args.classifier), 0.0
        classifier_accuracy = float(classifier.evaluate(test_x, test_y, batch_size=512, verbose=0)[1])
    else:
        classifier, classifier_accuracy, classifier_seconds = reference_classifier(
            (train_x, train_y), (test_x, test_y), args.classifier_epochs, args.seed)
        if args.classifier:
            classifier.save(args.classifier)
    print(f"reference classifier: test accuracy {classifier_accuracy:.4f} ({classifier_seconds:.0f} s)", flush=True)

    entry = mmkeras.get_entry("text_gan")
    defaults = entry.training_defaults(DATASET)
    epochs, batch_size = args.epochs or defaults["epochs"], args.batch_size or defaults["batch_size"]
    overrides = json.loads(args.overrides)
    keras.mixed_precision.set_global_policy(args.precision)
    keras.utils.set_random_seed(args.seed)
    vectorizer = text_vectorizer(splits.train.texts, vocab_size=defaults["vocab_size"], sequence_length=splits.sequence_length)
    preprocessor = Preprocessor.from_vectorizer(vectorizer, image_shape=(28, 28, 1), class_names=splits.class_names)
    gan = mmkeras.get_model("text_gan", preprocessor=preprocessor, vocab_size=preprocessor.vocab_size,
                            sequence_length=preprocessor.sequence_length, seed=args.seed, **overrides)
    grid = SampleGrid(gan.sample_texts(), folder=args.grids)
    tracker = EpochAccuracy(classifier, list(splits.test.texts), test_y)
    data = splits.train.to_dataset(task=gan, batch_size=batch_size, shuffle=True, seed=args.seed)
    started = time.perf_counter()
    history = gan.fit(data, epochs=epochs, verbose=2, callbacks=[grid, tracker])
    train_seconds = time.perf_counter() - started - tracker.seconds  # the grids' rendering (about 0.1 s) stays in
    keras.mixed_precision.set_global_policy("float32")

    texts = list(splits.test.texts)
    generated_accuracy = conditional_accuracy(gan, classifier, texts, test_y, seed=0)
    generated_diversity = class_diversity(gan, texts, test_y, seed=0)
    rng = np.random.default_rng(args.seed)
    noise_images = rng.random(test_x.shape, dtype=np.float32)
    noise_accuracy = float(np.mean(classifier.predict(noise_images, batch_size=512, verbose=0).argmax(1) == test_y))
    real_diversity, noise_diversity = image_diversity(test_x, test_y), image_diversity(noise_images, test_y)

    rows = [
        ("`text_gan` samples for the test descriptions", generated_accuracy, mean_diversity(generated_diversity),
         f"{epochs} epochs x batch {batch_size}, {train_seconds:.0f} s ({args.precision})"),
        ("uniform random images (baseline)", noise_accuracy, mean_diversity(noise_diversity), "none"),
        ("real test images (the classifier's own accuracy)", classifier_accuracy, mean_diversity(real_diversity),
         f"classifier: {args.classifier_epochs} epochs, {classifier_seconds:.0f} s"),
    ]
    lines = ["| images | conditional accuracy | diversity (mean L2 within a class) | training |", "|---|---:|---:|---|"]
    lines += [f"| {name} | {accuracy:.4f} | {diversity:.2f} | {extra} |" for name, accuracy, diversity, extra in rows]
    machine = f"{cpu_name()}, {os.cpu_count()} cores, {platform.platform()}; load average at start {load[0]:.2f}"
    print("\n".join(lines))
    print("\nper-class diversity, generated / real: " + ", ".join(
        f"{splits.class_names[c]} {generated_diversity.get(c, 0):.2f}/{real_diversity[c]:.2f}" for c in sorted(real_diversity)))
    print(f"Machine: {machine}")

    results = {
        "command": "python benchmarks/gan.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "settings": {"epochs": epochs, "batch_size": batch_size, "overrides": overrides, "precision": args.precision,
                     "limit": args.limit, "seed": args.seed, "classifier_epochs": args.classifier_epochs},
        "parameters": int(gan.count_params()),
        "train_seconds": round(train_seconds, 1),
        "history": {k: [float(v) for v in values] for k, values in history.history.items()},
        "conditional_accuracy_by_epoch": tracker.accuracies,
        "conditional_accuracy": {"generated": generated_accuracy, "uniform_noise": noise_accuracy, "real": classifier_accuracy},
        "diversity": {"generated": {splits.class_names[c]: v for c, v in generated_diversity.items()},
                      "real": {splits.class_names[c]: v for c, v in real_diversity.items()},
                      "uniform_noise_mean": mean_diversity(noise_diversity)},
        "classifier_seconds": round(classifier_seconds, 1),
        "machine": machine,
        "versions": {"keras": keras.__version__, "mmkeras": mmkeras.__version__},
        "table": "\n".join(lines),
    }
    os.makedirs(os.path.dirname(os.path.abspath(args.results)), exist_ok=True)
    with open(args.results, "w", encoding="utf-8") as f:
        json.dump(results, f, indent=2)
    print(f"Results written to {args.results}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
