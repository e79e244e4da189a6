"""The process's CPU threads and its peak resident memory, shared by training, evaluation and edge checks."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import psutil


def set_threads(threads: int) -> None:
    """One process on all cores by default; more threads than cores makes OpenMP spin and slows all down."""
    import torch

    torch.set_num_threads(threads or os.cpu_count() or 1)


@contextmanager
def peak_rss(interval_s: float = 0.02) -> Iterator[dict[str, int]]:
    """Sample this process's resident memory in a thread; `peak` holds the largest value seen."""
    process, seen, done = psutil.Process(), {"peak": 0}, threading.Event()

    def sample():
        while True:
            seen["peak"] = max(seen["peak"], process.memory_info().rss)
            if done.wait(interval_s):
                return

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        yield seen
    finally:
        done.set()
        thread.join()
        seen["peak"] = max(seen["peak"], process.memory_info().rss)
