"""Training throughput: mmkeras models against the same graph written by hand in Keras and in PyTorch.

A script, not a test. For each model it trains, on the same synthetic in-memory batches (random
images in [0, 1], random token ids from 1, random labels) with Adam and the same loss:

- `mmkeras`: the registered recipe, built by `mmkeras.get_model` inside
  `mmkeras.precision.precision_scope` and compiled with its defaults, as a user would;
- `keras`: the same graph written layer by layer with `keras.layers` (the script refuses to run
  unless its parameter count equals mmkeras's);
- `pytorch` (when torch is installed): the same graph in PyTorch eager, channels-first, in float32
  and in bfloat16 under `torch.autocast("cpu")`;

the Keras models in float32 and with `precision="auto"` (`mixed_bfloat16` on a CPU with
AVX512_BF16 or AMX). The models: the documents' `s1` at 64x64 and at 224x224 (CNN 64/128/256 +
max pooling + Flatten, Embedding(10000, 64) + LSTM(64) on 100 token ids, concatenation, Dense 128
and 64, sigmoid) and the default `vqa` recipe at 32x32, the size `mmkeras train` trains it at.

Keras models train with `model.fit` on a repeated `tf.data.Dataset` (`steps_per_epoch=--steps`),
PyTorch with a plain loop of the same steps; each variant is built once and warmed up (graph
tracing excluded), then timed. A round is at least `--steps` steps and lasts at least
`--min-round-seconds` (3 s: ten steps of vqa take half a second, where `fit`'s per-call overhead
and the machine's short stalls would weigh); each variant's steps per round are in the JSON. The
Keras feed has tf.data autotuning off, as mmkeras's own pipelines have: with it on, a `fit` call
often ends waiting for the autotuning timer, up to twice its time (`benchmarks/stall.py`). The
variants of a model are timed interleaved, `--repeats` rounds, in an order that reverses every
round (A B C, C B A, ...), and the table gives the median samples/s with the range, and the ratios
mmkeras over each other variant at the same requested precision (PyTorch's "auto" is bfloat16
autocast): the median over rounds of the two variants' ratio in that round, which the machine's
drift from round to round moves less than a ratio of medians. Goals, printed as met or
missed: mmkeras / Keras >= 0.98 everywhere; at 224x224 mmkeras / PyTorch >= 1.5 in float32 and
mmkeras auto / PyTorch float32 >= 3 (PyTorch eager in float32 being what a user would otherwise
write; its bfloat16 autocast row is shown beside, without a goal). Where the graphs still differ: Keras masks token id 0
in the LSTM (no id is 0 here, so the answers agree) and mmkeras' product fusion multiplies with
`prod(stack(...))` where the hand-written model uses `Multiply`; PyTorch's models end in logits
and use the with-logits losses (the same maths as sigmoid / softmax + cross-entropy), and compute
no accuracy metric, which Keras' `fit` does.

Prints the machine, the versions, the load average before and after, the matmul peak, a Markdown
table and the ratios beside it, and writes everything to `--json` (it never writes into docs/).

FLOPs are counted from the graph: the forward pass, loss and gradients (not the optimizer update)
are traced to a TensorFlow graph and each op's FLOPs read from TensorFlow's profiler
(`tf.compat.v1.profiler`, `float_operation`), counting only ops the gradients depend on (the
unused gradient with respect to the image is pruned at run time). Two corrections, both read off
the graph: the profiler counts `Conv2DBackpropInput` / `Conv2DBackpropFilter` over the input's
spatial size, not the output's (a 2.25x overcount for a 6x6 -> 4x4 convolution), so those are
counted like their forward convolution, `2 * size(output gradient) * kh * kw * c_in`; and it does
not look inside loops, so an LSTM's `while` loops (Keras runs its time steps in one) count their
body times the time steps of the sequence they unstack. GFLOP/s = FLOPs per sample x samples/s,
and its share of the measured matmul peak of the precision in use (`tf.linalg.matmul` of square
matrices in a `tf.function`, float32 and bfloat16, median of several).

Usage (from the repository root):

    python benchmarks/throughput.py                               # s1 64 and 224, vqa 32; 5 repeats
    python benchmarks/throughput.py --models s1 --repeats 3 --steps 5
    python benchmarks/throughput.py --quick --json /tmp/tp.json   # a smoke run (small models)
"""

