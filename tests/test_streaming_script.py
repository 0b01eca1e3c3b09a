"""benchmarks/streaming.py: a tiny run trains both ways and writes what its table says."""

import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

pytest.importorskip("easy_vqa")


@pytest.mark.slow
def test_a_tiny_run_reports_both_ways_and_their_ratio(tmp_path):
    out = tmp_path / "streaming.json"
    done = subprocess.run(
        [sys.executable, os.path.join(ROOT, "benchmarks", "streaming.py"), "--examples", "192", "--epochs", "2",
         "--repeats", "1", "--json", str(out)],
        capture_output=True, text=True, timeout=600, cwd=str(tmp_path),
    )
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(out.read_text())
    for way in ("memory", "files"):
        run = result[way]["runs"][0]
        assert len(run["epochs_s"]) == 2 and all(s > 0 for s in run["epochs_s"])
        assert result[way]["later_samples_per_s"]["median"] == pytest.approx(192 / run["epochs_s"][1])
    ratio = result["memory"]["runs"][0]["epochs_s"][1] / result["files"]["runs"][0]["epochs_s"][1]
    assert result["ratio_later_samples_per_s"] == pytest.approx(ratio)
    assert f"{ratio:.3f}" in done.stdout and result["examples"] == 192


def test_bad_arguments_are_refused():
    done = subprocess.run([sys.executable, os.path.join(ROOT, "benchmarks", "streaming.py"), "--epochs", "1"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "--epochs must be at least 2" in done.stderr
