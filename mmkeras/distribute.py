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

import contextlib
import json
import os
import shutil
import socket
import time

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

    >>> import mmkeras
    >>> strategy = get_strategy("one_device")
    >>> with strategy.scope():
    ...     model = mmkeras.get_model("s0", **mmkeras.get_entry("s0").tiny)
    >>> strategy.num_replicas_in_sync
    1
    """
    check_one_of("strategy", name, STRATEGIES)
    if name == "multi_worker":  # before anything else touches the TensorFlow runtime
        return _multi_worker_strategy()
    if name == "tpu":
        return _tpu_strategy()
    gpus, cpus = _local_devices()
    if name == "auto":
        return tf.distribute.MirroredStrategy(gpus) if len(gpus) > 1 else tf.distribute.get_strategy()
    if name == "one_device":
        return tf.distribute.OneDeviceStrategy((gpus or cpus)[0])
    try:  # name == "mirrored"
        return tf.distribute.MirroredStrategy(gpus or cpus)
    except (RuntimeError, ValueError) as error:
        raise _cannot_start(name, error) from error


WORKER_TIMEOUT_ENV = "MMKERAS_WORKER_TIMEOUT"
DEFAULT_WORKER_TIMEOUT = 300.0


def worker_timeout():
    """Seconds a multi-worker run waits for every worker to start: `$MMKERAS_WORKER_TIMEOUT`, else 300.

    Example:

    >>> worker_timeout() > 0
    True
    """
    raw = os.environ.get(WORKER_TIMEOUT_ENV)
    if raw is None or not raw.strip():
        return DEFAULT_WORKER_TIMEOUT
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if not (value > 0 and value != float("inf")):
        raise ValueError(
            f"`{WORKER_TIMEOUT_ENV}` must be a positive number of seconds. Received: {WORKER_TIMEOUT_ENV}={raw!r}"
        )
    return value


def _cluster_tasks(config):
    """[(type, index, "host:port")] of the tasks that take part in the collectives."""
    cluster = config["cluster"]
    return [(kind, i, address) for kind in ("chief", "worker") for i, address in enumerate(cluster.get(kind) or [])]


def _split_address(address):
    host, _, port = str(address).rpartition(":")
    return host.strip("[]") or "localhost", int(port)


def wait_for_workers(config, timeout):
    """Meet every other task of `config`'s cluster before TensorFlow does, or time out clearly.

    TensorFlow's collective set-up waits for missing workers forever, inside C++. Here each task
    first listens on its own port and reaches every other task's; it goes on once it has
    reached all of them and all of them have reached it (then its port is free for TensorFlow
    again). After `timeout` seconds it raises, naming the tasks that never answered.

    Args:
        config: dict, the parsed `TF_CONFIG` (`cluster` and `task`).
        timeout: float, seconds to wait.

    Raises:
        ValueError: a task did not start (or cannot be reached) within `timeout` seconds.

    Example:

    >>> config = {"cluster": {"worker": ["localhost:1"]}, "task": {"type": "worker", "index": 0}}
    >>> wait_for_workers(config, 1.0)  # a cluster of one: nobody to wait for
    """
    tasks = _cluster_tasks(config)
    me = (config["task"]["type"], int(config["task"]["index"]))
    others = {(kind, i): address for kind, i, address in tasks if (kind, i) != me}
    if not others:
        return
    my_address = dict(((kind, i), address) for kind, i, address in tasks).get(me)
    if my_address is None:
        return  # not a collective task (an evaluator): nothing to meet
    token = f"{me[0]}:{me[1]}\n".encode()
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind(("", _split_address(my_address)[1]))
        listener.listen(len(others) + 4)
    except OSError as error:
        listener.close()
        raise _cannot_start("multi_worker", f"cannot listen on this task's address {my_address} ({error.strerror or error})") from None
    listener.settimeout(0.05)
    reached, heard = set(), set()
    deadline = time.monotonic() + timeout
    try:
        while reached != set(others) or heard != set(others):
            for task in sorted(set(others) - reached):
                with contextlib.suppress(OSError):
                    with socket.create_connection(_split_address(others[task]), timeout=0.5) as conn:
                        conn.sendall(token)
                        reached.add(task)
            with contextlib.suppress(OSError):
                while True:
                    conn, _ = listener.accept()
                    with conn:
                        conn.settimeout(2.0)
                        kind, _, index = conn.recv(64).decode(errors="replace").strip().partition(":")
                        if index.isdigit() and (kind, int(index)) in others:
                            heard.add((kind, int(index)))
            if time.monotonic() > deadline:
                missing = sorted(set(others) - (reached & heard))
                names = ", ".join(f"{kind} {i} ({others[(kind, i)]})" for kind, i in missing)
                raise _cannot_start(
                    "multi_worker",
                    f"{names} did not start within {timeout:g} s (every task in TF_CONFIG's cluster must "
                    f"run; set {WORKER_TIMEOUT_ENV} to wait longer)",
                )
            time.sleep(0.05)
    finally:
        listener.close()


def _multi_worker_strategy():
    config = _check_tf_config()
    wait_for_workers(config, worker_timeout())
    try:
        return tf.distribute.MultiWorkerMirroredStrategy()
    except (RuntimeError, ValueError, tf.errors.OpError) as error:
        raise _cannot_start(
            "multi_worker",
            f"{error} (create the strategy at the very start of the program, before any other "
            "TensorFlow op)",
        ) from error


def _tpu_strategy():
    try:
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver()
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
        return tf.distribute.TPUStrategy(resolver)
    except (RuntimeError, ValueError, tf.errors.OpError) as error:
        why = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise _cannot_start("tpu", f"no TPU found ({why})") from error


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


@contextlib.contextmanager
def reserve_ports(n):
    """Hold `n` distinct free TCP ports on 127.0.0.1 while local workers start on them.

    A context manager yielding the port numbers, for the addresses of local workers in
    `TF_CONFIG`. Each port is held by a socket bound to it with `SO_REUSEADDR` that never listens.
    Linux then gives the port to no socket that asks for any port (a bind to port 0, the local
    port of an outgoing connection) and refuses it to a bind without `SO_REUSEADDR`, while a
    TensorFlow worker, whose gRPC server binds with `SO_REUSEADDR`, can still bind it and listen
    on it; once it listens, the port is its own. Start the workers inside the `with` block and
    leave it once they have started their servers (their strategy exists) or ended: the sockets
    are closed then.

    What is left open: a program that binds one of these port numbers itself, with
    `SO_REUSEADDR`, and listens before the worker does takes the port (the worker then fails
    with "Could not start gRPC server"); so does anything after the block ends, if no worker
    listens on the port by then. Other systems than Linux may treat `SO_REUSEADDR` otherwise.

    Args:
        n: int, how many ports.

    Yields:
        A list of `n` port numbers.

    Example:

    >>> with reserve_ports(2) as ports:
    ...     cluster = {"worker": [f"127.0.0.1:{port}" for port in ports]}
    ...     # start the workers here, each with its TF_CONFIG, e.g. worker 0's:
    ...     tf_config = {"cluster": cluster, "task": {"type": "worker", "index": 0}}
    >>> len(set(ports))
    2
    """
    check_positive_int("n", n)
    sockets = []
    try:
        for _ in range(n):  # all held together: the ports differ
            sockets.append(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            sockets[-1].setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sockets[-1].bind(("127.0.0.1", 0))
        yield [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def free_ports(n):
    """`n` distinct TCP ports free on 127.0.0.1 now, held by nothing: prefer `reserve_ports`.

    The system picks each port (`reserve_ports`); the ports are released when this returns. Until
    a worker binds one, any program may take it, an outgoing connection included (its local port
    is picked from the same range): start the workers right away, or hold the ports with
    `reserve_ports` while the workers start.

    Args:
        n: int, how many ports.

    Returns:
        A list of `n` port numbers.

    Example:

    >>> ports = free_ports(2)
    >>> cluster = {"worker": [f"127.0.0.1:{port}" for port in ports]}
    >>> tf_config = {"cluster": cluster, "task": {"type": "worker", "index": 0}}  # worker 0's
    >>> len(set(ports))
    2
    """
    with reserve_ports(n) as ports:
        return ports


# --------------------------------------------------------------------------------------------
# The loss and metrics of a compiled model, computed inside a replica.


def _check_compiled(model):
    if not getattr(model, "compiled", False) or model.optimizer is None:
        state = "compiled without an optimizer" if getattr(model, "compiled", False) else "not compiled"
        raise ValueError(
            "`model` must be compiled with an optimizer (mmkeras tasks compile with their head's "
            f"defaults), inside `strategy.scope()`. Received: model={model.name!r} ({state})"
        )


def _build_compiled_state(model, dataset, name):
    """Create the compiled loss's, metrics' and optimizer's variables before any step is traced.

    Keras builds the compiled loss (with, for a multi-output model, one `<output>_loss` tracker
    per output) on its first call: this calls `compute_loss` once on one example of `dataset`
    (the argument `name`), in the strategy's scope, not inside a replica step. Returns the
    compiled metrics object, or None.
    """
    batch = _next(iter(dataset.take(1)))
    if batch is None:
        raise ValueError(f"`{name}` must yield at least one batch. Received: an empty dataset")
    x, y, sample_weight = tf.nest.map_structure(
        lambda t: None if t is None else t[:1], keras.utils.unpack_x_y_sample_weight(batch)
    )
    with model.distribute_strategy.scope():
        y_pred = model(x, training=False)
        model.compute_loss(x=x, y=y, y_pred=y_pred, sample_weight=sample_weight, training=False)
        metrics = [m for m in model.metrics if m.name == "compile_metrics"]
        if metrics and not metrics[0].built:
            metrics[0].build(y, y_pred)
        if not model.optimizer.built:
            model.optimizer.build(model.trainable_variables)
    return metrics[0] if metrics else None


def _output_loss_trackers(model):
    """The compiled loss's per-output trackers among `model.metrics` (multi-output models only)."""
    names = {f"{name}_loss" for name in model.output_names}
    return [metric for metric in model.metrics if metric.name in names]


