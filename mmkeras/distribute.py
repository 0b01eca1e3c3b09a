"""Training on tf.distribute: strategy selection, pipelines under a strategy, a custom loop.

TensorFlow backend only (tf.distribute is TensorFlow's engine).

Batch sizes: every dataset given to `fit`, `evaluate`, `predict` or `fit_custom_loop` under a
strategy is batched with the **global** batch size, the number of examples one training step
consumes across all replicas. tf.distribute splits each global batch into
`strategy.num_replicas_in_sync` per-replica batches. To keep the per-replica (per-device) batch
size of a one-device run, multiply it: `global_batch_size(32, strategy)`. Losses are averaged
over the global batch, so a step on 2 replicas x 16 examples computes the same gradient as a step
on 1 replica x 32 examples.

Which training path: `model.fit` (with `keras.callbacks.BackupAndRestore`) under the default,
one-device, mirrored and TPU strategies; `fit_custom_loop` under `MultiWorkerMirroredStrategy`,
where Keras 3.15's `fit` fails (`needs_custom_loop`). `fit` below picks the path for you.

Example:

>>> import mmkeras
>>> from mmkeras import distribute
>>> strategy = distribute.get_strategy("auto")
>>> with strategy.scope():
...     model = mmkeras.get_model("s0", **mmkeras.get_entry("s0").tiny)
>>> distribute.needs_custom_loop(strategy)
False
"""

import json
import os

import keras
import numpy as np
import tensorflow as tf

from mmkeras.validation import check_one_of, check_positive_int

STRATEGIES = ("auto", "mirrored", "multi_worker", "one_device", "tpu")


def _cannot_start(name, why):
    return ValueError(
        f"`strategy` must be one of {list(STRATEGIES)} and able to start on this machine; "
        f"{name!r} cannot: {why}. Received: strategy={name!r}"
    )


def _local_devices():
    gpus = tf.config.list_logical_devices("GPU")
    cpus = tf.config.list_logical_devices("CPU")
    return [d.name for d in gpus], [d.name for d in cpus]


def _check_tf_config():
    """Parse and check `TF_CONFIG` for MultiWorkerMirroredStrategy; return the dict."""
    raw = os.environ.get("TF_CONFIG")
    example = (
        'e.g. TF_CONFIG=\'{"cluster": {"worker": ["host1:12345", "host2:12345"]}, '
        '"task": {"type": "worker", "index": 0}}\''
    )
    if not raw:
        raise _cannot_start("multi_worker", f"the environment variable TF_CONFIG is not set ({example})")
    try:
        config = json.loads(raw)
    except json.JSONDecodeError as error:
        raise _cannot_start("multi_worker", f"TF_CONFIG is not valid JSON ({error}); {example}") from None
    cluster = config.get("cluster") if isinstance(config, dict) else None
    task = config.get("task") if isinstance(config, dict) else None
    if not isinstance(cluster, dict) or not any(cluster.get(k) for k in ("worker", "chief")):
        raise _cannot_start("multi_worker", f"TF_CONFIG has no 'cluster' with 'worker' (or 'chief') addresses; {example}")
    if not isinstance(task, dict) or "type" not in task or "index" not in task:
        raise _cannot_start("multi_worker", f"TF_CONFIG has no 'task' with 'type' and 'index'; {example}")
    addresses = cluster.get(task["type"])
    if not isinstance(addresses, list) or not isinstance(task["index"], int) or not 0 <= task["index"] < len(addresses):
        raise _cannot_start(
            "multi_worker",
            f"TF_CONFIG's task {task!r} is not in its cluster {cluster!r}",
        )
    return config


