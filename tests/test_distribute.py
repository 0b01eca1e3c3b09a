"""Tests of mmkeras.distribute: strategy selection, pipelines, the custom loop, and runs that
survive being killed.

Several replicas and several workers need processes of their own (logical CPU devices must be
configured before TensorFlow starts; each worker is a process): those tests run
tests/scripts/train_resumable.py in subprocesses, with timeouts, and kill every child they start.
"""

import contextlib
import errno
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

import mmkeras
from mmkeras import distribute
from tests.scripts.custom_task import penalized_model, random_examples

SCRIPT = Path(__file__).parent / "scripts" / "train_resumable.py"
TIMEOUT = 240  # seconds for one training subprocess (2 shared cores: startup alone takes ~10 s)


# ------------------------------------------------------------------------------------------------
# Helpers: processes that are always cleaned up.


def _env(tf_config=None):
    env = {k: v for k, v in os.environ.items() if k != "TF_CONFIG"}
    env.update(TF_CPP_MIN_LOG_LEVEL="3", KERAS_BACKEND="tensorflow", PYTHONUNBUFFERED="1")
    if tf_config is not None:
        env["TF_CONFIG"] = json.dumps(tf_config)
    return env


class Runs:
    """Start training subprocesses (output to log files); kill whatever is left on exit, then
    release the workers' ports."""

    def __init__(self, tmp_path):
        self.tmp_path = tmp_path
        self.procs = []
        self.ports = contextlib.ExitStack()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        try:
            for proc, _ in self.procs:
                if proc.poll() is None:
                    proc.kill()
                proc.wait(timeout=30)
        finally:
            self.ports.close()

    def start(self, name, args, tf_config=None):
        log = self.tmp_path / f"{name}.log"
        with open(log, "w") as out:
            proc = subprocess.Popen(
                [sys.executable, str(SCRIPT), *map(str, args)],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=_env(tf_config),
                cwd=self.tmp_path,
            )
        self.procs.append((proc, log))
        return proc, log

    def start_workers(self, name, args, n=2):
        # Held until every process here has ended: no other program is given them meanwhile.
        ports = self.ports.enter_context(distribute.reserve_ports(n))
        cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
        return [
            self.start(f"{name}{i}", ["--strategy", "multi_worker", *args], {"cluster": cluster, "task": {"type": "worker", "index": i}})
            for i in range(n)
        ]

    @staticmethod
    def wait(proc, log, timeout=TIMEOUT, ok=True):
        try:
            rc = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            pytest.fail(f"{log.name} ran past {timeout} s:\n{_tail(log)}")
        if ok and rc != 0:
            pytest.fail(f"{log.name} failed with exit code {rc}:\n{_tail(log)}")
        return rc

    @staticmethod
    def wait_for_line(proc, log, prefix, timeout=TIMEOUT):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(line.startswith(prefix) for line in log.read_text().splitlines()):
                return
            if proc.poll() is not None:
                pytest.fail(f"{log.name} ended (exit code {proc.returncode}) before {prefix!r}:\n{_tail(log)}")
            time.sleep(0.05)
        pytest.fail(f"{log.name} printed no {prefix!r} within {timeout} s:\n{_tail(log)}")


def _tail(log, n=30):
    return "\n".join(log.read_text().splitlines()[-n:])


def _lines(log, prefix):
    return [line for line in log.read_text().splitlines() if line.startswith(prefix)]


def _weights(path):
    data = np.load(path)
    return int(data["iterations"]), [data[k] for k in data.files if k != "iterations"]


def _assert_same_weights(a, b, atol):
    assert len(a) == len(b)
    for x, y in zip(a, b):
        np.testing.assert_allclose(x, y, atol=atol, rtol=0)


# ------------------------------------------------------------------------------------------------
# In-process: strategy selection, pipeline helpers, the custom loop against model.fit.


def test_get_strategy_names():
    assert isinstance(distribute.get_strategy("auto"), tf.distribute.Strategy)
    assert isinstance(distribute.get_strategy("mirrored"), tf.distribute.MirroredStrategy)
    assert isinstance(distribute.get_strategy("one_device"), tf.distribute.OneDeviceStrategy)
    assert not distribute.needs_custom_loop(distribute.get_strategy("auto"))
    assert not distribute.needs_custom_loop(distribute.get_strategy("mirrored"))


