"""Train a tiny zoo model under a tf.distribute strategy, deterministically, with a backup.

A helper of tests/test_distribute.py and benchmarks/distribute.py, using mmkeras' public API
only. Run it again with the same `--backup-dir` after it was killed and it goes on from the backup.

It prints one line per event, flushed, for the test that watches it:
`READY replicas=R`, `RESUME ...` (a backup was found), `BEGIN epoch=E`, `STEP epoch=E step=S`,
`END epoch=E seconds=T`, `DONE iterations=N seconds=T warm_samples_per_s=X`; and writes the final
weights to `--out` (an .npz file; `{task}` in the path becomes the worker's index). With
`--task penalized` it trains the recipe as `custom_task.PenalizedClassifier`, a task with a loss of
its own (`compute_loss`) and a regularization loss.

With `--pause-at E:S` it prints `PAUSED epoch=E step=S` after that step (0-based, after its `STEP`
line) and waits there until it is killed, so a test kills it at a known step rather than wherever
a timer finds it; `--pause-task I` pauses only worker I. Nobody killing it within
`--pause-timeout` seconds, it exits with code 3.

Examples:

    python tests/scripts/train_resumable.py --out w.npz --backup-dir backup --epochs 3
    python tests/scripts/train_resumable.py --out w.npz --backup-dir backup --pause-at 1:2  # then kill it
    python tests/scripts/train_resumable.py --strategy mirrored --logical-devices 2 --out w.npz
    python tests/scripts/train_resumable.py --model s4_multitask --task penalized --last-batch 5 \\
        --out w.npz --history history.json
    TF_CONFIG='{"cluster": {"worker": ["127.0.0.1:2222", "127.0.0.1:2223"]},
                "task": {"type": "worker", "index": 0}}' \\
        python tests/scripts/train_resumable.py --strategy multi_worker --out w{task}.npz
"""

import argparse
import json
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", required=True, help="final weights (.npz); '{task}' becomes the worker index")
    parser.add_argument("--strategy", default="auto", help="a name for mmkeras.distribute.get_strategy")
    parser.add_argument("--logical-devices", type=int, default=1, help="split the CPU into this many devices")
    parser.add_argument("--model", default="s0", help="a zoo recipe; its tiny variant is trained")
    parser.add_argument("--overrides", default="{}", help="JSON recipe arguments put on top of the tiny variant's")
    parser.add_argument("--task", choices=("recipe", "penalized"), default="recipe",
                        help="recipe: the recipe's task; penalized: custom_task.PenalizedClassifier")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--steps", type=int, default=8, help="batches per epoch")
    parser.add_argument("--batch-size", type=int, default=8, help="the global batch size")
    parser.add_argument("--last-batch", type=int, default=None,
                        help="examples in the last batch of an epoch (default: a full batch)")
    parser.add_argument("--backup-dir", default=None)
    parser.add_argument("--save-freq", default="epoch", help="'epoch' or a number of steps")
    parser.add_argument("--loop", choices=("auto", "fit", "custom"), default="auto",
                        help="auto: model.fit, or the custom loop where fit fails")
    parser.add_argument("--step-delay", type=float, default=0.0, help="seconds to sleep after each step")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--losses", default=None, help="write the per-step losses to this JSON file")
    parser.add_argument("--history", default=None, help="write the history (per-epoch logs) to this JSON file")
    parser.add_argument("--quiet-steps", action="store_true", help="no STEP lines (and no per-step callback), for timing")
    parser.add_argument("--pause-at", default=None, metavar="EPOCH:STEP",
                        help="after this step (0-based), print PAUSED and wait until killed")
    parser.add_argument("--pause-task", type=int, default=None, help="only this worker pauses (default: every one)")
    parser.add_argument("--pause-timeout", type=float, default=600.0,
                        help="seconds to wait at --pause-at before giving up (exit code 3)")
    args = parser.parse_args(argv)
    if args.pause_at is not None:
        parts = args.pause_at.split(":")
        if len(parts) != 2 or not all(part.isdigit() for part in parts):
            parser.error(f"--pause-at must be EPOCH:STEP (two integers >= 0); received {args.pause_at!r}")
        args.pause_at = (int(parts[0]), int(parts[1]))
        if args.quiet_steps:
            parser.error("--pause-at needs the per-step callback: drop --quiet-steps")
    return args


def pause_until_killed(epoch, step, timeout):
    """Say where this process stopped, then wait for the signal that ends it."""
    print(f"PAUSED epoch={epoch} step={step}", flush=True)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        time.sleep(0.05)
    print(f"PAUSE TIMEOUT: nobody killed this process within {timeout} s", flush=True)
    os._exit(3)  # no clean-up: the strategy's collectives would wait for the other workers


