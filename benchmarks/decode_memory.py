"""Decoding speed and peak memory of `load_table` on 12,000 image files (issue 9, "your own data").

A script, not a test. It writes (once, then reuses them) `--images` PNG files of `--source-shape`
(default 12,000 files of 100x400x3, photo-like: smooth colour gradients, soft shapes, mild
noise) and a CSV table listing them with a text and a label, into `--workdir`. Then it measures,
each case in a FRESH Python process (so that the peak resident memory is that case's alone),
the cases interleaved A B C D A B C D ... for `--repeats` rounds:

- **baseline**: a process that imports TensorFlow and `mmkeras.data.load_table` and stops: the
  memory floor every other case starts from;
- **memory**: `load_table(table.csv, image_shape=--decode-shape, image_storage="memory")`: every
  image read and decoded once (parallel `tf.data`, `DECODE_CHUNK` at a time) straight to the
  model's shape into one uint8 table in memory (train, validation and test splits: all 12,000);
- **disk**: the same with `image_storage="disk"` (the table is a `np.memmap` on a deleted file);
- **pipeline**: the memory case, then the training input built as `mmkeras.train` builds it (a
  tiny `vqa` task with a preprocessor learned from the training texts,
  `splits.train.to_dataset(task=model, batch_size=64, shuffle=True)`) and iterated for one full
  epoch: does feeding training copy the table?

Per case it reports the median decoding wall time (the `load_table` call: reading the CSV,
checking the files, decoding), images per second, the peak resident set size
(`resource.getrusage(RUSAGE_SELF).ru_maxrss`, which counts the pages of a disk table that are
resident too) and, sampled every 20 ms from `/proc/self/status`, the peak anonymous memory
(`RssAnon`: memory only this process holds, as opposed to file pages the kernel can drop).

The goal (issue 9): peak RSS below 2 GB and at least 1,000 images/s on 2 cores. Results go to
`--results` (JSON) and, with `--write`, into `docs/benchmarks.md` between the markers
`<!-- decode-memory:start -->` and `<!-- decode-memory:end -->`.

Usage (from the repository root):

    python benchmarks/decode_memory.py --write                # 12,000 files, 3 rounds
    python benchmarks/decode_memory.py --repeats 3 --workdir /data/decode-cache
    python benchmarks/decode_memory.py --images 600 --repeats 1 --results /tmp/r.json   # a smoke run
    python benchmarks/decode_memory.py --render-only          # rewrite the table from the results
"""

import argparse
import csv
import json
import os
import platform
import resource
import shlex
import statistics
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np

from machine_info import cpu_name

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
START, END = "<!-- decode-memory:start -->", "<!-- decode-memory:end -->"
CASES = ("baseline", "memory", "disk", "pipeline")
GOAL_RSS_BYTES = 2 * 1024**3
GOAL_IMAGES_PER_S = 1000
WORDS = "a photo of the sky sea road house tree car dog cat in at with red blue green morning evening".split()


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", default=os.path.join(tempfile.gettempdir(), "mmkeras-decode-memory"),
                        help="folder of the generated images and table, reused when present "
                             "(default: mmkeras-decode-memory in the temporary folder)")
    parser.add_argument("--images", type=int, default=12000, help="image files (default 12000)")
    parser.add_argument("--source-shape", default="100,400,3", help="H,W,C of the files (default 100,400,3)")
    parser.add_argument("--decode-shape", default="50,200,3", help="H,W,C decoded to (default 50,200,3)")
    parser.add_argument("--repeats", type=int, default=3, help="rounds of the interleaved cases (default 3)")
    parser.add_argument("--cases", nargs="+", default=list(CASES), choices=CASES, help="cases to run (default all)")
    parser.add_argument("--timeout", type=int, default=900, help="seconds per case (default 900)")
    parser.add_argument("--results", default=os.path.join(ROOT, "benchmarks", "results", "decode_memory.json"),
                        help="the JSON file written (default benchmarks/results/decode_memory.json)")
    parser.add_argument("--write", action="store_true", help="replace the table in --doc")
    parser.add_argument("--doc", default=os.path.join(ROOT, "docs", "benchmarks.md"))
    parser.add_argument("--render-only", action="store_true", help="only rewrite --doc's table from --results")
    parser.add_argument("--child", default=None, choices=CASES, help=argparse.SUPPRESS)  # one case, in this process
    return parser.parse_args(argv)


