"""benchmarks/accuracy.py without training: its Fashion-MNIST goal line, the machines it names and
its check of recipe names."""

import pytest

from tests.helpers import load_benchmark


@pytest.fixture(scope="module")
def accuracy():
    return load_benchmark("accuracy")


def record(recipe, seed, ranking, seconds=500.0, machine="machine A", day="2026-11-27"):
    return {"recipe": recipe, "dataset": "fashion_mnist_captions", "seed": seed, "test_ranking_accuracy": ranking,
            "train_wall_time_s": seconds, "machine": machine, "finished": f"{day} 12:00:00"}


def test_the_fashion_goal_needs_the_accuracy_and_the_time_of_the_best_recipe(accuracy):
    runs = [record("a", seed, value) for seed, value in enumerate([0.95, 0.94, 0.96])]  # median 95% in 500 s
    assert accuracy.fashion_goal(runs).endswith("Best: `a`, 95.000% in 500 s: **met**.")
    assert accuracy.fashion_goal([dict(r, train_wall_time_s=700.0) for r in runs]).endswith("**missed**.")
    low = [dict(r, test_ranking_accuracy=0.93) for r in runs]
    assert accuracy.fashion_goal(low).endswith("**missed**.")
    assert accuracy.fashion_goal(low + [record("b", 0, 0.95, seconds=100.0)]).endswith(
        "Best: `b`, 95.000% in 100 s: **met**."
    )


def test_the_header_names_each_machine_with_its_days(accuracy):
    runs = [record("a", 0, 0.9, day="2026-11-25"), record("a", 1, 0.9, day="2026-11-26"),
            record("b", 0, 0.9, machine="machine B"), {**record("c", 0, 0.9), "machine": None}]
    del runs[-1]["machine"]
    assert accuracy.machines(runs) == (
        "machine A (2026-11-25, 2026-11-26); machine B (2026-11-27); not recorded (2026-11-27)"
    )


def test_unknown_recipes_are_refused_before_anything_trains(accuracy, capsys):
    with pytest.raises(SystemExit):
        accuracy.parse_args(["--fashion-only", "--fashion-recipes", "fashion_cnn", "nope"])
    assert "Received: ['nope']" in capsys.readouterr().err
    assert accuracy.parse_args(["--fashion-only"]).fashion_recipes == ["vqa", "fashion_cnn"]