class _Steps:
    """The distributed train and test steps of one compiled model under its strategy.

    A replica's loss is the model's own `compute_loss` (the compiled loss, or the task's
    override, plus the regularization losses) on its slice of the global batch, weighted by the
    slice's share of the global batch: summed over the replicas, the loss and the gradients are
    those of one device on the whole global batch.
    """

    def __init__(self, model, dataset, name):
        _check_compiled(model)
        self.model = model
        self.strategy = model.distribute_strategy
        self.metric = _build_compiled_state(model, dataset, name)
        self.output_losses = _output_loss_trackers(model)
        self.initial = list(self.metric.stateless_reset_state()) if self.metric is not None else []
        self.train = tf.function(self._train, reduce_retracing=True)
        self.test = tf.function(self._test, reduce_retracing=True)

    # Replica steps (run on each replica by strategy.run).

    @staticmethod
    def _batch_share(x):
        """(examples in this replica's slice, their share of the actual global batch).

        The last global batch may be short. This all-reduce runs before the model: between the
        model's call and `compute_loss` (which reads the losses the call added, `model.losses`)
        no replica waits for the others, as in Keras' own train step.
        """
        n_local = tf.cast(tf.shape(tf.nest.flatten(x)[0])[0], "float32")
        n_global = tf.distribute.get_replica_context().all_reduce(tf.distribute.ReduceOp.SUM, n_local)
        return n_local, n_local / n_global

    def _loss_and_stats(self, x, y, sample_weight, y_pred, n_local, share, training):
        for tracker in self.output_losses:
            tracker.reset_state()  # so that it holds this step's loss of its output only
        loss = self.model.compute_loss(x=x, y=y, y_pred=y_pred, sample_weight=sample_weight, training=training)
        # Under a strategy, Keras losses and the regularization losses come out of `compute_loss`
        # divided by the number of replicas (what Keras' `fit` expects): times it, the slice's mean.
        loss = tf.cast(loss, "float32") * (self.strategy.num_replicas_in_sync * share)
        output_losses = {t.name: tf.cast(t.result(), "float32") * share for t in self.output_losses}
        deltas = []
        if self.metric is not None:
            state = self.metric.stateless_update_state(self.initial, y, y_pred, sample_weight=sample_weight)
            deltas = [tf.cast(new, "float32") - tf.cast(old, "float32") for new, old in zip(state, self.initial)]
        return loss, {"loss": loss, "size": n_local, **output_losses, "metric_deltas": deltas}

    def _replica_train(self, batch):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(batch)
        n_local, share = self._batch_share(x)
        with tf.GradientTape() as tape:
            y_pred = self.model(x, training=True)
            loss, stats = self._loss_and_stats(x, y, sample_weight, y_pred, n_local, share, training=True)
            scaled_loss = self.model.optimizer.scale_loss(loss)
        variables = self.model.trainable_variables
        gradients = tape.gradient(scaled_loss, variables)
        self.model.optimizer.apply_gradients(zip(gradients, variables))
        return stats

    def _replica_test(self, batch):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(batch)
        n_local, share = self._batch_share(x)
        y_pred = self.model(x, training=False)
        return self._loss_and_stats(x, y, sample_weight, y_pred, n_local, share, training=False)[1]

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
# The custom training loop, in steps: arguments, training state and backup, epochs, clean-up.