def shape_arg(text):
    return tuple(int(x) for x in text.split(","))


# Data: photo-like PNG files and a table, written once.


def photo_like(rng, n, height, width):
    """`n` uint8 images: a two-colour gradient, a few soft ellipses and a shaded band, mild noise."""
    y = np.linspace(0.0, 1.0, height, dtype="float32")[:, None]
    x = np.linspace(0.0, 1.0, width, dtype="float32")[None, :]
    images = np.empty((n, height, width, 3), "uint8")
    for i in range(n):
        angle = rng.uniform(0, 2 * np.pi)
        t = (np.cos(angle) * x * (width / height) + np.sin(angle) * y)
        t = (t - t.min()) / (t.max() - t.min() + 1e-6)
        low, high = rng.uniform(20, 235, (2, 3)).astype("float32")
        image = low * (1 - t[..., None]) + high * t[..., None]
        for _ in range(rng.integers(2, 5)):  # soft-edged ellipses
            cy, cx = rng.uniform(0, 1), rng.uniform(0, 1)
            ry, rx = rng.uniform(0.1, 0.5), rng.uniform(0.03, 0.2)
            inside = ((y - cy) / ry) ** 2 + ((x - cx) / rx) ** 2
            alpha = np.clip(1.5 - inside, 0, 1)[..., None]
            image = image * (1 - alpha) + rng.uniform(0, 255, 3).astype("float32") * alpha
        image *= 0.85 + 0.15 * np.sin(2 * np.pi * (rng.uniform(0.5, 2) * x + rng.uniform(0, 1)))[..., None]  # shading
        image += rng.normal(0, 3, image.shape).astype("float32")  # sensor noise
        images[i] = np.clip(image, 0, 255).astype("uint8")
    return images


