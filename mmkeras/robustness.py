"""Robustness to noisy modalities, after MultiBench's protocol.

A trained task is evaluated again on its test examples with one modality made noisy, at levels
from 0 (clean) to 1 (the strongest noise), one noise at a time; the accuracy at each level draws
the *performance-imperfection curve*, summarised by two numbers (Liang et al., 2021, "MultiBench:
Multiscale Benchmarks for Multimodal Representation Learning", NeurIPS Datasets and Benchmarks,
arXiv:2107.07502; its code: github.com/pliang279/MultiBench, `eval_scripts/robustness.py`):

- **relative robustness**: the area under the accuracy-vs-level curve. MultiBench sums
  trapezoids of width 0.1 over its 11 levels 0, 0.1, ..., 1; here the trapezoids follow the
  levels measured and the area is divided by their range, so any levels give a number on the
  accuracy scale: `RR = 1 / (x_K - x_0) * sum_k (x_{k+1} - x_k) * (a_k + a_{k+1}) / 2`.
- **effective robustness**: how much accuracy the model keeps beyond a late-fusion baseline
  moved to the model's clean accuracy. MultiBench shifts the baseline's curve `b` by the gap in
  clean accuracy, `beta = b + (a_0 - b_0)`, and sums `a_k - beta_k` over its levels; here the
  same difference is averaged like relative robustness (trapezoids over the level range):
  `ER = RR(a) - RR(b) - (a_0 - b_0)`. 0: the model degrades exactly as the baseline does;
  positive: it loses less accuracy as the noise grows.

MultiBench further min-max normalises both numbers across the methods of its leaderboard;
with one model and one baseline that step does not apply, so the raw numbers are reported.

The noises (`NOISES`) are numpy functions `fn(data, level, rng) -> data` on one batch: image
noises take float images in [0, 1] `(batch, height, width, channels)` and return them clipped to
[0, 1]; text noises take raw strings. Level 0 returns the data unchanged, exactly; the same `rng`
gives the same noise. `robustness_curves` applies them batch by batch (never to a copy of the
whole dataset), before the task's own preprocessing: images are resized and texts tokenized
after the noise, by the pipeline `mmkeras.evaluate` uses.

Example:

>>> import numpy as np
>>> images = np.full((2, 8, 8, 3), 0.5, "float32")
>>> np.array_equal(gaussian(images, 0.0, rng=0), images)
True
>>> dropped_words(["what shape is it?"], 1.0, rng=0)
['']
>>> relative_robustness([0, 0.5, 1], [0.9, 0.7, 0.5]), effective_robustness([0, 1], [0.9, 0.7], [0.8, 0.4])
(0.7, 0.1)
"""

import json
import math
import numbers
import os
import re
import zlib

import numpy as np

from mmkeras.validation import check_one_of, check_positive_int, check_seed, received

__all__ = [
    "DEFAULT_LEVELS",
    "IMAGE_NOISES",
    "NOISES",
    "TEXT_NOISES",
    "blur",
    "contrast",
    "dropped_words",
    "effective_robustness",
    "gaussian",
    "is_report",
    "occlusion",
    "plot_robustness",
    "relative_robustness",
    "robustness_curves",
    "robustness_table",
    "salt_and_pepper",
    "summarize",
    "swapped_words",
    "typos",
    "write_report",
]

DEFAULT_LEVELS = tuple(i / 10 for i in range(11))  # 0, 0.1, ..., 1: MultiBench's levels

# How strong each image noise is at level 1 (the formulas are in each function and docs/robustness.md).
GAUSSIAN_STD = 0.5  # the noise's standard deviation at level 1, on the [0, 1] scale
BLUR_SIGMA = 0.1  # the blur's sigma at level 1, as a share of the image's shorter side
OCCLUSION_FILL = 0.5  # the grey the occluding rectangle is painted with
SALT_AND_PEPPER_SHARE = 0.5  # the share of pixels set to 0 or 1 at level 1


# Arguments.


def _check_level(level):
    if isinstance(level, bool) or not isinstance(level, numbers.Real) or not 0 <= level <= 1:
        raise ValueError(f"`level` must be a number in [0, 1] (0 leaves the data unchanged). {received('level', level)}")
    return float(level)


def _generator(rng):
    """A numpy `Generator`: `rng` itself, or one seeded with the int `rng` (None: seed 0)."""
    if isinstance(rng, np.random.Generator):
        return rng
    if rng is None:
        return np.random.default_rng(0)
    if isinstance(rng, bool) or not isinstance(rng, numbers.Integral) or rng < 0:
        raise ValueError(
            f"`rng` must be a numpy Generator (np.random.default_rng(seed)) or a non-negative int seed. {received('rng', rng)}"
        )
    return np.random.default_rng(int(rng))