def test_get_strategy_errors(monkeypatch):
    with pytest.raises(ValueError, match=r"`strategy` must be one of .*did you mean 'mirrored'.*Received: strategy='mirored'"):
        distribute.get_strategy("mirored")
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(ValueError, match=r"TF_CONFIG is not set.*Received: strategy='multi_worker'"):
        distribute.get_strategy("multi_worker")
    monkeypatch.setenv("TF_CONFIG", "{not json")
    with pytest.raises(ValueError, match="TF_CONFIG is not valid JSON"):
        distribute.get_strategy("multi_worker")
    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": {"worker": ["127.0.0.1:1"]}, "task": {"type": "worker", "index": 3}}))
    with pytest.raises(ValueError, match="is not in its cluster"):
        distribute.get_strategy("multi_worker")
    with pytest.raises(ValueError, match=r"'tpu' cannot: no TPU found.*Received: strategy='tpu'"):
        distribute.get_strategy("tpu")
    with pytest.raises(ValueError, match="must be a tf.distribute.Strategy"):
        distribute.needs_custom_loop("mirrored")


def test_pipeline_helpers():
    dataset = distribute.distribute_dataset_options(tf.data.Dataset.range(8).batch(4))
    assert dataset.options().experimental_distribute.auto_shard_policy == tf.data.experimental.AutoShardPolicy.DATA
    with pytest.raises(ValueError, match="Received: policy='rows'"):
        distribute.distribute_dataset_options(dataset, "rows")
    with pytest.raises(ValueError, match="`dataset` must be a tf.data.Dataset"):
        distribute.distribute_dataset_options([1, 2])
    assert distribute.global_batch_size(16, tf.distribute.get_strategy()) == 16
    with pytest.raises(ValueError, match="per_replica_batch_size"):
        distribute.global_batch_size(0)


def test_free_ports():
    ports = distribute.free_ports(3)
    assert len(set(ports)) == 3 and all(isinstance(p, int) and 0 < p < 65536 for p in ports)
    with pytest.raises(ValueError, match="Received: n=0"):
        distribute.free_ports(0)
    with pytest.raises(ValueError, match="Received: n=0"):
        with distribute.reserve_ports(0):
            pass


def test_reserved_ports_are_refused_to_others_but_not_to_a_worker():
    """While held, a port is refused to a plain bind, but a socket binding it with SO_REUSEADDR and
    listening (as a worker's gRPC server does) gets it."""
    with distribute.reserve_ports(2) as ports:
        assert len(set(ports)) == 2
        for port in ports:
            with socket.socket() as other, pytest.raises(OSError) as refused:
                other.bind(("127.0.0.1", port))
            assert refused.value.errno == errno.EADDRINUSE
        with socket.socket() as worker:
            worker.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            worker.bind(("127.0.0.1", ports[0]))
            worker.listen()
            with socket.create_connection(("127.0.0.1", ports[0]), timeout=10):
                pass


def _tiny_data(model, n=32, batch_size=8, seed=0):
    x, y = random_examples(model, n, seed)
    return tf.data.Dataset.from_tensor_slices((x, y)).batch(batch_size), x


@pytest.mark.parametrize("name", ["s0", "s4_multitask"])
def test_custom_loop_matches_fit(name):
    """The custom loop computes what `model.fit` computes: same losses, metrics and weights."""
    tiny = mmkeras.get_entry(name).tiny
    keras.utils.set_random_seed(3)
    model_a = mmkeras.get_model(name, **tiny)
    keras.utils.set_random_seed(3)
    model_b = mmkeras.get_model(name, **tiny)
    dataset, x = _tiny_data(model_a, n=36)  # 4 full batches and a short one
    history_fit = model_a.fit(dataset, epochs=2, validation_data=dataset, shuffle=False, verbose=0).history
    history_loop = distribute.fit_custom_loop(model_b, dataset, epochs=2, validation_data=dataset, verbose=0)
    assert set(history_loop) == set(history_fit), (sorted(history_loop), sorted(history_fit))
    for key in history_fit:
        np.testing.assert_allclose(history_loop[key], history_fit[key], rtol=1e-4, atol=1e-5, err_msg=key)
    _assert_same_weights(model_b.get_weights(), model_a.get_weights(), atol=1e-5)
    evaluated = distribute.evaluate_custom_loop(model_b, dataset)
    expected = model_a.evaluate(dataset, verbose=0, return_dict=True)
    for key in expected:
        np.testing.assert_allclose(evaluated[key], expected[key], rtol=1e-4, atol=1e-5, err_msg=key)
    predicted = distribute.predict_custom_loop(model_b, dataset)
    tf.nest.map_structure(
        lambda p, q: np.testing.assert_allclose(p, q, atol=1e-5), predicted, model_a.predict(x, verbose=0)
    )


