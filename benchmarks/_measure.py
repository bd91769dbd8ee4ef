"""Measuring helpers shared by the benchmark scripts."""

from __future__ import annotations

import subprocess
import time

import psutil


def run_with_peak_rss(cmd: list[str]) -> tuple[float, float, str]:
    """Run ``cmd``; return (peak RSS in MB of it and its children, seconds, stdout).

    Memory is sampled every 50 ms and summed over the process tree (the
    embedding job's decoding workers included).
    """
    t = time.perf_counter()
    proc = psutil.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak = 0
    while proc.poll() is None:
        try:
            rss = proc.memory_info().rss
            rss += sum(c.memory_info().rss for c in proc.children(recursive=True))
            peak = max(peak, rss)
        except psutil.Error:
            pass
        time.sleep(0.05)
    seconds = time.perf_counter() - t
    out, err = proc.communicate()
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{err[-3000:]}")
    return peak / 2**20, seconds, out
