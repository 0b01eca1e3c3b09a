"""Nothing lost, nothing silently wrong: run folders, backups and training settings (issue 10).

Fast tests of the pieces (tiny models, a few steps, no subprocesses); tests/test_faults.py kills
whole `mmkeras train` runs at chosen points (`-m slow`).
"""

import json
import os
import stat
import subprocess
import sys
import threading

import keras
import numpy as np
import pytest
import tensorflow as tf

import mmkeras
from mmkeras import atomic, cli, distribute
from mmkeras.data import load_dataset
from mmkeras.training import runs, train
from mmkeras.training.train import _check_finite


def _fake_run(folder, files=("model.keras", "history.png")):
    """A folder as `mmkeras train` writes it (its metrics.json lists its files)."""
    folder.mkdir()
    for name in files:
        (folder / name).write_text("x")
    metrics = {"model": "vqa", "dataset": "easy_vqa", "versions": {"mmkeras": mmkeras.__version__},
               "files": sorted([*files, "metrics.json"])}
    (folder / "metrics.json").write_text(json.dumps(metrics))
    return folder


# --- 1. A folder is replaced only when it holds exactly what a run writes ----------------------


def test_output_folder_with_anything_else_is_refused_and_kept(tmp_path, capsys):
    run = _fake_run(tmp_path / "run")
    assert runs.is_run_folder(run) and runs.check_output(run) == str(run)
    (run / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match=r"also holds files a run does not write: \['notes.txt'\].*Received: output="):
        runs.check_output(run)
    # A metrics.json of the user's own does not make a folder replaceable.
    own = tmp_path / "own"
    own.mkdir()
    (own / "metrics.json").write_text('{"accuracy": 0.9}')
    (own / "data.csv").write_text("a,b\n")
    assert not runs.is_run_folder(own)
    assert cli.main(["train", "--tiny", "--output", str(own)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no mmkeras metrics.json. Nothing was changed" in err
    assert cli.main(["train", "--tiny", "--output", str(run)]) == 2
    assert "['notes.txt']" in capsys.readouterr().err
    assert sorted(os.listdir(own)) == ["data.csv", "metrics.json"]
    assert sorted(os.listdir(run)) == ["history.png", "metrics.json", "model.keras", "notes.txt"]
    # Even if a check were skipped, the publish step refuses to replace such a folder.
    with pytest.raises(ValueError, match="never other files"):
        with runs.atomic_folder(run, overwrite=True, replaceable=runs.is_run_folder, what=runs.WHAT):
            pass
    assert (run / "notes.txt").exists()


# --- 3. Run folders are published by a swap; stale partial folders are cleaned up ---------------


def _dead_pid():
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _leftover(parent, target, pid, suffix="abc123"):
    tmp = parent / f".{target}.tmp-{suffix}"
    tmp.mkdir()
    (tmp / "model.keras").write_text("half")
    (parent / f".{target}.tmp-{suffix}.owner").write_text(
        json.dumps({"pid": pid, "host": atomic.socket.gethostname(), "target": target})
    )
    return tmp


def test_stale_partial_folders_of_the_target_are_cleaned_up(tmp_path):
    dead = _leftover(tmp_path, "run", _dead_pid(), "dead")
    live = _leftover(tmp_path, "run", 1, "live")  # pid 1 runs: a writer still at work
    other = _leftover(tmp_path, "other", _dead_pid(), "dead")  # another target's: not ours to judge
    unmarked = tmp_path / ".run.tmp-nomark"  # no owner file: never touched
    unmarked.mkdir()
    with atomic.atomic_folder(tmp_path / "run") as staging:
        open(os.path.join(staging, "x.txt"), "w").close()
    assert not dead.exists() and not os.path.exists(f"{dead}.owner")
    assert live.exists() and other.exists() and unmarked.exists()
    assert os.listdir(tmp_path / "run") == ["x.txt"]


def test_a_kill_between_the_two_renames_is_repaired(tmp_path):
    """Without an atomic swap, a kill between the renames leaves the old folder at `<tmp>.old` and
    no target: the next writer moves it back before anything else."""
    tmp = _leftover(tmp_path, "run", _dead_pid())
    os.rename(_fake_run(tmp_path / "old"), f"{tmp}.old")
    assert atomic.clean_stale(tmp_path / "run") == [tmp.name]  # the old folder went back, not away
    assert sorted(os.listdir(tmp_path)) == ["run"]
    assert runs.is_run_folder(tmp_path / "run")


def test_publishing_swaps_the_old_folder_out_in_one_step(tmp_path, monkeypatch):
    """The target never goes missing: the old run and the new one swap with one rename."""
    old = _fake_run(tmp_path / "run")
    renames = []
    monkeypatch.setattr(atomic.os, "rename", lambda a, b: renames.append((a, b)) or os.replace(a, b))
    with atomic.atomic_folder(old, overwrite=True, replaceable=runs.is_run_folder) as staging:
        open(os.path.join(staging, "new.txt"), "w").close()
    assert os.listdir(old) == ["new.txt"] and renames == []  # renameat2(RENAME_EXCHANGE), no rename
    assert sorted(os.listdir(tmp_path)) == ["run"]


# --- 11. Files get the permissions the umask gives ---------------------------------------------


@pytest.mark.parametrize("umask", [0o022, 0o027])
def test_written_files_get_the_umask_permissions(tmp_path, umask):
    from mmkeras.preprocessing import Preprocessor

    previous = os.umask(umask)
    try:
        with atomic.atomic_file(tmp_path / "a.json") as tmp:
            with open(tmp, "w") as f:
                f.write("{}")
        with atomic.atomic_folder(tmp_path / "folder") as tmp:
            open(os.path.join(tmp, "b.txt"), "w").close()
        Preprocessor(image_shape=(8, 8, 3), vocabulary=["a", "b"], sequence_length=4).save(tmp_path / "preprocessor.json")
    finally:
        os.umask(previous)
    for name, default in (("a.json", 0o666), ("folder", 0o777), ("folder/b.txt", 0o666), ("preprocessor.json", 0o666)):
        assert stat.S_IMODE(os.stat(tmp_path / name).st_mode) == default & ~umask, name


# --- 12. Folders that cannot be written are refused up front -----------------------------------


def test_unwritable_output_or_backup_folder_is_refused_before_training(tmp_path, capsys):
    (tmp_path / "a_file").write_text("x")
    for option in ("--output", "--backup-dir"):
        assert cli.main(["train", "--tiny", option, str(tmp_path / "a_file" / "run")]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "must be a folder mmkeras can create and write" in err
        assert "is a file, not a folder" in err
    assert cli.main(["train", "--tiny", "--backup-dir", str(tmp_path / "a_file")]) == 2
    assert "`backup_dir` must be a folder, not an existing file" in capsys.readouterr().err
    assert sorted(os.listdir(tmp_path)) == ["a_file"]


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root writes into read-only folders")
def test_read_only_parent_is_refused_before_training(tmp_path, capsys):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        for option in ("--output", "--backup-dir"):
            assert cli.main(["train", "--tiny", option, str(locked / "run")]) == 2
            err = capsys.readouterr().err
            assert "cannot write in" in err and str(locked) in err
    finally:
        locked.chmod(0o755)


# --- 8, 15. Training settings -----------------------------------------------------------------


@pytest.mark.parametrize("value", [float("inf"), float("nan"), -1e-3, 0.0])
def test_learning_rate_must_be_finite_and_positive(tmp_path, value):
    with pytest.raises(ValueError, match=r"`learning_rate` must be a positive number \(finite, not NaN\). Received: learning_rate="):
        train(learning_rate=value, output=str(tmp_path / "run"))
    assert os.listdir(tmp_path) == []


def test_cli_refuses_inf_learning_rate_and_negative_seed(capsys):
    assert cli.main(["train", "--tiny", "--learning-rate", "inf"]) == 2
    assert "`learning_rate` must be a positive number (finite, not NaN). Received: learning_rate=inf" in capsys.readouterr().err
    assert cli.main(["train", "--tiny", "--seed", "-1"]) == 2
    assert "`seed` must be an integer from 0 to 2**32 - 1 (4294967295). Received: seed=-1" in capsys.readouterr().err


@pytest.mark.parametrize("seed", [-1, 2**32, 1.5, True])
def test_seed_is_checked_everywhere(seed, tmp_path):
    message = r"`seed` must be an integer from 0 to 2\*\*32 - 1"
    with pytest.raises(ValueError, match=message):
        train(seed=seed, output=False)
    with pytest.raises(ValueError, match=message):
        load_dataset("easy_vqa", seed=seed, limit=10, verbose=False)
    with pytest.raises(ValueError, match=message):
        mmkeras.data.load_table([{"image": "a.png", "text": "t", "label": "x"}], seed=seed)


def test_diverged_training_is_not_published(tmp_path):
    model = mmkeras.get_model("s0", **mmkeras.get_entry("s0").tiny)
    _check_finite(model, {"loss": [0.5, 0.4]}, 1e-3, None)  # fine: no error
    with pytest.raises(ValueError, match=r"Training diverged: the training loss became nan in epoch 2; nothing was saved"):
        _check_finite(model, {"loss": [0.5, float("nan")]}, 1e-3, None)
    backup = tmp_path / "backup"
    backup.mkdir()
    (backup / "training_metadata.json").write_text('{"epoch": 1}')
    model.set_weights([np.full_like(w, np.nan) for w in model.get_weights()])
    with pytest.raises(ValueError, match=r"the weights became NaN or infinite; nothing was saved; its backup in .* was removed"):
        _check_finite(model, {"loss": [0.5]}, 1e30, str(backup))
    assert not backup.exists()


@pytest.mark.slow
def test_a_diverging_run_fails_and_writes_nothing(tmp_path, capsys):
    assert cli.main(["train", "--tiny", "--limit", "120", "--epochs", "2", "--max-steps", "3", "--quiet",
                     "--learning-rate", "1e30", "--output", str(tmp_path / "run"),
                     "--backup-dir", str(tmp_path / "backup")]) == 2
    assert "Training diverged" in capsys.readouterr().err
    assert os.listdir(tmp_path) == []


# --- 2, 6. Backups: atomic, refused when unreadable or made with other settings, full history ----


class _StopAt(keras.callbacks.Callback):
    """Stand in for a kill: raise when epoch `epoch` begins (its backup of the epoch before is saved)."""

    def __init__(self, epoch):
        super().__init__()
        self.epoch = epoch

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == self.epoch:
            raise KeyboardInterrupt


def _tiny_fit(backup, epochs=3, stop_at=None, settings=None, custom_loop=False):
    keras.utils.set_random_seed(3)
    model = mmkeras.get_model("s0", **mmkeras.get_entry("s0").tiny)
    x = {"image": np.random.rand(8, 32, 32, 3).astype("float32"), "text": np.ones((8, 12), "int32")}
    dataset = tf.data.Dataset.from_tensor_slices((x, np.ones((8, 1), "float32"))).batch(4)
    callbacks = [] if stop_at is None else [_StopAt(stop_at)]
    fit = distribute.fit_custom_loop if custom_loop else distribute.fit
    return fit(model, dataset, epochs=epochs, backup_dir=str(backup), verbose=0, callbacks=callbacks,
               backup_settings=settings)


def test_backup_saves_atomically_and_an_unreadable_one_is_refused_and_kept(tmp_path, monkeypatch):
    backup = tmp_path / "backup"
    with pytest.raises(KeyboardInterrupt):
        _tiny_fit(backup, stop_at=2)
    meta = json.loads((backup / "training_metadata.json").read_text())
    assert meta["epoch"] == 2 and sorted(os.listdir(backup)) == [meta["weights"], "training_metadata.json"]
    # A save killed half-way (weights written, not yet renamed) leaves the last backup whole.
    saves = []
    real = keras.Model.save_weights

    def killed(self, path, **kwargs):
        saves.append(path)
        real(self, path, **kwargs)
        raise KeyboardInterrupt  # the kill comes before the rename

    monkeypatch.setattr(keras.Model, "save_weights", killed)
    with pytest.raises(KeyboardInterrupt):
        _tiny_fit(backup)
    monkeypatch.undo()
    assert os.path.basename(saves[0]).startswith(".backup-") and not os.path.exists(saves[0])
    assert json.loads((backup / "training_metadata.json").read_text()) == meta
    # Truncate the backup's weights (a kill in the middle of Keras' in-place write did this).
    weights = backup / meta["weights"]
    weights.write_bytes(weights.read_bytes()[:1000])
    with pytest.raises(ValueError, match=r"`backup_dir` holds a backup that cannot be read \(backup-\d+\.weights\.h5: .*\); "
                                         r"it was kept as it is. To start over, delete or move that folder"):
        _tiny_fit(backup)
    assert weights.exists() and (backup / "training_metadata.json").exists()


def test_keras_backup_truncated_in_place_is_refused_clearly(tmp_path):
    backup = tmp_path / "backup"
    backup.mkdir()
    (backup / "latest.weights.h5").write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 100)
    (backup / "training_metadata.json").write_text('{"epoch": 1, "batch": 0}')
    with pytest.raises(ValueError, match=r"backup that cannot be read \(latest\.weights\.h5: "):
        _tiny_fit(backup)


@pytest.mark.parametrize("custom_loop", [False, True], ids=["fit", "custom_loop"])
def test_resume_refuses_other_settings_and_returns_every_epoch(tmp_path, custom_loop):
    backup = tmp_path / "backup"
    settings = {"epochs": 3, "batch_size": 4}
    with pytest.raises(KeyboardInterrupt):
        _tiny_fit(backup, stop_at=2, settings=settings, custom_loop=custom_loop)
    with pytest.raises(ValueError, match=r"with other settings \(batch_size=4 there, batch_size=16 now; "
                                         r"epochs=3 there, epochs=1 now\)\. Resume with the backup's settings, or start over"):
        _tiny_fit(backup, epochs=1, settings={"epochs": 1, "batch_size": 16}, custom_loop=custom_loop)
    assert backup.exists()
    (backup / "notes.txt").write_text("mine")  # the backup's own files go once training ends, not these
    history = _tiny_fit(backup, settings=settings, custom_loop=custom_loop)
    assert len(history["loss"]) == 3  # the 2 restored epochs and the one trained now
    assert os.listdir(backup) == ["notes.txt"]


# --- 9. A multi-worker run does not wait forever for a worker that never starts -----------------


def _config(ports, index):
    return {"cluster": {"worker": [f"127.0.0.1:{p}" for p in ports]}, "task": {"type": "worker", "index": index}}


def test_workers_meet_before_the_strategy_starts():
    ports = distribute.free_ports(3)
    errors = []

    def worker(i):
        try:
            distribute.wait_for_workers(_config(ports, i), timeout=20)
        except Exception as error:  # noqa: BLE001  (reported below)
            errors.append(error)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert errors == [] and not any(t.is_alive() for t in threads)


def test_a_missing_worker_times_out_with_its_name(monkeypatch):
    ports = distribute.free_ports(2)
    with pytest.raises(ValueError, match=rf"'multi_worker' cannot: worker 1 \(127.0.0.1:{ports[1]}\) did not start "
                                         r"within 1 s .*set MMKERAS_WORKER_TIMEOUT to wait longer"):
        distribute.wait_for_workers(_config(ports, 0), timeout=1)
    monkeypatch.setenv("MMKERAS_WORKER_TIMEOUT", "2.5")
    assert distribute.worker_timeout() == 2.5
    monkeypatch.setenv("MMKERAS_WORKER_TIMEOUT", "soon")
    with pytest.raises(ValueError, match=r"`MMKERAS_WORKER_TIMEOUT` must be a positive number of seconds"):
        distribute.worker_timeout()


def test_a_truncated_model_in_a_run_folder_is_named(tmp_path, capsys):
    """`mmkeras predict/evaluate/export RUN` on a run whose model.keras was cut short say so, not "File not found"."""
    from mmkeras.cli import main

    run = tmp_path / "run"
    run.mkdir()
    (run / "model.keras").write_bytes(b"PK\x03\x04 cut short")
    (run / "metrics.json").write_text("{}")
    with pytest.raises(ValueError, match=r"`model` must be a valid .keras file .*not a zip archive \(14 bytes"):
        mmkeras.load_run(str(run))
    assert main(["export", str(run), str(tmp_path / "out")]) == 2
    assert "must be a valid .keras file" in capsys.readouterr().err