def get_strategy(name="auto"):
    """Return a `tf.distribute.Strategy` by name.

    Build and compile the model inside `strategy.scope()`; mmkeras builders never take a strategy.

    Args:
        name: str, one of:
            - `"auto"` (default): `MirroredStrategy` over all local GPUs when there is more than
              one, otherwise the default strategy (one device, no distribution).
            - `"mirrored"`: `MirroredStrategy` over all local GPUs; on a machine without GPUs,
              over all logical CPU devices (one replica per device, see
              `tf.config.set_logical_device_configuration`).
            - `"multi_worker"`: `MultiWorkerMirroredStrategy`, configured through the `TF_CONFIG`
              environment variable (one process per worker; create the strategy first thing in the
              program). Train with `fit_custom_loop` (see `needs_custom_loop`).
            - `"one_device"`: `OneDeviceStrategy` on the first GPU, or the CPU without one.
            - `"tpu"`: `TPUStrategy` on the TPU found by `TPUClusterResolver` (Cloud TPU VM or
              the `TPU_NAME` environment variable).

    Returns:
        A `tf.distribute.Strategy`.

    Raises:
        ValueError: for an unknown name, or a strategy that cannot start here (no TPU, no or an
            invalid `TF_CONFIG`, collective ops already initialised, ...).

    Example:

    >>> strategy = get_strategy("mirrored")
    >>> with strategy.scope():
    ...     model = mmkeras.get_model("s0", **mmkeras.get_entry("s0").tiny)
    >>> strategy.num_replicas_in_sync  # 1 on a plain CPU machine
    1
    """
    check_one_of("strategy", name, STRATEGIES)
    if name == "auto":
        gpus, _ = _local_devices()
        if len(gpus) > 1:
            return tf.distribute.MirroredStrategy(gpus)
        return tf.distribute.get_strategy()
    if name == "mirrored":
        gpus, cpus = _local_devices()
        try:
            return tf.distribute.MirroredStrategy(gpus or cpus)
        except (RuntimeError, ValueError) as error:
            raise _cannot_start(name, error) from error
    if name == "one_device":
        gpus, cpus = _local_devices()
        return tf.distribute.OneDeviceStrategy((gpus or cpus)[0])
    if name == "multi_worker":
        _check_tf_config()
        try:
            return tf.distribute.MultiWorkerMirroredStrategy()
        except (RuntimeError, ValueError, tf.errors.OpError) as error:
            raise _cannot_start(
                name,
                f"{error} (create the strategy at the very start of the program, before any other "
                "TensorFlow op)",
            ) from error
    # name == "tpu"
    try:
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver()
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
        return tf.distribute.TPUStrategy(resolver)
    except (RuntimeError, ValueError, tf.errors.OpError) as error:
        raise _cannot_start(name, f"no TPU found ({str(error).splitlines()[0] if str(error) else type(error).__name__})") from error


def needs_custom_loop(strategy):
    """True when `model.fit` cannot train under `strategy`, so `fit_custom_loop` must.

    That is `MultiWorkerMirroredStrategy`: with Keras 3.15 and TensorFlow 2.21, `fit` fails
    inside Keras' TensorFlow trainer (it reduces a per-replica batch eagerly: "Attempt to convert
    a value (PerReplica:...) to a Tensor"; keras-team/keras#20585). The default, one-device,
    mirrored and TPU strategies train with `fit`.

    Example:

    >>> needs_custom_loop(tf.distribute.get_strategy())
    False
    """
    if not isinstance(strategy, tf.distribute.Strategy):
        raise ValueError(f"`strategy` must be a tf.distribute.Strategy. Received: strategy={strategy!r}")
    multi_worker = (tf.distribute.MultiWorkerMirroredStrategy, tf.distribute.experimental.MultiWorkerMirroredStrategy)
    return isinstance(strategy, multi_worker)


# --------------------------------------------------------------------------------------------
# Pipelines under a strategy.

_SHARD_POLICIES = {
    "data": tf.data.experimental.AutoShardPolicy.DATA,
    "file": tf.data.experimental.AutoShardPolicy.FILE,
    "auto": tf.data.experimental.AutoShardPolicy.AUTO,
    "off": tf.data.experimental.AutoShardPolicy.OFF,
}


def global_batch_size(per_replica_batch_size, strategy=None):
    """The global batch size that gives each replica `per_replica_batch_size` examples.

    Args:
        per_replica_batch_size: int, examples per replica (per device) and step.
        strategy: a `tf.distribute.Strategy`, or None for the current one. Defaults to `None`.

    Example:

    >>> global_batch_size(32, tf.distribute.get_strategy())
    32
    """
    check_positive_int("per_replica_batch_size", per_replica_batch_size)
    strategy = strategy or tf.distribute.get_strategy()
    return per_replica_batch_size * strategy.num_replicas_in_sync