def _check_fit_arguments(epochs, steps_per_epoch, verbose, save_freq, backup_dir, callbacks):
    """Raise `ValueError` for a bad argument of `fit_custom_loop`; return the callbacks as a list."""
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
    return callbacks


class _TrainingState:
    """Where training is (epoch, step in the epoch, batches into the pass over the data), backed up.

    With `backup_dir`, a `tf.train.CheckpointManager` saves the model, its optimizer and the
    position; the latest backup there is restored on creation. Only the chief writes to
    `backup_dir`; the other workers save to temporary folders they delete at once, and every
    worker restores from `backup_dir`.
    """

    def __init__(self, model, backup_dir, verbose, settings=None, keep=False):
        self.epoch = tf.Variable(0, dtype="int64", trainable=False, name="epoch")
        self.step = tf.Variable(0, dtype="int64", trainable=False, name="step_in_epoch")
        self.position = tf.Variable(0, dtype="int64", trainable=False, name="batches_into_pass")
        self.strategy = model.distribute_strategy
        self.chief = is_chief(self.strategy)
        self.backup_dir = None if backup_dir is None else os.fspath(backup_dir)
        self.manager = None
        self.settings, self.keep, self.history = _jsonable(settings), keep, {}
        if self.backup_dir is None:
            return
        checkpoint = tf.train.Checkpoint(
            model=model, optimizer=model.optimizer, epoch=self.epoch, step=self.step, position=self.position
        )
        latest = tf.train.latest_checkpoint(self.backup_dir)
        if latest:
            meta = _read_loop_metadata(self.backup_dir)
            _check_backup_settings(self.backup_dir, meta.get("settings"), self.settings)
            try:
                checkpoint.restore(latest).assert_existing_objects_matched()
            except (tf.errors.OpError, ValueError, AssertionError) as error:
                raise _unreadable_backup(self.backup_dir, os.path.basename(latest), error) from None
            epoch = int(self.epoch)
            self.history = {k: list(v)[:epoch] for k, v in (meta.get("history") or {}).items()}
            if verbose:
                print(f"Restored {latest}: epoch {int(self.epoch) + 1}, step {int(self.step)}.", flush=True)
        write_dir = self.backup_dir
        if not self.chief:
            write_dir = os.path.join(self.backup_dir, f".tmp_{_worker_tag(self.strategy)}")
        self.manager = tf.train.CheckpointManager(checkpoint, directory=write_dir, max_to_keep=2)

    def save(self):
        if self.manager is None:
            return
        if self.chief:  # first: a kill before the checkpoint leaves history the restore cuts short
            from mmkeras.atomic import atomic_file

            os.makedirs(self.backup_dir, exist_ok=True)
            with atomic_file(os.path.join(self.backup_dir, LOOP_METADATA)) as tmp:
                with open(tmp, "w", encoding="utf-8") as f:
                    json.dump({"settings": self.settings, "history": self.history}, f, default=float)
        self.manager.save()
        if not self.chief:
            tf.io.gfile.rmtree(self.manager.directory)

    def end_epoch(self, epoch, pass_over):
        """Move to the start of epoch `epoch + 1` (and of a new pass if `pass_over`), and save."""
        if pass_over:
            self.position.assign(0)
        self.epoch.assign(epoch + 1)
        self.step.assign(0)
        self.save()

    def finish(self):
        """Delete the backup (unless kept) once every worker has saved and cleaned up."""
        if self.manager is None:
            return
        _barrier(self.strategy)
        if self.chief and not self.keep:
            delete_backup(self.backup_dir)


