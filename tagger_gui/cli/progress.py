"""Driving a core task from the command line with a tqdm progress bar."""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import Any


def drive(
    task: Generator[Any, None, Any],
    *,
    desc: str,
    quiet: bool,
    unit: str = "it",
    shown: Callable[[Any], bool] | None = None,
) -> Any:
    """Run ``task`` to its end and return its result, showing its progress.

    The task's progress objects need ``done`` and ``total``; a ``what``
    attribute, if present, is shown after the bar. ``shown`` picks the
    progress objects the bar follows (e.g. one stage of a task). The task is
    closed whatever happens (Ctrl-C included), so its clean-up runs.
    """
    from tqdm import tqdm

    bar = None
    try:
        while True:
            try:
                p = next(task)
            except StopIteration as stop:
                return stop.value
            if shown is not None and not shown(p):
                continue
            if bar is None:
                bar = tqdm(total=p.total, unit=unit, disable=quiet, desc=desc, dynamic_ncols=True)
            bar.update(p.done - bar.n)
            what = getattr(p, "what", None)
            if what:
                bar.set_postfix_str(what, refresh=False)
    finally:
        task.close()
        if bar is not None:
            bar.close()