def distribute_dataset_options(dataset, policy="data"):
    """`dataset` with the auto-shard policy set for a multi-worker strategy.

    With `"data"` (the default), every worker reads the whole pipeline and keeps its own share of
    each global batch, so no two workers train on the same examples whatever the source (arrays,
    generators or files). `"file"` shards by input file instead (cheaper, but needs at least as
    many files as workers); `"off"` lets every worker read everything. Single-worker strategies
    ignore the policy. The dataset must be batched with the global batch size.

    Args:
        dataset: a `tf.data.Dataset`.
        policy: str, one of `"data"`, `"file"`, `"auto"`, `"off"`. Defaults to `"data"`.

    Returns:
        The dataset with `tf.data.Options().experimental_distribute.auto_shard_policy` set.

    Example:

    >>> ds = tf.data.Dataset.range(8).batch(4)
    >>> ds = distribute_dataset_options(ds)
    >>> ds.options().experimental_distribute.auto_shard_policy
    <AutoShardPolicy.DATA: 2>
    """
    if not isinstance(dataset, tf.data.Dataset):
        raise ValueError(f"`dataset` must be a tf.data.Dataset. Received: dataset={dataset!r}")
    check_one_of("policy", policy, _SHARD_POLICIES)
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = _SHARD_POLICIES[policy]
    return dataset.with_options(options)


def _with_default_sharding(dataset, name):
    if not isinstance(dataset, tf.data.Dataset):
        raise ValueError(
            f"`{name}` must be a tf.data.Dataset of (inputs, targets) batches, batched with the global "
            f"batch size. Received: {name}={dataset!r}"
        )
    policy = dataset.options().experimental_distribute.auto_shard_policy
    if policy == tf.data.experimental.AutoShardPolicy.AUTO:
        dataset = distribute_dataset_options(dataset, "data")
    return dataset


def is_chief(strategy):
    """Whether this process is the one that writes files (backups, saved models, reports).

    True outside multi-worker training, and for the chief of a cluster: the `"chief"` task, or
    worker 0 when the cluster has no chief. Other workers should write to temporary folders only.

    Example:

    >>> is_chief(tf.distribute.get_strategy())
    True
    """
    resolver = getattr(strategy, "cluster_resolver", None)
    task_type = getattr(resolver, "task_type", None)
    if resolver is None or task_type is None:
        return True
    if task_type == "chief":
        return True
    cluster = resolver.cluster_spec().as_dict()
    return task_type == "worker" and resolver.task_id == 0 and "chief" not in cluster


def _worker_tag(strategy):
    resolver = getattr(strategy, "cluster_resolver", None)
    return f"{getattr(resolver, 'task_type', None) or 'worker'}_{getattr(resolver, 'task_id', 0) or 0}"


# --------------------------------------------------------------------------------------------
# Loss and metrics of a compiled model, computed per example inside a replica.


def _same_rank(y_true, y_pred):
    """Squeeze or expand a trailing 1 so that labels (n,) meet predictions (n, 1) like Keras."""
    true_rank, pred_rank = y_true.shape.rank, y_pred.shape.rank
    if pred_rank == true_rank + 1 and y_pred.shape[-1] == 1:
        y_true = tf.expand_dims(y_true, -1)
    elif true_rank == pred_rank + 1 and y_true.shape[-1] == 1:
        y_true = tf.squeeze(y_true, -1)
    return y_true, y_pred


def _loss_function(identifier, output):
    loss = keras.losses.get(identifier)
    if isinstance(loss, keras.losses.Loss):
        return loss.call  # the unreduced per-example values, before the Loss' own reduction
    if callable(loss):
        return lambda y_true, y_pred: loss(*_same_rank(y_true, y_pred))
    raise ValueError(
        f"The model's loss for output {output!r} must be a Keras loss name, function or object "
        f"(mmkeras heads compile with one). Received: loss={identifier!r}"
    )