def _check_images(images):
    if not isinstance(images, np.ndarray) or images.ndim != 4 or images.dtype.kind != "f":
        shape = getattr(images, "shape", None)
        dtype = getattr(images, "dtype", type(images).__name__)
        raise ValueError(
            "`images` must be a float numpy array (batch, height, width, channels) with values in [0, 1]. "
            f"Received: images of dtype {dtype} and shape {shape}"
        )
    if images.size and not (np.all(np.isfinite(images)) and images.min() >= 0 and images.max() <= 1):
        raise ValueError(
            "`images` must hold finite values in [0, 1] (divide uint8 images by 255). Received: images from "
            f"{np.nanmin(images)} to {np.nanmax(images)}"
        )
    return images


def _image_args(images, level, rng):
    return _check_images(images), _check_level(level), _generator(rng)


def _clip(images, like):
    return np.clip(images, 0.0, 1.0).astype(like.dtype, copy=False)


def check_levels(levels, name="levels"):
    """`levels` as a tuple of floats: at least two, increasing, in [0, 1]; else `ValueError`.

    Example:

    >>> check_levels([0, 0.5, 1])
    (0.0, 0.5, 1.0)
    """
    try:
        values = tuple(levels)
    except TypeError:
        values = None
    if (
        values is None
        or len(values) < 2
        or not all(isinstance(v, numbers.Real) and not isinstance(v, bool) and 0 <= v <= 1 for v in values)
        or any(b <= a for a, b in zip(values, values[1:]))
    ):
        raise ValueError(f"`{name}` must be at least two increasing numbers in [0, 1]. {received(name, levels)}")
    return tuple(float(v) for v in values)


def check_noises(noises):
    """The noise names to run, checked (None: all of `NOISES`), without repeats, in order."""
    if noises is None:
        return list(NOISES)
    if isinstance(noises, str):
        noises = [noises]
    names = []
    for name in noises:
        check_one_of("noise", name, NOISES)
        if name not in names:
            names.append(name)
    if not names:
        raise ValueError(f"`noises` must name at least one noise among {sorted(NOISES)}. {received('noises', noises)}")
    return names


# Image noises: fn(images, level, rng) -> images, float in [0, 1], level 0 unchanged.


def gaussian(images, level, rng=None):
    """Additive Gaussian noise: `x + N(0, (0.5 * level)^2)` per pixel and channel, clipped to [0, 1].

    Args:
        images: float array `(batch, height, width, channels)` in [0, 1].
        level: float in [0, 1]; 0 returns the images unchanged.
        rng: a numpy `Generator` or an int seed. Defaults to `None` (seed 0).

    Example:

    >>> noisy = gaussian(np.full((1, 4, 4, 1), 0.5, "float32"), 0.2, rng=0)
    >>> noisy.dtype, bool(noisy.std() > 0)
    (dtype('float32'), True)
    """
    images, level, rng = _image_args(images, level, rng)
    if level == 0:
        return images.copy()
    noise = rng.normal(0.0, GAUSSIAN_STD * level, images.shape).astype(images.dtype, copy=False)
    return _clip(images + noise, images)


def _blur_matrix(size, sigma):
    """The `(size, size)` matrix of a 1-D Gaussian blur (taps to 3 sigma, edges mirrored)."""
    radius = max(1, math.ceil(3 * sigma))
    offsets = np.arange(-radius, radius + 1)
    weights = np.exp(-0.5 * (offsets / sigma) ** 2)
    weights /= weights.sum()
    source = np.mod(np.arange(size)[:, None] + offsets[None, :], 2 * size)  # mirrored: ... 1 0 | 0 1 ... n-1 | n-1 ...
    source = np.where(source < size, source, 2 * size - 1 - source)
    matrix = np.zeros((size, size))
    np.add.at(matrix, (np.repeat(np.arange(size), len(offsets)), source.ravel()), np.tile(weights, size))
    return matrix


def blur(images, level, rng=None):
    """Gaussian blur with sigma `0.1 * level * min(height, width)` pixels (edges mirrored).

    Separable: each axis is multiplied by its blur matrix, whose rows sum to 1, so values stay in
    [0, 1]. Deterministic (`rng` is accepted for a uniform signature and not used).

    Args:
        images: float array `(batch, height, width, channels)` in [0, 1].
        level: float in [0, 1]; 0 returns the images unchanged.
        rng: unused. Defaults to `None`.

    Example:

    >>> image = np.zeros((1, 9, 9, 1), "float32"); image[0, 4, 4] = 1
    >>> blurred = blur(image, 0.5)
    >>> round(float(blurred.sum()), 4), bool(blurred[0, 4, 4, 0] < 1)
    (1.0, True)
    """
    images, level, _ = _image_args(images, level, rng)
    if level == 0:
        return images.copy()
    height, width = images.shape[1:3]
    sigma = BLUR_SIGMA * level * min(height, width)
    rows = _blur_matrix(height, sigma).astype(images.dtype)
    columns = _blur_matrix(width, sigma).astype(images.dtype)
    out = np.moveaxis(np.tensordot(rows, images, axes=(1, 1)), 0, 1)  # one matrix product per axis
    out = np.moveaxis(np.tensordot(columns, out, axes=(1, 2)), 0, 2)
    return _clip(out, images)