import argparse
import contextlib
import dataclasses
import json
import math
import os
import statistics
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from machine_info import cpu_name  # noqa: E402

MODELS = ("s1", "vqa")
TORCH_MISSING = "PyTorch: not installed (pip install torch==2.13.0 takes the CPU build from this machine's disk), skipped"
KERAS_GOAL = 0.98  # mmkeras / hand-written Keras, every model and precision
# At 224x224: mmkeras / PyTorch eager in float32 (both float32), and mmkeras with precision="auto"
# against the same PyTorch float32 model (what a user would otherwise write); PyTorch's bfloat16
# autocast row is shown beside them, without a goal.
TORCH_GOALS = {"float32": 1.5, "auto": 3.0}
GOAL_SIZE = 224
WHILE_OPS = ("While", "StatelessWhile")
CONV_BACKPROP = ("Conv2DBackpropInput", "Conv2DBackpropFilter")
CALL_OPS = ("PartitionedCall", "StatefulPartitionedCall")


@dataclasses.dataclass
class Case:
    """One model at one size: what `mmkeras.get_model` gets, and the batch size."""

    model: str
    image_shape: tuple
    sequence_length: int
    vocab_size: int
    batch_size: int

    @property
    def label(self):
        return f"{self.model} {self.image_shape[0]}x{self.image_shape[1]}"


@dataclasses.dataclass
class Variant:
    """One way to train a case: `train(steps)` runs that many training steps."""

    name: str
    precision: str  # "float32" or "auto", as requested
    policy: str  # what it computes in: a Keras policy name, or "bfloat16" for torch.autocast
    parameters: int
    train: object
    model: object = None  # the Keras model, None for PyTorch
    rates: list = dataclasses.field(default_factory=list)
    steps: int = 0  # steps per timed round (`measure` sets them)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS, help="default: s1 vqa")
    parser.add_argument("--repeats", type=int, default=None, help="interleaved rounds per model (default 5; --quick 2)")
    parser.add_argument("--steps", type=int, default=None, help="timed training steps per round, at least (default 10; --quick 2)")
    parser.add_argument("--min-round-seconds", type=float, default=None,
                        help="more steps per round where --steps take less (default 3; --quick 0): each round then "
                             "outlasts per-call overheads and the machine's short stalls")
    parser.add_argument("--warmup", type=int, default=None, help="untimed steps after building (default 3; --quick 1)")
    parser.add_argument("--batch-size-s1", type=int, default=32)
    parser.add_argument("--batch-size-vqa", type=int, default=128)
    parser.add_argument("--quick", action="store_true", help="a smoke run: small models (s1 at 32x32 on 12 tokens), few steps")
    parser.add_argument("--json", default=os.path.join(ROOT, "benchmarks", "results", "throughput.json"))
    args = parser.parse_args(argv)
    for name, full, quick in (("repeats", 5, 2), ("steps", 10, 2), ("warmup", 3, 1), ("min_round_seconds", 3.0, 0.0)):
        if getattr(args, name) is None:
            setattr(args, name, quick if args.quick else full)
    if min(args.repeats, args.steps, args.batch_size_s1, args.batch_size_vqa) < 1 or min(args.warmup, args.min_round_seconds) < 0:
        parser.error("--repeats, --steps and the batch sizes must be positive, --warmup and --min-round-seconds not negative")
    return args


def cases(args):
    """The cases of `--models`: s1 at 64x64 and 224x224 (32x32, 12 tokens with --quick), vqa at 32x32."""
    out = []
    if "s1" in args.models:
        sizes, length = ((32,), 12) if args.quick else ((64, 224), 100)
        out += [Case("s1", (size, size, 3), length, 10000, args.batch_size_s1) for size in sizes]
    if "vqa" in args.models:
        out.append(Case("vqa", (32, 32, 3), 9, 64, args.batch_size_vqa))
    return out


