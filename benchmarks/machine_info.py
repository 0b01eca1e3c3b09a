"""What the benchmarks say about the machine they ran on (stdlib only: no TensorFlow import).

Run from this folder's scripts (`python benchmarks/NAME.py`), which import it as `machine_info`.
"""

import platform


def cpu_name():
    """The CPU's model name from /proc/cpuinfo, else what `platform` knows."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            return next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()
