"""Every tutorial notebook runs from top to bottom (in its quick configuration) and prints what it
claims: each executed notebook's printed output is read back and its key facts asserted (a notebook
that prints `False`, a wrong count or an error message where it promises a result fails here)."""

import ast
import glob
import os
import re

import numpy as np
import pytest

nbclient = pytest.importorskip("nbclient")
nbformat = pytest.importorskip("nbformat")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NOTEBOOKS = sorted(glob.glob(os.path.join(ROOT, "notebooks", "*.ipynb")))


def printed(notebook):
    """What the executed notebook's code cells printed to stdout, one string per code cell."""
    return [
        "".join(o.get("text", "") for o in cell.get("outputs", []) if o.get("output_type") == "stream" and o.get("name") == "stdout")
        for cell in notebook.cells
        if cell.cell_type == "code"
    ]


def numbers(text):
    """The numbers of a printed NumPy array or list, e.g. `[7.315e-02 1.000e-05]` or `[0.81, 0.69]`."""
    return np.array([float(x) for x in re.findall(r"-?\d+(?:\.\d*)?(?:e[-+]?\d+)?", text)])


def line(text, pattern):
    """The one match of `pattern` (a regex) in `text`; fails showing the text when there is none."""
    found = re.findall(pattern, text, flags=re.MULTILINE)
    assert len(found) == 1, f"expected one line matching {pattern!r}, found {len(found)} in:\n{text}"
    return found[0]


def check_03(text):
    """03_export_and_serve: the export kept on a second write, string inputs in `saved_model_cli`,
    8 easy-VQA questions answered from a fresh process with answers from the label set, the same
    answers as the live model within its tolerance, bad requests refused, and the process serving on."""
    easy_vqa = pytest.importorskip("easy_vqa")
    labels = set(easy_vqa.get_answers())
    assert "FileExistsError: `path` already holds an export; it is kept" in text
    assert re.search(r"inputs\['image'\] tensor_info:\s+dtype: DT_STRING", text), text
    assert re.search(r"inputs\['text'\] tensor_info:\s+dtype: DT_STRING", text), text
    assert "outputs['answer_class']" in text
    served = re.findall(r"^(.+?)\s+-> (\S+)\s+\(truth: (\S+)\)$", text, flags=re.MULTILINE)
    questions, truths, _ = easy_vqa.get_test_questions()
    picks = range(0, 8 * 97, 97)  # the notebook's 8 questions
    assert [(q, t) for q, _, t in served] == [(questions[i], truths[i]) for i in picks], served
    assert {answer for _, answer, _ in served} <= labels, served
    difference, tolerance, same = line(text, r"largest difference (\S+) \(tolerance (\S+)\); same answers: (\w+)$")
    assert same == "True" and float(difference) < float(tolerance), (difference, tolerance, same)
    for name, error in [("corrupt bytes", r"image\[0\] \(9 bytes\) is not an encoded image"), ("empty image", "must hold the encoded bytes"),
                        ("not a batch", "must be a batch of encoded images"), ("sizes differ", "same number of examples")]:  # fmt: skip
        assert re.search(rf"^{name}\s+-> .*{error}", text, flags=re.MULTILINE), f"{name}:\n{text}"
    assert line(text, r"^still serving: \[b'(\w+)'\]$") in labels
    assert re.search(r"^FusionClassifier \[", text, flags=re.MULTILINE), text


def check_04(text):
    """04_distributed: 2 replicas train like 1, the custom loop like `fit`, the backup deleted at
    the end, 2 workers that both end with exit code 0, the same losses and identical weights, and
    the TPU refusal."""
    assert "MirroredStrategy with 2 replicas" in text
    assert "global batch 32 = 16 per replica x 2 replicas" in text
    two, one = line(text, r"^loss per epoch, 2 replicas: (.*) accuracy"), line(text, r"^loss per epoch, 1 replica: (.*) accuracy")
    np.testing.assert_allclose(numbers(two), numbers(one), atol=2e-5, err_msg="2 replicas against 1")
    assert float(line(text, r"^largest weight difference: (\S+)$")) < 1e-5  # quick mode: 4 steps
    loop, fit = line(text, r"^custom loop, 2 replicas: (.*)$"), line(text, r"^model.fit,\s+2 replicas: (.*)$")
    np.testing.assert_allclose(numbers(loop), numbers(fit), atol=2e-5, err_msg="custom loop against fit")
    assert line(text, r"deleted once training ended: (\w+)$") == "True"
    workers = re.findall(r"^\['worker (\d): loss per epoch (\[.*\])'\] exit code (-?\d+)$", text, flags=re.MULTILINE)
    assert [(w, code) for w, _, code in workers] == [("0", "0"), ("1", "0")], text
    assert workers[0][1] == workers[1][1], workers
    assert line(text, r"^identical weights on both workers: (\w+)$") == "True"
    assert "'tpu' cannot: no TPU found" in text