def synthetic_data(case, batches=2, seed=0):
    """`batches` batches of random images in [0, 1], token ids in [1, vocab) and labels (numpy)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    n = batches * case.batch_size
    image = rng.random((n, *case.image_shape), dtype=np.float32)
    text = rng.integers(1, case.vocab_size, (n, case.sequence_length), dtype=np.int32)
    label = rng.integers(0, 2, (n, 1)).astype(np.float32) if case.model == "s1" else rng.integers(0, 13, n).astype(np.int32)
    return {"image": image, "text": text}, label


# === Keras: mmkeras and by hand ===


def build_mmkeras(case, precision):
    """The recipe as a user builds it: `get_model` inside a precision scope, compiled with its defaults (Adam)."""
    import mmkeras

    with mmkeras.precision.precision_scope(precision):
        return mmkeras.get_model(
            case.model, image_shape=case.image_shape, sequence_length=case.sequence_length, vocab_size=case.vocab_size
        )


def s1_by_hand(case):
    """S1 in plain Keras, mirroring `cnn_encoder`, `rnn_encoder`, `ConcatenateFusion` and the binary head."""
    import keras
    from keras import layers

    image = keras.Input(case.image_shape, name="image")
    x = image
    for i, filters in enumerate((64, 128, 256), start=1):
        x = layers.Conv2D(filters, 3, activation="relu", name=f"image_block{i}_conv")(x)
        x = layers.MaxPooling2D(2, name=f"image_block{i}_pool")(x)
    x = layers.Flatten(name="image_flatten")(x)
    text = keras.Input((case.sequence_length,), dtype="int32", name="text")
    t = layers.Embedding(case.vocab_size, 64, mask_zero=True, name="text_embedding")(text)
    t = layers.LSTM(64, name="text_lstm1")(t)
    x = layers.Concatenate(name="fusion")([x, t])
    x = layers.Dense(128, activation="relu", name="hidden_dense1")(x)
    x = layers.Dense(64, activation="relu", name="hidden_dense2")(x)
    output = layers.Dense(1, activation="sigmoid", dtype="float32", name="label")(x)
    model = keras.Model({"image": image, "text": text}, output, name="s1_by_hand")
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="binary_crossentropy",
                  metrics=[keras.metrics.BinaryAccuracy(name="accuracy")])
    return model


def vqa_by_hand(case):
    """vqa in plain Keras: batch-normalised CNN, bag-of-words Conv1D, product fusion, softmax.

    mmkeras' `ProductFusion(units=64)` projects each modality (a kernel and a bias, no activation)
    and multiplies them as `prod(stack(...))`; by hand that is a Dense per modality and `Multiply`.
    """
    import keras
    from keras import layers

    image = keras.Input(case.image_shape, name="image")
    x = image
    for i, filters in enumerate((16, 32, 64), start=1):
        x = layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"image_block{i}_conv")(x)
        x = layers.BatchNormalization(momentum=0.99, name=f"image_block{i}_bn")(x)
        x = layers.Activation("relu", name=f"image_block{i}_relu")(x)
        x = layers.MaxPooling2D(2, name=f"image_block{i}_pool")(x)
    x = layers.GlobalAveragePooling2D(name="image_global_avg_pool")(x)
    text = keras.Input((case.sequence_length,), dtype="int32", name="text")
    t = layers.Embedding(case.vocab_size, 32, name="text_embedding")(text)
    t = layers.Conv1D(64, 1, padding="same", activation="relu", name="text_conv1")(t)
    t = layers.GlobalMaxPooling1D(name="text_conv1_pool")(t)
    x = layers.Multiply(name="fusion")([layers.Dense(64, name="fusion_image")(x), layers.Dense(64, name="fusion_text")(t)])
    x = layers.Dense(64, activation="relu", name="hidden_dense1")(x)
    output = layers.Dense(13, activation="softmax", dtype="float32", name="answer")(x)
    model = keras.Model({"image": image, "text": text}, output, name="vqa_by_hand")
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


BY_HAND = {"s1": s1_by_hand, "vqa": vqa_by_hand}


def build_by_hand(case, precision):
    """The hand-written Keras model under the same global dtype policy as mmkeras's; the policy is reset after."""
    import keras

    import mmkeras

    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(mmkeras.precision.resolve_precision(precision))
    try:
        return BY_HAND[case.model](case)
    finally:
        keras.mixed_precision.set_global_policy(previous)