class _CustomLoop:
    """One run of `fit_custom_loop`: its steps, training state, data iterator and callbacks.

    As in `fit`: without `steps_per_epoch` an epoch is one pass over the data; with it, one
    iterator runs on across epochs and a new pass starts when it has used up the data.
    """

    def __init__(self, model, dataset, *, epochs, steps_per_epoch, backup_dir, verbose, save_freq, callbacks,
                 backup_settings=None, keep_backup=False):
        self.model, self.dataset, self.epochs = model, dataset, epochs
        self.steps_per_epoch, self.save_freq = steps_per_epoch, save_freq
        self.strategy = model.distribute_strategy
        self.verbose = verbose if is_chief(self.strategy) else 0
        # Before the restore: the steps build the optimizer's variables.
        self.steps = _Steps(model, dataset, "train_dataset")
        self.state = _TrainingState(model, backup_dir, self.verbose, backup_settings, keep_backup)
        self.iterator = None
        cardinality = int(dataset.cardinality())
        self.batches_per_pass = cardinality if cardinality >= 0 else None  # None: infinite or unknown
        self.epoch_length = steps_per_epoch or self.batches_per_pass
        self.callbacks = keras.callbacks.CallbackList(
            callbacks, model=model, epochs=epochs, steps=self.epoch_length, verbose=self.verbose
        )
        self.batch_hooks = any(_overrides(c, "on_train_batch_end") or _overrides(c, "on_batch_end") for c in callbacks)

    def run(self, validation_data):
        """Train the epochs left; return the history dict (of the restored epochs too)."""
        self.model.stop_training = False
        history, logs = self.state.history, {}
        self.callbacks.on_train_begin()
        for epoch in range(int(self.state.epoch), self.epochs):
            accumulator, progbar, step = self._train_epoch(epoch)
            logs = accumulator.result()
            if validation_data is not None:
                logs.update({f"val_{k}": v for k, v in _evaluate(self.model, validation_data, self.steps).items()})
            self.callbacks.on_epoch_end(epoch, logs)
            for key, value in logs.items():
                history.setdefault(key, []).append(value)
            if self.verbose:
                progbar.update(step, list(logs.items()), finalize=True)
            self.state.end_epoch(epoch, pass_over=self.iterator is None)
            if self.model.stop_training:
                break
        self.callbacks.on_train_end(logs)
        self.state.finish()
        return history

    def _new_pass(self, position):
        """An iterator over the dataset from batch `position` of a pass (skipping those trained on)."""
        self.state.position.assign(position)
        dataset = self.dataset.skip(position) if position else self.dataset
        return iter(self.strategy.experimental_distribute_dataset(dataset))

    def _train_epoch(self, epoch):
        """Train epoch `epoch` from the state's position; return its accumulator, progress bar and step."""
        step = int(self.state.step)
        if self.iterator is None or self.steps_per_epoch is None:
            self.iterator = self._new_pass(int(self.state.position) if self.steps_per_epoch else step)
        fresh = int(self.state.position) == 0
        self.callbacks.on_epoch_begin(epoch)
        if self.verbose:
            print(f"Epoch {epoch + 1}/{self.epochs}", flush=True)
        progbar = keras.utils.Progbar(self.epoch_length, verbose=self.verbose)
        accumulator = _Accumulator(self.steps)
        while self.epoch_length is None or step < self.epoch_length:
            batch = _next(self.iterator)
            if batch is None:  # the pass is over
                if fresh:
                    raise ValueError("`train_dataset` must yield at least one batch. Received: an empty dataset")
                self.iterator = None
                if accumulator.count == 0:  # the last pass ended with the last epoch: start another
                    self.iterator, fresh = self._new_pass(0), True
                    continue
                if self.steps_per_epoch is not None:
                    print(
                        f"Warning: the training data ran out after {step} of {self.steps_per_epoch} steps in "
                        f"epoch {epoch + 1}; the next epoch starts a new pass. Make sure the dataset yields "
                        "`steps_per_epoch` batches per epoch, or `.repeat()` it.",
                        flush=True,
                    )
                break
            fresh = False
            step = self._train_step(batch, step, accumulator, progbar)
            if self.batches_per_pass is not None and int(self.state.position) >= self.batches_per_pass:
                self.iterator = None  # used up: the next epoch starts a new pass
                break
            if self.model.stop_training:
                break
        return accumulator, progbar, step

    def _train_step(self, batch, step, accumulator, progbar):
        """Train on one batch, move the position on, back up, call the batch hooks; return the next step."""
        self.callbacks.on_train_batch_begin(step)
        accumulator.add(self.steps.train(batch))
        step += 1
        self.state.step.assign(step)
        self.state.position.assign_add(1)
        if self.save_freq != "epoch" and int(self.model.optimizer.iterations.numpy()) % self.save_freq == 0:
            self.state.save()
        if self.verbose == 1 or self.batch_hooks:
            logs = accumulator.result()
            self.callbacks.on_train_batch_end(step - 1, logs)
            if self.verbose == 1:
                progbar.update(step, list(logs.items()), finalize=False)
        return step


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
    backup_settings=None,
    keep_backup=False,
):
    """Train a compiled model with a training loop on tf.distribute itself.

    For `MultiWorkerMirroredStrategy`, where `model.fit` fails (see `needs_custom_loop`); it also
    runs under the other strategies. Each step is a `tf.function` that calls `strategy.run` on a
    replica step, then `strategy.reduce`. The replica step calls the model under
    `tf.GradientTape`, takes the loss from the model's own `compute_loss` (the compiled loss, or a
    task's override, plus the regularization losses) on its slice of the global batch, weights it
    by the slice's share of the actual global batch (the last one may be short), and applies the
    model's optimizer, which sums the gradients of all replicas: loss and gradients are those of
    one device on the same global batch. Metrics are the model's compiled metrics (accumulated as
    sums over all replicas), plus the loss (and, for a multi-output model, one loss per output,
    from the compiled loss's own trackers).

    A `compute_loss` override must follow Keras' rule under tf.distribute, as for `model.fit`
    under `MirroredStrategy`: inside a replica, return the slice's loss divided by
    `num_replicas_in_sync`. Keras does it for its losses (`keras.losses.Loss` objects, the
    compiled loss, `super().compute_loss(...)`) and for the regularization losses; compute an
    extra term with a `keras.losses.Loss`, or divide it by
    `tf.distribute.get_strategy().num_replicas_in_sync`.

    Backup: with `backup_dir`, a `tf.train.CheckpointManager` saves the model, the optimizer and
    the position in training at the end of every epoch (and every `save_freq` steps when that is
    an int). A run started again with the same `backup_dir` restores the latest checkpoint and
    goes on from there, skipping the batches already trained on, and returns the history of all
    epochs (the finished ones' is kept with the backup, with `backup_settings`: a backup made with
    other settings, or that cannot be read, is refused with a `ValueError`); the backup is
    deleted when training ends (unless `keep_backup`). Only the chief writes to `backup_dir`; the other workers save to temporary
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
        backup_settings: dict of JSON values or None, the run's settings, kept with the backup:
            resuming a backup made with other settings is refused. Defaults to `None`.
        keep_backup: bool, keep the backup once training ends (delete it later with
            `delete_backup`). Defaults to `False`.

    Returns:
        The history, a dict `{metric: [one value per epoch]}` like `model.fit(...).history`
        (`"loss"`, `"accuracy"`, ..., `"val_loss"`, ...).

    Example:

    Here on the default strategy; with `get_strategy("multi_worker")` (`TF_CONFIG` set, one
    process per worker, `backup_dir` on shared storage) the same call trains across machines.

    >>> import mmkeras, numpy as np
    >>> model = mmkeras.get_model("s0", **mmkeras.get_entry("s0").tiny)
    >>> x = {"image": np.zeros((8, 32, 32, 3), "float32"), "text": np.ones((8, 12), "int32")}
    >>> train_ds = tf.data.Dataset.from_tensor_slices((x, np.ones((8, 1), "float32"))).batch(4)
    >>> history = fit_custom_loop(model, train_ds, epochs=2, backup_dir="backup", verbose=0)
    >>> sorted(history), len(history["loss"])
    (['accuracy', 'loss'], 2)
    """
    callbacks = _check_fit_arguments(epochs, steps_per_epoch, verbose, save_freq, backup_dir, callbacks)
    train_dataset = _with_default_sharding(train_dataset, "train_dataset")
    if validation_data is not None:
        validation_data = _with_default_sharding(validation_data, "validation_data")
    loop = _CustomLoop(
        model,
        train_dataset,
        epochs=epochs,
        steps_per_epoch=steps_per_epoch,
        backup_dir=backup_dir,
        verbose=verbose,
        save_freq=save_freq,
        callbacks=callbacks,
        backup_settings=backup_settings,
        keep_backup=keep_backup,
    )
    return loop.run(validation_data)


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

    >>> import mmkeras, numpy as np
    >>> model = mmkeras.get_model("s0", **mmkeras.get_entry("s0").tiny)
    >>> x = {"image": np.zeros((6, 32, 32, 3), "float32"), "text": np.ones((6, 12), "int32")}
    >>> test_ds = tf.data.Dataset.from_tensor_slices((x, np.ones((6, 1), "float32"))).batch(4)
    >>> sorted(evaluate_custom_loop(model, test_ds))
    ['accuracy', 'loss']
    """
    dataset = _with_default_sharding(dataset, "dataset")
    return _evaluate(model, dataset, _Steps(model, dataset, "dataset"))


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

    >>> import mmkeras, numpy as np
    >>> model = mmkeras.get_model("s4_multitask", **mmkeras.get_entry("s4_multitask").tiny)
    >>> x = {"image": np.zeros((6, 32, 32, 3), "float32"), "text": np.ones((6, 12), "int32")}
    >>> outputs = predict_custom_loop(model, tf.data.Dataset.from_tensor_slices(x).batch(4))
    >>> {name: value.shape for name, value in sorted(outputs.items())}
    {'image_class': (6, 10), 'sentiment': (6, 1)}
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
    backup_settings=None,
    keep_backup=False,
):
    """Train under the model's strategy on the right path; return the history dict.

    `model.fit` with a backup callback (`keras.callbacks.BackupAndRestore` made safe, see
    below) where `fit` works, `fit_custom_loop` under `MultiWorkerMirroredStrategy` (where the
    callbacks run too, on every worker, see `fit_custom_loop`).

    Backup: with `backup_dir`, the weights (and optimizer state) are saved at the end of every
    epoch (every `save_freq` steps with an int), each time to a new file, written in full and
    renamed into place before `training_metadata.json` (also written atomically) points to it:
    a kill at any moment leaves the previous backup whole. The metadata also keeps the history
    of the finished epochs and `backup_settings`. A run started again with the same
    `backup_dir` goes on from the backup and returns the history of **all** epochs; a backup
    that cannot be read, or was made with other `backup_settings`, is refused with a
    `ValueError` (and kept).

    Args:
        model: a compiled `keras.Model`, built inside the strategy's scope.
        train_dataset: a `tf.data.Dataset` (or what `model.fit` takes), batched with the global
            batch size.
        epochs: int, the number of epochs.
        validation_data: as for `model.fit`. Defaults to `None`.
        backup_dir: str or None, where to back up training state. Defaults to `None`.
        steps_per_epoch: int or None, as for `model.fit`. Defaults to `None`.
        verbose: 0, 1 or 2, as for `model.fit`. Defaults to `1`.
        callbacks: list of `keras.callbacks.Callback` or None. Defaults to `None`.
        save_freq: `"epoch"` or an int (steps). Defaults to `"epoch"`.
        backup_settings: dict of JSON values or None, the run's settings, kept with the backup:
            resuming a backup made with other settings is refused. Defaults to `None`.
        keep_backup: bool, keep the backup once training ends (delete it later with
            `delete_backup`, e.g. once the results are saved). Defaults to `False`.

    Example:

    >>> import mmkeras, numpy as np
    >>> strategy = get_strategy("auto")
    >>> with strategy.scope():
    ...     model = mmkeras.get_model("s0", **mmkeras.get_entry("s0").tiny)
    >>> x = {"image": np.zeros((8, 32, 32, 3), "float32"), "text": np.ones((8, 12), "int32")}
    >>> train_ds = tf.data.Dataset.from_tensor_slices((x, np.ones((8, 1), "float32"))).batch(4)
    >>> history = fit(model, train_ds, epochs=2, backup_dir="backup", verbose=0)
    >>> sorted(history), os.path.exists("backup")  # the backup is deleted once training ends
    (['accuracy', 'loss'], False)
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
            backup_settings=backup_settings,
            keep_backup=keep_backup,
        )
    callbacks = list(callbacks or [])
    backup = None
    if backup_dir is not None:
        backup = _Backup(backup_dir, save_freq=save_freq, settings=backup_settings, keep=keep_backup)
        callbacks.append(backup)
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
    if backup is None:
        return history.history
    return backup.history  # the restored epochs' history, then this run's