def main(argv=None):
    args = parse_args(argv)
    import tensorflow as tf

    if args.logical_devices > 1:  # before TensorFlow initialises its devices
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * args.logical_devices)

    import keras
    import numpy as np

    import mmkeras
    from custom_task import penalized_model, random_examples  # next to this script
    from mmkeras import distribute

    strategy = distribute.get_strategy(args.strategy)  # first: multi-worker needs it before any op
    keras.utils.set_random_seed(args.seed)
    tf.config.experimental.enable_op_determinism()
    task = json.loads(os.environ.get("TF_CONFIG", "{}")).get("task", {}).get("index", 0)

    # Data: fixed random examples, no shuffling, so every run sees the same batches in each epoch.
    with strategy.scope():
        if args.task == "penalized":
            model = penalized_model(args.model)
        else:
            from mmkeras.models.recipe import merge_overrides

            model = mmkeras.get_model(args.model, **merge_overrides(mmkeras.get_entry(args.model).tiny, json.loads(args.overrides)))
    n = (args.steps - 1) * args.batch_size + (args.last_batch or args.batch_size)
    x, y = random_examples(model, n, args.seed)
    dataset = distribute.distribute_dataset_options(
        tf.data.Dataset.from_tensor_slices((x, y)).batch(args.batch_size)
    )

    if args.backup_dir and tf.io.gfile.exists(args.backup_dir):
        latest = tf.train.latest_checkpoint(args.backup_dir)
        meta = os.path.join(args.backup_dir, "training_metadata.json")
        if latest:
            print(f"RESUME checkpoint={os.path.basename(latest)}", flush=True)
        elif tf.io.gfile.exists(meta):
            print(f"RESUME {json.loads(open(meta).read())}", flush=True)

    losses = []

    pauses = args.pause_at is not None and args.pause_task in (None, task)

    def on_batch_end(batch, logs):
        losses.append(float(logs["loss"]))
        print(f"STEP epoch={state['epoch']} step={batch}", flush=True)
        if pauses and (state["epoch"], batch) == args.pause_at:
            pause_until_killed(state["epoch"], batch, args.pause_timeout)
        if args.step_delay:
            time.sleep(args.step_delay)

    state = {"epoch": None}

    def on_epoch_begin(epoch, logs):
        state["epoch"] = epoch
        print(f"BEGIN epoch={epoch}", flush=True)

    epoch_seconds = []

    def on_epoch_end(epoch, logs):
        epoch_seconds.append(time.perf_counter() - state["started"])
        print(f"END epoch={epoch} seconds={epoch_seconds[-1]:.4f}", flush=True)

    def on_epoch_begin_timed(epoch, logs):
        on_epoch_begin(epoch, logs)
        state["started"] = time.perf_counter()

    hooks = {"on_epoch_begin": on_epoch_begin_timed, "on_epoch_end": on_epoch_end}
    if not args.quiet_steps:
        hooks["on_train_batch_end"] = on_batch_end
    progress = keras.callbacks.LambdaCallback(**hooks)
    save_freq = args.save_freq if args.save_freq == "epoch" else int(args.save_freq)
    print(f"READY replicas={strategy.num_replicas_in_sync}", flush=True)
    start = time.perf_counter()
    if args.loop == "custom" or (args.loop == "auto" and distribute.needs_custom_loop(strategy)):
        history = distribute.fit_custom_loop(
            model, dataset, epochs=args.epochs, backup_dir=args.backup_dir, verbose=0,
            save_freq=save_freq, callbacks=[progress],
        )
    else:
        history = distribute.fit(
            model, dataset, epochs=args.epochs, backup_dir=args.backup_dir, verbose=0,
            save_freq=save_freq, callbacks=[progress],
        )
    seconds = time.perf_counter() - start
    iterations = int(model.optimizer.iterations.numpy())
    np.savez(args.out.format(task=task), *model.get_weights(), iterations=iterations)
    if args.losses:
        with open(args.losses.format(task=task), "w") as f:
            json.dump(losses, f)
    if args.history:
        with open(args.history.format(task=task), "w") as f:
            json.dump(history, f)
    # Throughput after the first epoch (which includes tracing): global examples per second.
    warm = epoch_seconds[1:]
    warm_rate = n * len(warm) / sum(warm) if warm else float("nan")
    print(f"DONE iterations={iterations} seconds={seconds:.3f} warm_samples_per_s={warm_rate:.2f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