def check_parameters(reference, model):
    """Raise unless `model` has exactly `reference`'s parameter count: the same graph, written twice."""
    expected, found = reference.count_params(), model.count_params()
    if expected != found:
        raise AssertionError(
            f"{model.name} is not the graph of {reference.name}: {found:,} parameters, mmkeras has {expected:,}"
        )
    return found


def keras_trainer(model, data, batch_size):
    """`train(steps)`: `model.fit` on the in-memory batches, repeated, `steps_per_epoch=steps`.

    The feed is the same for both Keras variants, with tf.data autotuning off as in mmkeras's
    pipelines: with it on, each `fit` call often ends waiting for the autotuning timer, which
    would time that timer instead of the model (see `benchmarks/stall.py`).
    """
    import tensorflow as tf

    from mmkeras.data.pipeline import without_autotune

    dataset = tf.data.Dataset.from_tensor_slices(data).batch(batch_size, drop_remainder=True).cache().repeat()
    dataset = without_autotune(dataset)

    def train(steps):
        model.fit(dataset, epochs=1, steps_per_epoch=steps, shuffle=False, verbose=0)

    return train


def keras_variants(case, data, precision):
    """mmkeras's model and the hand-written one at `precision` (their parameter counts checked equal)."""
    import mmkeras

    policy = mmkeras.precision.resolve_precision(precision)
    ours, by_hand = build_mmkeras(case, precision), build_by_hand(case, precision)
    parameters = check_parameters(ours, by_hand)
    return [
        Variant("mmkeras", precision, policy, ours.count_params(), keras_trainer(ours, data, case.batch_size), ours),
        Variant("keras", precision, policy, parameters, keras_trainer(by_hand, data, case.batch_size), by_hand),
    ]


# === PyTorch: the same graph, eager ===


def load_torch():
    """The `torch` module, threads set to every core, or None (printing why) when it is not installed."""
    try:
        import torch
    except ImportError:
        print(TORCH_MISSING)
        return None
    torch.set_num_threads(os.cpu_count())
    return torch


def torch_s1(torch, case):
    """S1 in PyTorch. `nn.LSTM` keeps two bias vectors (input and recurrent) where Keras keeps one."""
    from torch import nn

    class S1(nn.Module):
        def __init__(self):
            super().__init__()
            blocks, channels = [], case.image_shape[2]
            for filters in (64, 128, 256):
                blocks += [nn.Conv2d(channels, filters, 3), nn.ReLU(), nn.MaxPool2d(2)]
                channels = filters
            self.image = nn.Sequential(*blocks, nn.Flatten())
            width = self.image(torch.zeros(1, case.image_shape[2], *case.image_shape[:2])).shape[1]
            self.embedding = nn.Embedding(case.vocab_size, 64)
            self.lstm = nn.LSTM(64, 64, batch_first=True)
            self.head = nn.Sequential(nn.Linear(width + 64, 128), nn.ReLU(), nn.Linear(128, 64), nn.ReLU(), nn.Linear(64, 1))

        def forward(self, image, text):
            _, (hidden, _) = self.lstm(self.embedding(text))
            return self.head(torch.cat([self.image(image), hidden[-1]], dim=1))  # a logit: the loss takes logits

    return S1()


