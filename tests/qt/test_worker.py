"""The one worker API: TaskWorker signals, WorkerPool shutdown, LatestOnly (newest wins)."""

from __future__ import annotations

import threading
import time
from collections.abc import Generator

import numpy as np
import pytest
from PySide6.QtCore import QSettings, QThread

from tagger_gui.core.errors import CacheError
from tagger_gui.core.fewshot.engine import LibraryFeatures, refit_task
from tagger_gui.core.fewshot.space import FeatureSpace
from tagger_gui.qt.worker import LatestOnly, TaskWorker, WorkerPool, describe_error

from ..fewshot_data import synthetic_set
from .conftest import dangling_threads

SIGNALS = ("started", "progress", "result", "error", "cancelled", "finished")
WAIT_MS = 5000  # a generous ceiling: the waits below end as soon as the signal comes


def record(worker: TaskWorker) -> list[tuple]:
    """Every signal of ``worker``, in the order the main thread receives them."""
    log: list[tuple] = []
    for name in SIGNALS:
        getattr(worker, name).connect(lambda *args, name=name: log.append((name, *args)))
    return log


def names(log: list[tuple]) -> list[str]:
    return [entry[0] for entry in log]


def run(qtbot, pool: WorkerPool, worker: TaskWorker, *, background: bool = False) -> None:
    with qtbot.waitSignal(worker.finished, timeout=WAIT_MS):
        pool.start(worker, background=background)


def counting(n: int, closed: list[str] | None = None) -> Generator[int, None, str]:
    try:
        yield from range(n)
        return f"counted {n}"
    finally:
        if closed is not None:
            closed.append("finally")


def endless(closed: list[str], step_s: float = 0.002) -> Generator[int, None, str]:
    """Yields until closed; gives up after a few seconds so a broken cancel fails, not hangs."""
    try:
        for i in range(2000):
            yield i
            time.sleep(step_s)
        return "never cancelled"
    finally:
        closed.append("finally")


# -- TaskWorker -----------------------------------------------------------------


def test_a_task_reports_started_progress_result_finished_in_order(qtbot, worker_pool):
    worker = TaskWorker(counting(5))
    log = record(worker)
    run(qtbot, worker_pool, worker)
    assert log == [
        ("started",),
        *[("progress", i) for i in range(5)],
        ("result", "counted 5"),
        ("finished",),
    ]
    assert worker.is_finished and not worker.is_running


def test_signals_arrive_in_the_main_thread_while_the_task_runs_elsewhere(qtbot, worker_pool):
    main = QThread.currentThread()
    task_threads, slot_threads = [], []

    def task():
        task_threads.append(QThread.currentThread())
        yield 1
        return 2

    worker = TaskWorker(task())
    for name in SIGNALS:
        getattr(worker, name).connect(lambda *_: slot_threads.append(QThread.currentThread()))
    run(qtbot, worker_pool, worker)
    assert len(slot_threads) == 4  # started, progress, result, finished
    assert all(thread is main for thread in slot_threads)
    assert task_threads and task_threads[0] is not main


def test_an_exception_gives_error_then_finished_and_no_result(qtbot, worker_pool):
    closed: list[str] = []

    def failing():
        try:
            yield "fitted"
            raise ValueError("labels and tracks differ in length")
        finally:
            closed.append("finally")

    worker = TaskWorker(failing())
    log = record(worker)
    run(qtbot, worker_pool, worker)
    assert names(log) == ["started", "progress", "error", "finished"]
    exc = log[2][1]
    assert isinstance(exc, ValueError)
    assert describe_error(exc) == "ValueError: labels and tracks differ in length"
    assert closed == ["finally"]


def test_describe_error_keeps_our_own_messages_and_names_others():
    assert describe_error(CacheError("the cache is of version 9")) == "the cache is of version 9"
    assert describe_error(IndexError()) == "IndexError"
    assert describe_error(KeyError("tag0")) == "KeyError: 'tag0'"


def test_cancel_mid_task_closes_the_generator_and_gives_cancelled_not_result(qtbot, worker_pool):
    closed: list[str] = []
    resume = threading.Event()

    def task():
        try:
            yield "first"
            resume.wait(WAIT_MS / 1000)  # the main thread cancels while we are here
            yield "second"  # the worker sees the cancel at this yield
            yield "third"
            return "result"
        finally:
            closed.append("finally")

    gen = task()  # held here, so only the worker's close() can run its finally
    worker = TaskWorker(gen)
    log = record(worker)

    def cancel_then_resume(value):
        if value == "first":
            worker.cancel()
            resume.set()

    worker.progress.connect(cancel_then_resume)
    run(qtbot, worker_pool, worker)
    assert log == [("started",), ("progress", "first"), ("cancelled",), ("finished",)]
    assert closed == ["finally"]
    assert worker.is_cancel_requested