def occlusion(images, level, rng=None):
    """A grey (0.5) rectangle over `level` of each image's area, at a random place per image.

    Its sides are `round(sqrt(level) * height)` and `round(sqrt(level) * width)` (a square on a
    square image): level 1 hides the whole image.

    Args:
        images: float array `(batch, height, width, channels)` in [0, 1].
        level: float in [0, 1]; 0 returns the images unchanged.
        rng: a numpy `Generator` or an int seed. Defaults to `None` (seed 0).

    Example:

    >>> covered = occlusion(np.zeros((1, 10, 10, 3), "float32"), 0.25, rng=0)
    >>> float((covered[..., 0] == 0.5).mean())
    0.25
    """
    images, level, rng = _image_args(images, level, rng)
    if level == 0:
        return images.copy()
    batch, height, width = images.shape[:3]
    side_h, side_w = round(math.sqrt(level) * height), round(math.sqrt(level) * width)
    top = rng.integers(0, height - side_h + 1, size=batch)
    left = rng.integers(0, width - side_w + 1, size=batch)
    rows = np.arange(height)[None, :]
    columns = np.arange(width)[None, :]
    inside_rows = (rows >= top[:, None]) & (rows < top[:, None] + side_h)  # (batch, height)
    inside_columns = (columns >= left[:, None]) & (columns < left[:, None] + side_w)  # (batch, width)
    mask = inside_rows[:, :, None, None] & inside_columns[:, None, :, None]
    return np.where(mask, images.dtype.type(OCCLUSION_FILL), images)


def contrast(images, level, rng=None):
    """Lower contrast: each image blended toward its own mean, `m + (1 - level) * (x - m)`.

    `m` is the image's mean over its pixels and channels; level 1 leaves a flat image of that
    mean. Deterministic (`rng` is accepted for a uniform signature and not used).

    Args:
        images: float array `(batch, height, width, channels)` in [0, 1].
        level: float in [0, 1]; 0 returns the images unchanged.
        rng: unused. Defaults to `None`.

    Example:

    >>> image = np.array([0.0, 1.0], "float32").reshape(1, 1, 2, 1)
    >>> contrast(image, 0.5).ravel().tolist()
    [0.25, 0.75]
    """
    images, level, _ = _image_args(images, level, rng)
    if level == 0:
        return images.copy()
    mean = images.mean(axis=(1, 2, 3), keepdims=True)
    return _clip(mean + (1 - level) * (images - mean), images)


def salt_and_pepper(images, level, rng=None):
    """`0.5 * level` of the pixels (all channels of each) set to 0 or 1, half and half on average.

    Args:
        images: float array `(batch, height, width, channels)` in [0, 1].
        level: float in [0, 1]; 0 returns the images unchanged.
        rng: a numpy `Generator` or an int seed. Defaults to `None` (seed 0).

    Example:

    >>> noisy = salt_and_pepper(np.full((4, 32, 32, 3), 0.5, "float32"), 1.0, rng=0)
    >>> round(float((noisy != 0.5).mean()), 1)
    0.5
    """
    images, level, rng = _image_args(images, level, rng)
    if level == 0:
        return images.copy()
    pixels = (*images.shape[:3], 1)
    hit = rng.random(pixels) < SALT_AND_PEPPER_SHARE * level
    salt = (rng.random(pixels) < 0.5).astype(images.dtype)
    return np.where(hit, salt, images)


IMAGE_NOISES = {
    "gaussian": gaussian,
    "blur": blur,
    "occlusion": occlusion,
    "contrast": contrast,
    "salt_and_pepper": salt_and_pepper,
}


# Text noises: fn(texts, level, rng) -> texts, raw strings, level 0 unchanged.


def _check_texts(texts):
    """`texts` as a list of str (bytes decoded as UTF-8), and whether they came as a numpy array."""
    if isinstance(texts, (str, bytes)):
        raise ValueError(f"`texts` must be a sequence of strings, not one string. {received('texts', texts)}")
    is_array = isinstance(texts, np.ndarray)
    try:
        items = list(texts.ravel() if is_array and texts.ndim == 2 and texts.shape[-1] == 1 else texts)
    except TypeError:
        raise ValueError(f"`texts` must be a sequence of strings. {received('texts', texts)}") from None
    out = []
    for i, text in enumerate(items):
        if isinstance(text, bytes):
            text = text.decode("utf-8", errors="replace")
        if not isinstance(text, str):
            raise ValueError(f"`texts` must be a sequence of strings. {received(f'texts[{i}]', text)} of type {type(text).__name__}")
        out.append(text)
    return out, is_array


def _text_args(texts, level, rng):
    texts, is_array = _check_texts(texts)
    return texts, is_array, _check_level(level), _generator(rng)


def _as_given(texts, is_array):
    return np.asarray(texts, dtype=object) if is_array else texts