def check_05(text):
    """05_your_own_data: the CLI trains on the written tables (all rows used, a binary head) and
    tests on test.csv; evaluating the run folder again finds the accuracy the run recorded; the
    Python run infers the head, classes and image shape from the table; the export serves raw
    PNG bytes and strings with the live model's answers; the head is inferred for other labels."""
    n_train, n_test, _ = (int(n) for n in line(text, r"^quick mode (\d+) (\d+) (\d+) "))
    assert "$ mmkeras train --data train.csv --test-data test.csv --model s1 --image-shape 24,40,3" in text
    counts = line(text, r"^Training 's1' on 'train': (\d+) train / (\d+) validation / (\d+) test")
    fit, validation, tested = (int(n) for n in counts)
    assert (fit + validation, tested) == (n_train, n_test) and validation > 0, (fit, validation, tested)
    accuracy, examples = line(text, r"^Test accuracy: (\S+)  \[(\d+) test examples")
    assert 0 <= float(accuracy) <= 1 and int(examples) == n_test, (accuracy, examples)
    assert "'model.keras'" in text and "'saved_model'" in text
    python_run = r"^test accuracy (\S+); head 'binary', classes \['no', 'yes'\], image shape \(24, 40, 3\)$"
    python_accuracy = float(line(text, python_run))
    assert 0 <= python_accuracy <= 1
    recorded, again = line(text, r"^test accuracy recorded by the run: (\S+); evaluated again: (\S+)$")
    assert recorded == again == f"{float(accuracy):.4f}", (recorded, again, accuracy)
    assert 0 <= float(line(text, r"^on more.csv: (\S+)$")) <= 1
    answer, probability = line(text, r"^-> (yes|no) \(probability (\S+)\); runners-up: \[\('(?:yes|no)', \S+\)\]$")
    assert float(probability) >= 0.5, probability
    request = r"^images/test_\d{4}\.png\s+is the square (?:red|blue)\?\s+-> (yes|no)\s+\(truth: (?:yes|no)\)$"
    served = re.findall(request, text, flags=re.MULTILINE)
    assert len(served) == 8, text
    difference, tolerance, same = line(text, r"largest difference (\S+) \(tolerance (\S+)\); same answers: (\w+)$")
    assert same == "True" and float(difference) < float(tolerance), (difference, tolerance, same)
    assert line(text, r"-> (multiclass, classes \['bird', 'cat', 'dog'\])$")
    assert line(text, r"-> (regression, classes None)$")