def test_a_worker_cancelled_before_it_runs_never_starts_its_task(qtbot, worker_pool):
    ran: list[str] = []

    def task():
        ran.append("body")
        yield 1

    worker = TaskWorker(task())
    log = record(worker)
    worker.cancel()
    run(qtbot, worker_pool, worker)
    assert names(log) == ["started", "cancelled", "finished"]
    assert ran == []


def test_a_worker_runs_its_task_once(qtbot, worker_pool):
    worker = TaskWorker(counting(1))
    run(qtbot, worker_pool, worker)
    with pytest.raises(RuntimeError, match="once"):
        worker_pool.start(worker)


def test_refit_task_of_the_core_runs_through_a_worker(qtbot, worker_pool):
    data, X = synthetic_set(n_groups=40, seed=3)
    space = FeatureSpace(n_components=8).fit(X)
    lib = LibraryFeatures(data.relpaths, space.transform(X), data.groups, "synthetic", space)
    truth = data.Y[:, 0]
    y = np.full(len(truth), -1, dtype=np.int8)
    y[np.flatnonzero(truth)[:5]] = 1
    worker = TaskWorker(refit_task(lib, y, tag="tag0", n=10))
    log = record(worker)
    run(qtbot, worker_pool, worker)
    assert names(log) == ["started"] + ["progress"] * 4 + ["result", "finished"]
    assert [value for name, value in log[1:5]] == ["fitted", "scored", "ranked", "assessed"]
    result = log[5][1]
    assert result.tag == "tag0"
    assert set(result.rankings) == {"top", "uncertain", "diverse", "audit"}
    top = result.rankings["top"].rows
    assert len(top) == 10 and (y[top] == -1).all()


# -- WorkerPool -------------------------------------------------------------------


def test_shutdown_cancels_running_workers_and_waits_for_them(qtbot, worker_pool):
    closed: list[str] = []
    workers = [TaskWorker(endless(closed)), TaskWorker(endless(closed))]
    logs = [record(w) for w in workers]
    # wait for a yield: a generator closed before its first step has no finally to run
    with qtbot.waitSignals([w.progress for w in workers], timeout=WAIT_MS):
        worker_pool.start(workers[0])
        worker_pool.start(workers[1], background=True)
    assert worker_pool.shutdown(WAIT_MS)
    # the tasks have stopped before shutdown returns; their signals follow
    assert closed == ["finally", "finally"]
    assert worker_pool.active_thread_count() == 0
    qtbot.waitUntil(lambda: all(w.is_finished for w in workers), timeout=WAIT_MS)
    for log in logs:
        assert names(log)[-2:] == ["cancelled", "finished"]
        assert "result" not in names(log)
    with pytest.raises(RuntimeError, match="shut down"):
        worker_pool.start(TaskWorker(counting(1)))


def test_wait_for_workers_times_out_while_a_step_runs(qtbot, worker_pool):
    release = threading.Event()

    def long_step():
        yield "started"
        release.wait(WAIT_MS / 1000)
        return "done"

    worker = TaskWorker(long_step())
    with qtbot.waitSignal(worker.progress, timeout=WAIT_MS):
        worker_pool.start(worker)
    assert worker_pool.active_workers() == [worker]
    assert not worker_pool.wait_for_workers(50)
    release.set()
    with qtbot.waitSignal(worker.finished, timeout=WAIT_MS):
        assert worker_pool.wait_for_workers(WAIT_MS)
    qtbot.waitUntil(lambda: not worker_pool.active_workers(), timeout=WAIT_MS)


def test_the_background_pool_runs_one_task_at_a_time(qtbot, worker_pool):
    lock = threading.Lock()
    running, most = [0], [0]

    def writer():
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        try:
            for i in range(5):
                time.sleep(0.005)
                yield i
        finally:
            with lock:
                running[0] -= 1

    workers = [TaskWorker(writer()) for _ in range(3)]
    with qtbot.waitSignals([w.finished for w in workers], timeout=WAIT_MS):
        for w in workers:
            worker_pool.start(w, background=True)
    assert worker_pool.background.maxThreadCount() == 1
    assert most[0] == 1


# -- LatestOnly -------------------------------------------------------------------


def test_a_burst_of_submits_runs_only_the_last_one(qtbot, worker_pool):
    live = LatestOnly(worker_pool)  # the default 150 ms debounce
    assert live.delay_ms == 150
    invoked: list[int] = []
    results: list[str] = []
    busy: list[bool] = []
    live.result.connect(results.append)
    live.busy.connect(busy.append)

    def request(k: int):
        def factory():
            invoked.append(k)
            return counting(k + 1)

        return factory

    with qtbot.waitSignal(live.result, timeout=WAIT_MS):
        for k in range(5):  # five submits within about 50 ms
            live.submit(request(k))
            qtbot.wait(10)
    qtbot.waitUntil(lambda: not live.is_busy, timeout=WAIT_MS)
    assert invoked == [4]
    assert results == ["counted 5"]
    assert busy == [True, False]


