"""Measurement plumbing shared by the benchmarks: one case per process, peak memory, timing, reports.

* Each case runs in its own process (:func:`spawn` → the script's ``--worker`` mode), so that its CPU peak
  memory is its own. CPU extra peak memory = peak resident set at the end minus the resident set once the
  case's inputs and model are built (:func:`reset_peak`, :func:`peak_bytes`); CUDA: ``max_memory_allocated``
  minus the memory allocated after building (:class:`Meter`).
* Time: the median of ``repeats`` runs after one warm-up, as wall-clock time (CUDA events on a GPU) and, on a
  CPU, as the process's CPU time. On a CPU shared with other jobs the wall-clock time of a case depends on how
  much of a core the other jobs leave it (a factor of 2 here), while its CPU time at one thread does not, so the
  CPU benchmarks' ratios use CPU time (:func:`clock`; run them with ``--threads 1``: with more threads the CPU
  time also counts threads spinning at synchronization points). ``--rounds`` runs every case that many times,
  interleaved (case A, B, C, A, B, C, ...), and pools the times, so that a change of the machine's load hits
  every case alike; memory is the largest of the rounds.
* Each result records the 1-minute load average when its process started (shared machines are noisy).
"""

import csv
import importlib.util
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import fields
from pathlib import Path
from typing import Any

import torch

import rmreg


def _status_bytes(field: str) -> int | None:
    """A memory field of /proc/self/status (VmRSS, VmHWM) in bytes; None off Linux."""
    try:
        text = Path("/proc/self/status").read_text()
    except OSError:
        return None
    return next(int(line.split()[1]) * 1024 for line in text.splitlines() if line.startswith(field + ":"))


def peak_bytes() -> int:
    """Peak resident set of this process (VmHWM on Linux, ``ru_maxrss`` elsewhere)."""
    hwm = _status_bytes("VmHWM")
    if hwm is not None:
        return hwm
    scale = 1 if platform.system() == "Darwin" else 1024  # ru_maxrss is KiB on Linux, bytes on macOS
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale


def reset_peak() -> int:
    """Reset the peak resident set (Linux ``clear_refs`` 5) and return the current one, the baseline.

    Without the reset, ``ru_maxrss`` keeps the peak of the imports and of building the inputs, whose pages the
    kernel may evict later under memory pressure; the case's own allocations could then hide below that peak.
    """
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return _status_bytes("VmRSS")
    except OSError:  # not Linux: fall back to ru_maxrss
        return peak_bytes()


class Meter:
    """Extra peak memory and per-run times of one case, on CPU or CUDA (see the module docstring)."""

    def __init__(self, device: str) -> None:
        self.cuda = device == "cuda"
        if self.cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self.baseline = torch.cuda.memory_allocated()
        else:
            self.baseline = reset_peak()

    def times(self, run: Callable[[], Any], repeats: int, budget_s: float | None = None) -> dict[str, list[float]]:
        """Wall-clock and CPU seconds per call of ``run`` for ``repeats`` calls after one warm-up call.

        With ``budget_s``, a case whose warm-up shows that ``repeats`` calls would take longer runs only as many as
        fit (at least one), and one whose warm-up alone took more than half of it keeps the warm-up as its only
        sample, so that a slow provider keeps its process to a few minutes; the caller reports how many.
        """
        times: dict[str, list[float]] = {"times": [], "cpu_times": []}
        i = 0
        while i <= repeats:
            cpu = time.process_time()
            if self.cuda:
                start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                start.record()
                run()
                stop.record()
                torch.cuda.synchronize()
                elapsed = start.elapsed_time(stop) / 1e3
            else:
                tic = time.perf_counter()
                run()
                elapsed = time.perf_counter() - tic
            if i:  # the first call is the warm-up
                times["times"].append(elapsed)
                times["cpu_times"].append(time.process_time() - cpu)
            elif budget_s is not None and elapsed > budget_s / 2:  # too slow to repeat: the warm-up is the sample
                times["times"].append(elapsed)
                times["cpu_times"].append(time.process_time() - cpu)
                break
            elif budget_s is not None:
                repeats = max(1, min(repeats, int(budget_s / elapsed) - 1))
            i += 1
        return times

    def extra_bytes(self) -> int:
        """Peak memory since construction minus the baseline."""
        if self.cuda:
            return torch.cuda.max_memory_allocated() - self.baseline
        return peak_bytes() - self.baseline