def check_06(text):
    """06_retrieval: the quick run's pair counts; search results k per query, best first, mostly in
    the class the query names (18-21 of 25 measured, chance 2.5); recall, MRR and zero-shot numbers
    in [0, 1], class level and zero-shot well above chance (0.1 with 10 classes; the quick run gives
    0.77-0.80 over seeds 0-2 and in float32), the notebook's zero-shot accuracy within 0.01 of the
    run's; the three signatures; served zero-shot answers from the class names for the first 8 test
    photos; served embeddings equal to the live model's within the notebook's tolerance (1e-2 in
    mixed bfloat16, where graph and eager round differently: about 2e-3 measured; 1e-5 in float32)."""
    limit = int(line(text, r"^quick mode - limit (\d+),"))
    train, validation, tested = (int(n.replace(",", "")) for n in line(text, r"^([\d,]+) train / ([\d,]+) validation / ([\d,]+) test pairs"))
    assert (train + validation, tested) == (limit, limit) and validation > 0, (train, validation, tested)
    classes = ["t-shirt or top", "trousers", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "ankle boot"]
    assert line(text, r"^classes: (.*)$") == str(classes)
    searches = re.findall(r"^'(.+?)' -> (.*)$", text, flags=re.MULTILINE)
    assert len(searches) == 5, text
    for query, hits in searches:
        found = re.findall(r"(?:^|, )([a-z -]+) \((-?\d\.\d+)\)", hits)
        assert len(found) == 5 and {name for name, _ in found} <= set(classes), (query, hits)
        similarities = [float(s) for _, s in found]
        assert similarities == sorted(similarities, reverse=True) and -1 <= min(similarities) <= max(similarities) <= 1, (query, hits)
    assert "[not in the vocabulary: ['winter']]" in text
    in_class, total = (int(n) for n in line(text, r"^hits in the class the query names: (\d+)/(\d+)$"))
    assert total == 25 and in_class >= 10, in_class  # chance: about 2.5
    assert re.findall(r"^photo \d+ \((.+)\):$", text, flags=re.MULTILINE) == ["ankle boot", "pullover", "trousers"], text
    texts_found = re.findall(r"^    (-?\d\.\d+)  \S.*$", text, flags=re.MULTILINE)
    assert len(texts_found) == 9, text
    for first in range(0, 9, 3):
        similarities = [float(s) for s in texts_found[first : first + 3]]
        assert similarities == sorted(similarities, reverse=True), texts_found
    count, accuracy, measured = line(text, r"^zero-shot accuracy over ([\d,]+) test photos: (\S+) \(chance 0\.1; the run measured (\S+)\)$")
    accuracy, measured = float(accuracy), float(measured)
    assert int(count.replace(",", "")) == tested and 0.3 < accuracy <= 1 and abs(accuracy - measured) <= 0.01, (accuracy, measured)
    per_class = re.findall(r"^  (.+?)\s+(\d\.\d{3})$", text, flags=re.MULTILINE)
    assert [name for name, _ in per_class] == classes and all(0 <= float(a) <= 1 for _, a in per_class), per_class
    assert line(text, r"^probabilities: (\(4, 10\)) rows sum to \[1\. 1\. 1\. 1\.\]$")
    rows = dict(re.findall(r"^((?:pair |class) (?:text->image|image->text))\s+(.*)$", text, flags=re.MULTILINE))
    assert len(rows) == 4, text
    for name, values in rows.items():
        r1, r5, r10, median, mrr = numbers(values)
        assert 0 <= r1 <= r5 <= r10 <= 1 and 0 < mrr <= 1 and median >= 1, (name, values)
    class_r1 = numbers(rows["class text->image"])[0]
    assert class_r1 > 0.3 and class_r1 > numbers(rows["pair  text->image"])[0], rows
    assert line(text, r"^signatures: (.*)$") == "['embed_image', 'embed_text', 'serving_default']"
    assert "{'logits': (8, 10), 'similarity': (8, 10)}" in text
    served = ast.literal_eval(line(text, r"^served zero-shot: (\[.*\])$"))
    truth = ast.literal_eval(line(text, r"^truth:\s+(\[.*\])$"))
    assert truth == ["ankle boot", "pullover", "trousers", "trousers", "shirt", "trousers", "coat", "shirt"], truth
    assert len(served) == 8 and set(served) <= set(classes), served
    difference, tolerance, precision = line(text, r"^served vs live: largest difference (\S+) \(tolerance (\S+); precision (\S+)\)$")
    assert float(difference) < float(tolerance) <= 1e-2, (difference, tolerance, precision)
    assert precision != "float32" or float(tolerance) == 1e-5, (tolerance, precision)