def test_a_newer_request_cancels_the_one_in_flight(qtbot, worker_pool):
    live = LatestOnly(worker_pool, delay_ms=0)
    closed: list[str] = []
    results: list[str] = []
    live.result.connect(results.append)
    with qtbot.waitSignal(live.progress, timeout=WAIT_MS):
        live.submit(lambda: endless(closed))
    old = live.current
    old_log = record(old)
    with qtbot.waitSignal(live.result, timeout=WAIT_MS):
        live.submit(lambda: counting(2))
    qtbot.waitUntil(lambda: old.is_finished, timeout=WAIT_MS)
    assert results == ["counted 2"]
    assert closed == ["finally"]
    assert names(old_log)[-2:] == ["cancelled", "finished"]


def test_a_stale_result_that_arrives_late_is_dropped(qtbot, worker_pool):
    live = LatestOnly(worker_pool, delay_ms=0)
    results: list[str] = []
    live.result.connect(results.append)
    older_in_last_step = threading.Event()
    newer_started = threading.Event()
    older_returned = threading.Event()

    def older():
        try:
            yield "older running"
            # no yield left: this step ends in a result even though it gets cancelled
            older_in_last_step.set()
            newer_started.wait(WAIT_MS / 1000)
            return "older"
        finally:
            older_returned.set()

    def newer():
        newer_started.set()
        yield "newer running"
        older_returned.wait(WAIT_MS / 1000)  # finish after the older one
        return "newer"

    live.submit(older)
    qtbot.waitUntil(older_in_last_step.is_set, timeout=WAIT_MS)
    old = live.current
    old_results: list[str] = []
    old.result.connect(old_results.append)
    with qtbot.waitSignals([live.result, old.finished], timeout=WAIT_MS):
        live.submit(newer)
    assert old_results == ["older"]  # the old worker did report its result...
    assert results == ["newer"]  # ...but only the newest request's reached us
    qtbot.waitUntil(lambda: not live.is_busy, timeout=WAIT_MS)


def test_errors_of_the_newest_request_are_reported(qtbot, worker_pool):
    live = LatestOnly(worker_pool, delay_ms=0)
    busy: list[bool] = []
    live.busy.connect(busy.append)

    def broken():
        raise CacheError("the cache is of version 9")
        yield  # a generator

    with qtbot.waitSignal(live.error, timeout=WAIT_MS) as blocker:
        live.submit(broken)
    assert describe_error(blocker.args[0]) == "the cache is of version 9"
    qtbot.waitUntil(lambda: not live.is_busy, timeout=WAIT_MS)
    assert busy == [True, False]


def test_cancel_drops_the_pending_request(qtbot, worker_pool):
    live = LatestOnly(worker_pool, delay_ms=20)
    invoked: list[str] = []
    live.submit(lambda: invoked.append("ran") or counting(1))
    live.cancel()
    qtbot.wait(60)
    assert invoked == [] and not live.is_busy


# -- the fixtures -------------------------------------------------------------------


def test_settings_go_to_a_temporary_folder(_fresh_settings):
    settings = QSettings()
    settings.setValue("window/geometry", "test")
    settings.sync()
    assert settings.fileName().startswith(str(_fresh_settings))
    assert "tagger-gui-tests" in settings.fileName()


def test_a_worker_left_running_is_detected(qtbot, worker_pool):
    release = threading.Event()

    def stuck():
        yield "running"
        release.wait(WAIT_MS / 1000)

    worker = TaskWorker(stuck())
    with qtbot.waitSignal(worker.progress, timeout=WAIT_MS):
        worker_pool.start(worker)
    left = dangling_threads({worker_pool.interactive: "test"}, {}, grace_ms=20)
    assert len(left) == 1 and "still runs 1 task" in left[0]
    release.set()
    with qtbot.waitSignal(worker.finished, timeout=WAIT_MS):
        pass
    assert dangling_threads({worker_pool.interactive: "test"}, {}, grace_ms=20) == []


def test_pool_threads_run_at_a_lower_cpu_priority(qtbot, worker_pool):
    import os
    import threading

    from tagger_gui.qt.worker import WORKER_THREAD_NICENESS, TaskWorker

    main = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())

    def task():
        yield "measuring"
        return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())

    worker = TaskWorker(task())
    with qtbot.waitSignal(worker.result, timeout=10_000) as blocker:
        worker_pool.start(worker)
    assert blocker.args[0] == min(19, main + WORKER_THREAD_NICENESS)
    # the GUI thread keeps its priority
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == main
