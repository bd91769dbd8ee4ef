"""Background work as plain generators.

A task is a generator function that *yields* progress objects and *returns*
its result. Whoever drives it (the CLI with a tqdm bar, the Qt layer on a
thread pool) can stop it at any yield with ``gen.close()``: the task's
``finally`` blocks then release what they hold. No task runs long without
yielding. :func:`run_task` drives one to completion in the calling thread.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import Any, TypeVar

P = TypeVar("P")
R = TypeVar("R")

Task = Generator[P, None, R]


def run_task(task: Generator[P, None, R], on_progress: Callable[[P], Any] | None = None) -> R:
    """Run ``task`` to the end, passing each yielded progress to ``on_progress``.

    Returns the task's return value. If ``on_progress`` (or the caller, via
    KeyboardInterrupt) raises, the task is closed so its clean-up runs.
    """
    try:
        while True:
            progress = next(task)
            if on_progress is not None:
                on_progress(progress)
    except StopIteration as stop:
        return stop.value
    finally:
        task.close()