def check_07(text):
    """07_captioning: the quick run's image counts (24 templated captions, no labels); the run's
    summary and its BLEU-4 and exact match within 0.01 of the notebook's (the same test split and
    batch); teacher forcing reads `[start]` and the caption and predicts it then `[end]`; greedy
    and beam captions that follow the template (learned within 2 epochs in the quick run), scores
    that are log-probabilities, beam's at least greedy's; decoding one `While` loop in the graph;
    the most-common-caption baseline with a high BLEU-1 but a low exact match, below the model's; a
    wrong shape kept at BLEU-4 0.7598; captions served from a fresh process without mmkeras equal to
    the live model's, and the CLI writing the same first caption."""
    limit = int(line(text, r"^quick mode - limit (\d+),"))
    train, validation, tested = (int(n.replace(",", "")) for n in line(text, r"^([\d,]+) train / ([\d,]+) validation / ([\d,]+) test images"))
    assert (train + validation, tested) == (limit, limit) and validation > 0, (train, validation, tested)
    assert line(text, r"task 'captioning', labels (\w+)$") == "None"
    assert line(text, r"^(\d+) distinct captions in the training split, the longest 6 words") == "24"
    summary = r"^Training 'caption_transformer' on 'easy_vqa_captions': (\d+) train / (\d+) validation / (\d+) test examples"
    assert tuple(int(n) for n in line(text, summary)) == (train, validation, tested)
    run_bleu4, run_greedy, run_exact = (float(n) for n in line(text, r"^Test BLEU-4: (\S+) \(greedy (\S+)\), exact match: (\S+)  \["))
    assert all(0 <= v <= 1 for v in (run_bleu4, run_greedy, run_exact)), (run_bleu4, run_greedy, run_exact)
    assert "'model.keras'" in text and "'metrics.json'" in text
    reads, predicts = line(text, r"^\s+reads: (.*)$").split(), line(text, r"^\s+predicts: (.*)$").split()
    assert reads[0] == "[start]" and len(reads) == len(predicts) == 7 and predicts[-1] == "[end]", (reads, predicts)
    template = r"the image shows a (?:black|blue|brown|gray|green|red|teal|yellow) (?:circle|rectangle|triangle)"
    decoded = re.findall(rf"^   (greedy|beam 3): ({template})\s+\((-\d\.\d+|0\.0+)\)$", text, flags=re.MULTILINE)
    assert [mode for mode, _, _ in decoded] == ["greedy", "beam 3"] * 8, text
    greedy_scores, beam_scores = [float(s) for _, _, s in decoded[0::2]], [float(s) for _, _, s in decoded[1::2]]
    assert all(s <= 0 for s in greedy_scores + beam_scores) and all(b >= g - 1e-4 for g, b in zip(greedy_scores, beam_scores))
    at_least, total = (int(n) for n in line(text, r"beam's score is at least greedy's on (\d+)/(\d+)$"))
    assert total == tested and at_least >= 0.99 * total, (at_least, total)
    assert re.search(r"^\d+ ops in the graph; loops: \['(?:Stateless)?While'\]$", text, flags=re.MULTILINE), text
    rows = dict(re.findall(r"^(greedy|beam 3|most common caption)\s+(\d\.\d{4} .*)$", text, flags=re.MULTILINE))
    assert set(rows) == {"greedy", "beam 3", "most common caption"}, rows
    bleu1, _, _, bleu4, exact = numbers(rows["beam 3"])
    assert all(0 <= v <= 1 for v in numbers(" ".join(rows.values()))), rows
    assert abs(bleu4 - run_bleu4) <= 0.01 and abs(exact - run_exact) <= 0.01 and abs(numbers(rows["greedy"])[3] - run_greedy) <= 0.01
    base_bleu1, _, _, base_bleu4, base_exact = numbers(rows["most common caption"])
    assert base_bleu1 > 0.6 and base_exact < 0.15 and base_exact < exact and base_bleu4 < bleu4, rows
    assert line(text, r"^'the image shows a red triangle' against 'the image shows a red circle': BLEU-4 (\S+)$") == "0.7598"
    assert line(text, r"^mmkeras imported by the client: (\w+)$") == "False"
    served = re.findall(rf"^images/test_(\d)\.png\s+-> ({template})\s+\((-\d\.\d+|0\.0+)\)\s+truth: ", text, flags=re.MULTILINE)
    assert [int(i) for i, _, _ in served] == list(range(8)), text
    assert [caption for _, caption, _ in served] == [caption for _, caption, _ in decoded[1::2]]  # beam 3, the export's width
    same, difference, tolerance = line(text, r"^served vs live: same captions: (\w+); largest score difference (\S+) \(tolerance (\S+);")
    assert same == "True" and float(difference) < float(tolerance) <= 1e-2, (same, difference, tolerance)
    assert "$ mmkeras predict run images/test_0.png" in text
    assert line(text, r"^(.+)\t\(log-probability -?\d\.\d{4}\)$") == served[0][1]