def torch_vqa(torch, case):
    """vqa in PyTorch: Keras' BatchNormalization(momentum=0.99, epsilon=1e-3) is momentum 0.01 here."""
    from torch import nn

    class Vqa(nn.Module):
        def __init__(self):
            super().__init__()
            blocks, channels = [], case.image_shape[2]
            for filters in (16, 32, 64):
                blocks += [nn.Conv2d(channels, filters, 3, padding=1, bias=False),
                           nn.BatchNorm2d(filters, eps=1e-3, momentum=0.01), nn.ReLU(), nn.MaxPool2d(2)]
                channels = filters
            self.image = nn.Sequential(*blocks, nn.AdaptiveAvgPool2d(1), nn.Flatten())
            self.embedding = nn.Embedding(case.vocab_size, 32)
            self.text_conv = nn.Conv1d(32, 64, 1)
            self.fusion_image, self.fusion_text = nn.Linear(64, 64), nn.Linear(64, 64)
            self.head = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 13))

        def forward(self, image, text):
            text = torch.relu(self.text_conv(self.embedding(text).transpose(1, 2))).amax(dim=2)
            return self.head(self.fusion_image(self.image(image)) * self.fusion_text(text))  # logits

    return Vqa()


def torch_parameters(net):
    """Parameters as Keras counts them: weights plus batch-norm moving statistics."""
    buffers = sum(b.numel() for name, b in net.named_buffers() if name.endswith(("running_mean", "running_var")))
    return sum(p.numel() for p in net.parameters()) + buffers


def lstm_extra_parameters(case):
    """How many more parameters PyTorch counts: a second bias of 4 x units per LSTM (s1: one LSTM(64))."""
    return 4 * 64 if case.model == "s1" else 0


def torch_trainer(torch, net, data, label, case, bfloat16):
    """`train(steps)`: Adam steps on the in-memory batches, under `torch.autocast` for bfloat16."""
    image = torch.from_numpy(data["image"]).permute(0, 3, 1, 2).contiguous()
    text = torch.from_numpy(data["text"]).long()
    if case.model == "s1":
        label, loss_fn = torch.from_numpy(label), torch.nn.functional.binary_cross_entropy_with_logits
    else:
        label, loss_fn = torch.from_numpy(label).long(), torch.nn.functional.cross_entropy
    b = case.batch_size
    batches = [(image[i:i + b], text[i:i + b], label[i:i + b]) for i in range(0, len(text), b)]
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)

    def train(steps):
        net.train()
        for step in range(steps):
            x, t, y = batches[step % len(batches)]
            optimizer.zero_grad(set_to_none=True)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bfloat16):
                loss = loss_fn(net(x, t), y)
            loss.backward()
            optimizer.step()

    return train


def torch_variants(torch, case, data, label, reference_parameters):
    """PyTorch in float32 and in bfloat16 (autocast), with the LSTM-bias parameter rule checked."""
    out = []
    for bfloat16 in (False, True):
        net = (torch_s1 if case.model == "s1" else torch_vqa)(torch, case)
        parameters = torch_parameters(net)
        if parameters - reference_parameters != lstm_extra_parameters(case):
            raise AssertionError(
                f"PyTorch {case.label} has {parameters:,} parameters, mmkeras {reference_parameters:,}: the "
                f"difference should be the LSTM's second bias, {lstm_extra_parameters(case)}"
            )
        precision, policy = ("auto", "bfloat16") if bfloat16 else ("float32", "float32")
        out.append(Variant("pytorch", precision, policy, parameters, torch_trainer(torch, net, data, label, case, bfloat16)))
    return out


# === FLOPs, from the graph ===


@contextlib.contextmanager
def tf_errors_only():
    """TensorFlow's Python logger at ERROR inside, restored after."""
    import tensorflow as tf

    logger = tf.get_logger()
    previous = logger.level
    logger.setLevel("ERROR")
    try:
        yield
    finally:
        logger.setLevel(previous)


def training_flops(model, case, batch=2):
    """Training FLOPs per sample: forward, loss and gradients of `model`, counted on the traced graph."""
    import keras
    import tensorflow as tf

    data, label = synthetic_data(dataclasses.replace(case, batch_size=batch), batches=1)
    loss_fn = keras.losses.get(model.loss)

    @tf.function(autograph=False)
    def step(x, y):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(loss_fn(y, model(x, training=True)))
        return tape.gradient(loss, model.trainable_variables)

    graph = step.get_concrete_function(data, label).graph
    return graph_flops(graph, graph.outputs) / batch