class _ModelLoss:
    """Per-example losses from the model's compiled `model.loss` (and loss weights)."""

    def __init__(self, model):
        if not getattr(model, "compiled", False) or model.loss is None or model.optimizer is None:
            raise ValueError(
                "`model` must be compiled with a loss and an optimizer (mmkeras builders compile "
                f"with the head's defaults), inside `strategy.scope()`. Received: model={model.name!r}"
            )
        self.output_names = list(model.output_names)
        self.multi_output = isinstance(model.output, dict) or len(self.output_names) > 1
        loss = model.loss
        if isinstance(loss, dict):
            losses = {name: loss.get(name) for name in self.output_names}
        elif isinstance(loss, (list, tuple)):
            losses = dict(zip(self.output_names, loss))
        else:
            losses = {name: loss for name in self.output_names}
        weights = (model.get_compile_config() or {}).get("loss_weights")
        if isinstance(weights, (list, tuple)):
            weights = dict(zip(self.output_names, weights))
        self.weights = {name: float((weights or {}).get(name, 1.0)) for name in self.output_names}
        self.functions = {
            name: _loss_function(identifier, name) for name, identifier in losses.items() if identifier is not None
        }

    def __call__(self, y, y_pred, sample_weight):
        """(per-example total loss, {output: per-example loss})."""
        if isinstance(y_pred, (list, tuple)):  # a multi-output model with a list of outputs
            y_pred = dict(zip(self.output_names, y_pred))
            y = dict(zip(self.output_names, y)) if isinstance(y, (list, tuple)) else y
        if not self.multi_output:
            name = self.output_names[0]
            y, y_pred = {name: y}, {name: y_pred}
            sample_weight = {name: sample_weight}
        elif not isinstance(sample_weight, dict):
            sample_weight = {name: sample_weight for name in self.output_names}
        total, per_output = None, {}
        for name, function in self.functions.items():
            prediction = tf.cast(y_pred[name], "float32")
            values = function(tf.cast(y[name], prediction.dtype), prediction)
            values = tf.cast(values, "float32")
            if values.shape.rank > 1:
                values = tf.reduce_mean(values, axis=list(range(1, values.shape.rank)))
            if sample_weight.get(name) is not None:
                weight = tf.cast(sample_weight[name], "float32")
                values = values * tf.reshape(weight, [-1])
            per_output[name] = values
            weighted = values * self.weights[name]
            total = weighted if total is None else total + weighted
        return total, per_output


def _compile_metrics(model, dataset):
    """The model's compiled metrics object, built on one example of `dataset` (or None)."""
    metrics = [m for m in model.metrics if m.name == "compile_metrics"]
    if not metrics:
        return None
    metric = metrics[0]
    if not metric.built:
        x, y, _ = keras.utils.unpack_x_y_sample_weight(next(iter(dataset.take(1))))
        x = tf.nest.map_structure(lambda t: t[:1], x)
        y = tf.nest.map_structure(lambda t: t[:1], y)
        metric.build(y, model(x, training=False))
    return metric


class _Steps:
    """The distributed train / test / predict steps of one model under its strategy."""

    def __init__(self, model, dataset):
        self.model = model
        self.strategy = model.distribute_strategy
        self.loss = _ModelLoss(model)
        with self.strategy.scope():
            self.metric = _compile_metrics(model, dataset)
            # Optimizer variables are made here, not inside the first step's tf.function.
            if not model.optimizer.built:
                model.optimizer.build(model.trainable_variables)
        self.initial = list(self.metric.stateless_reset_state()) if self.metric is not None else []
        self.train = tf.function(self._train, reduce_retracing=True)
        self.test = tf.function(self._test, reduce_retracing=True)

    # Replica steps (run on each replica by strategy.run).

    def _loss_and_stats(self, x, y, sample_weight, y_pred):
        n_local = tf.cast(tf.shape(tf.nest.flatten(x)[0])[0], "float32")
        # The actual global batch (the last one may be short), summed over all replicas.
        n_global = tf.distribute.get_replica_context().all_reduce(tf.distribute.ReduceOp.SUM, n_local)
        n_global = tf.cast(tf.round(n_global), "int64")
        per_example, per_output = self.loss(y, y_pred, sample_weight)
        loss = tf.nn.compute_average_loss(per_example, global_batch_size=n_global)
        if self.model.losses:
            loss += tf.nn.scale_regularization_loss(tf.add_n(self.model.losses))
        output_losses = {
            f"{name}_loss": tf.nn.compute_average_loss(values, global_batch_size=n_global)
            for name, values in per_output.items()
        } if self.loss.multi_output else {}
        deltas = []
        if self.metric is not None:
            state = self.metric.stateless_update_state(self.initial, y, y_pred, sample_weight=sample_weight)
            deltas = [tf.cast(new, "float32") - tf.cast(old, "float32") for new, old in zip(state, self.initial)]
        return loss, {"loss": loss, "size": n_local, **output_losses, "metric_deltas": deltas}

    def _replica_train(self, batch):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(batch)
        with tf.GradientTape() as tape:
            y_pred = self.model(x, training=True)
            loss, stats = self._loss_and_stats(x, y, sample_weight, y_pred)
            scaled_loss = self.model.optimizer.scale_loss(loss)
        variables = self.model.trainable_variables
        gradients = tape.gradient(scaled_loss, variables)
        self.model.optimizer.apply_gradients(zip(gradients, variables))
        return stats

    def _replica_test(self, batch):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(batch)
        y_pred = self.model(x, training=False)
        return self._loss_and_stats(x, y, sample_weight, y_pred)[1]

    # Cross-replica steps: run on every replica, then reduce.

    def _reduce(self, per_replica):
        return tf.nest.map_structure(
            lambda value: self.strategy.reduce(tf.distribute.ReduceOp.SUM, value, axis=None), per_replica
        )

    def _train(self, batch):
        return self._reduce(self.strategy.run(self._replica_train, args=(batch,)))

    def _test(self, batch):
        return self._reduce(self.strategy.run(self._replica_test, args=(batch,)))



