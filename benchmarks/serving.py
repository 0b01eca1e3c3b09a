"""Serving benchmark: the exported SavedModel's signatures vs `model.predict` vs calling the model.

A script, not a test. For each model it builds the registered recipe at its full size (float32,
random weights: serving cost does not depend on the weights), exports it with
`mmkeras.export_model`, loads the SavedModel with `tf.saved_model.load` and measures, side by side
in one process and interleaved run by run:

- batch-1 latency (p50, p99 over `--latency-calls` calls), and
- batch-64 throughput (examples per second over `--throughput-calls` calls)

of five ways to get an answer:

1. SavedModel `serving_default`: PNG bytes + raw strings in (decoding and tokenization in the graph),
2. SavedModel `serve_tensors`: float images + token ids in,
3. `model.predict(x)` on the same tensors,
4. `model(x, training=False)`, the model called directly (eager) on the same tensors,
5. raw bytes + strings through the `Preprocessor` in Python (eager), then `model(x)`: what a
   service without the SavedModel would run for the same request as 1.

Each of `--runs` runs measures every way once; the table gives the medians over runs. Below it,
the serving overhead: `serving_default`'s time over `serve_tensors`' (batch 1 p50, and the median
batch-64 call), the median of the runs' ratios, against the goal of at most 1.25x. The table
is printed and, with `--write`, replaced in `docs/serving.md` between the markers
`<!-- serving-benchmark:start -->` and `<!-- serving-benchmark:end -->`, with the machine, the
command and the load average before and after (other processes on the machine slow every row).

Usage (from the repository root):

    python benchmarks/serving.py                          # vqa and s0, 5 runs, print the table
    python benchmarks/serving.py --models vqa --runs 3    # quicker
    python benchmarks/serving.py --write                  # also update docs/serving.md
    python benchmarks/serving.py --models vqa --ways savedmodel   # only the serving overhead
"""

import argparse
import os
import platform
import shlex
import statistics
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

START, END = "<!-- serving-benchmark:start -->", "<!-- serving-benchmark:end -->"
WORDS = (
    "what is the color of shape in image does contain a circle square triangle rectangle red blue "
    "green yellow gray teal brown black white there no yes left right top bottom"
).split()


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=["vqa", "s0"], help="registered model names (default: vqa s0)")
    parser.add_argument("--runs", type=int, default=5, help="runs per model; the table gives medians (default: 5)")
    parser.add_argument("--batch-size", type=int, default=64, help="batch size of the throughput test (default: 64)")
    parser.add_argument("--latency-calls", type=int, default=200, help="batch-1 calls per run and way (default: 200)")
    parser.add_argument("--throughput-calls", type=int, default=10, help="large-batch calls per run and way (default: 10)")
    parser.add_argument("--ways", choices=["all", "savedmodel"], default="all",
                        help="every way (default), or only the two SavedModel signatures (the serving overhead)")
    parser.add_argument("--write", action="store_true", help="replace the table in docs/serving.md")
    parser.add_argument("--doc", default=os.path.join(ROOT, "docs", "serving.md"), help="the markdown file --write updates")
    return parser.parse_args(argv)


def machine():
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{cpu}, {os.cpu_count()} logical cores, {platform.system()} {platform.release()}"