# --------------------------------------------------------------------------------------------
# Backups of `fit`: saved atomically, with the run's settings and history.

BACKUP_METADATA = "training_metadata.json"  # the name keras.callbacks.BackupAndRestore uses
_LEGACY_WEIGHTS = "latest.weights.h5"


def _backup_files(backup_dir):
    """The files of mmkeras' (and Keras') backup format in `backup_dir`."""
    try:
        entries = os.listdir(backup_dir)
    except OSError:
        return []
    ours = []
    for name in entries:
        if (
            name in (BACKUP_METADATA, _LEGACY_WEIGHTS, BACKUP_METADATA + ".bkp", _LEGACY_WEIGHTS + ".bkp")
            or (name.startswith("backup-") and name.endswith(".weights.h5"))
            or (name.startswith((".backup-", ".training_metadata.tmp-")) and ".tmp-" in name)
        ):
            ours.append(name)
    return ours


def delete_backup(backup_dir):
    """Delete the backup `fit` keeps in `backup_dir`: its own files only, then the folder if empty.

    Example:

    >>> delete_backup("no_such_folder")  # nothing to do
    """
    backup_dir = os.fspath(backup_dir)
    for name in _backup_files(backup_dir):
        with contextlib.suppress(OSError):
            os.remove(os.path.join(backup_dir, name))
    if os.path.isdir(backup_dir):
        _delete_checkpoints(backup_dir)
        with contextlib.suppress(OSError):
            os.rmdir(backup_dir)