def spawn(script: str, job: dict) -> dict:
    """Run ``script --worker JOB`` in a fresh interpreter; return the JSON its last output line holds."""
    load = os.getloadavg()[0]
    out = subprocess.run(
        [sys.executable, script, "--worker", json.dumps(job)], capture_output=True, text=True, check=False
    )
    if out.returncode:
        raise RuntimeError(f"case {job} failed:\n{out.stderr[-3000:]}")
    result = json.loads(out.stdout.strip().splitlines()[-1])
    result["load"] = load
    return result


def run_rounds(cases: list, rounds: int, measure: Callable[[Any], dict], report: Callable[[Any, dict], None]) -> dict:
    """``measure`` every case ``rounds`` times, interleaved; pool times, keep the largest memory and load."""
    pooled: dict = {}
    for _ in range(rounds):
        for case in cases:
            result = measure(case)
            report(case, result)
            if case in pooled:
                pooled[case]["times"] += result["times"]
                pooled[case]["cpu_times"] += result["cpu_times"]
                pooled[case]["extra_bytes"] = max(pooled[case]["extra_bytes"], result["extra_bytes"])
                pooled[case]["load"] = max(pooled[case]["load"], result["load"])
            else:
                pooled[case] = result
    return pooled


def clock(device: str) -> str:
    """The result key whose times the ratios use: CPU time on a CPU, wall-clock (CUDA events) on a GPU."""
    return "cpu_times" if device == "cpu" else "times"


def median(times: list[float]) -> float:
    return statistics.median(times)


def iqr(times: list[float]) -> float:
    if len(times) < 2:
        return 0.0
    quartiles = statistics.quantiles(times, n=4)
    return quartiles[2] - quartiles[0]


def header(device: str, threads: int, details: str, repeats: int, rounds: int) -> str:
    """Versions, device, threads and the exact command, for the top of a Markdown report."""
    name = torch.cuda.get_device_name() if device == "cuda" else platform.processor() or platform.machine()
    return (
        f"rmreg {rmreg.__version__}, torch {torch.__version__}, device {device} ({name}, {os.cpu_count()} CPUs), "
        f"{threads} threads, {details}; time: median of {repeats} × {rounds} round(s) after 1 warm-up each; "
        f"load average at start {os.getloadavg()[0]:.1f}\n\ncommand: `{' '.join(['python', *sys.argv])}`"
    )


def write_reports(rows: list, out: Path, stem: str, head: str, columns: dict[str, str]) -> None:
    """``stem``.csv with every field of the row dataclass, ``stem``.md with ``columns`` (field → title)."""
    names = [f.name for f in fields(rows[0])]
    with open(out / f"{stem}.csv", "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(names)
        writer.writerows([[getattr(r, n) for n in names] for r in rows])
    lines = [head, "", "| " + " | ".join(columns.values()) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_cell(getattr(r, n)) for n in columns) + " |" for r in rows]
    (out / f"{stem}.md").write_text("\n".join(lines) + "\n")


def _cell(value: object) -> str:
    if not isinstance(value, float):
        return str(value)
    if value != value:  # NaN: not applicable
        return "–"
    return f"{value:.1e}" if 0 < abs(value) < 1e-3 else f"{value:.3g}" if abs(value) < 100 else f"{value:.0f}"


def have_matplotlib() -> bool:
    return importlib.util.find_spec("matplotlib") is not None


def bar_plot(path: Path, groups: list[str], panels: list[tuple[str, dict[str, list[float]]]]) -> None:
    """One panel per (y label, {series: value per group}); grouped bars on linear axes from zero, NaN bars left out."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(panels), figsize=(6 * len(panels), 4.5), squeeze=False)
    for ax, (ylabel, series) in zip(axes[0], panels, strict=True):
        width = 0.8 / len(series)
        for i, (name, values) in enumerate(series.items()):
            ax.bar([x + i * width for x in range(len(groups))], values, width, label=name)
        ax.set_xticks([x + 0.4 - width / 2 for x in range(len(groups))], groups, rotation=30, ha="right", fontsize=7)
        ax.set_ylabel(ylabel)
        ax.set_ylim(bottom=0)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