def make_case(name, batch_size):
    """The model at full size, its preprocessor, and requests of 1 and `batch_size` examples."""
    import numpy as np
    import tensorflow as tf

    import mmkeras
    from mmkeras.preprocessing import Preprocessor, text_vectorizer

    model = mmkeras.get_model(name)
    rng = np.random.default_rng(0)
    image_shape = tuple(model.input["image"].shape[1:]) if "image" in model.input else None
    texts = [" ".join(rng.choice(WORDS, size=int(rng.integers(3, 9)))) + "?" for _ in range(max(batch_size, 256))]
    if "text" in model.input:
        length = model.input["text"].shape[1]
        vectorizer = text_vectorizer(texts, vocab_size=min(64, len(WORDS) + 2), sequence_length=length)
        preprocessor = Preprocessor.from_vectorizer(vectorizer, image_shape=image_shape)
    else:
        preprocessor = Preprocessor(image_shape=image_shape)
    requests, tensors = {}, {}
    for n in (1, batch_size):
        request = {}
        if image_shape:
            pixels = rng.integers(0, 256, size=(n, *image_shape), dtype=np.uint8)
            request["image"] = tf.constant([tf.io.encode_png(p).numpy() for p in pixels])
        if "text" in model.input:
            request["text"] = tf.constant(texts[:n])
        requests[n] = request
        tensors[n] = {}
        if "image" in request:
            tensors[n]["image"] = preprocessor.decode_images(request["image"])
        if "text" in request:
            tensors[n]["text"] = preprocessor.texts_to_ids(request["text"])
    return model, preprocessor, requests, tensors


def ways(model, preprocessor, served, requests, tensors):
    """{label: {batch size: zero-argument function}} for every way of answering."""
    serving = served.signatures["serving_default"]
    serve_tensors = served.signatures["serve_tensors"]

    def eager_raw(request):
        features = {}
        if "image" in request:
            features["image"] = preprocessor.decode_images(request["image"])
        if "text" in request:
            features["text"] = preprocessor.texts_to_ids(request["text"])
        return model(features, training=False)

    def batch(n, fn):
        return lambda: fn(n)

    return {
        "SavedModel `serving_default` (PNG bytes + strings)": {
            n: batch(n, lambda n: serving(**requests[n])) for n in requests
        },
        "SavedModel `serve_tensors` (tensors)": {n: batch(n, lambda n: serve_tensors(**tensors[n])) for n in tensors},
        "`model.predict` (tensors)": {
            n: batch(n, lambda n: model.predict(tensors[n], batch_size=n, verbose=0)) for n in tensors
        },
        "`model(x)` direct, eager (tensors)": {n: batch(n, lambda n: model(tensors[n], training=False)) for n in tensors},
        "Python `Preprocessor` + `model(x)`, eager (PNG bytes + strings)": {
            n: batch(n, lambda n: eager_raw(requests[n])) for n in requests
        },
    }


def _finish(result):
    """Wait for the answer (values, not just a handle)."""
    import numpy as np

    values = result.values() if isinstance(result, dict) else [result]
    for value in values:
        np.asarray(value)