LOOP_METADATA = "mmkeras_backup.json"  # the custom loop's settings and history, beside its checkpoints


def _read_loop_metadata(backup_dir):
    path = os.path.join(backup_dir, LOOP_METADATA)
    if not os.path.exists(path):
        return {}
    try:
        with open(path, encoding="utf-8") as f:
            meta = json.load(f)
        if not isinstance(meta, dict):
            raise ValueError("not a JSON object")
    except (OSError, ValueError) as error:
        raise _unreadable_backup(backup_dir, LOOP_METADATA, error) from None
    return meta


def _delete_checkpoints(backup_dir):
    """Remove the custom loop's checkpoint files (and workers' temporary folders) from `backup_dir`."""
    for name in os.listdir(backup_dir):
        path = os.path.join(backup_dir, name)
        if name == "checkpoint" or name.startswith(("ckpt-", ".tmp_")):
            if os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path, ignore_errors=True)
            else:
                with contextlib.suppress(OSError):
                    os.remove(path)
        elif name == LOOP_METADATA or name.startswith(".mmkeras_backup.tmp-"):
            with contextlib.suppress(OSError):
                os.remove(path)


def _unreadable_backup(backup_dir, what, error):
    why = str(error).splitlines()[0] if str(error) else type(error).__name__
    return ValueError(
        f"`backup_dir` holds a backup that cannot be read ({what}: {why}); it was kept as it is. "
        "To start over, delete or move that folder (or give another `backup_dir`). "
        f"Received: backup_dir={backup_dir!r}"
    )