class _Accumulator:
    """Sums of the reduced step statistics over an epoch; `result()` gives the logs."""

    def __init__(self, steps):
        self.steps = steps
        self.size = 0.0
        self.count = 0
        self.sums = {}
        self.metric_state = [np.asarray(v, dtype="float64") for v in steps.initial]

    def add(self, stats):
        # As in `fit`: the loss is averaged over examples, the per-output losses over steps.
        size = float(stats["size"])
        self.size += size
        self.count += 1
        for key, value in stats.items():
            if key not in ("size", "metric_deltas"):
                self.sums[key] = self.sums.get(key, 0.0) + float(value) * (size if key == "loss" else 1.0)
        for i, delta in enumerate(stats["metric_deltas"]):
            self.metric_state[i] = self.metric_state[i] + np.asarray(delta, dtype="float64")

    def result(self):
        logs = {
            key: value / max(self.size if key == "loss" else self.count, 1.0) for key, value in self.sums.items()
        }
        if self.steps.metric is not None and self.size:
            state = [tf.cast(v, old.dtype) for v, old in zip(self.metric_state, self.steps.initial)]
            result = self.steps.metric.stateless_result(state)
            if not isinstance(result, dict):
                result = {self.steps.metric.name: result}
            logs.update({name: float(value) for name, value in result.items()})
        return logs


def _next(iterator):
    try:
        return next(iterator)
    except (StopIteration, tf.errors.OutOfRangeError):
        return None


def _overrides(callback, hook):
    """Whether `callback` does something in `hook` (so per-step logs are worth computing)."""
    method = getattr(callback, hook)
    return getattr(method, "__func__", method) is not getattr(keras.callbacks.Callback, hook)


def _barrier(strategy):
    """Wait for every worker (a tiny all-reduce)."""

    @tf.function
    def all_reduce():
        return strategy.reduce(tf.distribute.ReduceOp.SUM, strategy.run(lambda: tf.constant(1.0)), axis=None)

    all_reduce()


# --------------------------------------------------------------------------------------------
# The custom training loop, evaluation and prediction.


