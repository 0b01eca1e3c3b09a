"""Fault test: SIGKILL `mmkeras train --backup-dir ...` at chosen points, then run it again.

Each case kills a tiny, few-step run (`tests/scripts/train_killed.py` wraps one function so that a
given call kills the process: no kill hooks in the library) during training, during the backup
save and during the publish of the run folder. The same command run again must resume or start
cleanly, end with a complete run folder whose history covers every epoch, and leave nothing
behind: no backup, no temporary files or folders.

A few minutes in all (two processes per case): `-m slow`.
"""

import json
import os
import signal
import subprocess
import sys

import pytest

SCRIPT = os.path.join(os.path.dirname(__file__), "scripts", "train_killed.py")
EPOCHS = 3
COMMAND = [
    "train", "--tiny", "--limit", "120", "--epochs", str(EPOCHS), "--max-steps", "2", "--batch-size", "16",
    "--quiet", "--output", "run", "--backup-dir", "backup",
]
RUN_FILES = ["history.png", "metrics.json", "model.keras", "saved_model"]

# (case id, arguments of train_killed.py, whether `run` exists (an empty folder) before the first run)
CASES = [
    ("after_a_backup", ["--kill-at", "mmkeras.distribute._Backup._save_model", "--call", "2", "--when", "after"], False),
    ("backup_weights_half_written", ["--kill-at", "keras.Model.save_weights", "--call", "2", "--when", "truncate"], False),
    ("backup_weights_written_not_renamed", ["--kill-at", "keras.Model.save_weights", "--call", "2", "--when", "after"], False),
    ("between_backup_weights_and_metadata",
     ["--kill-at", "os.replace", "--match", "training_metadata.json", "--call", "2", "--when", "before"], False),
    ("while_the_run_folder_is_written", ["--kill-at", "mmkeras.export.export_model", "--when", "before"], False),
    ("run_folder_written_before_publish", ["--kill-at", "mmkeras.atomic._publish", "--when", "before"], True),
    ("publish_after_the_swap", ["--kill-at", "mmkeras.atomic._exchange", "--when", "after"], True),
    ("publish_between_two_renames",
     ["--no-exchange", "--kill-at", "os.rename", "--match", ".old", "--when", "after"], True),
    ("after_publish_before_the_backup_is_deleted",
     ["--kill-at", "mmkeras.distribute.delete_backup", "--when", "before"], False),
]


def _run(cwd, args, timeout=300):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": os.pathsep.join(sys.path)}
    return subprocess.run(
        [sys.executable, SCRIPT, *args, "--", *COMMAND], cwd=cwd, env=env, capture_output=True, text=True,
        timeout=timeout,
    )


@pytest.mark.slow
@pytest.mark.parametrize("case, kill, existing", CASES, ids=[c[0] for c in CASES])
def test_killed_train_then_rerun_ends_clean(tmp_path, case, kill, existing):
    if existing:
        (tmp_path / "run").mkdir()
    killed = _run(tmp_path, kill)
    assert killed.returncode == -signal.SIGKILL, (killed.returncode, killed.stdout[-2000:], killed.stderr[-3000:])
    assert "KILLED at" in killed.stdout
    rerun = _run(tmp_path, [])
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    # A complete run folder, and nothing else: no backup, no temporary or partial files.
    assert sorted(os.listdir(tmp_path)) == ["run"], sorted(os.listdir(tmp_path))
    assert sorted(os.listdir(tmp_path / "run")) == RUN_FILES
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["epochs"] == EPOCHS
    assert all(len(values) == EPOCHS for values in metrics["history"].values()), metrics["history"]