def _jsonable(settings, name="backup_settings"):
    if settings is None:
        return {}
    if not isinstance(settings, dict):
        raise ValueError(f"`{name}` must be a dict of JSON values or None. Received: {name}={settings!r}")
    try:
        return json.loads(json.dumps(settings))
    except (TypeError, ValueError):
        raise ValueError(f"`{name}` must be a dict of JSON values or None. Received: {name}={settings!r}") from None


def _check_backup_settings(backup_dir, recorded, settings):
    """Refuse to resume a backup made with other settings (only keys both record are compared)."""
    recorded = recorded if isinstance(recorded, dict) else {}
    differ = [key for key in sorted(set(recorded) & set(settings)) if recorded[key] != settings[key]]
    if differ:
        changes = "; ".join(f"{key}={recorded[key]!r} there, {key}={settings[key]!r} now" for key in differ)
        raise ValueError(
            f"`backup_dir` holds the backup of a run with other settings ({changes}). Resume with the "
            "backup's settings, or start over with another `backup_dir` (or delete this one). "
            f"Received: backup_dir={backup_dir!r}"
        )


def _read_metadata(backup_dir):
    """The backup's metadata dict, or None when there is no backup; `ValueError` when unreadable."""
    path = os.path.join(backup_dir, BACKUP_METADATA)
    if not os.path.exists(path):
        if os.path.exists(os.path.join(backup_dir, _LEGACY_WEIGHTS)):
            return {"epoch": 0}  # Keras wrote the weights, not yet the metadata
        return None
    try:
        with open(path, encoding="utf-8") as f:
            meta = json.load(f)
        int(meta["epoch"])
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise _unreadable_backup(backup_dir, BACKUP_METADATA, error) from None
    return meta