LETTERS = "abcdefghijklmnopqrstuvwxyz"
TYPO_KINDS = ("swap", "drop", "replace", "insert")


def _typo(word, rng):
    """One character-level typo in `word` (on its letters and digits); the word always changes."""
    positions = [i for i, c in enumerate(word) if c.isalnum()]
    if not positions:
        return word  # punctuation only: nothing to mistype
    kinds = TYPO_KINDS if len(positions) >= 2 else ("replace", "insert")  # a one-letter word is never dropped
    kind = kinds[rng.integers(len(kinds))]
    if kind == "swap":
        pairs = [i for i in positions if i + 1 < len(word) and word[i + 1].isalnum() and word[i] != word[i + 1]]
        if pairs:
            i = pairs[rng.integers(len(pairs))]
            return word[:i] + word[i + 1] + word[i] + word[i + 2 :]
        kind = "replace"  # no two different neighbours to swap ("aa", "a-b")
    i = positions[rng.integers(len(positions))]
    if kind == "drop":
        return word[:i] + word[i + 1 :]
    if kind == "insert":
        return word[:i] + LETTERS[rng.integers(len(LETTERS))] + word[i:]
    others = [c for c in LETTERS if c != word[i].lower()]
    letter = others[rng.integers(len(others))]
    return word[:i] + (letter.upper() if word[i].isupper() else letter) + word[i + 1 :]


def typos(texts, level, rng=None):
    """Each word, with probability `level`, gets one typo: two neighbouring letters swapped, a
    letter dropped, replaced by another or a letter inserted (one of the four, evenly).

    Words are split on whitespace and joined with single spaces; a word of punctuation only is
    kept as it is, and a one-letter word is never dropped.

    Args:
        texts: a list or array of strings.
        level: float in [0, 1]; 0 returns the texts unchanged.
        rng: a numpy `Generator` or an int seed. Defaults to `None` (seed 0).

    Example:

    >>> typos(["what color is the shape?"], 1.0, rng=0) != ["what color is the shape?"]
    True
    """
    texts, is_array, level, rng = _text_args(texts, level, rng)
    if level == 0:
        return _as_given(texts, is_array)
    out = []
    for text in texts:
        words = text.split()
        hit = rng.random(len(words)) < level
        out.append(" ".join(_typo(w, rng) if h else w for w, h in zip(words, hit)))
    return _as_given(out, is_array)


def dropped_words(texts, level, rng=None):
    """Each word dropped with probability `level` (level 1 leaves empty strings).

    Args:
        texts: a list or array of strings.
        level: float in [0, 1]; 0 returns the texts unchanged.
        rng: a numpy `Generator` or an int seed. Defaults to `None` (seed 0).

    Example:

    >>> dropped_words(["is there a red circle?"], 0.0)
    ['is there a red circle?']
    """
    texts, is_array, level, rng = _text_args(texts, level, rng)
    if level == 0:
        return _as_given(texts, is_array)
    out = []
    for text in texts:
        words = text.split()
        keep = rng.random(len(words)) >= level
        out.append(" ".join(w for w, k in zip(words, keep) if k))
    return _as_given(out, is_array)


def swapped_words(texts, level, rng=None):
    """Neighbouring words swapped: from the left, each word trades places with the next one with
    probability `level`, and a word moves once at most (level 1 swaps every pair: "a b c d" ->
    "b a d c").

    Args:
        texts: a list or array of strings.
        level: float in [0, 1]; 0 returns the texts unchanged.
        rng: a numpy `Generator` or an int seed. Defaults to `None` (seed 0).

    Example:

    >>> swapped_words(["what shape is it"], 1.0)
    ['shape what it is']
    """
    texts, is_array, level, rng = _text_args(texts, level, rng)
    if level == 0:
        return _as_given(texts, is_array)
    out = []
    for text in texts:
        words = text.split()
        draws = rng.random(len(words))
        i = 0
        while i < len(words) - 1:
            if draws[i] < level:
                words[i], words[i + 1] = words[i + 1], words[i]
                i += 2
            else:
                i += 1
        out.append(" ".join(words))
    return _as_given(out, is_array)


TEXT_NOISES = {"typos": typos, "dropped_words": dropped_words, "swapped_words": swapped_words}

# Every noise: name -> (modality, fn).
NOISES = {
    **{name: ("image", fn) for name, fn in IMAGE_NOISES.items()},
    **{name: ("text", fn) for name, fn in TEXT_NOISES.items()},
}
MODALITIES = ("image", "text")


# Summary numbers.


def _curve(levels, accuracies, name):
    levels = np.asarray(check_levels(levels))
    try:
        values = np.asarray(accuracies, dtype="float64")
    except (TypeError, ValueError):
        values = None
    if values is None or values.shape != levels.shape or not np.all(np.isfinite(values)):
        raise ValueError(
            f"`{name}` must be one finite number per level ({len(levels)} levels). {received(name, accuracies)}"
        )
    return levels, values