def graph_flops(graph, outputs):
    """FLOPs of the ops of `graph` that `outputs` depend on (see the module docstring for the corrections)."""
    import tensorflow as tf

    options = tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
    options["output"] = "none"
    with tf_errors_only():  # the profiler warns that it is a TensorFlow 1 API
        profile = tf.compat.v1.profiler.profile(graph, options=options)
    per_op, pending = {}, [profile]
    while pending:
        node = pending.pop()
        per_op[node.name] = node.float_ops
        pending += node.children
    total = 0
    for op in _live_ops(outputs):
        if op.type in CONV_BACKPROP:
            total += _conv_backprop_flops(op)
        elif op.type in WHILE_OPS:
            body = graph._functions[op.get_attr("body").name].graph  # no public way to a loop's body graph
            total += _loop_trips(op) * graph_flops(body, body.outputs)
        elif op.type in CALL_OPS:  # not made by these models: refuse rather than count it as 0
            raise ValueError(f"{op.name} calls a function, which this counter does not look into")
        else:
            total += per_op.get(op.name, 0)
    return total


def _live_ops(outputs):
    """The ops `outputs` depend on (what grappler keeps: the image's unused gradient is pruned)."""
    seen, pending = set(), [t.op for t in outputs]
    while pending:
        op = pending.pop()
        if op not in seen:
            seen.add(op)
            pending += [t.op for t in op.inputs] + list(op.control_inputs)
    return seen


def _conv_backprop_flops(op):
    """A convolution gradient costs its forward convolution: 2 * size(output gradient) * kh * kw * c_in."""
    kernel = op.outputs[0].shape if op.type == "Conv2DBackpropFilter" else op.inputs[1].shape
    return 2 * op.inputs[2].shape.num_elements() * kernel[0] * kernel[1] * kernel[2]


def _loop_trips(op):
    """Iterations of a Keras RNN loop: the time steps of the sequences it unstacks (a gradient loop
    runs as often as its forward loop, one of its inputs)."""
    trips = [0]
    for op_in in {t.op for t in op.inputs}:
        if op_in.type == "TensorListFromTensor" and op_in.inputs[0].shape.rank:
            trips.append(op_in.inputs[0].shape[0] or 0)
        elif op_in.type in WHILE_OPS:
            trips.append(_loop_trips(op_in))
    if not max(trips):
        raise ValueError(f"cannot tell how often the loop {op.name} runs: its FLOPs would be wrong")
    return max(trips)


def matmul_peak(dtype, size=2048, repeats=5):
    """Measured matmul GFLOP/s: the median over `repeats` of one `size` x `size` matmul in a tf.function."""
    import tensorflow as tf

    a = tf.cast(tf.random.uniform((size, size)), dtype)
    b = tf.cast(tf.random.uniform((size, size)), dtype)
    matmul = tf.function(lambda: tf.reduce_sum(tf.cast(tf.linalg.matmul(a, b), tf.float32)), autograph=False)
    matmul().numpy()
    seconds = []
    for _ in range(repeats):
        started = time.perf_counter()
        matmul().numpy()
        seconds.append(time.perf_counter() - started)
    return 2 * size**3 / statistics.median(seconds) / 1e9


# === Running and reporting ===


def measure(variants, steps, repeats, warmup, batch_size, min_round_seconds=0.0):
    """Warm every variant up, then time its steps, round after round, in turn (A B C, C B A, A B C...).

    The order reverses every round, so no variant always runs first or last in a round.

    A variant's round is `steps` steps, or more where those take less than `min_round_seconds`
    (counted from one untimed round after the warm-up): its `steps` are kept on the variant.
    """
    for variant in variants:
        if warmup:
            variant.train(warmup)
        variant.steps = steps
        if min_round_seconds:
            started = time.perf_counter()
            variant.train(steps)
            variant.steps = max(steps, math.ceil(steps * min_round_seconds / (time.perf_counter() - started)))
    for round_ in range(repeats):
        for variant in (variants if round_ % 2 == 0 else variants[::-1]):
            started = time.perf_counter()
            variant.train(variant.steps)
            variant.rates.append(variant.steps * batch_size / (time.perf_counter() - started))