def fit_custom_loop(
    model,
    train_dataset,
    *,
    epochs,
    validation_data=None,
    backup_dir=None,
    steps_per_epoch=None,
    verbose=1,
    save_freq="epoch",
    callbacks=None,
):
    """Train a compiled model with a training loop on tf.distribute itself.

    For `MultiWorkerMirroredStrategy`, where `model.fit` fails (see `needs_custom_loop`); it also
    runs under the other strategies. Each step is a `tf.function` that calls `strategy.run` on a
    replica step (the model called under `tf.GradientTape`, the per-example loss from
    `model.loss` averaged with `tf.nn.compute_average_loss` over the global batch, the model's
    optimizer's `apply_gradients`, which sums the gradients of all replicas), then
    `strategy.reduce`. Metrics are the model's compiled metrics (accumulated as sums over all
    replicas), plus the loss (and one loss per output for a multi-task model).

    Backup: with `backup_dir`, a `tf.train.CheckpointManager` saves the model, the optimizer and
    the position in training at the end of every epoch (and every `save_freq` steps when that is
    an int). A run started again with the same `backup_dir` restores the latest checkpoint and
    goes on from there, skipping the batches already trained on; the backup is deleted when
    training ends. Only the chief writes to `backup_dir`; the other workers save to temporary
    folders they delete at once (as TensorFlow's multi-worker guide prescribes), and every worker
    restores from `backup_dir`, which must therefore be shared storage across machines.

    Args:
        model: a compiled `keras.Model`, built and compiled inside `strategy.scope()`.
        train_dataset: a `tf.data.Dataset` of `(inputs, targets)` or
            `(inputs, targets, sample_weights)`, batched with the **global** batch size. Its
            auto-shard policy is set to DATA unless it was set (see `distribute_dataset_options`).
        epochs: int, the number of epochs.
        validation_data: a `tf.data.Dataset` like `train_dataset`, or None. Defaults to `None`.
        backup_dir: str or None, where to back up training state. Defaults to `None`.
        steps_per_epoch: int or None. Without it an epoch is one pass over `train_dataset`; with
            it, as in `fit`, one iterator runs on across epochs, and a new pass starts when the
            data is used up (an epoch cut short by the end of the data is reported). Give a
            `.repeat()`ed dataset to never start over. Defaults to `None`.
        verbose: 0 (silent), 1 (progress bar) or 2 (one line per epoch); only the chief prints.
            Defaults to `1`.
        save_freq: `"epoch"` or an int, save a backup every `save_freq` steps as well.
            Defaults to `"epoch"`.
        callbacks: a list of `keras.callbacks.Callback` or None, called with the global logs at
            the usual points (train, epoch and batch begin / end) on every worker; set
            `model.stop_training` to stop. Use `backup_dir`, not `BackupAndRestore`, here, and let
            only the chief write files. Defaults to `None`.

    Returns:
        The history, a dict `{metric: [one value per epoch run]}` like `model.fit(...).history`
        (`"loss"`, `"accuracy"`, ..., `"val_loss"`, ...).

    Example:

    >>> strategy = get_strategy("multi_worker")  # TF_CONFIG set, one process per worker
    >>> with strategy.scope():
    ...     model = mmkeras.get_model("s0", **mmkeras.get_entry("s0").tiny)
    >>> history = fit_custom_loop(model, train_ds, epochs=3, backup_dir="/shared/backup")
    >>> sorted(history)
    ['accuracy', 'loss']
    """
    check_positive_int("epochs", epochs)
    check_positive_int("steps_per_epoch", steps_per_epoch, allow_none=True)
    check_one_of("verbose", verbose, (0, 1, 2))
    if save_freq != "epoch":
        check_positive_int("save_freq", save_freq)
    if backup_dir is not None and not isinstance(backup_dir, (str, os.PathLike)):
        raise ValueError(f"`backup_dir` must be a folder path or None. Received: backup_dir={backup_dir!r}")
    callbacks = list(callbacks or [])
    for callback in callbacks:
        if not isinstance(callback, keras.callbacks.Callback) or isinstance(
            callback, keras.callbacks.BackupAndRestore
        ):
            raise ValueError(
                "`callbacks` must be a list of keras.callbacks.Callback other than BackupAndRestore "
                f"(give `backup_dir` instead). Received: callbacks={callbacks!r}"
            )
    train_dataset = _with_default_sharding(train_dataset, "train_dataset")
    if validation_data is not None:
        validation_data = _with_default_sharding(validation_data, "validation_data")

    strategy = model.distribute_strategy
    steps = _Steps(model, train_dataset)
    chief = is_chief(strategy)
    verbose = verbose if chief else 0

    # Training state: model, optimizer and position, restored from the backup if there is one.
    epoch_var = tf.Variable(0, dtype="int64", trainable=False, name="epoch")
    step_var = tf.Variable(0, dtype="int64", trainable=False, name="step_in_epoch")
    position_var = tf.Variable(0, dtype="int64", trainable=False, name="batches_into_pass")
    manager = None
    if backup_dir is not None:
        backup_dir = os.fspath(backup_dir)
        checkpoint = tf.train.Checkpoint(
            model=model, optimizer=model.optimizer, epoch=epoch_var, step=step_var, position=position_var
        )
        write_dir = backup_dir if chief else os.path.join(backup_dir, f".tmp_{_worker_tag(strategy)}")
        latest = tf.train.latest_checkpoint(backup_dir)
        if latest:
            checkpoint.restore(latest).assert_existing_objects_matched()
            if verbose:
                print(f"Restored {latest}: epoch {int(epoch_var) + 1}, step {int(step_var)}.", flush=True)
        manager = tf.train.CheckpointManager(checkpoint, directory=write_dir, max_to_keep=2)

    def save():
        if manager is None:
            return
        manager.save()
        if not chief:
            tf.io.gfile.rmtree(manager.directory)

    def new_pass(position):
        """An iterator over the dataset from batch `position` of a pass (skipping those trained on)."""
        position_var.assign(position)
        dataset = train_dataset.skip(position) if position else train_dataset
        return iter(strategy.experimental_distribute_dataset(dataset))

    # As in `fit`: without `steps_per_epoch` an epoch is one pass over the data; with it, one
    # iterator runs on across epochs and a new pass starts when it has used up the data.
    cardinality = int(train_dataset.cardinality())
    batches_per_pass = cardinality if cardinality >= 0 else None  # None: infinite or unknown
    epoch_length = steps_per_epoch or batches_per_pass
    callback_list = keras.callbacks.CallbackList(
        callbacks, model=model, epochs=epochs, steps=epoch_length, verbose=verbose
    )
    batch_hooks = any(_overrides(c, "on_train_batch_end") or _overrides(c, "on_batch_end") for c in callbacks)
    model.stop_training = False
    history, logs = {}, {}
    iterator = None
    callback_list.on_train_begin()
    for epoch in range(int(epoch_var), epochs):
        step = int(step_var)
        if iterator is None or steps_per_epoch is None:
            iterator = new_pass(int(position_var) if steps_per_epoch else step)
        fresh = int(position_var) == 0
        callback_list.on_epoch_begin(epoch)
        if verbose:
            print(f"Epoch {epoch + 1}/{epochs}", flush=True)
        progbar = keras.utils.Progbar(epoch_length, verbose=verbose)
        accumulator = _Accumulator(steps)
        while epoch_length is None or step < epoch_length:
            batch = _next(iterator)
            if batch is None:  # the pass is over
                if fresh:
                    raise ValueError("`train_dataset` must yield at least one batch. Received: an empty dataset")
                iterator = None
                if accumulator.count == 0:  # the last pass ended with the last epoch: start another
                    iterator, fresh = new_pass(0), True
                    continue
                if steps_per_epoch is not None:
                    print(
                        f"Warning: the training data ran out after {step} of {steps_per_epoch} steps in "
                        f"epoch {epoch + 1}; the next epoch starts a new pass. Make sure the dataset yields "
                        "`steps_per_epoch` batches per epoch, or `.repeat()` it.",
                        flush=True,
                    )
                break
            fresh = False
            callback_list.on_train_batch_begin(step)
            accumulator.add(steps.train(batch))
            step += 1
            step_var.assign(step)
            position_var.assign_add(1)
            if save_freq != "epoch" and int(model.optimizer.iterations.numpy()) % save_freq == 0:
                save()
            if verbose == 1 or batch_hooks:
                logs = accumulator.result()
                callback_list.on_train_batch_end(step - 1, logs)
                if verbose == 1:
                    progbar.update(step, list(logs.items()), finalize=False)
            if batches_per_pass is not None and int(position_var) >= batches_per_pass:
                iterator = None  # used up: the next epoch starts a new pass
                break
            if model.stop_training:
                break
        logs = accumulator.result()
        if validation_data is not None:
            logs.update({f"val_{k}": v for k, v in _evaluate(model, validation_data, steps).items()})
        callback_list.on_epoch_end(epoch, logs)
        for key, value in logs.items():
            history.setdefault(key, []).append(value)
        if verbose:
            progbar.update(step, list(logs.items()), finalize=True)
        if iterator is None:
            position_var.assign(0)
        epoch_var.assign(epoch + 1)
        step_var.assign(0)
        save()
        if model.stop_training:
            break
    callback_list.on_train_end(logs)

    if manager is not None:
        _barrier(strategy)  # every worker has saved and cleaned up before the chief deletes
        if chief:
            tf.io.gfile.rmtree(backup_dir)
    return history