def _area(levels, values):
    """The trapezoid area under the curve, divided by the level range: a mean accuracy."""
    return float(np.sum(np.diff(levels) * (values[1:] + values[:-1]) / 2) / (levels[-1] - levels[0]))


def relative_robustness(levels, accuracies):
    """MultiBench's relative robustness: the area under the accuracy-vs-level curve.

    `RR = 1 / (x_K - x_0) * sum_k (x_{k+1} - x_k) * (a_k + a_{k+1}) / 2` (trapezoids, divided by
    the level range, so a model that never loses accuracy scores its clean accuracy). On
    MultiBench's levels 0, 0.1, ..., 1 this is exactly the area its `eval_scripts/robustness.py`
    computes (before its min-max normalisation across methods).

    Args:
        levels: at least two increasing noise levels in [0, 1].
        accuracies: the accuracy at each level.

    Returns:
        float.

    Example:

    >>> relative_robustness([0, 0.5, 1], [1.0, 0.5, 0.0])
    0.5
    """
    levels, values = _curve(levels, accuracies, "accuracies")
    return round(_area(levels, values), 12) + 0.0  # + 0.0: never -0.0


def effective_robustness(levels, accuracies, baseline_accuracies):
    """MultiBench's effective robustness: accuracy kept beyond a baseline with the same clean accuracy.

    The baseline's curve `b` (a late-fusion model in MultiBench) is moved to the model's clean
    accuracy, `beta_k = b_k + (a_0 - b_0)`, and the gap `a_k - beta_k` is averaged over the
    levels like `relative_robustness`: `ER = RR(a) - RR(b) - (a_0 - b_0)`, where `a_0`, `b_0`
    are the accuracies at the lowest level (0, the clean data, by default). MultiBench sums the
    gaps at its 11 levels instead, `S = sum_k (a_k - beta_k)`; the average does not grow with
    the number of levels (on MultiBench's levels `S = 10 * ER + (a_K - beta_K) / 2`).

    Args:
        levels: at least two increasing noise levels in [0, 1].
        accuracies: the model's accuracy at each level.
        baseline_accuracies: the baseline's accuracy at the same levels.

    Returns:
        float: 0 when the model loses accuracy exactly as the baseline does, positive when it
        loses less.

    Example:

    >>> effective_robustness([0, 0.5, 1], [0.9, 0.8, 0.7], [0.6, 0.5, 0.4])  # the same drop
    0.0
    """
    levels, values = _curve(levels, accuracies, "accuracies")
    _, baseline = _curve(levels, baseline_accuracies, "baseline_accuracies")
    shifted = baseline + (values[0] - baseline[0])
    return round(_area(levels, values - shifted), 12) + 0.0  # + 0.0: never -0.0


# Curves.


def _accuracy_metric(net):
    """A fresh copy of the accuracy the task's head compiles with (binary, multiclass, multilabel)."""
    import keras

    head = getattr(net, "head", None)
    kind = getattr(head, "kind", None)
    if kind not in ("binary", "multiclass", "multilabel"):
        raise ValueError(
            "`model` must have one binary, multiclass or multilabel head, whose accuracy the robustness "
            f"curves measure. Received: a {type(net).__name__} with head {kind!r}"
        )
    if kind == "multiclass":  # "accuracy" with its sparse categorical loss
        return keras.metrics.SparseCategoricalAccuracy(name="accuracy")
    return head.metrics()[0]  # BinaryAccuracy at the head's threshold


def _modalities(net, examples):
    """`{modality: None}` for what can be made noisy, `{modality: reason}` for what cannot."""
    kinds = net.input_kinds
    status = {}
    for modality in MODALITIES:
        if modality not in kinds:
            status[modality] = f"the model takes no {modality} input"
        elif modality == "image" and examples.images is None:
            status[modality] = "the examples have no images"
        elif modality == "text" and examples.texts is None:
            status[modality] = "the examples' texts are token ids, not raw strings"
        else:
            status[modality] = None
    return status


def _float_images(images):
    if images.dtype == np.uint8:
        return images.astype("float32") / np.float32(255)
    return images.astype("float32", copy=False)


def _accuracy(net, examples, noise, level, key, batch_size):
    """The head's accuracy on `examples` with `noise` at `level`, applied batch by batch.

    Each batch gets its own generator, seeded from `key` and the batch's number, so a noise's
    data depend on the seed, the noise, the level and the batch size only.
    """
    from mmkeras.data import Examples

    modality, fn = NOISES[noise]
    metric = _accuracy_metric(net)
    for number, start in enumerate(range(0, len(examples), batch_size)):
        batch = examples.subset(np.arange(start, min(start + batch_size, len(examples))))
        images = batch.example_images() if "image" in net.input_kinds else None
        texts = (batch.texts if batch.texts is not None else batch.token_ids) if "text" in net.input_kinds else None
        rng = np.random.default_rng([*key, number])
        if modality == "image":
            images = fn(_float_images(images), level, rng)
        elif modality == "text":
            texts = fn(texts, level, rng)
        noisy = Examples(images, texts, batch.labels, verbose=False)
        inputs, labels = next(iter(noisy.to_dataset(task=net, batch_size=len(noisy), prefetch=False)))
        metric.update_state(labels, net.predict_on_batch(inputs))
    return float(metric.result())


