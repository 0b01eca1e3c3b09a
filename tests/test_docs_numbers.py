"""Numbers the docs state come from code: a change of model or data that moves them fails here.

- the easy-VQA answers that ignore the image (37.3%, 67.0%) are computed by
  `mmkeras.data.datasets.text_only_baselines` from the package's questions;
- the parameter counts in docs/models.md are those of the models the registry builds.
"""

import os
import re

import easy_vqa
import numpy as np

import mmkeras
from mmkeras.data.datasets import text_only_baselines
from mmkeras.preprocessing import text_vectorizer
from tests.helpers import load_benchmark

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _read(*parts):
    with open(os.path.join(ROOT, *parts), encoding="utf-8") as f:
        return f.read()


def _percent(value):
    return f"{100 * value:.1f}%"


def test_text_only_baselines_count_the_training_answers():
    result = text_only_baselines(["a?", "a?", "a?", "b?"], [1, 1, 0, 2], ["A? ", "b?", "c?"], [1, 0, 1])
    # 'a?' -> 1 (2 of 3), 'b?' -> 2, unseen 'c?' -> the most common answer, 1.
    assert result == {"most_common_answer": 2 / 3, "question_only": 2 / 3}


def test_easy_vqa_baselines_in_the_docs_are_computed():
    train_texts, train_answers, _ = easy_vqa.get_train_questions()
    test_texts, test_answers, _ = easy_vqa.get_test_questions()
    result = text_only_baselines(train_texts, np.array(train_answers), test_texts, np.array(test_answers))
    common, question = _percent(result["most_common_answer"]), _percent(result["question_only"])
    assert (common, question) == ("37.3%", "67.0%"), (common, question)  # the figures the docs give
    for path in (("docs", "datasets.md"), ("mmkeras", "data", "easy_vqa.py")):
        text = _read(*path)
        assert common in text and question in text, path
    benchmark = load_benchmark("accuracy")
    benchmarks_md = _read("docs", "benchmarks.md")
    for name, value in benchmark.vqa_comparisons():  # the lines the benchmark writes
        assert f"- {name}: {value}" in benchmarks_md


def test_parameter_counts_in_docs_models_are_the_registrys():
    models_md = _read("docs", "models.md")
    for name in ("s0", "s1", "s2", "s3", "s4"):
        row = re.search(rf"^\| `{name}` \|.*$", models_md, re.M).group(0)
        count = mmkeras.get_model(name, compile=False).count_params()
        assert f"{count:,}" in row, (name, count, row)
    registered = mmkeras.get_model("vqa", compile=False).count_params()
    train_texts, _, _ = easy_vqa.get_train_questions()
    vocabulary = text_vectorizer(train_texts, sequence_length=9).vocabulary_size()
    trained = mmkeras.get_model("vqa", vocab_size=vocabulary, compile=False).count_params()
    paragraph = models_md[models_md.index("## The default recipe"):]
    assert f"{registered:,} parameters as registered" in paragraph
    assert f"{trained:,} when\ntrained on easy-VQA, whose questions use {vocabulary} tokens" in paragraph