def check_08(text):
    """08_gan: the quick run's pair counts and classes; the run's summary with the notebook's
    epochs and batch, finite per-epoch d_loss and g_loss, one sample grid per epoch (10 rows of 8
    28x28 samples); the discriminator scores real photos lower with another class's description
    (it reads the text); `generate` in [0, 1], the same seed giving the same images and another
    seed others; the reference classifier well above chance on real photos, the generated images
    in their description's class far more often than noise (quick runs: 0.45-0.55 against 0.10),
    diversity above 0 and below noise's, the run's recorded diversity measured again; the export's
    three signatures serving seeded images from a fresh process without mmkeras, equal to the live
    model's within the notebook's tolerance."""
    limit, epochs, batch = (int(n) for n in line(text, r"^quick mode - limit (\d+), epochs (\d+), batch size (\d+);"))
    counts = line(text, r"^([\d,]+) train / ([\d,]+) validation / ([\d,]+) test pairs; images \(28, 28, 1\) uint8; task 'retrieval'$")
    train, validation, tested = (int(n.replace(",", "")) for n in counts)
    assert (train + validation, tested) == (limit, limit) and validation > 0, (train, validation, tested)
    classes = ["t-shirt or top", "trousers", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "ankle boot"]
    assert line(text, r"^classes: (.*)$") == str(classes)
    summary = (r"^Training 'text_gan' on 'fashion_mnist_descriptions': ([\d,]+) train / ([\d,]+) validation / ([\d,]+) test "
               r"examples, [\d,]+ parameters, (\d+) epochs x \d+ steps of (\d+),")
    assert tuple(int(n.replace(",", "")) for n in line(text, summary)) == (train, validation, tested, epochs, batch)
    assert "'model.keras'" in text and "'metrics.json'" in text and "'samples'" in text
    for key in ("d_loss", "g_loss"):
        values = numbers(line(text, rf"^{key} per epoch: (\[.*\])$"))
        assert len(values) == epochs and np.isfinite(values).all() and (values > 0).all(), (key, values)
    scores = dict(re.findall(r"^(real photo \+ its description|real photo \+ another class's description|"
                             r"generated image \+ its description)\s+mean real_score (\d\.\d{4})$", text, flags=re.MULTILINE))
    assert len(scores) == 3 and all(0 <= float(s) <= 1 for s in scores.values()), scores
    assert float(scores["real photo + its description"]) > float(scores["real photo + another class's description"]), scores
    grids = ast.literal_eval(line(text, r"^sample grids in run/samples: (\[.*\])$"))
    assert grids == [f"epoch_{e:03d}.png" for e in range(1, epochs + 1)], grids
    assert line(text, r"^each grid (\(\d+, \d+, \d+\)): 10 rows") == "(289, 231, 1)"  # 10 x 29 - 1, 8 x 29 - 1
    prompts = re.findall(r"^'(.+?)'\s+in the training descriptions: (True|False); tokens (\[.*\])$", text, flags=re.MULTILINE)
    assert len(prompts) == 6 and all(seen == "False" for _, seen, _ in prompts), prompts
    assert "[UNK]" in prompts[3][2] and all("[UNK]" not in tokens for _, _, tokens in prompts[:3]), prompts
    low, high = (float(n) for n in line(text, r"^images \(6, 28, 28, 1\) float32, pixels in \[(\S+), (\S+)\]$"))
    assert 0 <= low <= high <= 1, (low, high)
    same, difference = line(text, r"^same seed, same images: (\w+); another seed: largest pixel difference (\S+)$")
    assert same == "True" and float(difference) > 1e-2, (same, difference)
    real_accuracy = float(line(text, r"^reference classifier: .* accuracy on the [\d,]+ real test photos (\S+)$"))
    assert real_accuracy > 0.5, real_accuracy
    rows = dict(re.findall(r"^(text_gan samples|uniform random noise \(baseline\)|real test photos)\s+(\d\.\d{4}\s+\d+\.\d{2})$",
                           text, flags=re.MULTILINE))
    assert len(rows) == 3, text
    (generated, generated_diversity), (noise, noise_diversity), (real, real_diversity) = (
        numbers(rows[k]) for k in ("text_gan samples", "uniform random noise (baseline)", "real test photos"))
    assert abs(real - real_accuracy) <= 1e-4 and 0 <= noise < 0.3 and generated > noise + 0.1, rows
    assert 0 < generated_diversity < noise_diversity and 0 < real_diversity < noise_diversity, rows
    recorded, again = line(text, r"^diversity of the first 2,000: recorded by the run (\S+) \(real photos \S+\); measured again (\S+)$")
    assert abs(float(recorded) - float(again)) <= 1e-3, (recorded, again)
    assert line(text, r"^mmkeras imported by the client: (\w+)$") == "False"
    assert line(text, r"^signatures: (.*)$") == "['discriminate', 'generate_from_noise', 'serving_default']"
    assert line(text, r"^served images (\(\d+, \d+, \d+, \d+\)), written to") == "(6, 28, 28, 1)"
    same, difference = line(text, r"^seed 7 twice, same images: (\w+); seed 8: largest pixel difference (\S+)$")
    assert same == "True" and float(difference) > 1e-2, (same, difference)
    difference, tolerance = line(text, r"^served vs live: largest pixel difference (\S+) \(tolerance (\S+);")
    assert float(difference) < float(tolerance) <= 2e-2, (difference, tolerance)


