"""benchmarks/stall.py: epochs are classed by the autotuning timer's boundaries; a tiny run compares both pipelines."""

import pytest

from tests.helpers import load_benchmark


@pytest.fixture(scope="module")
def stall():
    return load_benchmark("stall")


def test_epochs_ending_on_the_timer_boundaries_are_counted(stall):
    # The timer's boundaries: 10 ms x (2^k - 1), i.e. 0.31, 0.63, 1.27, 2.55, 5.11, 10.23, 20.47 s, ...;
    # shorter ones (0.15 s) are not counted: an epoch that short is too noisy to class.
    for seconds in (1.2735, 2.548, 2.558, 5.116, 10.24, 20.473, 40.96):
        assert stall.on_boundary(seconds), seconds
    for seconds in (0.15, 0.5, 1.0, 1.9, 2.2, 3.0, 4.3, 7.5, 15.0, 30.0):
        assert not stall.on_boundary(seconds), seconds


def test_a_tiny_run_times_both_pipelines(stall, tmp_path):
    out = tmp_path / "stall.json"
    result = stall.main(["--epochs", "2", "--steps", "2", "--batch-size", "8", "--json", str(out)])
    assert out.is_file()
    for name in ("mmkeras", "autotune"):
        row = result["rows"][name]
        assert len(row["epoch_s"]) == 2 and all(s > 0 for s in row["epoch_s"])
        assert row["min_s"] <= row["median_s"] <= row["max_s"]
    ratio = result["rows"]["autotune"]["median_s"] / result["rows"]["mmkeras"]["median_s"]
    assert result["ratio_of_medians"] == pytest.approx(ratio, abs=1e-3)


def test_bad_arguments_are_refused(stall):
    with pytest.raises(SystemExit):
        stall.parse_args(["--epochs", "0"])