def goal(case, variant):
    """The least mmkeras / `variant` ratio wanted, or None."""
    if variant.name == "keras":
        return KERAS_GOAL
    if variant.name == "pytorch" and variant.precision == "float32" and case.image_shape[0] >= GOAL_SIZE:
        return TORCH_GOALS["float32"]
    return None


def paired_ratio(ours, theirs):
    """The median over rounds of `ours[i] / theirs[i]`: samples/s of two variants timed in the same round.

    Example:

    >>> paired_ratio([10.0, 20.0, 12.0], [10.0, 19.0, 6.0])
    1.0526315789473684
    """
    return statistics.median(a / b for a, b in zip(ours, theirs))


def rows_of(case, variants, flops, peaks):
    """One JSON row per variant: samples/s, mmkeras's rate over this one's (same requested precision,
    the median of the rounds' ratios), FLOPs."""
    ours = {v.precision: v.rates for v in variants if v.name == "mmkeras"}
    rows = []
    for v in variants:
        median = statistics.median(v.rates)
        target = goal(case, v)
        ratio = paired_ratio(ours[v.precision], v.rates)
        peak = peaks["bfloat16" if "bfloat16" in v.policy else "float32"]
        rows.append({
            "model": case.model, "image_shape": list(case.image_shape), "sequence_length": case.sequence_length,
            "batch_size": case.batch_size, "variant": v.name, "precision": v.precision, "policy": v.policy,
            "parameters": int(v.parameters), "steps_per_round": v.steps, "samples_per_s": [round(r, 2) for r in v.rates],
            "median": round(median, 2), "min": round(min(v.rates), 2), "max": round(max(v.rates), 2),
            "mmkeras_ratio": round(ratio, 3), "goal": target, "goal_met": None if target is None else ratio >= target,
            "flops_per_sample": int(flops), "gflops": round(flops * median / 1e9, 1),
            "share_of_peak": round(flops * median / 1e9 / peak, 3),
        })
    return rows


def notes_of(case, rows):
    """Ratios beside the table: what `auto` buys mmkeras, and mmkeras auto against PyTorch in float32."""
    rates = {(r["variant"], r["precision"]): r["samples_per_s"] for r in rows}
    ours = rates[("mmkeras", "auto")]
    notes = [(f"{case.label}: mmkeras auto / mmkeras float32", paired_ratio(ours, rates[("mmkeras", "float32")]), None)]
    if ("pytorch", "float32") in rates:
        target = TORCH_GOALS["auto"] if case.image_shape[0] >= GOAL_SIZE else None
        notes.append((f"{case.label}: mmkeras auto / PyTorch float32", paired_ratio(ours, rates[("pytorch", "float32")]),
                      target))
    return [
        {"ratio": name, "value": round(value, 3), "goal": target, "goal_met": None if target is None else value >= target}
        for name, value, target in notes
    ]


def run_case(case, args, torch, peaks):
    """Build every variant of `case`, count its FLOPs, time it; return its rows and notes."""
    import keras

    data, label = synthetic_data(case)
    variants = [v for precision in ("float32", "auto") for v in keras_variants(case, (data, label), precision)]
    flops = training_flops(variants[0].model, case)
    if torch is not None:
        variants += torch_variants(torch, case, data, label, variants[0].parameters)
    print(f"{case.label}: {variants[0].parameters:,} parameters, {flops / 1e9:.3f} GFLOP per training sample; "
          f"timing {len(variants)} variants ...", flush=True)
    with tf_errors_only():  # TensorFlow counts every model's first trace as a "retracing" of Keras' step function
        measure(variants, args.steps, args.repeats, args.warmup, case.batch_size, args.min_round_seconds)
    rows = rows_of(case, variants, flops, peaks)
    del variants
    keras.backend.clear_session()
    return rows, notes_of(case, rows)