def check_09(text):
    """09_missing_and_noisy: the quick run's question counts and easy-VQA's 13 answers; the plain
    model answering a black image and an empty question with class names, and refusing a left-out
    image; the dropout model's mask and placeholders, an absent image as all NaN and an absent text
    as all-0 ids; answers with the image or the text left out (Python, per-example `None`, the CLI,
    the served SavedModel with empty bytes and an empty string) that are class names and agree with
    each other, the served probabilities equal to the live model's; the ablation table's three
    accuracies per model in [0, 1], single-modality ones within the upper bounds the labels allow,
    and equal to what `answer` gives with the same input left out; relative robustness in [0, 1],
    effective robustness equal to its formula from the printed numbers, the level-0 accuracy of every
    noise equal to the clean accuracy of the same questions, every word dropped (level 1) equal to
    the image-only accuracy, and the markdown table agreeing."""
    easy_vqa = pytest.importorskip("easy_vqa")
    limit = int(line(text, r"^quick mode - limit (\d+),"))
    counts = line(text, r"^([\d,]+) train / ([\d,]+) validation / ([\d,]+) test questions; 13 answers: \[")
    train, validation, tested = (int(n.replace(",", "")) for n in counts)
    assert (train + validation, tested) == (limit, limit) and validation > 0, (train, validation, tested)
    classes = ast.literal_eval(line(text, r"; 13 answers: (\[.*\])$"))
    assert len(classes) == 13 and set(classes) == set(easy_vqa.get_answers()), classes
    for name in ("complete pairs only", "modality dropout 0.3"):
        assert 0 <= float(line(text, rf"^vqa, {name}: test accuracy (\S+?);?(?: |$)")) <= 1, name

    # 1. The plain model: a black image and an empty question are answered, a left-out image refused.
    rows = re.findall(r"^(.+?\?)\s+(\w+)\s+(\w+) \((\d\.\d\d)\)\s+(\w+) \((\d\.\d\d)\)$", text, flags=re.MULTILINE)
    assert len(rows) == 4 and all({truth, real, blind} <= set(classes) for _, truth, real, _, blind, _ in rows), rows
    assert all(0 <= float(p) <= 1 for row in rows for p in (row[3], row[5])), rows
    empty = ast.literal_eval(line(text, r"^empty question, the same 4 images -> (\[.*\])$"))
    assert len(empty) == 4 and all(a in classes and 0 <= p <= 1 for a, p in empty), empty
    blind_count, blind_answers, blind_probability = line(
        text, r"^black image with each of the ([\d,]+) test questions: answers (\[.*\]), mean probability of the answer (\S+)$")
    assert int(blind_count.replace(",", "")) == tested and 0 < float(blind_probability) <= 1, blind_count
    assert {a for a, _ in ast.literal_eval(blind_answers)} <= set(classes), blind_answers
    assert "missing ['image']" in line(text, r"^plain\.answer\(text=\[\.\.\.\]\) -> ValueError: (.*)$")

    # 2. The model with modality dropout: mask, placeholders, absent inputs as the model reads them.
    assert line(text, r"^missing_modalities: (\w+); dropout per modality \[0\.3, 0\.3\]; placeholders \[\(\d+,\), \(\d+,\)\]$") == "True"
    assert line(text, r"^presence layers: (.*)$") == "['image_presence', 'text_presence']"
    assert "'model.keras'" in text and "'saved_model'" in text
    nan, ids = line(text, r"^prepared: image\[1\] all NaN: (\w+); text ids (\[\[.*\]\]) \(the empty string")
    ids = ast.literal_eval(ids)
    assert nan == "True" and any(ids[0]) and not any(ids[1]), (nan, ids)

    # 3. Asked with a modality absent: Python, per example, the CLI and the served model agree.
    no_image = re.findall(r"^  (.+?\?)\s+-> (\w+)\s+\((\d\.\d\d)\)$", text, flags=re.MULTILINE)
    no_text = re.findall(r"^  test image (\d+)\s+-> (\w+)\s+\((\d\.\d\d)\)$", text, flags=re.MULTILINE)
    assert len(no_image) == 4 and len(no_text) == 4, (no_image, no_text)
    assert all(a in classes and 0 < float(p) <= 1 for _, a, p in no_image + no_text), (no_image, no_text)
    mixed = ast.literal_eval(line(text, r"^per example \(both / no image / no question\): (\[.*\])$"))
    assert len(mixed) == 3 and set(mixed) <= set(classes), mixed
    assert mixed[1:] == [no_image[0][1], no_text[1][1]], (mixed, no_image, no_text)  # None = left out
    cli_answers = re.findall(r"^(\w+)\t\(probability (\d\.\d{4})\)$", text, flags=re.MULTILINE)
    live = re.findall(r"^live model: (\w+)$", text, flags=re.MULTILINE)
    assert [a for a, _ in cli_answers] == live and len(live) == 2 and set(live) <= set(classes), (cli_answers, live)
    assert live[0] == no_image[0][1], (live, no_image)  # `--text` only = model.answer(text=...)
    served = ast.literal_eval(line(text, r"^served: (\[.*\])$"))
    served_live = ast.literal_eval(line(text, r"^live:\s+(\[.*\])$"))
    assert served == served_live and len(served) == 6 and set(served) <= set(classes), (served, served_live)
    assert served[2:4] == [a for _, a, _ in no_image[:2]] and served[4:] == [a for _, a, _ in no_text[2:]], served
    same, difference, tolerance = line(text, r"^served vs live: same answers: (\w+); largest probability difference (\S+) \(tolerance (\S+)\)$")
    assert same == "True" and float(difference) < float(tolerance) <= 1e-2, (same, difference, tolerance)

    # 4. Both, the image only, the text only.
    assert int(line(text, r"^([\d,]+) test questions$").replace(",", "")) == tested
    table = dict(re.findall(r"^(vqa, complete pairs|vqa, modality dropout 0\.3)\s+(\d\.\d{4}\s+\d\.\d{4}\s+\d\.\d{4})$",
                            text, flags=re.MULTILINE))
    assert len(table) == 2, text
    text_bound, image_bound, most_common = (float(n) for n in line(
        text, r"^upper bounds: text alone (\S+), image alone (\S+); always the most common answer \('\w+'\): (\S+)$"))
    assert 0 < most_common <= min(text_bound, image_bound) <= 1, (text_bound, image_bound, most_common)
    for name, values in table.items():
        both, image_only, text_only = numbers(values)
        assert all(0 <= v <= 1 for v in (both, image_only, text_only)), (name, values)
        assert text_only <= text_bound + 1e-9 and image_only <= image_bound + 1e-9, (name, values, text_bound, image_bound)
    for name, row in (("plain model, black image", "vqa, complete pairs"), ("dropout model, no image", "vqa, modality dropout 0.3")):
        accuracy, probability = (float(n) for n in line(text, rf"^{name}\s*: accuracy (\S+), mean probability of its answer (\S+)$"))
        assert abs(accuracy - numbers(table[row])[2]) <= 1e-4 and 0 < probability <= 1, (name, accuracy, table[row])

    # 5. Robustness: the quick run's noises and levels, the summary numbers and the level-0 accuracy.
    assert 0 <= float(line(text, r"^late_fusion, modality dropout 0\.3: test accuracy (\S+),")) <= 1
    measured, levels, noises = line(text, r"^([\d,]+) test questions, levels (\[.*\]), noises (\[.*\])$")
    assert int(measured.replace(",", "")) <= tested and ast.literal_eval(levels) == [0.0, 0.5, 1.0], (measured, levels)
    assert ast.literal_eval(noises) == ["blur", "occlusion", "dropped_words"], noises
    summary = re.findall(r"^(blur|occlusion|dropped_words)\s+(image|text)\s+(\d\.\d{4}\s+\d\.\d{4}\s+\d\.\d{4}\s+\d\.\d{4}\s+[-+]\d\.\d{4})$",
                         text, flags=re.MULTILINE)
    assert [(n, m) for n, m, _ in summary] == [("blur", "image"), ("occlusion", "image"), ("dropped_words", "text")], summary
    cleans = set()
    for noise, _, values in summary:
        clean, rr, baseline_clean, baseline_rr, er = numbers(values)
        assert 0 <= rr <= 1 and 0 <= baseline_rr <= 1 and -1 <= er <= 1, (noise, values)
        assert abs(er - (rr - baseline_rr - (clean - baseline_clean))) <= 3e-4, (noise, values)  # 4 printed digits each
        cleans.add(clean)
    level_0, clean, difference, tolerance = line(
        text, r"^level-0 accuracy of every noise: (\[.*\]); clean accuracy of the same questions \(modality_ablation, both\): "
              r"(\S+); largest difference (\S+) \(tolerance (\S+)\)$")
    assert len(ast.literal_eval(level_0)) == 1 and float(difference) <= float(tolerance) <= 2e-3, (level_0, difference, tolerance)
    assert cleans == {float(clean)}, (cleans, clean)
    # Every word dropped leaves empty questions, read as absent: the image-only accuracy, exactly.
    dropped, image_only = line(text, r"^level 1 of dropped_words \(no word left: the question absent\) (\S+); image only (\S+)$")
    assert dropped == image_only, (dropped, image_only)
    occluded, text_only = line(text, r"^level 1 of occlusion \(all grey, not marked absent\) (\S+); text only (\S+)$")
    assert 0 <= float(occluded) <= 1 and 0 <= float(text_only) <= 1, (occluded, text_only)
    rows = re.findall(r"^\| (image|text) \| (\w+) \| (.*) \|$", text, flags=re.MULTILINE)
    assert [noise for _, noise, _ in rows] == ["blur", "occlusion", "dropped_words"], rows
    for (_, noise, values), (_, _, printed) in zip(rows, summary):
        values = numbers(values)  # 3 levels, relative robustness, the baseline's, effective robustness
        assert len(values) == 6 and values[0] == float(clean) and values[3] == numbers(printed)[1], (noise, values, printed)


