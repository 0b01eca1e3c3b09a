"""Training curves and the learning-rate schedule `train` uses."""

import keras


def plot_history(history, path, title=None):
    """Save the training curves (loss and accuracy per epoch, train and validation) as a PNG.

    Uses matplotlib's Agg canvas directly, so it works headless and leaves pyplot's backend alone.

    Example:

    >>> import os
    >>> plot_history({"loss": [0.9, 0.4], "val_loss": [0.8, 0.5]}, "history.png")
    >>> os.path.getsize("history.png") > 0
    True
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    groups = [k for k in ("loss", "accuracy") if k in history] or [
        k for k in history if not k.startswith("val_")
    ][:2]
    figure = Figure(figsize=(5 * max(1, len(groups)), 3.6), dpi=100)
    FigureCanvasAgg(figure)
    for i, key in enumerate(groups, start=1):
        axes = figure.add_subplot(1, len(groups), i)
        for name, label in ((key, "train"), (f"val_{key}", "validation")):
            values = history.get(name)
            if values:
                axes.plot(range(1, len(values) + 1), values, marker="o", label=label)
        if key == "loss" and all(v > 0 for name in (key, f"val_{key}") for v in history.get(name, [])):
            axes.set_yscale("log")
        axes.set_xlabel("epoch")
        axes.set_ylabel(key)
        axes.grid(alpha=0.3)
        axes.legend()
    if title:
        figure.suptitle(title)
    figure.tight_layout()
    figure.savefig(path)


def learning_rate_schedule(learning_rate, total_steps, warmup=0.05):
    """Linear warm-up to `learning_rate` over `warmup` of the steps, then cosine decay to 0.

    Example:

    >>> schedule = learning_rate_schedule(3e-3, total_steps=1000)
    >>> round(float(schedule(50)), 6)
    0.003
    """
    warmup_steps = int(total_steps * warmup)
    return keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=learning_rate / 10 if warmup_steps else learning_rate,
        decay_steps=max(1, total_steps - warmup_steps),
        alpha=0.0,
        warmup_target=learning_rate if warmup_steps else None,
        warmup_steps=warmup_steps,
    )
