"""benchmarks/fusions.py without training: its table, its goal line and the settings `--resume` refuses."""

import json

import pytest

from tests.helpers import load_benchmark


@pytest.fixture(scope="module")
def fusions():
    return load_benchmark("fusions")


def record(recipe, seed, accuracy, dataset="fashion_pairs", epochs=2, override=None, seconds=100.0):
    return {"recipe": recipe, "dataset": dataset, "seed": seed, "test_accuracy": accuracy, "parameters": 1000,
            "epochs": epochs, "batch_size": 64, "precision": "mixed_bfloat16", "train_wall_time_s": seconds,
            "override": override, "load_average": [0.5, 1.5], "finished": "2026-11-27 12:00:00"}


def write(path, records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records))


def test_render_only_ranks_by_median_and_keeps_the_rest_of_the_doc(fusions, tmp_path):
    results, doc = tmp_path / "runs.jsonl", tmp_path / "doc.md"
    write(results, [record("fusion_sum", 0, 0.72), record("fusion_sum", 1, 0.99), record("fusion_sum", 2, 0.74),
                    record("fusion_product", 0, 0.80), record("fusion_product", 1, 0.81, seconds=700),
                    record("fusion_product", 0, 0.99, dataset="easy_vqa")])
    doc.write_text(f"before\n{fusions.START}\nold table\n{fusions.END}\nafter\n")
    fusions.main(["--render-only", "--results", str(results), "--doc", str(doc)])
    text = doc.read_text()
    assert text.startswith("before\n") and text.endswith("\nafter\n") and "old table" not in text
    pairs = text[text.index("### fashion_pairs"):text.index("### easy_vqa")]  # the goal's dataset first
    product, total = pairs.index("`fusion_product`"), pairs.index("`fusion_sum`")
    assert product < total  # median 80.5% before 74% (by the mean, 81.7% would put the sum first)
    assert "| 1 | `fusion_product` | **80.50%** [80.00, 81.00] | 0.00 points |" in pairs
    assert "| 2 | `fusion_sum` | **74.00%** [72.00, 99.00] | 6.50 points |" in pairs
    assert "| 0, 1, 2 |" in pairs and "| 0.5 to 1.5 |" in pairs
    assert "**missed** (`fusion_product`, 80.50% in 400 s)" in pairs


def test_resume_refuses_runs_of_other_settings(fusions, tmp_path):
    results = tmp_path / "runs.jsonl"
    write(results, [record("fusion_sum", 0, 0.7, epochs=4)])
    args = ["--resume", "--epochs", "2", "--results", str(results), "--doc", str(tmp_path / "doc.md")]
    with pytest.raises(SystemExit, match="holds runs of other settings"):
        fusions.main(args)
    write(results, [record("fusion_sum", 0, 0.7, override={"image_encoder": {"output": "flatten"}})])
    with pytest.raises(SystemExit, match="holds runs of other settings"):
        fusions.main(args)  # the same epochs, another --override
    assert results.read_text().count("\n") == 1  # nothing was started over


def test_a_bad_override_is_refused(fusions, capsys):
    with pytest.raises(SystemExit):
        fusions.parse_args(["--override", "{not json"])
    assert "--override" in capsys.readouterr().err