def measure(fn_1, fn_batch, batch_size, latency_calls, throughput_calls):
    for _ in range(5):  # warm-up: tracing, caches, thread pools
        _finish(fn_1())
    _finish(fn_batch())
    times = []
    for _ in range(latency_calls):
        start = time.perf_counter()
        _finish(fn_1())
        times.append(time.perf_counter() - start)
    times.sort()
    p50 = times[len(times) // 2]
    p99 = times[min(len(times) - 1, int(round(0.99 * (len(times) - 1))))]
    batch_times = []
    for _ in range(throughput_calls):
        start = time.perf_counter()
        _finish(fn_batch())
        batch_times.append(time.perf_counter() - start)
    throughput = batch_size * throughput_calls / sum(batch_times)
    return p50 * 1000, p99 * 1000, throughput, statistics.median(batch_times) * 1000


def benchmark(args):
    import keras
    import tensorflow as tf

    import mmkeras

    rows, overheads = [], []
    for name in args.models:
        model, preprocessor, requests, tensors = make_case(name, args.batch_size)
        with tempfile.TemporaryDirectory() as tmp:
            path = mmkeras.export_model(model, os.path.join(tmp, name), preprocessor=preprocessor)
            served = tf.saved_model.load(path)
            table = ways(model, preprocessor, served, requests, tensors)
            if args.ways == "savedmodel":
                table = {label: fns for label, fns in table.items() if label.startswith("SavedModel")}
            results = {label: [] for label in table}
            for run in range(args.runs):
                for label, fns in table.items():
                    results[label].append(
                        measure(fns[1], fns[args.batch_size], args.batch_size, args.latency_calls, args.throughput_calls)
                    )
                print(f"{name}: run {run + 1}/{args.runs} done", file=sys.stderr, flush=True)
        params = model.count_params()
        for label, values in results.items():
            p50, p99, throughput = (statistics.median(v[i] for v in values) for i in range(3))
            spread = (min(v[2] for v in values), max(v[2] for v in values))
            rows.append((name, params, label, p50, p99, throughput, spread))
        overheads.append((name, *serving_overhead(results)))
        keras.backend.clear_session()
    return rows, overheads


SERVING_GOAL = 1.25  # issue 15: serving_default at most 1.25x the tensor signature, at batch 1 and at batch 64


def serving_overhead(results):
    """Medians over runs of `serving_default` time / `serve_tensors` time: (batch 1 p50, large-batch call)."""
    raw = next(v for label, v in results.items() if "serving_default" in label)
    tensors = next(v for label, v in results.items() if "serve_tensors" in label)
    one = statistics.median(r[0] / t[0] for r, t in zip(raw, tensors))
    many = statistics.median(r[3] / t[3] for r, t in zip(raw, tensors))
    return one, many


def render(rows, overheads, args, load_before, load_after, seconds):
    import keras
    import tensorflow as tf

    command = "python benchmarks/serving.py " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    lines = [
        f"Machine: {machine()}; TensorFlow {tf.__version__}, Keras {keras.__version__}, float32, CPU.  ",
        f"Command: `{command.strip()}` ({args.runs} runs, medians; {args.latency_calls} batch-1 calls "
        f"and {args.throughput_calls} batch-{args.batch_size} calls per run and row; {seconds / 60:.1f} min).  ",
        "Load average (1/5/15 min) before: {:.2f} / {:.2f} / {:.2f}; after: {:.2f} / {:.2f} / {:.2f} "
        "(other processes shared the cores: compare rows, not machines).".format(*load_before, *load_after),
        "",
        f"| model (parameters) | way | batch-1 p50 (ms) | batch-1 p99 (ms) | batch-{args.batch_size} examples/s (range over runs) |",
        "|---|---|---:|---:|---:|",
    ]
    for name, params, label, p50, p99, throughput, (low, high) in rows:
        lines.append(
            f"| {name} ({params:,}) | {label} | {p50:.2f} | {p99:.2f} | {throughput:,.0f} ({low:,.0f} to {high:,.0f}) |"
        )
    lines += [
        "",
        f"Serving overhead, `serving_default` (PNG bytes + strings) / `serve_tensors` (tensors), the median of the "
        f"runs' ratios; goal at most {SERVING_GOAL}x:",
        "",
        f"| model | batch 1 (p50) | batch {args.batch_size} (median call) | goal met |",
        "|---|---:|---:|---|",
    ]
    for name, one, many in overheads:
        met = "yes" if max(one, many) <= SERVING_GOAL else "no"
        lines.append(f"| {name} | {one:.2f}x | {many:.2f}x | {met} |")
    return "\n".join(lines)


def write_doc(path, table):
    with open(path, encoding="utf-8") as f:
        text = f.read()
    if START not in text or END not in text:
        raise SystemExit(f"{path} has no {START} ... {END} markers to replace")
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    with open(path, "w", encoding="utf-8") as f:
        f.write(f"{head}{START}\n{table}\n{END}{tail}")


def main(argv=None):
    args = parse_args(argv)
    load_before = os.getloadavg()
    start = time.perf_counter()
    rows, overheads = benchmark(args)
    table = render(rows, overheads, args, load_before, os.getloadavg(), time.perf_counter() - start)
    print(table)
    if args.write:
        write_doc(args.doc, table)
        print(f"\nwritten to {args.doc}", file=sys.stderr)


if __name__ == "__main__":
    main()