CHECKS = {"03_export_and_serve.ipynb": check_03, "04_distributed.ipynb": check_04,
          "05_your_own_data.ipynb": check_05, "06_retrieval.ipynb": check_06, "07_captioning.ipynb": check_07,
          "08_gan.ipynb": check_08, "09_missing_and_noisy.ipynb": check_09}


def test_there_are_notebooks():
    assert any(path.endswith("01_quickstart.ipynb") for path in NOTEBOOKS)
    assert set(CHECKS) <= {os.path.basename(path) for path in NOTEBOOKS}


# The distributed tutorial starts worker processes (about 25 s): slow set. Its claims are also held
# by tests/test_distribute.py in the default run. The captioning and GAN tutorials train and export
# for 60-90 s each: slow set too (tests/test_captioner.py and tests/test_gan.py hold their claims in
# the default run). The missing-and-noisy tutorial trains two models and draws robustness curves
# (60-100 s): slow set (tests/test_missing.py and tests/test_robustness.py hold its claims). CI runs
# the slow set after the default one.
SLOW_NOTEBOOKS = {"04_distributed.ipynb", "07_captioning.ipynb", "08_gan.ipynb", "09_missing_and_noisy.ipynb"}


@pytest.mark.parametrize(
    "path",
    [pytest.param(p, marks=pytest.mark.slow) if os.path.basename(p) in SLOW_NOTEBOOKS else p for p in NOTEBOOKS],
    ids=os.path.basename,
)
def test_notebook_runs(path, monkeypatch, tmp_path):
    monkeypatch.setenv("MMKERAS_NOTEBOOK_QUICK", "1")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.setenv("PYTHONPATH", ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    notebook = nbformat.read(path, as_version=4)
    stored_errors = [o for c in notebook.cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not stored_errors, "the notebook is stored with error outputs"
    client = nbclient.NotebookClient(
        notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    )
    client.execute()
    outputs = printed(notebook)
    assert outputs[0].startswith("quick mode") or "\nquick mode" in outputs[0], outputs[0]
    check = CHECKS.get(os.path.basename(path))
    if check:
        check("".join(outputs))