def robustness_curves(model, examples, noises=None, levels=DEFAULT_LEVELS, *, seed=0, batch_size=256, verbose=0):
    """The task's accuracy at every level of every noise: MultiBench's performance-imperfection curves.

    Each noise makes one modality noisy (the other stays clean), batch by batch, before the
    task's own preprocessing (images resized, texts tokenized after the noise), as
    `mmkeras.evaluate` feeds the model. The accuracy is the head's own (binary, multiclass or
    multilabel accuracy). Level 0 is the clean data: it is measured once and shared by every
    noise. A noise of a modality the model does not take (or the examples lack, or hold as token
    ids) is skipped, with the reason under `"skipped"` (printed when `verbose`).

    Args:
        model: a task, a run folder written by `train` or a `.keras` file.
        examples: `mmkeras.data.Examples` with labels (e.g. a dataset's test split).
        noises: list of noise names (see `NOISES`), or None for all. Defaults to `None`.
        levels: at least two increasing levels in [0, 1]. Defaults to `DEFAULT_LEVELS`
            (0, 0.1, ..., 1).
        seed: int, the noise's seed (the same seed, the same noisy data). Defaults to `0`.
        batch_size: int, examples per batch. Defaults to `256`.
        verbose: int, 1 prints the skipped modalities and a progress bar over the levels.
            Defaults to `0`.

    Returns:
        dict: `levels` (list), `metric` (`"accuracy"`), `examples` (their number), `seed`,
        `curves` (`{modality: {noise: [accuracy per level]}}`) and `skipped`
        (`{modality: reason}`).

    Raises:
        ValueError: for an unknown noise, bad levels, a model without an accuracy head, or
            when no requested noise applies.

    Example:

    >>> import mmkeras, numpy as np
    >>> from mmkeras.data import Examples
    >>> model = mmkeras.get_model("s3", image_shape=(16, 16, 3))
    >>> rng = np.random.default_rng(0)
    >>> examples = Examples(rng.random((6, 16, 16, 3), dtype="float32"), None, labels=[0, 1, 2, 3, 4, 5])
    >>> result = robustness_curves(model, examples, ["blur", "typos"], levels=[0, 1])
    >>> list(result["curves"]["image"]), result["skipped"]
    (['blur'], {'text': 'the model takes no text input'})
    """
    from mmkeras.data import Examples
    from mmkeras.training.inference import _task

    names = check_noises(noises)
    levels = check_levels(levels)
    check_seed("seed", seed)
    check_positive_int("batch_size", batch_size)
    net = _task(model)
    if not isinstance(examples, Examples):
        raise ValueError(f"`examples` must be mmkeras.data.Examples with labels. {received('examples', examples)}")
    if examples.labels is None:
        raise ValueError("`examples` must have labels to measure an accuracy. Received: examples without labels")
    _accuracy_metric(net)
    net.check_labels(examples.labels)
    status = _modalities(net, examples)
    runnable = [name for name in names if status[NOISES[name][0]] is None]
    skipped = {}
    for modality in MODALITIES:
        wanted = [name for name in names if NOISES[name][0] == modality]
        if wanted and status[modality] is not None:
            skipped[modality] = status[modality]
            if verbose:
                print(f"Skipping the {modality} noises ({', '.join(wanted)}): {status[modality]}.")
    if not runnable:
        raise ValueError(
            f"`noises` must include a noise the model and the examples allow: {'; '.join(f'{m}: {r}' for m, r in skipped.items())}. "
            f"Received: noises={names}"
        )
    progress = None
    if verbose:
        import keras

        progress = keras.utils.Progbar(len(runnable) * len(levels), unit_name="level")
    curves, clean = {}, None
    for name in runnable:
        values = []
        for index, level in enumerate(levels):
            if level == 0 and clean is not None:
                value = clean  # every noise is the identity at level 0
            else:
                key = (seed, zlib.crc32(name.encode()), index)
                value = _accuracy(net, examples, name, level, key, batch_size)
                clean = value if level == 0 else clean
            values.append(value)
            if progress is not None:
                progress.add(1)
        curves.setdefault(NOISES[name][0], {})[name] = values
    return {
        "metric": "accuracy",
        "levels": list(levels),
        "examples": len(examples),
        "seed": seed,
        "curves": curves,
        "skipped": skipped,
    }


def _check_result(result, name="curves"):
    if not (isinstance(result, dict) and isinstance(result.get("curves"), dict) and "levels" in result):
        raise ValueError(f"`{name}` must be what `robustness_curves` returns. {received(name, result)}")
    return result