def test_custom_loop_trains_a_task_with_its_own_loss():
    """A task whose `compute_loss` is not its head's loss (head's loss + a penalty on the outputs,
    plus a weight regularizer): the custom loop trains it as `model.fit` does, per-output losses
    included, with a short last batch."""
    keras.utils.set_random_seed(3)
    model_a = penalized_model("s4_multitask")
    keras.utils.set_random_seed(3)
    model_b = penalized_model("s4_multitask")
    dataset, _ = _tiny_data(model_a, n=36)
    history_fit = model_a.fit(dataset, epochs=2, shuffle=False, verbose=0).history
    history_loop = distribute.fit_custom_loop(model_b, dataset, epochs=2, verbose=0)
    assert {"loss", "image_class_loss", "sentiment_loss"} <= set(history_loop) == set(history_fit)
    for key in history_fit:
        np.testing.assert_allclose(history_loop[key], history_fit[key], rtol=1e-4, atol=1e-5, err_msg=key)
    _assert_same_weights(model_b.get_weights(), model_a.get_weights(), atol=1e-5)
    evaluated = distribute.evaluate_custom_loop(model_b, dataset)
    expected = model_a.evaluate(dataset, verbose=0, return_dict=True)
    for key in expected:
        np.testing.assert_allclose(evaluated[key], expected[key], rtol=1e-4, atol=1e-5, err_msg=key)
    # The penalty counts: the loss is above the loss of the head alone (weighted per-output losses).
    weights = model_b.head.compile_args().get("loss_weights") or {}
    head_loss = sum(weights.get(name, 1.0) * evaluated[f"{name}_loss"] for name in model_b.output_names)
    assert evaluated["loss"] > head_loss + 0.01