def _evaluate(model, dataset, steps):
    accumulator = _Accumulator(steps)
    for batch in model.distribute_strategy.experimental_distribute_dataset(dataset):
        accumulator.add(steps.test(batch))
    return accumulator.result()


def evaluate_custom_loop(model, dataset):
    """Evaluate a compiled model with distributed steps of mmkeras' own; return the logs dict.

    For strategies where `model.evaluate` fails (`needs_custom_loop`); works under any strategy.
    The loss and the compiled metrics are computed over all replicas (and workers), as `evaluate`
    computes them on one device.

    Args:
        model: a compiled `keras.Model`, built inside the strategy's scope.
        dataset: a `tf.data.Dataset` of `(inputs, targets)` batches of the global batch size.

    Returns:
        A dict like `model.evaluate(..., return_dict=True)`: `{"loss": ..., "accuracy": ...}`.

    Example:

    >>> logs = evaluate_custom_loop(model, test_ds)
    >>> sorted(logs)
    ['accuracy', 'loss']
    """
    dataset = _with_default_sharding(dataset, "dataset")
    return _evaluate(model, dataset, _Steps(model, dataset))


def predict_custom_loop(model, dataset):
    """Predict with distributed steps of mmkeras' own, in the order of `dataset`.

    Each replica predicts its slice of each global batch; `strategy.gather` puts the slices back
    together, so every worker gets all the predictions, in order.

    Args:
        model: a `keras.Model` built inside the strategy's scope.
        dataset: a `tf.data.Dataset` of inputs (or `(inputs, targets)`), batched with the global
            batch size.

    Returns:
        A numpy array, or a dict of arrays for a model with several named outputs.

    Example:

    >>> predict_custom_loop(model, test_ds)["label"].shape
    (1000, 1)
    """
    dataset = _with_default_sharding(dataset, "dataset")
    strategy = model.distribute_strategy

    @tf.function(reduce_retracing=True)
    def predict_step(batch):
        x, _, _ = keras.utils.unpack_x_y_sample_weight(batch)
        outputs = strategy.run(lambda inputs: model(inputs, training=False), args=(x,))
        return tf.nest.map_structure(lambda value: strategy.gather(value, axis=0), outputs)

    outputs = [predict_step(batch) for batch in strategy.experimental_distribute_dataset(dataset)]
    if not outputs:
        raise ValueError("`dataset` must yield at least one batch. Received: an empty dataset")
    return tf.nest.map_structure(lambda *parts: np.concatenate([np.asarray(p) for p in parts]), *outputs)