def summarize(result, baseline=None):
    """`{noise: {"modality", "clean", "relative_robustness", "effective_robustness"}}` for a result.

    `effective_robustness` needs `baseline` (the baseline's `robustness_curves` on the same
    levels); it is None without one, or where the baseline has no curve for that noise.

    Example:

    >>> result = {"levels": [0, 1], "curves": {"image": {"blur": [0.9, 0.5]}}}
    >>> summarize(result, {"levels": [0, 1], "curves": {"image": {"blur": [0.8, 0.2]}}})["blur"]
    {'modality': 'image', 'clean': 0.9, 'relative_robustness': 0.7, 'effective_robustness': 0.1}
    """
    _check_result(result)
    if baseline is not None:
        _check_result(baseline, "baseline")
        if list(baseline["levels"]) != list(result["levels"]):
            raise ValueError(
                f"`baseline` must be measured at the same levels {list(result['levels'])}. "
                f"Received: baseline levels {list(baseline['levels'])}"
            )
    summary = {}
    for modality, curves in result["curves"].items():
        for noise, values in curves.items():
            other = None if baseline is None else baseline["curves"].get(modality, {}).get(noise)
            summary[noise] = {
                "modality": modality,
                "clean": values[0],
                "relative_robustness": relative_robustness(result["levels"], values),
                "effective_robustness": None if other is None else effective_robustness(result["levels"], values, other),
            }
    return summary


# Reports.


def _level_label(level):
    return f"{level:g}"