class _Backup(keras.callbacks.BackupAndRestore):
    """`BackupAndRestore` that never leaves a broken backup, and knows the run it backs up.

    Each save writes the weights to a new file `backup-NNNNNN.weights.h5` (through a temporary
    file renamed into place), then `training_metadata.json` (atomically too) naming it, with the
    epoch, the history of the finished epochs and the run's settings; then it removes the older
    weights. Restoring refuses other settings and unreadable files with a clear `ValueError`.
    """

    def __init__(self, backup_dir, save_freq="epoch", settings=None, keep=False):
        super().__init__(os.fspath(backup_dir), save_freq=save_freq, delete_checkpoint=False)
        self.settings = _jsonable(settings)
        self.keep = keep
        self.history = {}
        self._saves = 0

    def on_train_begin(self, logs=None):
        meta = _read_metadata(self.backup_dir)
        if meta is None:
            return
        _check_backup_settings(self.backup_dir, meta.get("settings"), self.settings)
        weights = os.path.join(self.backup_dir, meta.get("weights", _LEGACY_WEIGHTS))
        if self.model.optimizer is not None and not self.model.optimizer.built:
            self.model.optimizer.build(self.model.trainable_variables)
        try:
            self.model.load_weights(weights)
        except (OSError, ValueError, KeyError) as error:
            raise _unreadable_backup(self.backup_dir, os.path.basename(weights), error) from None
        epoch = int(meta["epoch"])
        self.model._initial_epoch = epoch  # what BackupAndRestore sets: fit starts at this epoch
        self._current_epoch = epoch
        self._saves = int(meta.get("save", 0))
        self.history = {k: list(v)[:epoch] for k, v in (meta.get("history") or {}).items()}

    def on_epoch_end(self, epoch, logs=None):
        for key, value in (logs or {}).items():
            with contextlib.suppress(TypeError, ValueError):
                self.history.setdefault(key, []).append(float(value))
        super().on_epoch_end(epoch, logs)

    def _save_model(self):
        from mmkeras.atomic import atomic_file

        os.makedirs(self.backup_dir, exist_ok=True)
        self._saves += 1
        name = f"backup-{self._saves:06d}.weights.h5"
        with atomic_file(os.path.join(self.backup_dir, name)) as tmp:
            self.model.save_weights(tmp, overwrite=True)
        meta = {
            "epoch": self._current_epoch, "batch": self._last_batch_seen, "weights": name,
            "save": self._saves, "settings": self.settings, "history": self.history,
        }
        with atomic_file(os.path.join(self.backup_dir, BACKUP_METADATA)) as tmp:
            with open(tmp, "w", encoding="utf-8") as f:
                json.dump(meta, f)
        for old in _backup_files(self.backup_dir):  # older weights, leftovers of killed saves
            if old not in (name, BACKUP_METADATA):
                with contextlib.suppress(OSError):
                    os.remove(os.path.join(self.backup_dir, old))

    def on_train_end(self, logs=None):
        if not self.keep:
            delete_backup(self.backup_dir)


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