def fit(
    model,
    train_dataset,
    *,
    epochs,
    validation_data=None,
    backup_dir=None,
    steps_per_epoch=None,
    verbose=1,
    callbacks=None,
    save_freq="epoch",
):
    """Train under the model's strategy on the right path; return the history dict.

    `model.fit` with `keras.callbacks.BackupAndRestore(backup_dir, save_freq=save_freq)` where
    `fit` works, `fit_custom_loop` under `MultiWorkerMirroredStrategy` (where the callbacks run
    too, on every worker, see `fit_custom_loop`).

    Example:

    >>> with strategy.scope():
    ...     model = mmkeras.get_model("s0", **mmkeras.get_entry("s0").tiny)
    >>> history = fit(model, train_ds, epochs=2, backup_dir="backup")
    """
    if needs_custom_loop(model.distribute_strategy):
        return fit_custom_loop(
            model,
            train_dataset,
            epochs=epochs,
            validation_data=validation_data,
            backup_dir=backup_dir,
            steps_per_epoch=steps_per_epoch,
            verbose=verbose,
            save_freq=save_freq,
            callbacks=callbacks,
        )
    callbacks = list(callbacks or [])
    if backup_dir is not None:
        callbacks.append(keras.callbacks.BackupAndRestore(os.fspath(backup_dir), save_freq=save_freq))
    options = {}
    if isinstance(train_dataset, tf.data.Dataset):
        train_dataset = _with_default_sharding(train_dataset, "train_dataset")
        options["shuffle"] = False  # a dataset is shuffled in its pipeline, if at all
    history = model.fit(
        train_dataset,
        **options,
        epochs=epochs,
        validation_data=validation_data,
        steps_per_epoch=steps_per_epoch,
        verbose=verbose,
        callbacks=callbacks,
    )
    return history.history


def evaluate(model, dataset, *, verbose=0):
    """`model.evaluate(..., return_dict=True)`, or `evaluate_custom_loop` where `fit` fails."""
    if needs_custom_loop(model.distribute_strategy):
        return evaluate_custom_loop(model, dataset)
    return model.evaluate(dataset, verbose=verbose, return_dict=True)


def predict(model, dataset, *, verbose=0):
    """`model.predict`, or `predict_custom_loop` where `fit` fails."""
    if needs_custom_loop(model.distribute_strategy):
        return predict_custom_loop(model, dataset)
    return model.predict(dataset, verbose=verbose)