def prepare(workdir, n, shape, seed=0):
    """Write `n` PNG files of `shape` and `table.csv` into `workdir` (kept and reused if complete)."""
    import tensorflow as tf

    marker = os.path.join(workdir, "complete.json")
    settings = {"images": n, "source_shape": list(shape), "seed": seed, "version": 1}
    table = os.path.join(workdir, "table.csv")
    if os.path.isfile(marker):
        with open(marker, encoding="utf-8") as f:
            if json.load(f).get("settings") == settings:
                print(f"Reusing the {n:,} images in {workdir}", flush=True)
                return table, _folder_bytes(workdir)
    os.makedirs(os.path.join(workdir, "images"), exist_ok=True)
    rng = np.random.default_rng(seed)
    started, rows = time.perf_counter(), []
    print(f"Writing {n:,} PNG files of {'x'.join(map(str, shape))} into {workdir} ...", flush=True)
    for first in range(0, n, 100):
        batch = photo_like(rng, min(100, n - first), shape[0], shape[1])
        for j, image in enumerate(batch):
            name = f"images/{first + j:05d}.png"
            with open(os.path.join(workdir, name), "wb") as f:
                f.write(tf.io.encode_png(image).numpy())
            words = rng.choice(WORDS, rng.integers(3, 9))
            rows.append({"image": name, "text": " ".join(words), "label": "yes" if image.mean() > 128 else "no"})
        if (first // 100) % 20 == 0:
            print(f"  {first + len(batch):,} files, {time.perf_counter() - started:.0f} s", flush=True)
    with open(table, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, ["image", "text", "label"])
        writer.writeheader()
        writer.writerows(rows)
    with open(marker, "w", encoding="utf-8") as f:
        json.dump({"settings": settings, "seconds": round(time.perf_counter() - started, 1)}, f)
    return table, _folder_bytes(workdir)


def _folder_bytes(workdir):
    folder = os.path.join(workdir, "images")
    return sum(entry.stat().st_size for entry in os.scandir(folder))


# One case, in a fresh process.


class MemorySampler(threading.Thread):
    """Peaks of RssAnon and RssFile (+ RssShmem) from /proc/self/status, every 20 ms."""

    def __init__(self):
        super().__init__(daemon=True)
        self.peak = {"RssAnon": 0, "RssFile": 0}
        self.running = True

    def sample(self):
        try:
            with open("/proc/self/status", encoding="ascii") as f:
                values = {k: int(v.split()[0]) * 1024 for k, v in (line.split(":", 1) for line in f) if k.startswith("Rss")}
        except (OSError, ValueError):
            return
        self.peak["RssAnon"] = max(self.peak["RssAnon"], values.get("RssAnon", 0))
        self.peak["RssFile"] = max(self.peak["RssFile"], values.get("RssFile", 0) + values.get("RssShmem", 0))

    def run(self):
        while self.running:
            self.sample()
            time.sleep(0.02)

    def stop(self):
        self.running = False
        self.join()
        self.sample()
        return self.peak


def max_rss_bytes():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


def cpu_seconds():
    """User + system CPU time of this process, all its threads."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def child(case, table, decode_shape):
    """Run one case and print its measurements as one JSON line."""
    sampler = MemorySampler()
    sampler.start()
    import tensorflow as tf  # noqa: F401

    from mmkeras.data import load_table

    record = {"case": case, "rss_after_imports": max_rss_bytes()}
    if case != "baseline":
        storage = "disk" if case == "disk" else "memory"
        started, cpu_started = time.perf_counter(), cpu_seconds()
        splits = load_table(table, image_shape=decode_shape, image_storage=storage, verbose=False)
        seconds, cpu = time.perf_counter() - started, cpu_seconds() - cpu_started
        parts = [e for e in (splits.train, splits.validation, splits.test) if e is not None]
        images = sum(len(e.images) for e in parts)
        record.update(
            decode_s=seconds, images=images, images_per_s=images / seconds, decode_cpu_s=cpu,
            images_per_cpu_s=images / cpu,
            table_bytes=sum(e.images.nbytes for e in parts), table_type=type(splits.train.images).__name__,
            rss_after_decode=max_rss_bytes(),
        )
        if case == "pipeline":
            record.update(iterate_one_epoch(splits))
    peak = sampler.stop()
    record.update(peak_rss=max_rss_bytes(), peak_rss_anon=peak["RssAnon"], peak_rss_file=peak["RssFile"])
    print("RESULT " + json.dumps(record), flush=True)


def iterate_one_epoch(splits):
    """Build the training input as `mmkeras.train` does (a tiny `vqa` task) and read one epoch."""
    import mmkeras
    from mmkeras.preprocessing import Preprocessor, text_vectorizer

    shape = tuple(splits.image_shape)
    vectorizer = text_vectorizer(splits.train.texts, vocab_size=10000, sequence_length=splits.sequence_length)
    pre = Preprocessor.from_vectorizer(vectorizer, image_shape=shape, class_names=splits.class_names)
    overrides = {**mmkeras.get_entry("vqa").tiny, "image_shape": shape, "sequence_length": pre.sequence_length,
                 "vocab_size": pre.vocab_size, "head": splits.head_spec(), "preprocessor": pre, "compile": False}
    model = mmkeras.get_model("vqa", **overrides)
    started = time.perf_counter()
    dataset = splits.train.to_dataset(task=model, batch_size=64, shuffle=True, seed=0)
    batches = examples = 0
    checksum = 0.0
    for inputs, labels in dataset:
        batches += 1
        examples += int(labels.shape[0])
        checksum += float(inputs["image"][0, 0, 0, 0])  # touch the images
    seconds = time.perf_counter() - started
    return {"epoch_s": seconds, "epoch_examples": examples, "epoch_batches": batches,
            "epoch_examples_per_s": examples / seconds, "rss_after_epoch": max_rss_bytes()}


# The parent: interleaved fresh processes, medians, results, the doc table.


def run_case(case, args, table):
    command = [sys.executable, os.path.abspath(__file__), "--child", case, "--workdir", args.workdir,
               "--images", str(args.images), "--source-shape", args.source_shape, "--decode-shape", args.decode_shape]
    env = {**os.environ, "PYTHONPATH": ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""), "TF_CPP_MIN_LOG_LEVEL": "3"}
    load_before = os.getloadavg()[0]
    started = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=args.timeout, cwd=ROOT)
    if done.returncode != 0:
        raise SystemExit(f"case {case!r} failed (exit {done.returncode}):\n{done.stderr[-4000:]}")
    line = next(line for line in done.stdout.splitlines() if line.startswith("RESULT "))
    record = json.loads(line[len("RESULT "):])
    record.update(process_s=time.perf_counter() - started, load_average=[round(load_before, 2), round(os.getloadavg()[0], 2)])
    return record


def machine():
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    try:
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError):
        memory = None
    return {"cpu": cpu_name(), "cpu_count": os.cpu_count(), "usable_cores": usable, "memory_bytes": memory,
            "platform": platform.platform(), "python": platform.python_version()}


def summarize(runs):
    """Per case: medians (and ranges) over its runs."""
    summary = {}
    for case in CASES:
        mine = [r for r in runs if r["case"] == case]
        if not mine:
            continue
        row = {"runs": len(mine)}
        for key in ("decode_s", "images_per_s", "images_per_cpu_s", "peak_rss", "peak_rss_anon", "peak_rss_file",
                    "rss_after_imports", "epoch_s", "epoch_examples_per_s"):
            values = [r[key] for r in mine if r.get(key) is not None]
            if values:
                row[key] = {"median": statistics.median(values), "min": min(values), "max": max(values)}
        for key in ("images", "table_bytes", "table_type", "epoch_examples"):
            if key in mine[0]:
                row[key] = mine[0][key]
        row["load_average"] = [min(r["load_average"][0] for r in mine), max(r["load_average"][1] for r in mine)]
        summary[case] = row
    return summary


def goal(summary):
    """Did each decoding case stay under 2 GB peak RSS and decode at least 1,000 images/s?"""
    verdict = {}
    for case in ("memory", "disk", "pipeline"):
        if case in summary:
            row = summary[case]
            rss_ok = row["peak_rss"]["max"] < GOAL_RSS_BYTES
            speed_ok = row["images_per_s"]["median"] >= GOAL_IMAGES_PER_S
            verdict[case] = {"peak_rss_below_2GB": rss_ok, "at_least_1000_images_per_s": speed_ok}
    verdict["met"] = bool(verdict) and all(v["peak_rss_below_2GB"] and v["at_least_1000_images_per_s"]
                                           for k, v in verdict.items() if k != "met")
    return verdict


def mb(value):
    return f"{value / 1024**2:,.0f} MB"


def render(result):
    """The markdown block between the markers of docs/benchmarks.md."""
    s, m = result["summary"], result["machine"]
    names = {
        "baseline": "baseline: imports only",
        "memory": '`image_storage="memory"`',
        "disk": '`image_storage="disk"`',
        "pipeline": "memory + one epoch of the training `tf.data` input",
    }

    def spread(row, key, fmt):
        if key not in row:
            return "-"
        v = row[key]
        return f"{fmt(v['median'])} [{fmt(v['min'])}, {fmt(v['max'])}]"

    lines = [
        START,
        f"_Written by `{result['command']}` on {result['date']}; machine: {m['cpu']}, {m['usable_cores']} usable "
        f"cores ({m['cpu_count']} logical), {m['memory_bytes'] / 1024**3:.0f} GB memory, {m['platform']}, Python "
        f"{m['python']}, TensorFlow {result['versions']['tensorflow']}. Load average (1 min) from "
        f"{result['load_average'][0]:.2f} before to {result['load_average'][1]:.2f} after; each case's range is in "
        "the last column. Medians of the runs, [min, max] beside them; MB are 2^20 bytes._",
        "",
        f"{result['settings']['images']:,} PNG files of {'x'.join(map(str, result['settings']['source_shape']))} "
        f"({result['settings']['files_bytes'] / 1024**2:,.0f} MB on disk, in the page cache), decoded to "
        f"{'x'.join(map(str, result['settings']['decode_shape']))} (uint8 table: "
        f"{mb(s.get('memory', {}).get('table_bytes', 0))}).",
        "",
        "| case | runs | decoding wall time | images/s | images per CPU-second | peak RSS (ru_maxrss) "
        "| peak anonymous RSS | load average |",
        "|---|---:|---|---|---|---|---|---|",
    ]
    for case, row in s.items():
        lines.append(
            f"| {names[case]} | {row['runs']} | {spread(row, 'decode_s', lambda v: f'{v:.1f} s')} | "
            f"{spread(row, 'images_per_s', lambda v: f'{v:,.0f}')} | "
            f"{spread(row, 'images_per_cpu_s', lambda v: f'{v:,.0f}')} | "
            f"{spread(row, 'peak_rss', mb)} | "
            f"{spread(row, 'peak_rss_anon', mb)} | {row['load_average'][0]:.2f} to {row['load_average'][1]:.2f} |"
        )
    if "pipeline" in s and "epoch_s" in s["pipeline"]:
        p = s["pipeline"]
        lines += ["", f"One epoch of the training input ({p['epoch_examples']:,} examples, batches of 64, shuffled): "
                  f"{spread(p, 'epoch_s', lambda v: f'{v:.1f} s')}, "
                  f"{spread(p, 'epoch_examples_per_s', lambda v: f'{v:,.0f}')} examples/s."]
    g = result["goal"]
    lines += ["", "Goal (peak RSS below 2 GB, at least 1,000 images/s): " + "; ".join(
        f"{names[k]}: RSS {'yes' if v['peak_rss_below_2GB'] else '**no**'}, speed "
        f"{'yes' if v['at_least_1000_images_per_s'] else '**no**'}" for k, v in g.items() if k != "met"
    ) + f". **{'Met' if g['met'] else 'Not met'}.**", END]
    return "\n".join(lines)


def write_doc(path, block):
    with open(path, encoding="utf-8") as f:
        text = f.read()
    if START in text and END in text:
        text = text[: text.index(START)] + block + text[text.index(END) + len(END):]
    else:
        text = text.rstrip() + "\n\n## Decoding your own images: speed and memory\n\n" + block + "\n"
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


def main(argv=None):
    args = parse_args(argv)
    source_shape, decode_shape = shape_arg(args.source_shape), shape_arg(args.decode_shape)
    table = os.path.join(args.workdir, "table.csv")
    if args.child:
        child(args.child, table, decode_shape)
        return
    if args.render_only:
        with open(args.results, encoding="utf-8") as f:
            write_doc(args.doc, render(json.load(f)))
        print(f"Wrote {args.doc}")
        return
    table, files_bytes = prepare(args.workdir, args.images, source_shape)
    import tensorflow as tf  # for its version only (prepare imported it already)

    loads = [os.getloadavg()[0]]
    runs = []
    for repeat in range(args.repeats):
        for case in args.cases:
            record = run_case(case, args, table)
            record["round"] = repeat + 1
            runs.append(record)
            speed = (f", {record['decode_s']:.1f} s, {record['images_per_s']:,.0f} images/s "
                     f"({record['images_per_cpu_s']:,.0f} per CPU-second)") if "decode_s" in record else ""
            epoch = f", epoch {record['epoch_s']:.1f} s" if "epoch_s" in record else ""
            print(f"[{repeat + 1}/{args.repeats}] {case:<9}{speed}{epoch}, peak RSS {mb(record['peak_rss'])} "
                  f"(anonymous {mb(record['peak_rss_anon'])}), load {record['load_average']}", flush=True)
    loads.append(os.getloadavg()[0])
    argv = sys.argv[1:] if argv is None else argv
    summary = summarize(runs)
    result = {
        "command": " ".join(["python benchmarks/decode_memory.py", *map(shlex.quote, argv)]),
        "date": time.strftime("%Y-%m-%d"),
        "machine": machine(),
        "versions": {"tensorflow": tf.__version__, "numpy": np.__version__},
        "settings": {"images": args.images, "source_shape": list(source_shape), "decode_shape": list(decode_shape),
                     "files_bytes": files_bytes, "repeats": args.repeats, "cases": args.cases,
                     "goal": {"peak_rss_bytes_below": GOAL_RSS_BYTES, "images_per_s_at_least": GOAL_IMAGES_PER_S}},
        "load_average": [round(x, 2) for x in loads],
        "summary": summary,
        "goal": goal(summary),
        "runs": runs,
    }
    os.makedirs(os.path.dirname(os.path.abspath(args.results)), exist_ok=True)
    with open(args.results, "w", encoding="utf-8") as f:
        json.dump(result, f, indent=1)
        f.write("\n")
    block = render(result)
    print("\n" + block)
    print(f"\nWrote {args.results}")
    if args.write:
        write_doc(args.doc, block)
        print(f"Wrote {args.doc}")


if __name__ == "__main__":
    main()