def test_custom_loop_backup_resumes(tmp_path):
    """A loop run again over a backup goes on from it; the result equals one uninterrupted run."""
    tiny = mmkeras.get_entry("s0").tiny
    keras.utils.set_random_seed(5)
    reference = mmkeras.get_model("s0", **tiny)
    dataset, _ = _tiny_data(reference)
    distribute.fit_custom_loop(reference, dataset, epochs=3, verbose=0)

    class Crash(Exception):
        pass

    class CrashAfter(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if int(self.model.optimizer.iterations.numpy()) == 6:  # in the middle of epoch 2
                raise Crash()

    keras.utils.set_random_seed(5)
    first = mmkeras.get_model("s0", **tiny)
    backup = tmp_path / "backup"
    with pytest.raises(Crash):
        distribute.fit_custom_loop(first, dataset, epochs=3, backup_dir=backup, save_freq=2, verbose=0, callbacks=[CrashAfter()])
    assert tf.train.latest_checkpoint(str(backup))  # the backup of step 6 is there
    keras.utils.set_random_seed(99)  # a fresh model, other initial weights: all must come from the backup
    second = mmkeras.get_model("s0", **tiny)
    history = distribute.fit_custom_loop(second, dataset, epochs=3, backup_dir=backup, verbose=0)
    assert len(history["loss"]) == 3  # epoch 1 (kept with the backup), 2 (its second half) and 3
    assert int(second.optimizer.iterations.numpy()) == int(reference.optimizer.iterations.numpy()) == 12
    _assert_same_weights(second.get_weights(), reference.get_weights(), atol=1e-5)
    assert not backup.exists()  # deleted once training ends, as BackupAndRestore does


def test_custom_loop_argument_errors():
    model = mmkeras.get_model("s0", **mmkeras.get_entry("s0").tiny)
    dataset, x = _tiny_data(model)
    with pytest.raises(ValueError, match="Received: epochs=0"):
        distribute.fit_custom_loop(model, dataset, epochs=0)
    with pytest.raises(ValueError, match="`train_dataset` must be a tf.data.Dataset"):
        distribute.fit_custom_loop(model, x, epochs=1)
    with pytest.raises(ValueError, match="`train_dataset` must yield at least one batch"):
        distribute.fit_custom_loop(model, dataset.take(0), epochs=1)
    with pytest.raises(ValueError, match="other than BackupAndRestore"):
        distribute.fit_custom_loop(model, dataset, epochs=1, callbacks=[keras.callbacks.BackupAndRestore("b")])
    uncompiled = mmkeras.get_model("s0", compile=False, **mmkeras.get_entry("s0").tiny)
    with pytest.raises(ValueError, match="`model` must be compiled"):
        distribute.fit_custom_loop(uncompiled, dataset, epochs=1)


# ------------------------------------------------------------------------------------------------
# Subprocesses: 2 replicas on 2 logical CPU devices, 2 workers on 127.0.0.1, killed runs.

COMMON = ["--model", "s0", "--epochs", "2", "--steps", "4", "--batch-size", "8"]


def test_mirrored_two_replicas_match_one(tmp_path):
    """MirroredStrategy over 2 logical CPU devices trains like 1 replica on the same global batches,
    with `model.fit` and with the custom loop."""
    with Runs(tmp_path) as runs:
        one = runs.start("one", [*COMMON, "--out", "one.npz", "--losses", "one.json"])
        two = runs.start("two", [*COMMON, "--strategy", "mirrored", "--logical-devices", "2", "--out", "two.npz", "--losses", "two.json"])
        loop = runs.start("loop", [*COMMON, "--strategy", "mirrored", "--logical-devices", "2", "--loop", "custom", "--out", "loop.npz", "--losses", "loop.json"])
        for proc, log in (one, two, loop):
            runs.wait(proc, log)
    assert _lines(two[1], "READY") == ["READY replicas=2"]
    assert _lines(one[1], "READY") == ["READY replicas=1"]
    losses_one = json.loads((tmp_path / "one.json").read_text())
    for name in ("two", "loop"):
        losses = json.loads((tmp_path / f"{name}.json").read_text())
        assert len(losses) == len(losses_one) == 8
        np.testing.assert_allclose(losses, losses_one, rtol=1e-4, atol=1e-5, err_msg=name)
        iterations, weights = _weights(tmp_path / f"{name}.npz")
        assert iterations == 8
        _assert_same_weights(weights, _weights(tmp_path / "one.npz")[1], atol=1e-5)


def test_multi_worker_identical_weights(tmp_path):
    """2 MultiWorkerMirroredStrategy workers on 127.0.0.1 (via TF_CONFIG) end with identical weights,
    equal to one process training on the same global batches."""
    with Runs(tmp_path) as runs:
        workers = runs.start_workers("worker", [*COMMON, "--out", "worker{task}.npz", "--losses", "worker{task}.json"])
        one = runs.start("one", [*COMMON, "--out", "one.npz", "--losses", "one.json"])
        for proc, log in (*workers, one):
            runs.wait(proc, log)
    assert _lines(workers[0][1], "READY") == ["READY replicas=2"]
    (it0, w0), (it1, w1), (it, w) = (_weights(tmp_path / f) for f in ("worker0.npz", "worker1.npz", "one.npz"))
    assert it0 == it1 == it == 8
    _assert_same_weights(w0, w1, atol=0)  # identical
    _assert_same_weights(w0, w, atol=1e-5)
    losses0 = json.loads((tmp_path / "worker0.json").read_text())
    np.testing.assert_allclose(losses0, json.loads((tmp_path / "worker1.json").read_text()), atol=0)
    np.testing.assert_allclose(losses0, json.loads((tmp_path / "one.json").read_text()), rtol=1e-4, atol=1e-5)


def _two_workers_match_one_process(tmp_path, args, outputs, iterations):
    """Run `train_resumable.py args` as 2 MultiWorkerMirroredStrategy workers and as one process;
    assert identical weights on both workers, equal to the one process's to 1e-5, and the same
    per-step losses. `outputs` are arguments with `{}` for the run's name. Returns the worker 0 and
    one-process losses."""
    with Runs(tmp_path) as runs:
        workers = runs.start_workers("worker", [*args, *(a.format("worker{task}") for a in outputs)])
        one = runs.start("one", [*args, *(a.format("one") for a in outputs)])
        for proc, log in (*workers, one):
            runs.wait(proc, log)
    assert _lines(workers[0][1], "READY") == ["READY replicas=2"]
    (it0, w0), (it1, w1), (it, w) = (_weights(tmp_path / f) for f in ("worker0.npz", "worker1.npz", "one.npz"))
    assert it0 == it1 == it == iterations
    _assert_same_weights(w0, w1, atol=0)
    _assert_same_weights(w0, w, atol=1e-5)
    losses0, losses1, losses = (json.loads((tmp_path / f"{n}.json").read_text()) for n in ("worker0", "worker1", "one"))
    np.testing.assert_allclose(losses0, losses1, atol=0)
    np.testing.assert_allclose(losses0, losses, rtol=1e-4, atol=1e-5)


@pytest.mark.slow  # two worker processes (about 13 s); the loss scaling is also checked in one process above
def test_multi_worker_trains_a_task_with_its_own_loss(tmp_path):
    """2 MultiWorkerMirroredStrategy workers train a task with its own `compute_loss` and a weight
    regularizer, on a multi-task recipe, with a short last batch split unevenly between the workers:
    identical weights on both, equal to one process running `model.fit` on the same global batches,
    and the same per-step losses and per-epoch logs (per-output losses included)."""
    args = ["--model", "s4_multitask", "--task", "penalized", "--epochs", "2", "--steps", "3", "--batch-size", "8"]
    args += ["--last-batch", "5"]  # split 3 / 2 between the workers
    outputs = ["--out", "{}.npz", "--losses", "{}.json", "--history", "history_{}.json"]
    _two_workers_match_one_process(tmp_path, args, outputs, iterations=6)
    history0, history = (json.loads((tmp_path / f"history_{n}.json").read_text()) for n in ("worker0", "one"))
    assert {"loss", "image_class_loss", "sentiment_loss"} <= set(history0) == set(history)
    for key in history:
        np.testing.assert_allclose(history0[key], history[key], rtol=1e-4, atol=1e-5, err_msg=key)


@pytest.mark.slow  # two worker processes and one more (about 15 s)
def test_multi_worker_trains_a_dual_encoder_with_negatives_from_both_workers(tmp_path):
    """2 MultiWorkerMirroredStrategy workers train a dual encoder (its contrastive loss gathers the
    embeddings of both workers), with an uneven last batch: identical weights on both, equal to one
    process on the same global batches. Batch norm is off: its statistics are per replica."""
    args = ["--model", "clip_small", "--overrides", json.dumps({"image_encoder": {"batch_norm": False}}),
            "--epochs", "2", "--steps", "3", "--batch-size", "8", "--last-batch", "5"]
    _two_workers_match_one_process(tmp_path, args, ["--out", "{}.npz", "--losses", "{}.json"], iterations=6)


KILL = ["--model", "s0", "--epochs", "3", "--steps", "6", "--batch-size", "8"]


def _kill_when_paused(runs, proc, log, where):
    """Wait until the child says it waits at `where` (`--pause-at`), then SIGKILL it there."""
    runs.wait_for_line(proc, log, f"PAUSED {where}")
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(timeout=30) == -signal.SIGKILL
    assert _lines(log, "STEP")[-1] == f"STEP {where}", "it went past the step it paused at"
    assert not _lines(log, "DONE")


def test_killed_fit_resumes_from_backup(tmp_path):
    """SIGKILL `fit` with BackupAndRestore mid-epoch (after step 2 of epoch 1, where the child waits
    to be killed); the same command again resumes from the backup of epoch 0 and ends with the step
    count and weights of an uninterrupted run (same seed, deterministic ops)."""
    command = [*KILL, "--backup-dir", "backup", "--out", "resumed.npz"]
    with Runs(tmp_path) as runs:
        reference = runs.start("reference", [*KILL, "--out", "reference.npz"])
        proc, log = runs.start("killed", [*command, "--pause-at", "1:2"])
        _kill_when_paused(runs, proc, log, "epoch=1 step=2")
        backed_up = json.loads((tmp_path / "backup" / "training_metadata.json").read_text())["epoch"]
        assert backed_up == 1  # epoch 0 is backed up; the killed epoch 1 was cut short
        proc, log2 = runs.start("restarted", command)
        runs.wait(proc, log2)
        runs.wait(*reference)
    assert _lines(log2, "RESUME")
    assert _lines(log2, "BEGIN")[0] == "BEGIN epoch=1"  # it went on from the backup
    assert _lines(log2, "STEP")[0] == "STEP epoch=1 step=0"
    iterations, weights = _weights(tmp_path / "resumed.npz")
    ref_iterations, ref_weights = _weights(tmp_path / "reference.npz")
    assert iterations == ref_iterations == 18
    _assert_same_weights(weights, ref_weights, atol=1e-5)
    assert not (tmp_path / "backup").exists()


@pytest.mark.slow
def test_killed_worker_then_restarted_cluster_resumes(tmp_path):
    """SIGKILL one of 2 workers mid-epoch (worker 1, after step 2 of epoch 1 = iteration 9, where it
    waits to be killed). What tf.distribute does here: the surviving worker's next collective fails
    ("UnavailableError: Collective ops is aborted by: ... The following tasks are unhealthy
    (stopped sending heartbeats)") and it exits; it cannot go on alone. Starting both workers again
    with the same command resumes from the chief's checkpoint of iteration 8 (`--save-freq 4`) and
    ends like an uninterrupted run."""
    args = [*KILL, "--backup-dir", "backup", "--save-freq", "4", "--out", "resumed{task}.npz"]
    with Runs(tmp_path) as runs:
        reference = runs.start("reference", [*KILL, "--out", "reference.npz"])
        (w0, log0), (w1, log1) = runs.start_workers("first", [*args, "--pause-at", "1:2", "--pause-task", "1"])
        _kill_when_paused(runs, w1, log1, "epoch=1 step=2")
        rc = runs.wait(w0, log0, timeout=180, ok=False)
        assert rc != 0 and not _lines(log0, "DONE")
        assert "UnavailableError" in log0.read_text() or "unhealthy" in log0.read_text()
        assert tf.train.latest_checkpoint(str(tmp_path / "backup"))
        restarted = runs.start_workers("second", args)
        for proc, log in restarted:
            runs.wait(proc, log)
        runs.wait(*reference)
    assert _lines(restarted[0][1], "RESUME")
    # It went on from the checkpoint of iteration 8: epoch 1 (6 steps per epoch), its step 2.
    assert _lines(restarted[0][1], "STEP")[0] == "STEP epoch=1 step=2"
    (it0, w0), (it1, w1) = (_weights(tmp_path / f"resumed{i}.npz") for i in range(2))
    ref_iterations, ref_weights = _weights(tmp_path / "reference.npz")
    assert it0 == it1 == ref_iterations == 18
    _assert_same_weights(w0, w1, atol=0)
    _assert_same_weights(w0, ref_weights, atol=1e-5)


@pytest.mark.slow
def test_multi_worker_names_a_worker_that_never_starts(tmp_path, capsys):
    """Only worker 0 of a 2-worker cluster starts: after MMKERAS_WORKER_TIMEOUT seconds `mmkeras train`
    stops with one line naming worker 1 (TensorFlow alone would wait forever), exit status 2."""
    with distribute.reserve_ports(2) as ports:
        cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
        env = {**_env({"cluster": cluster, "task": {"type": "worker", "index": 0}}), "MMKERAS_WORKER_TIMEOUT": "2"}
        started = time.monotonic()
        proc = subprocess.run(
            [sys.executable, "-m", "mmkeras.cli", "train", "--tiny", "--strategy", "multi_worker",
             "--limit", "50", "--output", str(tmp_path / "run")],
            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
        )
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert f"worker 1 (127.0.0.1:{ports[1]}) did not start within 2 s" in proc.stderr
    assert "Traceback" not in proc.stderr and time.monotonic() - started < 60
    assert os.listdir(tmp_path) == []