def robustness_table(result, baseline=None):
    """The curves and their summary numbers as a markdown table (one row per noise).

    Example:

    >>> print(robustness_table({"levels": [0, 1], "curves": {"text": {"typos": [0.9, 0.6]}}}))
    | modality | noise | 0 | 1 | relative robustness |
    |---|---|---|---|---|
    | text | typos | 0.9000 | 0.6000 | 0.7500 |
    """
    summary = summarize(result, baseline)
    levels = [_level_label(level) for level in result["levels"]]
    header = ["modality", "noise", *levels, "relative robustness"]
    if baseline is not None:
        header += ["baseline relative robustness", "effective robustness"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]

    def number(value):
        return "-" if value is None else f"{value:.4f}"

    for modality, curves in result["curves"].items():
        for noise, values in curves.items():
            row = [modality, noise, *(number(v) for v in values), number(summary[noise]["relative_robustness"])]
            if baseline is not None:
                other = baseline["curves"].get(modality, {}).get(noise)
                row += [
                    number(None if other is None else relative_robustness(result["levels"], other)),
                    number(summary[noise]["effective_robustness"]),
                ]
            lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def plot_robustness(curves, path, baseline=None, title=None):
    """Save the accuracy-vs-level curves as a PNG: one panel per modality, one line per noise.

    Uses matplotlib's Agg canvas directly (headless; pyplot's backend is left alone).

    Args:
        curves: what `robustness_curves` returns.
        path: str, the PNG file to write.
        baseline: the baseline's `robustness_curves`, drawn dashed in the same colours, or None.
            Defaults to `None`.
        title: str or None, the figure's title. Defaults to `None`.

    Example:

    >>> import os
    >>> result = {"levels": [0, 0.5, 1], "curves": {"image": {"blur": [0.9, 0.7, 0.4]}}}
    >>> plot_robustness(result, "robustness.png", baseline=result)
    >>> os.path.getsize("robustness.png") > 0
    True
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    _check_result(curves)
    if baseline is not None:
        _check_result(baseline, "baseline")
    panels = [m for m in MODALITIES if curves["curves"].get(m)] + [m for m in curves["curves"] if m not in MODALITIES]
    rows = max((len(c) for c in curves["curves"].values()), default=0) * (1 if baseline is None else 2)
    # Each legend sits under its panel, never over the curves; the figure grows with its rows.
    figure = Figure(figsize=(5 * max(1, len(panels)), 3.8 + 0.2 * -(-rows // 2)), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    colours = {name: f"C{i}" for i, name in enumerate(NOISES)}
    for i, modality in enumerate(panels, start=1):
        axes = figure.add_subplot(1, len(panels), i)
        for j, (noise, values) in enumerate(curves["curves"][modality].items()):
            colour = colours.get(noise, f"C{j}")
            axes.plot(curves["levels"], values, marker="o", color=colour, label=noise)
            other = None if baseline is None else baseline["curves"].get(modality, {}).get(noise)
            if other is not None:
                axes.plot(baseline["levels"], other, linestyle="--", color=colour, alpha=0.8, label=f"{noise} (baseline)")
        axes.set_title(f"{modality} noise")
        axes.set_xlabel("noise level")
        axes.set_ylabel(curves.get("metric", "accuracy"))
        axes.set_xlim(-0.02, 1.02)
        axes.set_ylim(-0.02, 1.02)
        axes.grid(alpha=0.3)
        axes.legend(fontsize="small", ncol=2, loc="upper center", bbox_to_anchor=(0.5, -0.16))
    if title:
        figure.suptitle(title)
    figure.savefig(path)


# The report folder.

REPORT_DIR = "robustness"
REPORT_FILES = ("robustness.json", "robustness.md", "robustness.png")
REPORT_MARK = "mmkeras robustness report"
WHAT = "an mmkeras robustness report (robustness.json, .md, .png)"


def is_report(path):
    """Whether folder `path` is empty, or holds a report `write_report` wrote and nothing else.

    Such a folder may be replaced by a new report; any other (a file of the user's beside the
    report, a `robustness.json` of their own) may not.
    """
    if not os.path.isdir(path) or os.path.islink(path):
        return False
    entries = set(os.listdir(path))
    if not entries:
        return True
    if not entries <= set(REPORT_FILES) or "robustness.json" not in entries:
        return False
    try:
        with open(os.path.join(path, "robustness.json"), encoding="utf-8") as f:
            content = json.load(f)
    except (OSError, ValueError):
        return False
    return isinstance(content, dict) and content.get("report") == REPORT_MARK


def check_report_target(output):
    """The absolute `output` folder; raise `ValueError` unless it is new, empty or an earlier report."""
    from mmkeras.atomic import check_target
    from mmkeras.training.runs import check_writable

    output = os.path.abspath(os.fspath(output))
    if os.path.lexists(output) and not is_report(output):
        raise ValueError(
            f"`output` must be a new folder or an earlier robustness report (which is replaced); this one holds "
            f"other files. Nothing was changed; choose another folder with --output. Received: output={output!r}"
        )
    check_target(output, True, is_report, WHAT)
    check_writable("output", output, beside=True)
    return output


def _markdown(result, baseline, info):
    lines = [f"# Robustness of {info.get('model', 'the model')}", ""]
    facts = {
        "data": info.get("data"),
        "examples": result["examples"],
        "metric": result["metric"],
        "seed": result["seed"],
        "baseline": info.get("baseline"),
    }
    lines += [f"- {k}: {v}" for k, v in facts.items() if v is not None]
    lines += [f"- skipped {m} noises: {reason}" for m, reason in result["skipped"].items()]
    lines += ["", robustness_table(result, baseline), ""]
    lines += [
        "Relative robustness: the area under the accuracy-vs-level curve divided by the level range. "
        "Effective robustness: the same area for the model's curve minus the baseline's curve moved to the "
        "model's clean accuracy (MultiBench, Liang et al. 2021). See docs/robustness.md.",
        "",
    ]
    return "\n".join(lines)


def write_report(result, output, *, baseline=None, info=None):
    """Write `robustness.json`, `robustness.md` and `robustness.png` into folder `output`, atomically.

    Everything is written to a temporary folder beside `output`, then moved into place: an
    earlier report there is replaced in one step; any other existing folder or file is refused
    (`ValueError`) and left untouched.

    Args:
        result: what `robustness_curves` returns.
        output: str, the folder to write.
        baseline: the baseline's `robustness_curves`, or None. Defaults to `None`.
        info: dict or None, what to record beside the curves (`model`, `baseline`, `data`, ...).
            Defaults to `None`.

    Returns:
        str, the absolute path of `output`.

    Example:

    >>> import os
    >>> result = {"levels": [0, 1], "metric": "accuracy", "examples": 4, "seed": 0,
    ...           "curves": {"image": {"blur": [0.75, 0.5]}}, "skipped": {}}
    >>> folder = write_report(result, "report")
    >>> sorted(os.listdir(folder))
    ['robustness.json', 'robustness.md', 'robustness.png']
    >>> folder == write_report(result, "report")  # an earlier report is replaced
    True
    """
    from mmkeras import __version__
    from mmkeras.atomic import atomic_folder

    _check_result(result)
    info = dict(info or {})
    output = check_report_target(output)
    content = {
        "report": REPORT_MARK,
        "mmkeras": __version__,
        **info,
        "levels": result["levels"],
        "summary": summarize(result, baseline),
        "result": result,
        "baseline_result": baseline,
    }
    with atomic_folder(output, overwrite=True, replaceable=is_report, what=WHAT) as staging:
        plot_robustness(result, os.path.join(staging, "robustness.png"), baseline=baseline, title=info.get("model"))
        with open(os.path.join(staging, "robustness.md"), "w", encoding="utf-8") as f:
            f.write(_markdown(result, baseline, info))
        with open(os.path.join(staging, "robustness.json"), "w", encoding="utf-8") as f:
            json.dump(content, f, indent=2)
    return output


def parse_levels(text):
    """Levels from the command line: `"0,0.25,0.5"` -> `(0.0, 0.25, 0.5)` (checked as `check_levels`).

    Example:

    >>> parse_levels("0, 0.5, 1")
    (0.0, 0.5, 1.0)
    """
    try:
        values = [float(part) for part in re.split(r"[,\s]+", text.strip()) if part]
    except ValueError:
        raise ValueError(f"`levels` must be numbers in [0, 1] separated by commas. {received('levels', text)}") from None
    return check_levels(values, "levels")