def precision_cell(row):
    if row["precision"] == "float32":
        return "float32"
    return f"auto: {row['policy']}" + (" autocast" if row["variant"] == "pytorch" else "")


def table(rows):
    lines = [
        "| model | image | variant | precision | parameters | samples/s, median [min, max] | mmkeras / this | GFLOP/s | share of peak |",
        "|---|---|---|---|---:|---|---|---:|---:|",
    ]
    for r in rows:
        ratio = f"{r['mmkeras_ratio']:.3f}"
        if r["goal"] is not None:
            ratio += f" (goal >= {r['goal']}: {'met' if r['goal_met'] else 'missed'})"
        h, w = r["image_shape"][:2]
        lines.append(
            f"| {r['model']} | {h}x{w} | {r['variant']} | {precision_cell(r)} | {r['parameters']:,} | "
            f"**{r['median']:.1f}** [{r['min']:.1f}, {r['max']:.1f}] | {ratio} | {r['gflops']:.1f} | "
            f"{100 * r['share_of_peak']:.0f}% |"
        )
    return "\n".join(lines)


def versions(torch):
    import keras
    import tensorflow as tf

    return {"tensorflow": tf.__version__, "keras": keras.__version__, "torch": None if torch is None else torch.__version__}


def write_json(path, result):
    from mmkeras.atomic import atomic_file

    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with atomic_file(path) as tmp:
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(result, f, indent=1)
            f.write("\n")


def main(argv=None):
    args = parse_args(argv)
    load_before = os.getloadavg()
    import tensorflow as tf

    import mmkeras

    torch = load_torch()
    found = versions(torch)
    auto = mmkeras.precision.resolve_precision("auto")
    print(f"{cpu_name()}, {os.cpu_count()} cores; TensorFlow {found['tensorflow']}, Keras {found['keras']}, "
          f"PyTorch {found['torch'] or 'not installed'}; precision auto = {auto}")
    print(f"load average before: {' '.join(f'{x:.2f}' for x in load_before)}")
    size, repeats = (1024, 3) if args.quick else (2048, 5)
    peaks = {name: round(matmul_peak(dtype, size, repeats), 1) for name, dtype in (("float32", tf.float32), ("bfloat16", tf.bfloat16))}
    print(f"measured matmul peak ({size}x{size}, median of {repeats}): float32 {peaks['float32']:.0f} GFLOP/s, "
          f"bfloat16 {peaks['bfloat16']:.0f} GFLOP/s")
    print(f"{args.repeats} interleaved rounds per variant of at least {args.steps} steps and {args.min_round_seconds:g} s, "
          f"{args.warmup} warm-up steps", flush=True)
    rows, notes = [], []
    for case in cases(args):
        case_rows, case_notes = run_case(case, args, torch, peaks)
        rows += case_rows
        notes += case_notes
    load_after = os.getloadavg()
    print()
    print(table(rows))
    print()
    for note in notes:
        goal_text = "" if note["goal"] is None else f" (goal >= {note['goal']}: {'met' if note['goal_met'] else 'missed'})"
        print(f"- {note['ratio']}: {note['value']:.2f}{goal_text}")
    print(f"load average after: {' '.join(f'{x:.2f}' for x in load_after)}")
    result = {
        "machine": cpu_name(), "cores": os.cpu_count(), "versions": found, "precision_auto": auto,
        "load_average": {"before": [round(x, 2) for x in load_before], "after": [round(x, 2) for x in load_after]},
        "settings": {k: getattr(args, k) for k in ("models", "repeats", "steps", "min_round_seconds", "warmup", "batch_size_s1", "batch_size_vqa", "quick")},
        "matmul_peak_gflops": peaks, "matmul_size": size, "rows": rows, "notes": notes,
        "pytorch": TORCH_MISSING if torch is None else "eager, float32 and bfloat16 autocast", "date": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    write_json(args.json, result)
    print(f"written: {args.json}")
    return result


if __name__ == "__main__":
    main()
